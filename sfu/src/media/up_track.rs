//! A published track: its layers (one, or a simulcast track's several),
//! each with the packets it received lately and the pacing of keyframe
//! requests for it, and its down-tracks. Each arriving packet is fanned out
//! here; the room core supplies the connections (a [`Sink`]) and sends the
//! keyframe requests this asks for.

use std::time::{Duration, Instant};

use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::allocator::{layer_steps, Step};
use super::audio_level::{AudioLevels, Window};
use super::bitrate::Bitrate;
use super::buffer::PacketBuffer;
use super::clock::RtpClock;
use super::down_track::{Decision, DownTrack, Picture, Route};
use super::dynacast::{self, Dynacast};
use super::keyframe::{KeyframeRequester, VideoCodec};
use super::link::PACKET_OVERHEAD;
use super::simulcast::{self, LayerView};
use super::vp8;
use super::{Kind, MediaStats, Quality, Source};

/// Where the fan-out sends packets: the subscribers' connections.
pub trait Sink {
    /// Whether subscriber connection `conn` can take media now.
    fn ready(&self, conn: usize) -> bool;
    /// Hands `packet` to the subscriber's engine; false if it was refused.
    fn send(&mut self, now: Instant, route: &Route, packet: Packet) -> bool;
    /// Whether connection `conn` has room for a retransmission of `bytes`
    /// now (a share of its link's estimate, or without one of what it
    /// was sent).
    fn may_resend(&mut self, _now: Instant, _conn: usize, _bytes: usize) -> bool {
        true
    }
}

/// Timestamp `ts` of layer `to` as a timestamp of layer `from`, where the
/// publisher reported both layers' clocks.
fn align(layers: &[Layer], to: u32, from: u32, ts: u32, clock_rate: u32) -> Option<u32> {
    let clock = |ssrc| layers.iter().find(|l| l.ssrc == ssrc)?.clock;
    Some(clock(to)?.translate(ts, clock(from)?, clock_rate))
}

/// Hands `out` to the subscriber's connection, counting what went.
fn send(now: Instant, sink: &mut impl Sink, route: &Route, out: Packet, stats: &mut MediaStats) {
    let len = out.payload.len() as u64;
    if sink.send(now, route, out) {
        stats.rtp_packets_out += 1;
        stats.rtp_bytes_out += len;
    }
}

/// One encoding of an up-track.
pub struct Layer {
    pub rid: String,
    pub ssrc: u32,
    pub rank: Quality,
    keyframes: KeyframeRequester,
    last_rx: Instant,
    /// What it received, for video: the source of retransmissions (only
    /// video negotiates NACK) and how duplicates are spotted.
    buffer: Option<PacketBuffer>,
    /// Its RTP clock, from the publisher's latest sender report.
    clock: Option<RtpClock>,
    /// What it costs a subscriber, for the stream allocator: all of it,
    /// and each of its temporal layers up to the top one (VP8 with
    /// temporal layers; `tids` of them seen so far).
    bitrate: Bitrate,
    temporal: [Bitrate; MAX_TIDS - 1],
    tids: usize,
}

/// The most temporal layers a layer is measured in (L1T3's); a higher one
/// would count with the top one.
const MAX_TIDS: usize = 3;

/// What a packet's payload tells the down-tracks.
fn picture(kind: Kind, codec: VideoCodec, payload: &[u8]) -> Picture {
    if kind != Kind::Video {
        return Picture::default();
    }
    Picture {
        keyframe: codec.is_keyframe(payload),
        temporal: (codec == VideoCodec::Vp8)
            .then(|| vp8::temporal(payload))
            .flatten(),
    }
}

impl LayerView for Layer {
    fn rank(&self) -> Quality {
        self.rank
    }
    fn last_rx(&self) -> Instant {
        self.last_rx
    }
}

