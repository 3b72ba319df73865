//! Asks a publisher to resend what did not arrive (RTCP NACK, RFC 4585).
//! It replaces the engine's own NACK generator, which asks only on a 100 ms
//! tick and then every tick for as long as the packet stays in its window:
//! this one asks as soon as a gap appears, asks again a few times while the
//! packet can still be of use, and then gives up. Retransmissions reach it
//! as the packets they carry (`rtx.rs` sits before it).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rtc::interceptor::{AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::TransportContext;

/// How long before a missing packet is asked for again. A publisher
/// ignores requests for a packet it resent within its round-trip time,
/// so asking often costs little.
const RETRY: Duration = Duration::from_millis(40);
/// Requests per missing packet.
const MAX_REQUESTS: u8 = 10;
/// A packet missing longer than this is of no use: the decoder has moved on
/// or asked for a keyframe.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// Missing packets tracked per stream; a larger jump in sequence numbers is
/// a restarted stream, not loss.
const MAX_GAP: u64 = 512;

struct Missing {
    since: Instant,
    asked_at: Instant,
    asked: u8,
}

/// One stream's sequence numbers: the highest seen, and what is missing
/// below it (extended to 64 bits, so wrapping needs no care).
#[derive(Default)]
struct ReceiveLog {
    highest: Option<u64>,
    missing: BTreeMap<u64, Missing>,
}

impl ReceiveLog {
    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                h.saturating_add_signed(delta)
            }
        }
    }

    /// `seq` arrived; the sequence numbers it shows missing, to ask for now.
    fn arrived(&mut self, now: Instant, seq: u16, new_gap: &mut Vec<u16>) {
        let ext = self.extend(seq);
        match self.highest {
            Some(h) if ext <= h => {
                self.missing.remove(&ext);
            }
            Some(h) if ext - h <= MAX_GAP => {
                for lost in h + 1..ext {
                    self.missing.insert(
                        lost,
                        Missing {
                            since: now,
                            asked_at: now,
                            asked: 1,
                        },
                    );
                    new_gap.push(lost as u16);
                }
                self.highest = Some(ext);
            }
            _ => {
                self.missing.clear();
                self.highest = Some(ext);
            }
        }
    }

    /// What to ask for again at `now`; forgets what is no longer worth it.
    fn due(&mut self, now: Instant, out: &mut Vec<u16>) {
        self.missing.retain(|&seq, m| {
            if m.asked >= MAX_REQUESTS || now.saturating_duration_since(m.since) >= MAX_WAIT {
                return false;
            }
            if now.saturating_duration_since(m.asked_at) >= RETRY {
                m.asked += 1;
                m.asked_at = now;
                out.push(seq as u16);
            }
            true
        });
    }
}

/// The interceptor, in the engine's NACK generator slot.
pub struct NackGenerator {
    sender_ssrc: u32,
    logs: HashMap<u32, ReceiveLog>,
    /// RTX streams named by SSRC: not logged themselves.
    repair: Vec<u32>,
    next_timeout: Option<Instant>,
    queues: super::Queues,
    /// Reused for the sequence numbers of one request.
    scratch: Vec<u16>,
}

impl Default for NackGenerator {
    fn default() -> Self {
        Self {
            sender_ssrc: rand::random(),
            logs: HashMap::new(),
            repair: Vec::new(),
            next_timeout: None,
            queues: Default::default(),
            scratch: Vec::new(),
        }
    }
}

impl NackGenerator {
    fn request(&mut self, now: Instant, media_ssrc: u32) {
        if self.scratch.is_empty() {
            return;
        }
        let nack = TransportLayerNack {
            sender_ssrc: self.sender_ssrc,
            media_ssrc,
            nacks: nack_pairs_from_sequence_numbers(&self.scratch),
        };
        self.scratch.clear();
        self.queues.writes.push_back(TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)])),
        });
        self.next_timeout.get_or_insert(now + RETRY);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackGenerator {
    super::pass_on!();

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        if let Packet::Rtp(p) = &msg.message.packet {
            let ssrc = p.header.ssrc;
            if let Some(log) = self.logs.get_mut(&ssrc) {
                let mut gap = std::mem::take(&mut self.scratch);
                log.arrived(msg.now, p.header.sequence_number, &mut gap);
                self.scratch = gap;
                self.request(msg.now, ssrc);
            }
        }
        self.queues.reads.push_back(msg);
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if self.next_timeout.is_none_or(|t| now < t) {
            return Ok(());
        }
        self.next_timeout = None;
        let ssrcs: Vec<u32> = self.logs.keys().copied().collect();
        for ssrc in ssrcs {
            let mut due = std::mem::take(&mut self.scratch);
            if let Some(log) = self.logs.get_mut(&ssrc) {
                log.due(now, &mut due);
            }
            self.scratch = due;
            self.request(now, ssrc);
        }
        if self.logs.values().any(|l| !l.missing.is_empty()) {
            self.next_timeout.get_or_insert(now + RETRY);
        }
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.next_timeout
    }
}

