//! A published track: its layers (one, or a simulcast track's several),
//! each with the packets it received lately and the pacing of keyframe
//! requests for it, and its down-tracks. Each arriving packet is fanned out
//! here; the room core supplies the connections (a [`Sink`]) and sends the
//! keyframe requests this asks for.

use std::time::{Duration, Instant};

use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::audio_level::{AudioLevels, Window};
use super::buffer::PacketBuffer;
use super::down_track::{Decision, DownTrack, Route};
use super::keyframe::{KeyframeRequester, VideoCodec};
use super::simulcast::{self, LayerView};
use super::{Kind, MediaStats, Quality, Source};

/// Where the fan-out sends packets: the subscribers' connections.
pub trait Sink {
    /// Whether subscriber connection `conn` can take media now.
    fn ready(&self, conn: usize) -> bool;
    /// Hands `packet` to the subscriber's engine; false if it was refused.
    fn send(&mut self, now: Instant, route: &Route, packet: Packet) -> bool;
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
        let layer = self.layers.iter_mut().find(|l| l.ssrc == ssrc)?;
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
        if layer.buffer.as_mut().is_some_and(|b| !b.insert(&packet)) {
            stats.duplicates += 1;
            return None;
        }
        stats.rtp_packets_in += 1;
        stats.rtp_bytes_in += packet.payload.len() as u64;
        let keyframe = self.kind == Kind::Video && self.video_codec.is_keyframe(&packet.payload);
        let mut need_keyframe = false;
        let n = self.downs.len();
        let first = if n == 0 { 0 } else { self.first % n };
        self.first = first + 1;
        for i in (first..n).chain(0..first) {
            let d = &mut self.downs[i];
            let ready = sink.ready(d.route.conn);
            match d.on_packet(now, ssrc, &packet, keyframe, ready, stats) {
                Decision::Send(out) => {
                    let len = out.payload.len() as u64;
                    if sink.send(now, &d.route, out) {
                        stats.rtp_packets_out += 1;
                        stats.rtp_bytes_out += len;
                    }
                }
                Decision::NeedKeyframe => need_keyframe = true,
                Decision::Skip => {}
            }
        }
        (need_keyframe && layer.keyframes.request(now)).then_some(ssrc)
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
                layers
                    .iter()
                    .find(|l| l.ssrc == layer)
                    .and_then(|l| l.buffer.as_ref()?.get(source_seq))
            });
            if packet.is_some_and(|p| sink.send(now, &d.route, p)) {
                stats.retransmissions += 1;
            } else {
                stats.nacks_unanswered += 1;
            }
        }
    }

    /// Points each down-track at the layer it should get now (layers
    /// stopped or started, or a subscriber asked for another quality).
    /// Returns the layers whose keyframes should be asked for now.
    pub fn reselect(&mut self, now: Instant) -> Vec<u32> {
        let mut wanted = Vec::new();
        for d in &mut self.downs {
            if let Some(i) = simulcast::select(&self.layers, d.quality, now) {
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