/// What a new up-track is.
pub struct UpTrackInit {
    /// Public id; subscribers see it as the `MediaStreamTrack` id.
    pub id: String,
    /// The engine's id for the incoming track.
    pub engine_track_id: String,
    pub mid: String,
    pub kind: Kind,
    pub source: Source,
    pub muted: bool,
    pub receiver: RTCRtpReceiverId,
    pub codec: RTCRtpCodec,
    /// Least time between two keyframe requests to one layer.
    pub keyframe_interval: Duration,
    /// The `ssrc-audio-level` extension's id on the publisher's
    /// connection, where it negotiated one (audio only).
    pub audio_level_id: Option<u8>,
    /// Its simulcast layers' rids as the publisher's SDP lists them, each
    /// with its rank; empty without simulcast.
    pub rids: Vec<(String, Quality)>,
}

pub struct UpTrack {
    pub id: String,
    pub engine_track_id: String,
    pub mid: String,
    pub kind: Kind,
    pub source: Source,
    pub muted: bool,
    /// A host muted it: nothing is forwarded until released.
    held: bool,
    pub receiver: RTCRtpReceiverId,
    pub codec: RTCRtpCodec,
    video_codec: VideoCodec,
    keyframe_interval: Duration,
    /// Lowest quality first.
    layers: Vec<Layer>,
    pub downs: Vec<DownTrack>,
    /// How loud it is lately (audio whose publisher sends levels).
    levels: AudioLevels,
    /// All its simulcast rids (see [`UpTrackInit::rids`]).
    rids: Vec<(String, Quality)>,
    /// Which of them its publisher was told to send.
    dynacast: Dynacast,
    /// The down-track served first with the next packet. It moves on with
    /// every packet, so that no subscriber always waits for all the others
    /// (the last of 40 viewers would wait about 8 ms for a keyframe).
    first: usize,
}

impl UpTrack {
    pub fn new(init: UpTrackInit) -> Self {
        Self {
            video_codec: VideoCodec::from_mime(&init.codec.mime_type),
            id: init.id,
            engine_track_id: init.engine_track_id,
            mid: init.mid,
            kind: init.kind,
            source: init.source,
            muted: init.muted,
            held: false,
            receiver: init.receiver,
            codec: init.codec,
            keyframe_interval: init.keyframe_interval,
            levels: AudioLevels::new(init.audio_level_id),
            rids: init.rids,
            dynacast: Dynacast::default(),
            layers: Vec::new(),
            downs: Vec::new(),
            first: 0,
        }
    }

    /// Stops forwarding it (a host muted it).
    pub fn hold(&mut self) {
        self.held = true;
        self.muted = true;
    }