impl Interceptor for NackGenerator {
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        let nack = info
            .rtcp_feedback
            .iter()
            .any(|f| f.typ == "nack" && f.parameter.is_empty());
        // A repair stream is bound in its own right too, but nothing of it
        // reaches us under its own SSRC (see rtx.rs) but padding.
        if nack && !self.repair.contains(&info.ssrc) {
            self.logs.entry(info.ssrc).or_default();
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.repair.push(rtx);
            self.logs.remove(&rtx);
        }
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.logs.remove(&info.ssrc);
        self.repair.retain(|&s| Some(s) != info.ssrc_rtx);
    }

    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::RTCPFeedback;

    const MEDIA: u32 = 1000;
    const RTX: u32 = 2000;

    fn generator() -> NackGenerator {
        let mut g = NackGenerator::default();
        let nack = vec![RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        }];
        g.bind_remote_stream(&StreamInfo {
            ssrc: MEDIA,
            ssrc_rtx: Some(RTX),
            rtcp_feedback: nack.clone(),
            ..Default::default()
        });
        // The engine binds the repair stream in its own right, too.
        g.bind_remote_stream(&StreamInfo {
            ssrc: RTX,
            rtcp_feedback: nack,
            ..Default::default()
        });
        g
    }

    fn rtp(now: Instant, ssrc: u32, seq: u16, payload: &[u8]) -> TaggedPacket {
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.payload = bytes::Bytes::copy_from_slice(payload);
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(p)),
        }
    }

    /// The sequence numbers of the NACKs written since the last call.
    fn nacked(g: &mut NackGenerator) -> Vec<(u32, Vec<u16>)> {
        let mut out = Vec::new();
        while let Some(m) = g.poll_write() {
            let Packet::Rtcp(packets) = m.message.packet else {
                panic!("only NACKs are written")
            };
            for p in packets {
                let n = p.as_any().downcast_ref::<TransportLayerNack>().unwrap();
                let seqs = n.nacks.iter().flat_map(|pair| *pair).collect();
                out.push((n.media_ssrc, seqs));
            }
        }
        while g.poll_read().is_some() {}
        out
    }

    #[test]
    fn asks_at_once_and_again_until_the_copy_arrives() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut g = generator();
        for seq in [65533, 65534, 1, 2] {
            g.handle_read(rtp(t0, MEDIA, seq, b"x")).unwrap();
        }
        assert_eq!(nacked(&mut g), vec![(MEDIA, vec![65535, 0])]);
        // Not yet due again.
        g.handle_timeout(ms(10)).unwrap();
        assert!(nacked(&mut g).is_empty());
        // 65535 comes back (over RTX, turned back into itself by rtx.rs);
        // 0 is asked for again.
        g.handle_read(rtp(ms(20), MEDIA, 65535, b"x")).unwrap();
        let t = g.poll_timeout().unwrap();
        g.handle_timeout(t).unwrap();
        assert_eq!(nacked(&mut g), vec![(MEDIA, vec![0])]);
        g.handle_read(rtp(ms(60), MEDIA, 0, b"x")).unwrap();
        g.handle_timeout(ms(200)).unwrap();
        assert!(nacked(&mut g).is_empty(), "nothing missing any more");
        assert_eq!(g.poll_timeout(), None, "no timer without a gap");
        // The RTX stream's own padding is nothing to note.
        g.handle_read(rtp(ms(210), RTX, 8, b"")).unwrap();
        g.handle_read(rtp(ms(210), RTX, 12, b"")).unwrap();
        assert!(nacked(&mut g).is_empty());
    }

    #[test]
    fn gives_up_after_a_while_and_ignores_restarts() {
        let t0 = Instant::now();
        let mut g = generator();
        g.handle_read(rtp(t0, MEDIA, 10, b"x")).unwrap();
        g.handle_read(rtp(t0, MEDIA, 12, b"x")).unwrap();
        let mut requests = nacked(&mut g).len();
        let mut now = t0;
        while let Some(t) = g.poll_timeout() {
            now = t;
            g.handle_timeout(t).unwrap();
            requests += nacked(&mut g).len();
            assert!(now - t0 < Duration::from_secs(2), "never gave up");
        }
        assert_eq!(requests, usize::from(MAX_REQUESTS));
        // A jump far ahead is a new start, not thousands of losses.
        g.handle_read(rtp(now, MEDIA, 30_000, b"x")).unwrap();
        assert!(nacked(&mut g).is_empty());
        // Streams without NACK feedback (audio) are not tracked.
        g.handle_read(rtp(now, 3, 1, b"x")).unwrap();
        g.handle_read(rtp(now, 3, 9, b"x")).unwrap();
        assert!(nacked(&mut g).is_empty());
    }
}
