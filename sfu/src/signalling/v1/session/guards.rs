//! What bounds one session's traffic: messages per second, in all and of
//! each kind, remote ICE candidates per connection, and the per-address
//! and per-server limits on joining.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::super::{ClientMessage, Target};
use crate::access::limits::Limit;
use crate::access::Access;

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
        self.allow_up_to(now, MAX_MESSAGES_PER_SECOND)
    }

    fn allow_up_to(&mut self, now: Instant, max: u32) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= max
    }
}

/// Messages that each make the server work (an SDP through the media
/// engine, a forwarding change, a host's act on others) have a bound of
/// their own per second, under the overall one: a client looping on one
/// kind is slowed (the extra messages are refused) without losing its
/// socket. A browser sends a few of any kind per second at most.
/// Candidates are bounded per connection, chat per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `publisher_offer`, `subscriber_answer`, `restart_ice`.
    Negotiation,
    /// `mute`.
    Mute,
    /// `track_settings`.
    Quality,
    /// What hosts do: `remove`, `mute_participant`, `lock_meeting`,
    /// `end_meeting`, `admit`, `deny`, `create_invite`, `lower_hand`.
    Moderation,
    /// `raise_hand`, `react`: shown to everyone, so fewer than a person
    /// clicks.
    Gesture,
}

impl Kind {
    fn of(msg: &ClientMessage) -> Option<Kind> {
        Some(match msg {
            ClientMessage::PublisherOffer { .. }
            | ClientMessage::SubscriberAnswer { .. }
            | ClientMessage::RestartIce {} => Kind::Negotiation,
            ClientMessage::Mute { .. } => Kind::Mute,
            ClientMessage::TrackSettings { .. } => Kind::Quality,
            ClientMessage::RaiseHand { .. } | ClientMessage::React { .. } => Kind::Gesture,
            m if m.is_host_action() => Kind::Moderation,
            _ => return None,
        })
    }

    pub(super) const fn per_second(self) -> u32 {
        match self {
            Kind::Gesture => 5,
            Kind::Negotiation | Kind::Moderation => 10,
            Kind::Mute | Kind::Quality => 20,
        }
    }
}

/// One [`RateLimit`] per [`Kind`], indexed by it.
pub(super) struct KindRates([RateLimit; 5]);

impl KindRates {
    pub(super) fn new(now: Instant) -> Self {
        Self([(); 5].map(|_| RateLimit::new(now)))
    }

    /// Whether `msg` at `now` is within its kind's bound (always, for a
    /// kind without one).
    pub(super) fn allow(&mut self, msg: &ClientMessage, now: Instant) -> bool {
        let Some(kind) = Kind::of(msg) else {
            return true;
        };
        self.0[kind as usize].allow_up_to(now, kind.per_second())
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
pub(super) fn admission_limits(access: &Access, ip: IpAddr, room: &str) -> Result<(), Limit> {
    let meetings = access.roster.meetings();
    let new_meeting = !meetings.iter().any(|(r, _)| r == room);
    if new_meeting && meetings.len() >= access.limits.bounds().meetings {
        return Err(Limit::Meetings);
    }
    access.limits.join(ip, Instant::now())
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

    #[test]
    fn each_kind_has_its_own_bound() {
        let t0 = Instant::now();
        let mut rates = KindRates::new(t0);
        let mute = ClientMessage::Mute {
            mid: "0".into(),
            muted: true,
        };
        let lock = ClientMessage::LockMeeting { locked: true };
        for _ in 0..Kind::Mute.per_second() {
            assert!(rates.allow(&mute, t0));
        }
        assert!(!rates.allow(&mute, t0));
        // Another kind is untouched, one without a bound always passes.
        assert!(rates.allow(&lock, t0));
        assert!(rates.allow(&ClientMessage::Leave {}, t0));
        assert!(rates.allow(&mute, t0 + Duration::from_secs(1)));
    }
}