    /// Forwards it again: each subscriber restarts on a keyframe, as its
    /// decoder has had nothing for a while.
    pub fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            for d in &mut self.downs {
                d.pause();
            }
        }
    }

    pub fn is_simulcast(&self) -> bool {
        self.layers.len() > 1
    }

    /// The rank of the layer each negotiated down-track forwards now.
    pub fn forwarded(&self) -> impl Iterator<Item = Quality> + '_ {
        self.downs
            .iter()
            .filter(|d| d.is_negotiated())
            .filter_map(|d| {
                let ssrc = d.layer()?;
                self.layers.iter().find(|l| l.ssrc == ssrc).map(|l| l.rank)
            })
    }

    /// The best layer there is: where a new subscription starts.
    pub fn best_layer(&self) -> Option<u32> {
        self.layers.last().map(|l| l.ssrc)
    }

    /// A layer started (a new track's first, another simulcast layer, or a
    /// layer back with a new SSRC, which replaces the old); false if it is
    /// known already.
    pub fn add_layer(&mut self, now: Instant, rid: String, ssrc: u32, rank: Quality) -> bool {
        if self.layers.iter().any(|l| l.ssrc == ssrc) {
            return false;
        }
        self.layers.retain(|l| l.rid != rid);
        let at = self.layers.partition_point(|l| l.rank <= rank);
        self.layers.insert(
            at,
            Layer {
                rid,
                ssrc,
                rank,
                keyframes: KeyframeRequester::new(self.keyframe_interval),
                last_rx: now,
                buffer: (self.kind == Kind::Video).then(PacketBuffer::default),
                clock: None,
                bitrate: Bitrate::new(now),
                temporal: [Bitrate::new(now); MAX_TIDS - 1],
                tids: 0,
            },
        );
        true
    }

    /// Fans a packet out to the down-tracks. Returns the layer (SSRC) a
    /// keyframe request should go to now, if someone needs one.
    pub fn forward(
        &mut self,
        now: Instant,
        mut packet: Packet,
        sink: &mut impl Sink,
        stats: &mut MediaStats,
    ) -> Option<u32> {
        let ssrc = packet.header.ssrc;
        let index = self.layers.iter().position(|l| l.ssrc == ssrc)?;
        let layer = &mut self.layers[index];
        // Padding-only packets (bandwidth probes) go on after a browser
        // paused a layer: only media keeps a layer alive.
        if !packet.payload.is_empty() {
            layer.last_rx = now;
        }
        if self.held {
            return None;
        }
        // The level must be read before the extensions go.
        self.levels.observe(&packet);
        // Extension ids are per connection; forwarding them would make the
        // engine refuse the packet. The engine adds its own where it needs.
        packet.header.extension = false;
        packet.header.extensions.clear();
        // Its padding went with them: one left over would misalign the
        // block the estimator's sequence number is written into.
        packet.header.extensions_padding = 0;
        if layer.buffer.as_mut().is_some_and(|b| !b.insert(&packet)) {
            stats.duplicates += 1;
            return None;
        }
        stats.rtp_packets_in += 1;
        stats.rtp_bytes_in += packet.payload.len() as u64;
        let size = packet.payload.len() + PACKET_OVERHEAD;
        layer.bitrate.add(now, size);
        let pic = picture(self.kind, self.video_codec, &packet.payload);
        if let Some(t) = pic.temporal {
            let tid = usize::from(t.tid).min(MAX_TIDS - 1);
            layer.tids = layer.tids.max(tid + 1);
            if let Some(b) = layer.temporal.get_mut(tid) {
                b.add(now, size);
            }
        }
        let mut need_keyframe = false;
        let n = self.downs.len();
        let first = if n == 0 { 0 } else { self.first % n };
        self.first = first + 1;
        let layers = &self.layers;
        let buffer = layers[index].buffer.as_ref();
        for i in (first..n).chain(0..first) {
            let d = &mut self.downs[i];
            let ready = sink.ready(d.route.conn);
            let started = !d.forwarding(ssrc);
            if pic.keyframe {
                if let Some(ts) = d.moving_from(ssrc).and_then(|from| {
                    align(
                        layers,
                        ssrc,
                        from,
                        packet.header.timestamp,
                        self.codec.clock_rate,
                    )
                }) {
                    d.align_move(ts);
                }
            }
            match d.on_packet(now, ssrc, &packet, pic, ready, stats) {
                Decision::Send(out) => {
                    send(now, sink, &d.route, out, stats);
                    // It starts on this keyframe (or moves to its layer).
                    // Packets that overtook its first one on the way here
                    // (the rest of the keyframe, say) were skipped while it
                    // waited, and would come no more: send them now, or the
                    // subscriber could not decode the keyframe.
                    if started {
                        for p in buffer
                            .into_iter()
                            .flat_map(|b| b.after(packet.header.sequence_number))
                        {
                            let pic = picture(self.kind, self.video_codec, &p.payload);
                            if let Decision::Send(out) =
                                d.on_packet(now, ssrc, p, pic, ready, stats)
                            {
                                send(now, sink, &d.route, out, stats);
                            }
                        }
                    }
                }
                Decision::NeedKeyframe => need_keyframe = true,
                Decision::Skip => {}
            }
        }
        (need_keyframe && self.layers[index].keyframes.request(now)).then_some(ssrc)
    }

    /// The publisher's sender report on stream `ssrc`: its RTP clock, in
    /// our wall clock. False if no layer of this track has that SSRC.
    pub fn sender_report(&mut self, ssrc: u32, clock: RtpClock) -> bool {
        let layer = self.layers.iter_mut().find(|l| l.ssrc == ssrc);
        layer.map(|l| l.clock = Some(clock)).is_some()
    }

    /// The RTP clock of layer `ssrc`, if its publisher reported it.
    pub fn clock(&self, ssrc: u32) -> Option<RtpClock> {
        self.layers.iter().find(|l| l.ssrc == ssrc)?.clock
    }

    /// Answers a subscriber's NACK of `seqs` on down-track `ssrc` from the
    /// layers' buffers.
    pub fn retransmit(
        &mut self,
        now: Instant,
        ssrc: u32,
        seqs: &[u16],
        sink: &mut impl Sink,
        stats: &mut MediaStats,
    ) {
        let Some(d) = self.downs.iter_mut().find(|d| d.ssrc == ssrc) else {
            return;
        };
        if !sink.ready(d.route.conn) {
            return;
        }
        let layers = &self.layers;
        for &seq in seqs {
            let packet = d.retransmission(now, seq, |layer, source_seq| {
                original(layers, layer, source_seq)
            });
            let resent = packet.is_some_and(|p| {
                sink.may_resend(now, d.route.conn, p.payload.len() + PACKET_OVERHEAD)
                    && sink.send(now, &d.route, p)
            });
            if resent {
                stats.retransmissions += 1;
            } else {
                stats.nacks_unanswered += 1;
            }
        }
    }

    /// The steps of the layers being sent now, lowest first (each layer's
    /// temporal layers from the base up), with what each costs in bits per
    /// second: what the stream allocator shares out.
    pub fn steps(&mut self, now: Instant) -> Vec<Step> {
        let mut steps = Vec::new();
        for l in &mut self.layers {
            if now.saturating_duration_since(l.last_rx) >= simulcast::LAYER_TIMEOUT {
                continue;
            }
            let mut cumulative = [0.0; MAX_TIDS];
            let mut sum = 0.0;
            let lower = l.tids.saturating_sub(1);
            let total = l.bitrate.average(now);
            for (c, b) in cumulative.iter_mut().zip(&mut l.temporal[..lower]) {
                sum += b.average(now);
                *c = sum.min(total);
            }
            cumulative[lower] = total;
            steps.extend(layer_steps(l.rank, &cumulative[..=lower]));
        }
        steps
    }

    /// A probe's copy of the last packet `subscriber`'s down-track sent,
    /// on its retransmission stream.
    pub fn probe_copy(&mut self, subscriber: usize) -> Option<(Route, Packet)> {
        let layers = &self.layers;
        let d = self
            .downs
            .iter_mut()
            .find(|d| d.route.subscriber == subscriber)?;
        let packet = d.probe_copy(|layer, source_seq| original(layers, layer, source_seq))?;
        Some((d.route, packet))
    }

    /// Points each down-track at the layer it should get now (layers
    /// stopped or started, or a subscriber asked for another quality).
    /// Returns the layers whose keyframes should be asked for now.
    pub fn reselect(&mut self, now: Instant) -> Vec<u32> {
        let mut wanted = Vec::new();
        for d in &mut self.downs {
            if let Some(i) = simulcast::select(&self.layers, d.wanted(), now) {
                let ssrc = self.layers[i].ssrc;
                if d.select(ssrc) {
                    wanted.push(ssrc);
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        wanted.retain(|&ssrc| self.request_keyframe(now, ssrc));
        wanted
    }

    /// The rids its publisher should send from now on, if that changed:
    /// the layers at or below the best quality any subscriber asks for
    /// (see `dynacast.rs`). `None` for a track without simulcast.
    pub fn dynacast(&mut self, now: Instant) -> Option<Vec<String>> {
        if self.rids.len() < 2 {
            return None;
        }
        // Nobody receives it: the lowest layer only, ready for the next
        // subscriber, who gets the rest within a tick.
        let wanted = self
            .downs
            .iter()
            .map(|d| d.quality)
            .max()
            .unwrap_or(Quality::Low);
        let told = self.dynacast.tick(now, wanted)?;
        Some(dynacast::rids_to_send(&self.rids, told))
    }

    /// Someone needs a keyframe of `layer`: whether the request goes out
    /// now (else one is owed, see [`UpTrack::owed_keyframes`]).
    pub fn request_keyframe(&mut self, now: Instant, layer: u32) -> bool {
        self.kind == Kind::Video
            && self
                .layers
                .iter_mut()
                .find(|l| l.ssrc == layer)
                .is_some_and(|l| l.keyframes.request(now))
    }

    /// A keyframe of the layer `subscriber` receives or moves to; the
    /// layer, if the request goes out now.
    pub fn keyframe_for(&mut self, now: Instant, subscriber: usize) -> Option<u32> {
        let layer = self
            .downs
            .iter()
            .find(|d| d.route.subscriber == subscriber)?
            .keyframe_layer()?;
        self.request_keyframe(now, layer).then_some(layer)
    }

    /// Keyframe requests held back by pacing that may go out now.
    pub fn owed_keyframes(&mut self, now: Instant) -> impl Iterator<Item = u32> + '_ {
        self.layers
            .iter_mut()
            .filter_map(move |l| l.keyframes.poll(now).then_some(l.ssrc))
    }

    /// Its audio levels since the last call; `None` while muted (a muted
    /// track is silent at once, whatever its last packets said).
    pub fn take_levels(&mut self) -> Option<Window> {
        let window = self.levels.take();
        (!self.muted).then_some(window)
    }

    /// The down-track of `subscriber`.
    pub fn down_mut(&mut self, subscriber: usize) -> Option<&mut DownTrack> {
        self.downs
            .iter_mut()
            .find(|d| d.route.subscriber == subscriber)
    }
}

/// Packet `seq` of `layer` as it arrived, if its buffer still has it.
fn original(layers: &[Layer], layer: u32, seq: u16) -> Option<&Packet> {
    layers
        .iter()
        .find(|l| l.ssrc == layer)
        .and_then(|l| l.buffer.as_ref()?.get(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::down_track::DownTrackInit;
    use rtc::rtp_transceiver::RTCRtpSenderId;

    const LOW: u32 = 100;
    const HIGH: u32 = 200;

    /// Keeps what reaches the subscriber.
    #[derive(Default)]
    struct Wire(Vec<Packet>);

    impl Sink for Wire {
        fn ready(&self, _: usize) -> bool {
            true
        }
        fn send(&mut self, _: Instant, _: &Route, packet: Packet) -> bool {
            self.0.push(packet);
            true
        }
    }

    /// A VP8 track with layers `LOW` and `HIGH` and one subscriber, which
    /// starts on `layer`.
    fn track(now: Instant, layer: u32) -> UpTrack {
        let mut up = UpTrack::new(UpTrackInit {
            id: "t".into(),
            engine_track_id: "e".into(),
            mid: "0".into(),
            kind: Kind::Video,
            source: Source::Camera,
            muted: false,
            receiver: RTCRtpReceiverId::from(0),
            codec: RTCRtpCodec {
                mime_type: "video/VP8".into(),
                clock_rate: 90_000,
                ..Default::default()
            },
            keyframe_interval: Duration::from_millis(300),
            audio_level_id: None,
            rids: Vec::new(),
        });
        up.add_layer(now, "q".into(), LOW, Quality::Low);
        up.add_layer(now, "f".into(), HIGH, Quality::High);
        let mut d = DownTrack::new(
            now,
            DownTrackInit {
                route: Route {
                    subscriber: 1,
                    conn: 1,
                    sender: RTCRtpSenderId::from(0),
                    paced: true,
                },
                ssrc: 7,
                rtx_ssrc: None,
                video: true,
                clock_rate: 90_000,
                vp8: false,
                layer: Some(layer),
            },
        );
        d.negotiated(Some(96), None);
        up.downs.push(d);
        up
    }

    /// Packet `seq` of layer `ssrc`: the first of a keyframe, a later one
    /// of the same frame, or the first of an interframe (`[1, ...]`).
    fn vp8(ssrc: u32, seq: u16, ts: u32, first: u8) -> Packet {
        let mut p = Packet::default();
        p.header.ssrc = ssrc;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.payload = bytes::Bytes::from(match first {
            0 => vec![0x10, 0x00, seq as u8], // keyframe, partition start
            1 => vec![0x10, 0x01, seq as u8], // interframe
            _ => vec![0x00, 0x00, seq as u8], // the rest of a frame
        });
        p
    }

    fn payload_ids(wire: &Wire) -> Vec<(u16, u8)> {
        wire.0
            .iter()
            .map(|p| (p.header.sequence_number, p.payload[2]))
            .collect()
    }

    #[test]
    fn a_start_on_a_keyframe_sends_the_packets_that_overtook_its_first() {
        let now = Instant::now();
        let mut up = track(now, HIGH);
        let (mut wire, mut stats) = (Wire::default(), MediaStats::default());
        // The keyframe is 10..=13 at timestamp 900; 11 and 13 overtake 10.
        for p in [
            vp8(HIGH, 11, 900, 2),
            vp8(HIGH, 13, 900, 2),
            vp8(HIGH, 10, 900, 0),
            vp8(HIGH, 12, 900, 2),
            vp8(HIGH, 14, 4500, 1),
        ] {
            up.forward(now, p, &mut wire, &mut stats);
        }
        assert_eq!(
            payload_ids(&wire),
            [(10, 10), (11, 11), (13, 13), (12, 12), (14, 14)]
        );
    }

    #[test]
    fn a_move_to_another_layer_sends_its_keyframe_whole() {
        let now = Instant::now();
        let mut up = track(now, LOW);
        let (mut wire, mut stats) = (Wire::default(), MediaStats::default());
        up.forward(now, vp8(LOW, 50, 0, 0), &mut wire, &mut stats);
        up.downs[0].select(HIGH);
        // HIGH's keyframe 150..=152; 152 overtakes its first packet, and
        // LOW goes on until the move.
        for p in [
            vp8(HIGH, 152, 900, 2),
            vp8(LOW, 51, 900, 1),
            vp8(HIGH, 150, 900, 0),
            vp8(HIGH, 151, 900, 2),
            vp8(LOW, 52, 4500, 1),
        ] {
            up.forward(now, p, &mut wire, &mut stats);
        }
        // The subscriber's numbers: 50, 51 from LOW, then 52.. for HIGH.
        assert_eq!(
            payload_ids(&wire),
            [(50, 50), (51, 51), (52, 150), (54, 152), (53, 151)]
        );
        assert_eq!(up.downs[0].layer(), Some(HIGH));
    }

    #[test]
    fn a_move_continues_the_timestamps_by_the_publishers_clock() {
        use crate::media::clock::RtpClock;
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut up = track(t0, LOW);
        let (mut wire, mut stats) = (Wire::default(), MediaStats::default());
        // The publisher's reports: both layers' timestamps at NTP time 1000 s.
        let ntp = 1000 << 32;
        up.sender_report(LOW, RtpClock { rtp: 10_000, ntp });
        up.sender_report(
            HIGH,
            RtpClock {
                rtp: 5_000_000,
                ntp,
            },
        );
        up.forward(ms(0), vp8(LOW, 50, 10_000, 0), &mut wire, &mut stats);
        up.forward(ms(40), vp8(LOW, 51, 13_600, 1), &mut wire, &mut stats);
        up.downs[0].select(HIGH);
        // HIGH's keyframe, captured 40 ms after LOW's last frame, arrives
        // 200 ms after it (a large frame, paced out slowly).
        up.forward(ms(240), vp8(HIGH, 900, 5_007_200, 0), &mut wire, &mut stats);
        let ts: Vec<u32> = wire.0.iter().map(|p| p.header.timestamp).collect();
        assert_eq!(ts, [10_000, 13_600, 17_200]);
    }
}
