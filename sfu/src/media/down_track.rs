//! One subscriber's copy of an up-track: the layer it forwards now and the
//! one it moves to at that layer's next keyframe, the temporal layers it
//! gets of it, the forwarder that keeps
//! its sequence numbers and timestamps continuous, VP8 continuity across
//! moves, and what it sent, so that a subscriber's NACK can be answered
//! from the layer's buffer.

use std::time::Instant;

use bytes::{BufMut, BytesMut};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::allocator::Grant;
use super::clock::RtpClock;
use super::forwarder::{Forwarder, Verdict};
use super::sequencer::{Sent, Sequencer};
use super::temporal::{Admit, TemporalFilter};
use super::vp8::{Offsets, Temporal, Vp8Munger};
use super::{MediaStats, Quality};

/// A packet this far behind the newest one sent (one that reached us late,
/// a publisher's retransmission say) goes out on the RTX stream: on the
/// media stream a receiver's replay window (64 packets in some) could
/// refuse it.
const LATE: u16 = 16;

/// Where a down-track's packets go: opaque to the media path, which only
/// hands them to its [`Sink`](super::up_track::Sink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The subscribing participant and its subscriber connection, as the
    /// room core numbers them.
    pub subscriber: usize,
    pub conn: usize,
    /// The engine's sender of this track on that connection.
    pub sender: RTCRtpSenderId,
    /// Spaced out by the connection's pacer, where it has one (video).
    pub paced: bool,
}

/// The retransmission stream the subscriber negotiated (RFC 4588).
#[derive(Debug, Clone, Copy)]
struct Rtx {
    ssrc: u32,
    pt: u8,
    seq: u16,
}

impl Rtx {
    /// `packet`, as sent on the media stream, carried on this one: its
    /// sequence number leads the payload (RFC 4588 §4).
    fn wrap(&mut self, mut packet: Packet) -> Packet {
        let mut payload = BytesMut::with_capacity(2 + packet.payload.len());
        payload.put_u16(packet.header.sequence_number);
        payload.extend_from_slice(&packet.payload);
        packet.header.ssrc = self.ssrc;
        packet.header.payload_type = self.pt;
        packet.header.sequence_number = self.seq;
        self.seq = self.seq.wrapping_add(1);
        Packet {
            header: packet.header,
            payload: payload.freeze(),
        }
    }
}

/// What a packet of video carries, read once for all its down-tracks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Picture {
    /// It starts a keyframe.
    pub keyframe: bool,
    /// Its picture's temporal layer (VP8 with temporal layers).
    pub temporal: Option<Temporal>,
}

/// What a down-track does with one packet of its up-track.
#[derive(Debug)]
pub enum Decision {
    /// Send this, rewritten for the subscriber.
    Send(Packet),
    /// Not for this subscriber (another layer, not connected, too old).
    Skip,
    /// It needs a keyframe of this packet's layer first.
    NeedKeyframe,
}

pub struct DownTrack {
    pub route: Route,
    /// The SSRC the subscriber knows this track by.
    pub ssrc: u32,
    /// RTX SSRC offered with it (video only).
    pub rtx_ssrc: Option<u32>,
    /// Payload type the subscriber negotiated; `None` until its answer.
    pt: Option<u8>,
    rtx: Option<Rtx>,
    /// Part of an offer already sent: only such down-tracks take their
    /// payload type from the next answer, not ones added while it was out.
    pub offered: bool,
    fwd: Forwarder,
    /// What the subscriber asked for: a ceiling.
    pub quality: Quality,
    /// What the stream allocator grants it within the subscriber's
    /// bandwidth: a layer at most, or nothing (paused).
    grant: Grant,
    /// The last sequence number it sent: what a probe copies.
    last_sent: Option<u16>,
    /// The layer (SSRC) forwarded now, and the one to move to at its next
    /// keyframe.
    current: Option<u32>,
    pending: Option<u32>,
    vp8: Option<Vp8Munger>,
    /// Which pictures it gets of a stream with temporal layers.
    temporal: TemporalFilter,
    /// The timestamp of the keyframe it moves to next, as one of the layer
    /// it leaves (see [`DownTrack::align_move`]).
    aligned: Option<u32>,
    /// What it sent, for video: only video negotiates NACK.
    sent: Option<Sequencer>,
    /// Packets and payload octets sent on the media stream (wrapping, as
    /// a sender report counts them).
    packets: u32,
    octets: u32,
}

