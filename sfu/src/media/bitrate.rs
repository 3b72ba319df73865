//! How many bits per second a stream carries, measured over half-second
//! windows: what a link delivered, for the estimator, and (averaged over
//! the last two seconds, so that a keyframe or a frame held back by a busy
//! encoder does not make a layer look twice its cost) what a simulcast
//! layer costs a subscriber, for the stream allocator. Two additions per
//! packet, no allocation.

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_millis(500);
/// Windows an average is taken over.
const HISTORY: usize = 4;

#[derive(Debug, Clone, Copy)]
pub struct Bitrate {
    bytes: u64,
    since: Instant,
    /// The last full window's rate, in bits per second.
    rate: f64,
    /// The last full windows' rates (a ring; `filled` of them so far).
    history: [f64; HISTORY],
    next: usize,
    filled: usize,
}

impl Bitrate {
    pub fn new(now: Instant) -> Self {
        Self {
            bytes: 0,
            since: now,
            rate: 0.0,
            history: [0.0; HISTORY],
            next: 0,
            filled: 0,
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
            self.history[self.next] = self.rate;
            self.next = (self.next + 1) % HISTORY;
            self.filled = (self.filled + 1).min(HISTORY);
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

    /// Bits per second over the last few full windows (0 before the
    /// first).
    pub fn average(&mut self, now: Instant) -> f64 {
        self.roll(now);
        if self.filled == 0 {
            return 0.0;
        }
        self.history[..self.filled].iter().sum::<f64>() / self.filled as f64
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

    #[test]
    fn averages_the_last_two_seconds() {
        let t0 = Instant::now();
        let mut b = Bitrate::new(t0);
        // 1 Mbit/s with a keyframe of 25000 bytes in one window.
        for i in 0..200u64 {
            let big = if i == 190 { 25_000 } else { 1250 };
            b.add(t0 + Duration::from_millis(10 * i), big);
        }
        let at = t0 + Duration::from_millis(2000);
        let last = b.rate(at);
        let average = b.average(at);
        assert!(last > 1_300_000.0, "{last}");
        assert!((average - 1_100_000.0).abs() < 50_000.0, "{average}");
    }
}
