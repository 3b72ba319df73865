//! Wake-ups of a media worker that kept it busy long enough to delay every
//! room on it: counted, and logged now and then.

use std::time::{Duration, Instant};

/// A wake-up busy this long delays every packet of every room on the
/// worker noticeably.
pub const SLOW_WAKEUP: Duration = Duration::from_millis(5);
/// Least time between two log lines about slow wake-ups.
const SLOW_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Wake-ups that kept the worker busy over [`SLOW_WAKEUP`], and a log line
/// about them now and then.
#[derive(Default)]
pub struct SlowWakeups {
    pub total: u64,
    /// Since the last log line: how many, and the longest.
    recent: u64,
    longest: Duration,
    last_log: Option<Instant>,
}

impl SlowWakeups {
    pub fn record(&mut self, busy: Duration, now: Instant) {
        if busy <= SLOW_WAKEUP {
            return;
        }
        self.total += 1;
        self.recent += 1;
        self.longest = self.longest.max(busy);
        if self
            .last_log
            .is_none_or(|t| now.saturating_duration_since(t) >= SLOW_LOG_INTERVAL)
        {
            tracing::warn!(
                count = self.recent,
                longest_ms = self.longest.as_secs_f64() * 1000.0,
                "media worker busy over {} ms in one wake-up; every room on it waited",
                SLOW_WAKEUP.as_millis()
            );
            self.recent = 0;
            self.longest = Duration::ZERO;
            self.last_log = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_wakeups_are_counted_and_reported_now_and_then() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut s = SlowWakeups::default();
        s.record(ms(1), t);
        assert_eq!(s.total, 0, "a quick wake-up is not slow");
        s.record(ms(6), t);
        assert_eq!(
            (s.total, s.recent),
            (1, 0),
            "the first one is logged at once"
        );
        s.record(ms(30), t + ms(1));
        s.record(ms(8), t + ms(2));
        assert_eq!(
            (s.total, s.recent, s.longest),
            (3, 2, ms(30)),
            "held for the next line"
        );
        s.record(ms(7), t + SLOW_LOG_INTERVAL);
        assert_eq!((s.total, s.recent), (4, 0));
    }
}