/// How a new down-track starts.
pub struct DownTrackInit {
    pub route: Route,
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    /// Video waits for a keyframe before it sends anything.
    pub video: bool,
    pub clock_rate: u32,
    /// Keep VP8 picture ids continuous across layer moves.
    pub vp8: bool,
    /// The layer to start with.
    pub layer: Option<u32>,
}

impl DownTrack {
    pub fn new(now: Instant, init: DownTrackInit) -> Self {
        Self {
            route: init.route,
            ssrc: init.ssrc,
            rtx_ssrc: init.rtx_ssrc,
            pt: None,
            rtx: None,
            offered: false,
            fwd: Forwarder::new(init.video, init.clock_rate),
            quality: Quality::default(),
            grant: Grant::full(Quality::High),
            last_sent: None,
            current: init.layer,
            pending: None,
            vp8: init.vp8.then(Vp8Munger::default),
            temporal: TemporalFilter::default(),
            aligned: None,
            sent: init.video.then(|| Sequencer::new(now)),
            packets: 0,
            octets: 0,
        }
    }

    /// The subscriber's answer settled the payload types (`None`: it did
    /// not take the codec; `rtx`: the RTX payload type, if it took that).
    pub fn negotiated(&mut self, pt: Option<u8>, rtx: Option<u8>) {
        self.pt = pt;
        self.rtx = self
            .rtx_ssrc
            .zip(rtx)
            .map(|(ssrc, pt)| Rtx { ssrc, pt, seq: 0 });
    }

    pub fn is_negotiated(&self) -> bool {
        self.pt.is_some()
    }

    /// The layer (SSRC) forwarded now.
    pub fn layer(&self) -> Option<u32> {
        self.current
    }

    /// The layer whose keyframe this subscriber needs next: the one it
    /// moves to, else the one it has.
    pub fn keyframe_layer(&self) -> Option<u32> {
        self.pending.or(self.current)
    }

    /// Whether it forwards `layer` now (not waiting for its keyframe).
    pub fn forwarding(&self, layer: u32) -> bool {
        self.current == Some(layer) && !self.fwd.waiting_keyframe()
    }

    /// The layer it leaves when a keyframe of `layer` arrives, if it is
    /// moving to `layer`.
    pub fn moving_from(&self, layer: u32) -> Option<u32> {
        self.current.filter(|_| self.pending == Some(layer))
    }

    /// The keyframe the next packet brings, of the layer it moves to, has
    /// timestamp `ts` in the timeline of the layer it leaves (from the
    /// publisher's sender reports): its timestamps continue from there.
    pub fn align_move(&mut self, ts: u32) {
        self.aligned = Some(ts);
    }

    /// Points the down-track at `layer`; true if that is a move, which
    /// waits for the layer's keyframe.
    pub fn select(&mut self, layer: u32) -> bool {
        if self.current == Some(layer) {
            self.pending = None;
            false
        } else if self.pending != Some(layer) {
            self.pending = Some(layer);
            true
        } else {
            false
        }
    }

    /// The layer it should get: what the subscriber asked for, within
    /// what the allocator grants.
    pub fn wanted(&self) -> Quality {
        match self.grant {
            Grant::Layer(q, _) => q.min(self.quality),
            Grant::Paused => self.quality,
        }
    }

    pub fn grant(&self) -> Grant {
        self.grant
    }

    /// The allocator's grant changed; true if it paused or resumed the
    /// track. A resumed track starts again on a keyframe.
    pub fn set_grant(&mut self, grant: Grant) -> bool {
        let was_paused = self.grant == Grant::Paused;
        self.grant = grant;
        if let Grant::Layer(_, temporal) = grant {
            self.temporal.set_target(temporal);
        }
        let paused = grant == Grant::Paused;
        if was_paused && !paused {
            // As after a move: from the next keyframe, numbered on
            // without a gap the subscriber would ask to be filled.
            self.fwd.switch_source(None);
        }
        was_paused != paused
    }

    /// A resumed track starts on the layer it is to move to, not the one
    /// it had before the pause (a better one, likely, that the link could
    /// not carry).
    pub fn resume_on_pending(&mut self) {
        if let Some(layer) = self.pending.take() {
            self.current = Some(layer);
        }
    }

