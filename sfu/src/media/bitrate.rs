//! How many bits per second a stream carries, measured over half-second
//! windows: what a simulcast layer costs a subscriber, for the stream
//! allocator. Two additions per packet, no allocation.

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
pub struct Bitrate {
    bytes: u64,
    since: Instant,
    /// The last full window's rate, in bits per second.
    rate: f64,
}

impl Bitrate {
    pub fn new(now: Instant) -> Self {
        Self {
            bytes: 0,
            since: now,
            rate: 0.0,
        }
    }

    /// A packet of `bytes` (on the wire) went by.
    pub fn add(&mut self, now: Instant, bytes: usize) {
        self.roll(now);
        self.bytes += bytes as u64;
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            // A window with a long silence before it (a paused layer)
            // counts over its whole length: the rate fell.
            self.rate = self.bytes as f64 * 8.0 / elapsed.as_secs_f64();
            self.bytes = 0;
            self.since = now;
        }
    }

    /// Bits per second over the last full window that ended by the last
    /// addition (0 before the first).
    pub fn last(&self) -> f64 {
        self.rate
    }

    /// Bits per second over the last full window (0 before the first).
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_over_half_second_windows() {
        let t0 = Instant::now();
        let mut b = Bitrate::new(t0);
        // 100 packets of 1250 bytes a second: 1 Mbit/s.
        for i in 0..100u64 {
            b.add(t0 + Duration::from_millis(10 * i), 1250);
        }
        let r = b.rate(t0 + Duration::from_millis(1000));
        assert!((r - 1_000_000.0).abs() < 30_000.0, "{r}");
        // Silence: the rate falls to nothing.
        assert_eq!(b.rate(t0 + Duration::from_secs(3)), 0.0);
    }
}
