//! What the room core keeps of one subscriber's link when its bandwidth
//! is estimated: the estimate (`estimator.rs`), the allocator that shares
//! it out (`allocator.rs`), and what the link was sent since the last
//! probe tick, which a probe tops up.

use std::time::Instant;

use rtc::rtp::Packet;

use super::allocator::Allocator;
use super::estimator::Estimator;

/// What a forwarded packet costs on the wire beyond its payload: the RTP
/// header with its extensions, the SRTP tag, UDP and IPv4.
pub const PACKET_OVERHEAD: usize = 64;

pub struct Link {
    pub estimator: Estimator,
    pub allocator: Allocator,
    pub sent_bytes: usize,
}

impl Link {
    pub fn new(now: Instant) -> Self {
        Self {
            estimator: Estimator::new(now),
            allocator: Allocator::default(),
            sent_bytes: 0,
        }
    }

    /// `packet` leaves for the subscriber: numbered for its feedback.
    pub fn on_send(&mut self, now: Instant, packet: &mut Packet) {
        self.estimator.on_send(now, packet);
        self.sent_bytes += packet.payload.len() + PACKET_OVERHEAD;
    }
}
