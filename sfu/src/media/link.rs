//! What the room core keeps of one subscriber's link when its bandwidth
//! is estimated: the estimate (`estimator.rs`), the allocator that shares
//! it out (`allocator.rs`), its pacer (`pacer.rs`), what the link was sent
//! since the last probe tick, which a probe tops up, and its budget for
//! retransmissions.

use std::time::{Duration, Instant};

use rtc::rtp::Packet;

use super::allocator::Allocator;
use super::estimator::Estimator;
use super::pacer::Pacer;

/// What a forwarded packet costs on the wire beyond its payload: the RTP
/// header with its extensions, the SRTP tag, UDP and IPv4.
pub const PACKET_OVERHEAD: usize = 64;

/// Without an estimate, the share of what a connection was sent that its
/// retransmissions may take, and the most saved up for a burst of them.
const SENT_SHARE: f64 = 0.2;
const SENT_SAVED: f64 = 64_000.0;

/// A connection's budget for retransmissions where its link has no
/// estimate (`bandwidth_estimation` off): a share of what it was sent.
/// A link that loses much would otherwise be sent resends of resends
/// without end, most of what it carries (a 400 kbit/s subscriber of two
/// cameras dropped 2 000 datagrams a second so).
#[derive(Debug, Default)]
pub struct SentShare {
    budget: f64,
}

impl SentShare {
    /// `bytes` went out on the connection.
    pub fn on_sent(&mut self, bytes: usize) {
        self.budget = (self.budget + bytes as f64 * SENT_SHARE).min(SENT_SAVED);
    }

    /// Whether a retransmission of `bytes` fits; if so, it is spent.
    pub fn may_resend(&mut self, bytes: usize) -> bool {
        let bytes = bytes as f64;
        let fits = self.budget >= bytes;
        if fits {
            self.budget -= bytes;
        }
        fits
    }
}

/// Share of the estimate that retransmissions may take, and the burst
/// they may spend at once (this long at that rate). Answering every NACK
/// of a full link fills it further: the resends are lost in turn, NACKed
/// again, and the link carries little else (libwebrtc caps them too).
const RESEND_SHARE: f64 = 0.2;
const RESEND_BURST: Duration = Duration::from_millis(250);

pub struct Link {
    pub estimator: Estimator,
    pub allocator: Allocator,
    pub pacer: Pacer,
    pub sent_bytes: usize,
    /// Bytes of retransmission the link may still take, as of when.
    resend_budget: f64,
    resend_at: Instant,
}

impl Link {
    pub fn new(now: Instant) -> Self {
        Self {
            estimator: Estimator::new(now),
            allocator: Allocator::default(),
            pacer: Pacer::new(now),
            sent_bytes: 0,
            resend_budget: 0.0,
            resend_at: now,
        }
    }

    /// Whether a retransmission of `bytes` fits the link's budget for
    /// them now; if so, it is spent.
    pub fn may_resend(&mut self, now: Instant, bytes: usize) -> bool {
        let rate = self.estimator.estimate() * RESEND_SHARE / 8.0;
        let elapsed = now.saturating_duration_since(self.resend_at);
        self.resend_at = now;
        let most = (rate * RESEND_BURST.as_secs_f64()).max(1500.0);
        self.resend_budget = (self.resend_budget + rate * elapsed.as_secs_f64()).min(most);
        let bytes = bytes as f64;
        let fits = self.resend_budget >= bytes;
        if fits {
            self.resend_budget -= bytes;
        }
        fits
    }

    /// `packet` leaves for the subscriber: numbered for its feedback.
    pub fn on_send(&mut self, now: Instant, packet: &mut Packet) {
        self.estimator.on_send(now, packet);
        self.sent_bytes += packet.payload.len() + PACKET_OVERHEAD;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_estimate_retransmissions_take_a_share_of_what_was_sent() {
        let mut s = SentShare::default();
        assert!(!s.may_resend(1200), "nothing sent yet");
        // 50 packets of 1200 bytes sent: room for ten resends.
        for _ in 0..50 {
            s.on_sent(1200);
        }
        let resent = (0..20).filter(|_| s.may_resend(1200)).count();
        assert_eq!(resent, 10);
        // However long it was quiet, no more than the saved-up most.
        for _ in 0..10_000 {
            s.on_sent(1200);
        }
        let resent = (0..100).filter(|_| s.may_resend(1200)).count();
        assert_eq!(resent, (SENT_SAVED / 1200.0) as usize);
    }

    #[test]
    fn retransmissions_take_a_share_of_the_estimate_at_most() {
        let t0 = Instant::now();
        let mut link = Link::new(t0);
        let per_second = link.estimator.estimate() * RESEND_SHARE / 8.0;
        let burst = per_second * RESEND_BURST.as_secs_f64();
        // Nothing saved up at the start; a quarter second's worth later.
        assert!(!link.may_resend(t0, 1200));
        let t1 = t0 + Duration::from_secs(1);
        let fit = (burst / 1200.0) as usize;
        for i in 0..fit {
            assert!(link.may_resend(t1, 1200), "resend {i}");
        }
        assert!(!link.may_resend(t1, 1200), "over the burst");
        // Refilled at the share's rate.
        let t2 = t1 + Duration::from_secs_f64(1200.0 / per_second);
        assert!(link.may_resend(t2, 1200));
        assert!(!link.may_resend(t2, 1200));
    }
}
