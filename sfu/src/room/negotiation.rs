//! The subscriber connection's offer/answer exchange, which the server
//! leads: one offer out at a time; whatever changes while it is out is
//! offered next. An offer left unanswered is rolled back and made again,
//! and a participant whose browser answers neither is given up on; without
//! that, one lost answer would stop every later change from reaching it.

use std::time::{Duration, Instant};

/// How long a browser may take to answer an offer (it takes milliseconds).
pub const OFFER_TIMEOUT: Duration = Duration::from_secs(10);
/// Offers in a row left unanswered before the participant is removed.
const MAX_UNANSWERED: u8 = 2;

#[derive(Debug, Default)]
pub struct Negotiation {
    /// The offer out, when it went, and whether something changed since.
    out: Option<(Instant, bool)>,
    needs_offer: bool,
    unanswered: u8,
    /// The browser asked for an ICE restart: the next offer makes one.
    ice_restart: bool,
}

/// What to do about an offer nobody answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Roll it back and offer again.
    Retry,
    /// Remove the participant.
    GiveUp,
}

impl Negotiation {
    /// The subscriber's tracks changed: they need offering.
    pub fn changed(&mut self) {
        self.needs_offer = true;
    }

    /// The browser asks for an ICE restart: an offer is due, and it restarts
    /// ICE (one already out goes on; the restart follows its answer).
    pub fn restart_ice(&mut self) {
        self.ice_restart = true;
        self.needs_offer = true;
    }

    /// Whether the offer going out now must restart ICE.
    pub fn take_ice_restart(&mut self) -> bool {
        std::mem::take(&mut self.ice_restart)
    }

    /// Whether an offer should go out now: something changed and no offer
    /// is out (else it goes out after the answer).
    pub fn offer_due(&mut self) -> bool {
        if !std::mem::take(&mut self.needs_offer) {
            return false;
        }
        match &mut self.out {
            Some((_, again)) => {
                *again = true;
                false
            }
            None => true,
        }
    }

    pub fn offered(&mut self, now: Instant) {
        self.out = Some((now, false));
    }

    /// An answer arrived (whether or not the engine took it): the exchange
    /// is over. False if no offer was out.
    pub fn answered(&mut self) -> bool {
        let Some((_, again)) = self.out.take() else {
            return false;
        };
        self.unanswered = 0;
        self.needs_offer |= again;
        true
    }

    /// The offer out has waited too long; what to do about it.
    pub fn expire(&mut self, now: Instant) -> Option<Expired> {
        let (at, _) = self.out?;
        if now.saturating_duration_since(at) < OFFER_TIMEOUT {
            return None;
        }
        self.out = None;
        self.needs_offer = true;
        self.unanswered += 1;
        Some(if self.unanswered >= MAX_UNANSWERED {
            Expired::GiveUp
        } else {
            Expired::Retry
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_offer_at_a_time_and_changes_follow_the_answer() {
        let t0 = Instant::now();
        let mut n = Negotiation::default();
        assert!(!n.offer_due(), "nothing changed");
        n.changed();
        assert!(n.offer_due());
        n.offered(t0);
        n.changed();
        assert!(!n.offer_due(), "one is out");
        assert!(n.answered());
        assert!(n.offer_due(), "the change made meanwhile");
        n.offered(t0);
        assert!(n.answered());
        assert!(!n.offer_due());
        assert!(!n.answered(), "no offer out");
    }

    #[test]
    fn an_ice_restart_goes_out_with_the_next_offer() {
        let t0 = Instant::now();
        let mut n = Negotiation::default();
        n.changed();
        assert!(n.offer_due());
        n.offered(t0);
        n.restart_ice();
        assert!(!n.offer_due(), "one is out");
        assert!(n.answered());
        assert!(n.offer_due(), "the restart follows the answer");
        assert!(n.take_ice_restart());
        assert!(!n.take_ice_restart(), "one restart per request");
    }

    #[test]
    fn an_unanswered_offer_is_made_again_then_given_up() {
        let t0 = Instant::now();
        let mut n = Negotiation::default();
        n.changed();
        assert!(n.offer_due());
        n.offered(t0);
        assert_eq!(n.expire(t0 + Duration::from_secs(1)), None);
        assert_eq!(n.expire(t0 + OFFER_TIMEOUT), Some(Expired::Retry));
        assert!(n.offer_due(), "offered again");
        let t1 = t0 + OFFER_TIMEOUT;
        n.offered(t1);
        assert_eq!(n.expire(t1 + OFFER_TIMEOUT), Some(Expired::GiveUp));
        // An answer in time resets the count.
        let mut n = Negotiation::default();
        n.changed();
        n.offer_due();
        n.offered(t0);
        n.expire(t0 + OFFER_TIMEOUT);
        n.offer_due();
        n.offered(t1);
        assert!(n.answered());
        n.changed();
        n.offer_due();
        n.offered(t1);
        assert_eq!(n.expire(t1 + OFFER_TIMEOUT), Some(Expired::Retry));
    }
}
