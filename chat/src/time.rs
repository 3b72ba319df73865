//! The wall clock as the homeserver counts it (milliseconds since 1970),
//! and how long to wait before asking it again after a failure.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The first wait after a failed request, doubled up to the longest.
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(250);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(2);

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
