//! What one down-track sent, by its own sequence number: enough to rebuild
//! any of those packets from its layer's buffer (`buffer.rs`) when the
//! subscriber asks for it again (NACK), without a copy per subscriber. A
//! few bytes per packet (12 KiB per down-track in all): the engine's own
//! retransmission history, which this replaces, kept every packet a
//! down-track sent, each rewritten one as a private copy (about 1 MB per
//! down-track after a layer switch).

use std::time::{Duration, Instant};

use super::vp8::Offsets;

/// Packets remembered per down-track, as many as a layer's buffer keeps
/// (`buffer.rs`); a power of two, so that slots follow the wrapping
/// sequence numbers.
pub const CAPACITY: usize = 512;
/// A packet resent this recently is not resent again: the subscriber asked
/// before the copy in flight could arrive.
const MIN_RESEND_INTERVAL: Duration = Duration::from_millis(15);
/// Older packets are not resent: by then the subscriber's decoder has moved
/// on, or asked for a keyframe.
const MAX_AGE: Duration = Duration::from_secs(2);

/// Where a sent packet came from and what it became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The layer (SSRC) and sequence number it had on arrival.
    pub layer: u32,
    pub source_seq: u16,
    /// Its timestamp for the subscriber.
    pub timestamp: u32,
    /// How its VP8 descriptor was rewritten.
    pub vp8: Offsets,
}

/// A [`Sent`] and when, flat so that it takes 24 bytes.
#[derive(Clone, Copy, Default)]
struct Entry {
    seq: u16,
    source_seq: u16,
    layer: u32,
    timestamp: u32,
    vp8: Offsets,
    /// Milliseconds since [`Sequencer::epoch`]: when it was sent (0: the
    /// slot is empty), and last resent (0: never).
    sent_ms: u32,
    resent_ms: u32,
}

impl Entry {
    fn sent(&self) -> Sent {
        Sent {
            layer: self.layer,
            source_seq: self.source_seq,
            timestamp: self.timestamp,
            vp8: self.vp8,
        }
    }
}

pub struct Sequencer {
    slots: Box<[Entry]>,
    epoch: Instant,
}

impl Sequencer {
    pub fn new(now: Instant) -> Self {
        Self {
            slots: vec![Entry::default(); CAPACITY].into_boxed_slice(),
            epoch: now,
        }
    }

    /// Milliseconds since the epoch; at least 1, so 0 can mean "never".
    fn ms(&self, now: Instant) -> u32 {
        (now.saturating_duration_since(self.epoch).as_millis() as u32).max(1)
    }

    /// `seq` went out to the subscriber; `late` if it came so late that it
    /// answers the subscriber's request for it already (no need to send it
    /// again right away).
    pub fn record(&mut self, now: Instant, seq: u16, sent: Sent, late: bool) {
        let sent_ms = self.ms(now);
        self.slots[usize::from(seq) % CAPACITY] = Entry {
            seq,
            source_seq: sent.source_seq,
            layer: sent.layer,
            timestamp: sent.timestamp,
            vp8: sent.vp8,
            sent_ms,
            resent_ms: if late { sent_ms } else { 0 },
        };
    }

    /// What `seq` was, if it is still remembered.
    pub fn peek(&self, seq: u16) -> Option<Sent> {
        let e = &self.slots[usize::from(seq) % CAPACITY];
        (e.sent_ms != 0 && e.seq == seq).then(|| e.sent())
    }

    /// What `seq` was, if the subscriber's request for it should be
    /// answered now (and notes that it is).
    pub fn resend(&mut self, now: Instant, seq: u16) -> Option<Sent> {
        let now_ms = self.ms(now);
        let e = &mut self.slots[usize::from(seq) % CAPACITY];
        if e.sent_ms == 0 || e.seq != seq {
            return None;
        }
        let since = |ms: u32| Duration::from_millis(u64::from(now_ms.saturating_sub(ms)));
        if since(e.sent_ms) > MAX_AGE
            || (e.resent_ms != 0 && since(e.resent_ms) < MIN_RESEND_INTERVAL)
        {
            return None;
        }
        e.resent_ms = now_ms;
        Some(e.sent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(source_seq: u16) -> Sent {
        Sent {
            layer: 7,
            source_seq,
            timestamp: 90,
            vp8: Offsets::default(),
        }
    }

    #[test]
    fn an_entry_is_small() {
        assert!(std::mem::size_of::<Entry>() <= 24);
    }

    #[test]
    fn answers_requests_for_what_was_sent_and_no_more() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut s = Sequencer::new(t0);
        for seq in 65530..=65535u16 {
            s.record(ms(1), seq, sent(seq.wrapping_add(3)), false);
        }
        s.record(ms(1), 0, sent(3), false);
        assert_eq!(s.resend(ms(10), 65535), Some(sent(2)));
        assert_eq!(s.resend(ms(11), 0), Some(sent(3)), "across the wrap");
        assert_eq!(s.resend(ms(12), 1), None, "never sent");
        // Asked again before the copy could arrive: once is enough.
        assert_eq!(s.resend(ms(20), 65535), None);
        assert_eq!(s.resend(ms(40), 65535), Some(sent(2)));
        // Too old to matter.
        assert_eq!(s.resend(ms(3000), 65534), None);
        // Overwritten by a newer packet in the same slot.
        s.record(
            ms(50),
            65535u16.wrapping_add(CAPACITY as u16),
            sent(9),
            false,
        );
        assert_eq!(s.resend(ms(60), 65535), None);
        // A packet that came late answers the request already.
        s.record(ms(70), 7, sent(7), true);
        assert_eq!(s.resend(ms(75), 7), None);
        assert_eq!(s.resend(ms(90), 7), Some(sent(7)));
    }
}
