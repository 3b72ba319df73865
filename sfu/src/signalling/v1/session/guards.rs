//! What bounds one session's traffic: messages per second, remote ICE
//! candidates per connection, and the per-address and per-server limits
//! on joining.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::super::Target;
use crate::shell::limits::Limit;
use crate::shell::server::AppState;

/// A browser sends a few messages per negotiation (offer, answer, a dozen
/// trickled candidates); a flood beyond this ends the session, so one client
/// cannot queue unbounded work for a media worker.
pub(super) const MAX_MESSAGES_PER_SECOND: u32 = 50;

/// Counts messages in one-second windows.
pub(super) struct RateLimit {
    window_start: Instant,
    count: u32,
}

impl RateLimit {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            count: 0,
        }
    }

    /// Whether one more message at `now` is within the limit.
    pub(super) fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_MESSAGES_PER_SECOND
    }
}

/// Remote ICE candidates a browser gathers for one connection: a host, a
/// reflexive and a relay candidate per interface and protocol. Far more is
/// no browser; each one costs the media engine a pair to check.
const MAX_CANDIDATES: u32 = 64;

#[derive(Default)]
pub(super) struct CandidateCount {
    publisher: u32,
    subscriber: u32,
}

impl CandidateCount {
    /// Counts one for `target`; false once it is past the bound.
    pub(super) fn count(&mut self, target: Target) -> bool {
        let n = match target {
            Target::Publisher => &mut self.publisher,
            Target::Subscriber => &mut self.subscriber,
        };
        *n += 1;
        *n <= MAX_CANDIDATES
    }
}

/// The per-address join rate and the number of meetings, for a join that
/// is otherwise admitted.
pub(super) fn admission_limits(state: &AppState, ip: IpAddr, room: &str) -> Result<(), Limit> {
    let meetings = state.roster.meetings();
    let new_meeting = !meetings.iter().any(|(r, _)| r == room);
    if new_meeting && meetings.len() >= state.limits.bounds().meetings {
        return Err(Limit::Meetings);
    }
    state.limits.join(ip, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_resets_every_second() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(t0);
        for _ in 0..MAX_MESSAGES_PER_SECOND {
            assert!(limit.allow(t0 + Duration::from_millis(500)));
        }
        assert!(!limit.allow(t0 + Duration::from_millis(999)));
        assert!(limit.allow(t0 + Duration::from_millis(1000)));
    }
}