    /// Waits for a keyframe before sending more (the subscriber's decoder
    /// lost its state, as after its connection was re-established).
    pub fn pause(&mut self) {
        self.fwd.pause();
    }

    /// Decides on a packet of layer `layer`; `picture` is where it sits
    /// among the layer's temporal layers, if it has any; `ready` says
    /// whether the subscriber's connection can take media now.
    pub fn on_packet(
        &mut self,
        now: Instant,
        layer: u32,
        packet: &Packet,
        picture: Picture,
        ready: bool,
        stats: &mut MediaStats,
    ) -> Decision {
        let Picture { keyframe, temporal } = picture;
        let Some(pt) = self.pt else {
            return Decision::Skip;
        };
        if self.grant == Grant::Paused {
            return Decision::Skip;
        }
        if self.current != Some(layer) {
            // Another layer's packet: only its keyframe, and only for a
            // subscriber moving to it, is of use.
            if self.pending != Some(layer) {
                return Decision::Skip;
            }
            if !keyframe {
                return Decision::NeedKeyframe;
            }
            self.current = self.pending.take();
            self.fwd.switch_source(self.aligned.take());
            if let Some(m) = &mut self.vp8 {
                m.switch(&packet.payload);
            }
            self.temporal.restart();
            stats.layer_switches += 1;
        }
        let (seq, ts) = (packet.header.sequence_number, packet.header.timestamp);
        let admit = temporal.map_or(Admit::Forward, |t| self.temporal.admit(t));
        let verdict = if packet.payload.is_empty() {
            // Padding only: a bandwidth probe of the publisher's, of no
            // use to the subscriber (see forwarder.rs).
            self.fwd.skip(now, seq, ts)
        } else if admit != Admit::Forward {
            // A picture of a temporal layer it does not get.
            if admit == Admit::DropPicture {
                if let Some(m) = &mut self.vp8 {
                    m.skip_picture();
                }
            }
            match self.fwd.skip(now, seq, ts) {
                // Late, after later packets took their numbers: it stays a
                // gap (rare), rather than a piece of a picture the others
                // were renumbered around.
                Verdict::Forward { .. } => Verdict::Skipped,
                v => v,
            }
        } else {
            self.fwd.forward(now, seq, ts, keyframe)
        };
        match verdict {
            Verdict::Forward { seq: out_seq, ts } => {
                if !ready {
                    return Decision::Skip;
                }
                let vp8 = self
                    .vp8
                    .as_mut()
                    .map_or(Offsets::default(), |m| m.track(&packet.payload));
                self.last_sent = Some(out_seq);
                let mut out = packet.clone();
                if let Some(payload) = vp8.apply(&packet.payload) {
                    out.payload = payload;
                }
                out.header.ssrc = self.ssrc;
                out.header.payload_type = pt;
                out.header.sequence_number = out_seq;
                out.header.timestamp = ts;
                if let Some(sequencer) = &mut self.sent {
                    let late = self.fwd.behind(out_seq) >= LATE;
                    let sent = Sent {
                        layer,
                        source_seq: seq,
                        timestamp: ts,
                        vp8,
                    };
                    sequencer.record(now, out_seq, sent, late);
                    if let Some(rtx) = self.rtx.as_mut().filter(|_| late) {
                        out = rtx.wrap(out);
                    }
                }
                if out.header.ssrc == self.ssrc {
                    self.packets = self.packets.wrapping_add(1);
                    self.octets = self.octets.wrapping_add(out.payload.len() as u32);
                }
                Decision::Send(out)
            }
            // A subscriber about to move needs the other layer's keyframe
            // (asked for when the move was decided), not this one.
            Verdict::DropNeedKeyframe if self.pending.is_none() => Decision::NeedKeyframe,
            Verdict::DropNeedKeyframe | Verdict::DropStale | Verdict::Skipped => Decision::Skip,
        }
    }

