//! What left on an estimated link, by transport-wide number, until the
//! browser's feedback says whether and when it arrived.
//!
//! The link numbers its packets itself, one after the other, so the
//! record is a queue in sending order: the number is the position, a
//! report is found by arithmetic, and forgetting old packets pops the
//! front. (The engine's `History` keeps three hash maps per packet, for
//! feedback formats that name packets otherwise, and walks all of them to
//! forget old ones: on every packet to every estimated subscriber.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::{Acknowledgement, PacketReport};

/// At most this many packets are remembered: half the number space, so a
/// 16-bit number from a report always names one of them unambiguously
/// (2 s of the fastest link the estimate allows is well below it).
const MAX_KEPT: usize = 1 << 15;

/// Every transport-wide number as the extension's two bytes (big-endian),
/// so a packet is numbered without an allocation.
static NUMBERS: [u8; 2 << 16] = {
    let mut t = [0u8; 2 << 16];
    let mut i = 0;
    while i < 1 << 16 {
        t[2 * i] = (i >> 8) as u8;
        t[2 * i + 1] = i as u8;
        i += 1;
    }
    t
};

/// The extension's payload for transport-wide number `seq`.
pub fn number_bytes(seq: u16) -> bytes::Bytes {
    let at = 2 * seq as usize;
    bytes::Bytes::from_static(&NUMBERS[at..at + 2])
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    size: u32,
    departure: Instant,
    arrival: Option<Duration>,
    arrived: bool,
}

#[derive(Debug, Default)]
pub struct SentPackets {
    /// The number (unwrapped) of the front of `sent`.
    first: u64,
    sent: VecDeque<Sent>,
    /// The highest number reported arrived and not yet taken.
    highest_arrived: Option<u64>,
}

impl SentPackets {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packets remembered.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.sent.len()
    }

    /// The number the next packet takes.
    pub fn next(&self) -> u16 {
        (self.first + self.sent.len() as u64) as u16
    }

    /// Remembers a packet of `size` bytes on the wire that left at
    /// `departure` under [`Self::next`]'s number.
    pub fn add(&mut self, size: usize, departure: Instant) {
        if self.sent.len() == MAX_KEPT {
            self.sent.pop_front();
            self.first += 1;
        }
        self.sent.push_back(Sent {
            size: size as u32,
            departure,
            arrival: None,
            arrived: false,
        });
    }

    /// Notes what a report says of one packet; one not remembered (too
    /// old, already taken, never sent) is passed over.
    pub fn acknowledge(&mut self, ack: &Acknowledgement) {
        let Some(newest) = (self.first + self.sent.len() as u64).checked_sub(1) else {
            return;
        };
        let back = u64::from((newest as u16).wrapping_sub(ack.sequence_number));
        let Some(number) = newest.checked_sub(back) else {
            return;
        };
        let Some(p) = number
            .checked_sub(self.first)
            .and_then(|i| self.sent.get_mut(i as usize))
        else {
            return;
        };
        p.arrived = ack.arrived;
        p.arrival = ack.arrival;
        if ack.arrived {
            self.highest_arrived = Some(self.highest_arrived.map_or(number, |h| h.max(number)));
        }
    }

    /// Moves every packet up to the highest one reported arrived into
    /// `out`, in sending order; those before it not reported arrived
    /// count as lost.
    pub fn take_reports(&mut self, out: &mut Vec<PacketReport>) {
        let Some(highest) = self.highest_arrived.take() else {
            return;
        };
        while self.first <= highest {
            let Some(p) = self.sent.pop_front() else {
                break;
            };
            out.push(PacketReport {
                ssrc: 0,
                id: self.first,
                rtp_sequence_number: 0,
                is_twcc: true,
                twcc_sequence_number: self.first as u16,
                size: p.size as usize,
                arrived: p.arrived,
                departure: p.departure,
                arrival: p.arrival,
                ecn: Default::default(),
            });
            self.first += 1;
        }
    }

    /// Forgets packets that left before `cutoff` and were never reported
    /// arrived (everything reported arrived was taken with its report).
    pub fn forget_before(&mut self, cutoff: Instant) {
        while self.sent.front().is_some_and(|p| p.departure < cutoff) {
            self.sent.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrived(seq: u16, ms: u64) -> Acknowledgement {
        Acknowledgement::received(seq, Some(Duration::from_millis(ms)), Default::default())
    }

    fn sent(n: usize, at: Instant) -> SentPackets {
        let mut s = SentPackets::new();
        for _ in 0..n {
            s.add(1200, at);
        }
        s
    }

    #[test]
    fn numbers_are_their_own_two_bytes() {
        for seq in [0u16, 1, 255, 256, 0x1234, u16::MAX] {
            assert_eq!(number_bytes(seq).as_ref(), seq.to_be_bytes());
        }
    }

    #[test]
    fn a_report_takes_everything_up_to_the_highest_arrival() {
        let t0 = Instant::now();
        let mut s = sent(4, t0);
        s.acknowledge(&arrived(0, 10));
        s.acknowledge(&Acknowledgement::lost(1));
        s.acknowledge(&arrived(2, 30));
        let mut out = Vec::new();
        s.take_reports(&mut out);
        let seen: Vec<_> = out
            .iter()
            .map(|r| (r.twcc_sequence_number, r.arrived))
            .collect();
        assert_eq!(seen, [(0, true), (1, false), (2, true)]);
        assert_eq!(out[2].arrival, Some(Duration::from_millis(30)));
        assert_eq!(s.kept(), 1, "the fourth waits for its report");
        out.clear();
        s.take_reports(&mut out);
        assert!(out.is_empty(), "each packet is reported once");
    }

    #[test]
    fn a_loss_alone_reports_nothing() {
        let mut s = sent(3, Instant::now());
        s.acknowledge(&Acknowledgement::lost(0));
        let mut out = Vec::new();
        s.take_reports(&mut out);
        assert!(out.is_empty());
        assert_eq!(s.kept(), 3);
    }

    #[test]
    fn numbers_wrap_and_unknown_ones_are_passed_over() {
        let t0 = Instant::now();
        let mut s = sent(65_530, t0);
        s.forget_before(t0 + Duration::from_millis(1));
        assert_eq!(s.kept(), 0);
        for _ in 0..10 {
            s.add(1000, t0);
        }
        // 65530..=65535, then 0..=3.
        assert_eq!(s.next(), 4);
        s.acknowledge(&arrived(100, 1)); // never sent
        s.acknowledge(&arrived(65_000, 1)); // forgotten
        let mut out = Vec::new();
        s.take_reports(&mut out);
        assert!(out.is_empty());
        s.acknowledge(&arrived(1, 5));
        s.take_reports(&mut out);
        assert_eq!(out.len(), 8, "65530 to 1 across the wrap");
        assert_eq!(out.last().map(|r| r.id), Some(65_537));
    }

    #[test]
    fn old_packets_are_forgotten_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut s = SentPackets::new();
        s.add(1200, t0);
        s.add(1200, t0 + Duration::from_secs(5));
        s.forget_before(t0 + Duration::from_secs(1));
        assert_eq!(s.kept(), 1);
        let mut out = Vec::new();
        s.acknowledge(&arrived(0, 1));
        s.take_reports(&mut out);
        assert!(out.is_empty(), "the forgotten one's report finds nothing");
        let mut s = sent(MAX_KEPT + 10, t0);
        assert_eq!(s.kept(), MAX_KEPT);
        s.acknowledge(&arrived(s.next().wrapping_sub(1), 1));
        s.take_reports(&mut out);
        assert_eq!(out.len(), MAX_KEPT);
    }
}
