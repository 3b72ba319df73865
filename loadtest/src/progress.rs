//! Counters shared by the peers (joins, packets) with the progress display.

use std::sync::atomic::AtomicU64;

/// Counters shared with the progress display.
#[derive(Default)]
pub struct Progress {
    pub joined: AtomicU64,
    pub packets: AtomicU64,
}