    /// A sender report for the subscriber at `now` (NTP time `ntp`, our wall
    /// clock), once something was sent. With `clock`, the forwarded layer's
    /// clock as its publisher reported it, its timestamp is the publisher's
    /// for that instant, through our offset: the subscriber then aligns
    /// this stream with the publisher's others as the publisher does.
    /// Without, it continues from the last packet sent by the time since.
    pub fn sender_report(
        &self,
        now: Instant,
        ntp: u64,
        clock: Option<RtpClock>,
        clock_rate: u32,
    ) -> Option<SenderReport> {
        let (last, at) = self.fwd.last_ts()?;
        let rtp_time = match clock {
            Some(c) => c.rtp_at(ntp, clock_rate).wrapping_sub(self.fwd.ts_offset()),
            None => {
                let since = now.saturating_duration_since(at).as_micros();
                last.wrapping_add((since * u128::from(clock_rate) / 1_000_000) as u32)
            }
        };
        Some(SenderReport {
            ssrc: self.ssrc,
            ntp_time: ntp,
            rtp_time,
            packet_count: self.packets,
            octet_count: self.octets,
            ..Default::default()
        })
    }

    /// Packet `seq`, as sent, rebuilt for the subscriber's NACK from the
    /// original (`original(layer, source_seq)`): on the RTX stream when the
    /// subscriber negotiated one, else again on the media stream.
    pub fn retransmission<'a>(
        &mut self,
        now: Instant,
        seq: u16,
        original: impl FnOnce(u32, u16) -> Option<&'a Packet>,
    ) -> Option<Packet> {
        let sent = self.sent.as_mut()?.resend(now, seq)?;
        let packet = self.rebuild(seq, sent, original(sent.layer, sent.source_seq)?)?;
        Some(match &mut self.rtx {
            Some(rtx) => rtx.wrap(packet),
            None => packet,
        })
    }

    /// Whether a probe can copy what it sent: something went out (a
    /// paused track's last packet will do: the subscriber has it), and a
    /// retransmission stream to carry the copies.
    pub fn probe_ready(&self) -> bool {
        self.last_sent.is_some() && self.rtx.is_some()
    }

    /// A copy of the last packet sent, on the retransmission stream: what
    /// a bandwidth probe sends (the subscriber discards it as one it has).
    /// `None` without a retransmission stream, where a copy would look
    /// like a replay.
    pub fn probe_copy<'a>(
        &mut self,
        original: impl FnOnce(u32, u16) -> Option<&'a Packet>,
    ) -> Option<Packet> {
        let seq = self.last_sent?;
        let sent = self.sent.as_ref()?.peek(seq)?;
        let packet = self.rebuild(seq, sent, original(sent.layer, sent.source_seq)?)?;
        Some(self.rtx.as_mut()?.wrap(packet))
    }

    /// Packet `seq` as it was sent, from its original.
    fn rebuild(&self, seq: u16, sent: Sent, original: &Packet) -> Option<Packet> {
        let pt = self.pt?;
        if original.payload.is_empty() {
            return None; // padding: nothing a decoder misses
        }
        let mut header = original.header.clone();
        header.padding = false;
        header.ssrc = self.ssrc;
        header.payload_type = pt;
        header.sequence_number = seq;
        header.timestamp = sent.timestamp;
        let payload = sent
            .vp8
            .apply(&original.payload)
            .unwrap_or_else(|| original.payload.clone());
        Some(Packet { header, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LAYER: u32 = 500;

    fn down(now: Instant, rtx: bool) -> DownTrack {
        let mut d = DownTrack::new(
            now,
            DownTrackInit {
                route: Route {
                    subscriber: 1,
                    conn: 2,
                    sender: RTCRtpSenderId::from(0),
                    paced: true,
                },
                ssrc: 77,
                rtx_ssrc: Some(78),
                video: true,
                clock_rate: 90_000,
                vp8: false,
                layer: Some(LAYER),
            },
        );
        d.negotiated(Some(96), rtx.then_some(97));
        d
    }

    fn key(keyframe: bool) -> Picture {
        Picture {
            keyframe,
            temporal: None,
        }
    }

    fn packet(seq: u16, keyframe: bool) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p.header.timestamp = u32::from(seq) * 100;
        p.header.ssrc = LAYER;
        p.payload = bytes::Bytes::from(vec![u8::from(keyframe), seq as u8]);
        p
    }

    #[test]
    fn answers_a_nack_on_the_rtx_stream_from_the_original() {
        let t0 = Instant::now();
        let mut d = down(t0, true);
        let mut stats = MediaStats::default();
        let originals: Vec<Packet> = (1000..1100).map(|s| packet(s, s == 1000)).collect();
        let mut sent = Vec::new();
        for p in &originals {
            match d.on_packet(t0, LAYER, p, key(p.payload[0] == 1), true, &mut stats) {
                Decision::Send(out) => sent.push(out),
                other => panic!("{other:?}"),
            }
        }
        let lost = &sent[3];
        let later = t0 + Duration::from_millis(30);
        let find = |layer: u32, seq: u16| {
            assert_eq!(layer, LAYER);
            originals.iter().find(|p| p.header.sequence_number == seq)
        };
        let rtx = d
            .retransmission(later, lost.header.sequence_number, find)
            .expect("resent");
        assert_eq!((rtx.header.ssrc, rtx.header.payload_type), (78, 97));
        assert_eq!(rtx.header.timestamp, lost.header.timestamp);
        let osn = u16::from_be_bytes([rtx.payload[0], rtx.payload[1]]);
        assert_eq!(osn, lost.header.sequence_number);
        assert_eq!(&rtx.payload[2..], &lost.payload[..]);
        // The next one continues the RTX stream's own numbering.
        let again = d
            .retransmission(later, sent[4].header.sequence_number, find)
            .unwrap();
        assert_eq!(again.header.sequence_number, rtx.header.sequence_number + 1);
    }

    #[test]
    fn a_packet_that_arrives_late_goes_out_on_the_rtx_stream() {
        let t0 = Instant::now();
        let mut d = down(t0, true);
        let mut stats = MediaStats::default();
        let mut send = |d: &mut DownTrack, seq: u16| match d.on_packet(
            t0,
            LAYER,
            &packet(seq, seq == 1000),
            key(seq == 1000),
            true,
            &mut stats,
        ) {
            Decision::Send(out) => out,
            other => panic!("{other:?}"),
        };
        for seq in (1000..1040).filter(|&s| s != 1003) {
            assert_eq!(send(&mut d, seq).header.ssrc, 77);
        }
        // 1003 comes in 36 packets late: a publisher's retransmission.
        let late = send(&mut d, 1003);
        assert_eq!((late.header.ssrc, late.header.payload_type), (78, 97));
        assert_eq!(u16::from_be_bytes([late.payload[0], late.payload[1]]), 1003);
    }

    #[test]
    fn without_rtx_a_nack_is_answered_on_the_media_stream() {
        let t0 = Instant::now();
        let mut d = down(t0, false);
        let mut stats = MediaStats::default();
        let p = packet(5, true);
        let Decision::Send(out) = d.on_packet(t0, LAYER, &p, key(true), true, &mut stats) else {
            panic!("not sent")
        };
        let again = d
            .retransmission(t0, out.header.sequence_number, |_, _| Some(&p))
            .unwrap();
        assert_eq!(again.header, out.header);
        assert_eq!(again.payload, out.payload);
    }

    #[test]
    fn padding_is_not_sent_and_leaves_no_gap_to_nack() {
        let t0 = Instant::now();
        let mut d = down(t0, true);
        let mut stats = MediaStats::default();
        let mut sent = Vec::new();
        for seq in 10..20u16 {
            let mut p = packet(seq, seq == 10);
            if seq % 3 == 0 {
                // A bandwidth probe: padding only.
                p.header.padding = true;
                p.payload = bytes::Bytes::new();
            }
            match d.on_packet(t0, LAYER, &p, key(seq == 10), true, &mut stats) {
                Decision::Send(out) => sent.push(out.header.sequence_number),
                Decision::Skip => assert_eq!(seq % 3, 0, "{seq} skipped"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sent, (10..17).collect::<Vec<u16>>());
    }

    #[test]
    fn nothing_is_sent_before_the_answer_or_the_connection() {
        let t0 = Instant::now();
        let mut stats = MediaStats::default();
        let mut d = down(t0, true);
        d.negotiated(None, None);
        let p = packet(5, true);
        assert!(matches!(
            d.on_packet(t0, LAYER, &p, key(true), true, &mut stats),
            Decision::Skip
        ));
        let mut d = down(t0, true);
        assert!(matches!(
            d.on_packet(t0, LAYER, &p, key(true), false, &mut stats),
            Decision::Skip
        ));
        assert!(d.retransmission(t0, 5, |_, _| Some(&p)).is_none());
    }
}
