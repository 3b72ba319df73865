//! The routing core of one worker: its rooms, their participants and every
//! participant's two peer connections. Sans-IO, in the manner of str0m: the
//! shell feeds [`Input`]s (a datagram, a signalling command, a timeout), each
//! with `now`, and drains [`Output`]s (datagrams to send, signalling messages
//! to deliver) and the next deadline. Nothing here reads the clock, touches a
//! socket or spawns a task, so tests drive it with simulated time.
//!
//! The path of a media packet: datagram → connection found by source address
//! (or, for a new address, by the ufrag in its STUN request) → the engine
//! decrypts it once → the publisher's up-track → for each subscription, the
//! forwarder decides and the header is rewritten (SSRC, payload type,
//! sequence number, timestamp; header extensions stripped, since their ids
//! differ per connection) → the subscriber's engine encrypts → datagram out.
//! A simulcast track has several layers; each subscription forwards one of
//! them and moves to another at that layer's next keyframe.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent, RTCTrackEventInit};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use slab::Slab;

use crate::config::SrtpProfile;
use crate::demux;
use crate::forwarder::{Forwarder, Verdict};
use crate::keyframe::{KeyframeRequester, VideoCodec};
use crate::peer::{self, PeerConnection};
use crate::signalling::{
    Candidate, ClientMessage, ErrorCode, Kind, ParticipantInfo, Quality, ServerMessage, Source,
    Target, TrackAnnouncement, TrackInfo,
};
use crate::simulcast::{self, LayerView, Vp8Munger};

/// Tunables of the core; the shell fills them from the config.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Host candidates every connection advertises (this worker's port).
    pub candidates: Vec<SocketAddr>,
    /// A connection silent this long is considered gone.
    pub peer_timeout: Duration,
    /// Least time between two keyframe requests to one publisher track.
    pub keyframe_interval: Duration,
    /// Seed for ICE credentials and SSRCs (fixed in tests).
    pub seed: u64,
    pub srtp_profiles: Vec<SrtpProfile>,
    /// A room this full refuses further joins.
    pub max_participants: usize,
}

/// What the shell feeds in.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram from `from`, received on local address `local` (the
    /// destination address of the packet, so the engine can match it to the
    /// candidate it was sent to).
    Datagram {
        from: SocketAddr,
        local: IpAddr,
        data: &'a [u8],
    },
    /// A participant joins a room on this worker.
    Join {
        participant_id: String,
        room: String,
        name: String,
    },
    /// A signalling message from a joined participant.
    Signal {
        participant_id: String,
        msg: ClientMessage,
    },
    /// The participant's signalling connection is gone.
    Disconnect { participant_id: String },
    /// The deadline from [`Router::poll_timeout`] has passed.
    Timeout,
}

/// What the shell drains.
#[derive(Debug)]
pub enum Output {
    Transmit {
        /// Our address the peer knows us by (the candidate it checked).
        from: IpAddr,
        to: SocketAddr,
        data: BytesMut,
    },
    Signal {
        participant_id: String,
        msg: ServerMessage,
    },
    /// The participant was removed; its signalling connection should close.
    Gone { participant_id: String },
}

/// Counters the shell turns into metrics. Plain integers: the core is single
/// threaded and the shell reads them between inputs.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_dropped: u64,
    pub rtp_packets_in: u64,
    pub rtp_bytes_in: u64,
    pub rtp_packets_out: u64,
    pub rtp_bytes_out: u64,
    pub keyframe_requests: u64,
    pub engine_errors: u64,
    /// Subscriptions moved from one simulcast layer to another.
    pub layer_switches: u64,
    /// Wake-ups of the worker's loop that kept it busy over
    /// [`crate::worker::SLOW_WAKEUP`]: counted by the shell, since the
    /// core reads no clock.
    pub slow_wakeups: u64,
}

type ParticipantKey = usize;
type ConnKey = usize;

/// Most remote addresses one connection may be reached from; a bound on what
/// a peer that sends from many addresses can make us remember.
const MAX_ADDRS_PER_CONN: usize = 8;
/// Most media sections one participant may publish: camera, microphone,
/// a screen share with its audio, and room to spare. Every subscriber gets
/// a down-track per published track, so this bounds what one participant
/// can make everyone else negotiate.
pub const MAX_TRACKS_PER_PUBLISHER: usize = 8;
/// How often [`Router`] looks for silent peers and owed keyframe requests.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

struct Conn {
    pc: PeerConnection,
    owner: ParticipantKey,
    role: Target,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    /// Last datagram, or when negotiation made the connection necessary.
    last_rx: Instant,
    /// Negotiated (a remote description applied): from then on the browser
    /// must keep it alive, and silence past the timeout removes the owner.
    /// A connection nothing was negotiated on yet (a subscriber alone in its
    /// room) is exempt; the signalling socket's keep-alive covers that case.
    negotiated: bool,
    /// DTLS is up: SRTP can be sent.
    connected: bool,
    deadline: Option<Instant>,
}

impl Conn {
    /// Moves the engine's outgoing datagrams to the output queue and notes
    /// its next deadline (sending may have armed a timer).
    fn drain_writes(&mut self, out: &mut VecDeque<Output>) {
        while let Some(w) = self.pc.poll_write() {
            out.push_back(Output::Transmit {
                from: w.transport.local_addr.ip(),
                to: w.transport.peer_addr,
                data: w.message,
            });
        }
        self.deadline = self.pc.poll_timeout();
    }
}

/// A track a participant publishes.
struct UpTrack {
    /// Public id; subscribers see it as the `MediaStreamTrack` id.
    id: String,
    /// The engine's id for the incoming track.
    engine_track_id: String,
    mid: String,
    kind: Kind,
    source: Source,
    muted: bool,
    receiver: RTCRtpReceiverId,
    codec: RTCRtpCodec,
    video_codec: VideoCodec,
    /// Its encodings, lowest quality first: one, unless it is simulcast.
    layers: Vec<Layer>,
    subs: Vec<Subscription>,
}

/// One encoding of an up-track.
struct Layer {
    rid: String,
    ssrc: u32,
    rank: Quality,
    keyframes: KeyframeRequester,
    last_rx: Instant,
}

impl LayerView for Layer {
    fn rank(&self) -> Quality {
        self.rank
    }
    fn last_rx(&self) -> Instant {
        self.last_rx
    }
}

/// One subscriber's copy of an up-track.
struct Subscription {
    subscriber: ParticipantKey,
    conn: ConnKey,
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// Payload type the subscriber negotiated; `None` until its answer.
    pt: Option<u8>,
    /// Part of an offer already sent: only such subscriptions take their
    /// payload type from the next answer, not ones added while it was out.
    offered: bool,
    fwd: Forwarder,
    /// What the subscriber asked for.
    quality: Quality,
    /// SSRC of the layer forwarded now, and of the one to move to at its
    /// next keyframe.
    current: Option<u32>,
    pending: Option<u32>,
    /// For VP8: keeps picture ids continuous across layer switches.
    vp8: Option<Vp8Munger>,
}

/// What a subscriber needs to route its RTCP feedback back to the publisher.
struct DownTrack {
    ssrc: u32,
    publisher: ParticipantKey,
    track_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Negotiation {
    Stable,
    /// Offer sent; `again` if something changed since.
    Offered {
        again: bool,
    },
}

struct Participant {
    id: String,
    name: String,
    room: String,
    publisher: ConnKey,
    subscriber: ConnKey,
    announced: Vec<TrackAnnouncement>,
    up: Vec<UpTrack>,
    down: Vec<DownTrack>,
    negotiation: Negotiation,
    needs_offer: bool,
}

impl Participant {
    fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            tracks: self.up.iter().map(UpTrack::info).collect(),
        }
    }
}

impl UpTrack {
    fn info(&self) -> TrackInfo {
        TrackInfo {
            id: self.id.clone(),
            kind: self.kind,
            source: self.source,
            muted: self.muted,
        }
    }
}

pub struct Router {
    cfg: RouterConfig,
    rng: StdRng,
    rooms: HashMap<String, Vec<ParticipantKey>>,
    participants: Slab<Participant>,
    by_id: HashMap<String, ParticipantKey>,
    conns: Slab<Conn>,
    by_ufrag: HashMap<String, ConnKey>,
    by_addr: HashMap<SocketAddr, ConnKey>,
    out: VecDeque<Output>,
    next_housekeeping: Option<Instant>,
    /// Some participant has `needs_offer` set: spares a scan per datagram.
    offers_due: bool,
    /// Reused buffer for RTP read from one connection before fanning it out.
    rtp_scratch: Vec<(String, rtc::rtp::Packet)>,
    stats: Stats,
}

/// A publisher's up-track by its public id.
fn up_track_mut<'a>(
    participants: &'a mut Slab<Participant>,
    publisher: ParticipantKey,
    track_id: &str,
) -> Option<&'a mut UpTrack> {
    participants
        .get_mut(publisher)?
        .up
        .iter_mut()
        .find(|u| u.id == track_id)
}

fn engine_kind(kind: Kind) -> RtpCodecKind {
    match kind {
        Kind::Audio => RtpCodecKind::Audio,
        Kind::Video => RtpCodecKind::Video,
    }
}

impl Router {
    pub fn new(cfg: RouterConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            rooms: HashMap::new(),
            participants: Slab::new(),
            by_id: HashMap::new(),
            conns: Slab::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            out: VecDeque::new(),
            next_housekeeping: None,
            offers_due: false,
            rtp_scratch: Vec::new(),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    pub fn participants(&self) -> usize {
        self.participants.len()
    }

    pub fn published_tracks(&self) -> usize {
        self.participants.iter().map(|(_, p)| p.up.len()).sum()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The next instant at which [`Input::Timeout`] must be fed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|(_, c)| c.deadline)
            .chain(self.next_housekeeping)
            .min()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if self.next_housekeeping.is_none() && !self.participants.is_empty() {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
        match input {
            Input::Datagram { from, local, data } => self.handle_datagram(now, from, local, data),
            Input::Join {
                participant_id,
                room,
                name,
            } => self.join(now, participant_id, room, name),
            Input::Signal {
                participant_id,
                msg,
            } => {
                if let Some(&p) = self.by_id.get(&participant_id) {
                    self.handle_signal(now, p, msg);
                }
            }
            Input::Disconnect { participant_id } => {
                if let Some(&p) = self.by_id.get(&participant_id) {
                    self.remove_participant(p);
                }
            }
            Input::Timeout => self.handle_timeout(now),
        }
        self.flush_negotiations(now);
    }

    // ----- media path -----

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, local: IpAddr, data: &[u8]) {
        self.stats.datagrams_in += 1;
        let conn = match self.by_addr.get(&from) {
            Some(&c) => c,
            None => match self.learn_address(from, data) {
                Some(c) => c,
                None => {
                    self.stats.datagrams_dropped += 1;
                    return;
                }
            },
        };
        let local_addr = self
            .cfg
            .candidates
            .iter()
            .find(|c| c.ip() == local)
            .or(self.cfg.candidates.first())
            .copied()
            .unwrap_or(SocketAddr::new(local, 0));
        let c = &mut self.conns[conn];
        c.last_rx = now;
        let res = c.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
        if let Err(e) = res {
            // One peer's bad packet must not disturb the others (gotcha 6).
            self.stats.engine_errors += 1;
            tracing::debug!(conn, error = %e, "engine refused datagram");
        }
        self.drain_conn(now, conn);
    }

    /// A datagram from an address we have not seen: only a STUN binding
    /// request naming one of our ufrags may introduce it.
    fn learn_address(&mut self, from: SocketAddr, data: &[u8]) -> Option<ConnKey> {
        if demux::classify(data) != demux::Kind::Stun {
            return None;
        }
        let ufrag = demux::binding_request_ufrag(data)?;
        let &conn = self.by_ufrag.get(ufrag)?;
        let c = &mut self.conns[conn];
        if c.addrs.len() >= MAX_ADDRS_PER_CONN {
            return None;
        }
        c.addrs.push(from);
        self.by_addr.insert(from, conn);
        Some(conn)
    }

    /// After any input to a connection: its events, its decrypted packets,
    /// its datagrams to send and its next deadline.
    fn drain_conn(&mut self, now: Instant, conn: ConnKey) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let owner = c.owner;
        let role = c.role;
        let mut events = Vec::new();
        while let Some(e) = c.pc.poll_event() {
            events.push(e);
        }
        for e in events {
            self.handle_event(now, conn, owner, role, e);
        }
        let Some(c) = self.conns.get_mut(conn) else {
            return; // the event removed the participant
        };
        let mut rtp = std::mem::take(&mut self.rtp_scratch);
        let mut feedback = Vec::new();
        while let Some(m) = c.pc.poll_read() {
            match m.message {
                RTCMessage::RtpPacket(track_id, packet) => rtp.push((track_id, packet)),
                // Only keyframe requests get this far (see feedback.rs).
                RTCMessage::RtcpPacket(_, packets) if role == Target::Subscriber => {
                    for p in &packets {
                        let any = p.as_any();
                        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                            feedback.push(pli.media_ssrc);
                        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                            feedback.extend(fir.fir.iter().map(|e| e.ssrc));
                        }
                    }
                }
                _ => {}
            }
        }
        for (track_id, packet) in rtp.drain(..) {
            self.forward(now, owner, &track_id, packet);
        }
        self.rtp_scratch = rtp;
        for ssrc in feedback {
            self.subscriber_wants_keyframe(now, owner, ssrc);
        }
        self.flush_writes(conn);
    }

    fn flush_writes(&mut self, conn: ConnKey) {
        if let Some(c) = self.conns.get_mut(conn) {
            c.drain_writes(&mut self.out);
        }
    }

    fn forward(
        &mut self,
        now: Instant,
        publisher: ParticipantKey,
        engine_track_id: &str,
        mut packet: rtc::rtp::Packet,
    ) {
        let Some(p) = self.participants.get_mut(publisher) else {
            return;
        };
        let Some(up) =
            p.up.iter_mut()
                .find(|u| u.engine_track_id == engine_track_id)
        else {
            return;
        };
        let ssrc = packet.header.ssrc;
        let Some(layer) = up.layers.iter_mut().position(|l| l.ssrc == ssrc) else {
            return;
        };
        // Padding-only packets (bandwidth probes) go on after a browser
        // paused a layer: only media keeps a layer alive.
        if !packet.payload.is_empty() {
            up.layers[layer].last_rx = now;
        }
        self.stats.rtp_packets_in += 1;
        self.stats.rtp_bytes_in += packet.payload.len() as u64;
        // Extension ids are per connection; forwarding them would make the
        // engine refuse the packet. The engine adds its own where it needs.
        packet.header.extension = false;
        packet.header.extensions.clear();
        let keyframe = up.kind == Kind::Video && up.video_codec.is_keyframe(&packet.payload);
        let mut need_keyframe = false;
        for sub in &mut up.subs {
            let Some(pt) = sub.pt else { continue };
            if sub.current != Some(ssrc) {
                // Another layer's packet: only its keyframe, and only for a
                // subscriber moving to it, is of use.
                if sub.pending != Some(ssrc) {
                    continue;
                }
                if !keyframe {
                    need_keyframe = true;
                    continue;
                }
                sub.current = sub.pending.take();
                sub.fwd.switch_source();
                if let Some(m) = &mut sub.vp8 {
                    m.switch(&packet.payload);
                }
                self.stats.layer_switches += 1;
            }
            let (seq, ts) = (packet.header.sequence_number, packet.header.timestamp);
            match sub.fwd.forward(now, seq, ts, keyframe) {
                Verdict::Forward { seq, ts } => {
                    let Some(c) = self.conns.get_mut(sub.conn).filter(|c| c.connected) else {
                        continue;
                    };
                    let mut out = packet.clone();
                    if let Some(m) = &mut sub.vp8 {
                        if let Some(p) = m.rewrite(&packet.payload) {
                            out.payload = p;
                        }
                    }
                    out.header.ssrc = sub.ssrc;
                    out.header.payload_type = pt;
                    out.header.sequence_number = seq;
                    out.header.timestamp = ts;
                    let len = out.payload.len() as u64;
                    match c.pc.rtp_sender(sub.sender) {
                        Some(mut s) => match s.write_rtp(now, out) {
                            Ok(()) => {
                                self.stats.rtp_packets_out += 1;
                                self.stats.rtp_bytes_out += len;
                            }
                            Err(_) => self.stats.engine_errors += 1,
                        },
                        None => self.stats.engine_errors += 1,
                    }
                    c.drain_writes(&mut self.out);
                }
                // A subscriber about to move needs the other layer's
                // keyframe (asked for when the move was decided), not this one.
                Verdict::DropNeedKeyframe => need_keyframe |= sub.pending.is_none(),
                Verdict::DropStale => {}
            }
        }
        if need_keyframe && up.layers[layer].keyframes.request(now) {
            let receiver = up.receiver;
            let pc_key = p.publisher;
            self.send_pli(now, pc_key, receiver, ssrc);
        }
    }

    fn send_pli(&mut self, now: Instant, conn: ConnKey, receiver: RTCRtpReceiverId, ssrc: u32) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        self.stats.keyframe_requests += 1;
        if let Some(mut r) = c.pc.rtp_receiver(receiver) {
            if r.write_rtcp(now, peer::pli(ssrc)).is_err() {
                self.stats.engine_errors += 1;
            }
        }
        self.flush_writes(conn);
    }

    /// A subscriber's decoder lost its way (PLI/FIR for one of our SSRCs).
    fn subscriber_wants_keyframe(&mut self, now: Instant, subscriber: ParticipantKey, ssrc: u32) {
        let Some(d) = self.participants.get(subscriber).and_then(|p| {
            p.down
                .iter()
                .find(|d| d.ssrc == ssrc)
                .map(|d| (d.publisher, d.track_id.clone()))
        }) else {
            return;
        };
        self.request_keyframe(now, d.0, &d.1, subscriber);
    }

    /// A keyframe of the layer `subscriber` receives (or is moving to) of
    /// a publisher's track.
    fn request_keyframe(
        &mut self,
        now: Instant,
        publisher: ParticipantKey,
        track_id: &str,
        subscriber: ParticipantKey,
    ) {
        let Some(up) = up_track_mut(&mut self.participants, publisher, track_id) else {
            return;
        };
        let ssrc = up
            .subs
            .iter()
            .find(|s| s.subscriber == subscriber)
            .and_then(|s| s.pending.or(s.current));
        if let Some(ssrc) = ssrc {
            self.request_layer_keyframe(now, publisher, track_id, ssrc);
        }
    }

    /// A keyframe of one layer, paced per layer.
    fn request_layer_keyframe(
        &mut self,
        now: Instant,
        publisher: ParticipantKey,
        track_id: &str,
        ssrc: u32,
    ) {
        let Some(p) = self.participants.get_mut(publisher) else {
            return;
        };
        let Some(up) = p.up.iter_mut().find(|u| u.id == track_id) else {
            return;
        };
        let Some(layer) = up.layers.iter_mut().find(|l| l.ssrc == ssrc) else {
            return;
        };
        if up.kind == Kind::Video && layer.keyframes.request(now) {
            let (receiver, conn) = (up.receiver, p.publisher);
            self.send_pli(now, conn, receiver, ssrc);
        }
    }

    /// Points each subscription of a simulcast track at the layer it should
    /// get now, asking for a keyframe of each layer someone moves to.
    fn reselect_layers(&mut self, now: Instant, publisher: ParticipantKey, track_id: &str) {
        let Some(up) = up_track_mut(&mut self.participants, publisher, track_id) else {
            return;
        };
        let mut wanted = Vec::new();
        for sub in &mut up.subs {
            let Some(i) = simulcast::select(&up.layers, sub.quality, now) else {
                continue;
            };
            let ssrc = up.layers[i].ssrc;
            if sub.current == Some(ssrc) {
                sub.pending = None;
            } else if sub.pending != Some(ssrc) {
                sub.pending = Some(ssrc);
                wanted.push(ssrc);
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        for ssrc in wanted {
            self.request_layer_keyframe(now, publisher, track_id, ssrc);
        }
    }

    /// A subscriber says which quality it wants of a track it receives.
    fn track_settings(&mut self, now: Instant, p: ParticipantKey, track_id: &str, q: Quality) {
        let Some(publisher) = self.participants[p]
            .down
            .iter()
            .find(|d| d.track_id == track_id)
            .map(|d| d.publisher)
        else {
            tracing::debug!(track_id, "settings for a track not received");
            return;
        };
        let Some(up) = up_track_mut(&mut self.participants, publisher, track_id) else {
            return;
        };
        if let Some(sub) = up.subs.iter_mut().find(|s| s.subscriber == p) {
            sub.quality = q;
        }
        self.reselect_layers(now, publisher, track_id);
    }

    // ----- engine events -----

    fn handle_event(
        &mut self,
        now: Instant,
        conn: ConnKey,
        owner: ParticipantKey,
        role: Target,
        event: RTCPeerConnectionEvent,
    ) {
        match event {
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init))
                if role == Target::Publisher =>
            {
                self.track_opened(now, owner, init);
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id))
                if role == Target::Publisher =>
            {
                let id = self.participants.get(owner).and_then(|p| {
                    p.up.iter()
                        .find(|u| u.engine_track_id == track_id)
                        .map(|u| u.id.clone())
                });
                if let Some(id) = id {
                    self.unpublish(owner, &id);
                }
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed,
            )
            | RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                RTCIceConnectionState::Failed,
            ) => {
                tracing::info!(role = ?role, "media connection failed");
                self.remove_participant(owner);
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) => {
                if let Some(c) = self.conns.get_mut(conn) {
                    c.connected = true;
                }
                if role == Target::Subscriber {
                    // Start every video down-track on a fresh keyframe.
                    self.restart_downtracks(now, owner);
                }
            }
            _ => {}
        }
    }

    fn restart_downtracks(&mut self, now: Instant, subscriber: ParticipantKey) {
        let Some(p) = self.participants.get(subscriber) else {
            return;
        };
        let wanted: Vec<(ParticipantKey, String)> = p
            .down
            .iter()
            .map(|d| (d.publisher, d.track_id.clone()))
            .collect();
        for (publisher, track_id) in wanted {
            if let Some(up) = up_track_mut(&mut self.participants, publisher, &track_id) {
                for s in up.subs.iter_mut().filter(|s| s.subscriber == subscriber) {
                    s.fwd.pause();
                }
            }
            self.request_keyframe(now, publisher, &track_id, subscriber);
        }
    }

    fn track_opened(&mut self, now: Instant, owner: ParticipantKey, init: RTCTrackEventInit) {
        let Some(p) = self.participants.get_mut(owner) else {
            return;
        };
        let rid = init.rid.clone().unwrap_or_default();
        // All the track's rids, as the publisher's SDP lists them.
        let rids: Vec<String> = self.conns[p.publisher]
            .pc
            .rtp_receiver(init.receiver_id)
            .map(|r| {
                r.track()
                    .codings()
                    .iter()
                    .map(|c| c.rtp_coding_parameters.rid.clone())
                    .collect()
            })
            .unwrap_or_default();
        let rids: Vec<&str> = rids.iter().map(String::as_str).collect();
        let layer = Layer {
            rank: simulcast::rank(&rid, &rids),
            rid,
            ssrc: init.ssrc,
            keyframes: KeyframeRequester::new(self.cfg.keyframe_interval),
            last_rx: now,
        };
        if let Some(up) = p.up.iter_mut().find(|u| u.engine_track_id == init.track_id) {
            // Another simulcast layer of a track already published, or a
            // layer that came back with a new SSRC (which replaces the old).
            if up.layers.iter().any(|l| l.ssrc == layer.ssrc) {
                return;
            }
            tracing::debug!(track = %up.id, rid = %layer.rid, "simulcast layer started");
            up.layers.retain(|l| l.rid != layer.rid);
            let at = up.layers.partition_point(|l| l.rank <= layer.rank);
            up.layers.insert(at, layer);
            let id = up.id.clone();
            self.reselect_layers(now, owner, &id);
            return;
        }
        let c = &mut self.conns[p.publisher];
        let mid =
            c.pc.get_transceivers()
                .collect::<Vec<_>>()
                .into_iter()
                .find(|&t| RTCRtpReceiverId::from(t) == init.receiver_id)
                .and_then(|t| c.pc.rtp_transceiver(t).and_then(|t| t.mid().clone()));
        let Some(mut receiver) = c.pc.rtp_receiver(init.receiver_id) else {
            return;
        };
        let kind = match receiver.track().kind() {
            RtpCodecKind::Audio => Kind::Audio,
            _ => Kind::Video,
        };
        let Some(codec) = receiver
            .get_parameters()
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.rtp_codec.clone())
        else {
            return;
        };
        let mid = mid.unwrap_or_default();
        let announced = p.announced.iter().find(|a| a.mid == mid);
        let source = announced.map(|a| a.source).unwrap_or(match kind {
            Kind::Audio => Source::Microphone,
            Kind::Video => Source::Camera,
        });
        let muted = announced.is_some_and(|a| a.muted);
        let id = format!("{}-{}", p.id, mid);
        tracing::info!(participant = %p.id, %mid, codec = %codec.mime_type, "track published");
        p.up.push(UpTrack {
            id: id.clone(),
            engine_track_id: init.track_id,
            mid,
            kind,
            source,
            muted,
            receiver: init.receiver_id,
            video_codec: VideoCodec::from_mime(&codec.mime_type),
            codec,
            layers: vec![layer],
            subs: Vec::new(),
        });
        let info = p.up.last().map(UpTrack::info);
        let (room, pid) = (p.room.clone(), p.id.clone());
        if let Some(track) = info {
            self.broadcast(
                &room,
                Some(owner),
                ServerMessage::TrackPublished {
                    participant_id: pid,
                    track,
                },
            );
        }
        let others: Vec<ParticipantKey> = self.others(&room, owner).collect();
        for s in others {
            self.subscribe(s, owner, &id);
        }
    }

    // ----- subscriptions -----

    fn subscribe(&mut self, subscriber: ParticipantKey, publisher: ParticipantKey, track_id: &str) {
        let ssrc: u32 = self.rng.random();
        let Some(q) = self.participants.get(publisher) else {
            return;
        };
        let Some(up) = q.up.iter().find(|u| u.id == track_id) else {
            return;
        };
        // The subscriber tells a participant's tiles apart by stream id.
        let stream_id = match up.source {
            Source::ScreenShare | Source::ScreenShareAudio => format!("{}:screen", q.id),
            Source::Camera | Source::Microphone => q.id.clone(),
        };
        let track = MediaStreamTrack::new(
            stream_id,
            up.id.clone(),
            up.id.clone(),
            engine_kind(up.kind),
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    rtcp_feedback: vec![],
                    ..up.codec.clone()
                },
                ..Default::default()
            }],
        );
        let gate = up.kind == Kind::Video;
        let clock_rate = up.codec.clock_rate;
        let vp8 = (up.video_codec == VideoCodec::Vp8).then(Vp8Munger::default);
        // Until the subscriber says otherwise, the best layer there is.
        let current = up.layers.last().map(|l| l.ssrc);
        let Some(p) = self.participants.get_mut(subscriber) else {
            return;
        };
        let conn = p.subscriber;
        let sender = match self.conns[conn].pc.add_track(track) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not add down-track");
                self.stats.engine_errors += 1;
                return;
            }
        };
        p.down.push(DownTrack {
            ssrc,
            publisher,
            track_id: track_id.to_owned(),
        });
        p.needs_offer = true;
        self.offers_due = true;
        if let Some(up) = up_track_mut(&mut self.participants, publisher, track_id) {
            up.subs.push(Subscription {
                subscriber,
                conn,
                sender,
                ssrc,
                pt: None,
                offered: false,
                fwd: Forwarder::new(gate, clock_rate),
                quality: Quality::default(),
                current,
                pending: None,
                vp8,
            });
        }
    }

    /// Removes a published track from everyone who receives it.
    fn unpublish(&mut self, publisher: ParticipantKey, track_id: &str) {
        let Some(p) = self.participants.get_mut(publisher) else {
            return;
        };
        let Some(i) = p.up.iter().position(|u| u.id == track_id) else {
            return;
        };
        let up = p.up.remove(i);
        let (room, pid) = (p.room.clone(), p.id.clone());
        for sub in up.subs {
            self.drop_downtrack(sub.subscriber, sub.conn, sub.sender, sub.ssrc);
        }
        self.broadcast(
            &room,
            Some(publisher),
            ServerMessage::TrackUnpublished {
                participant_id: pid,
                track_id: track_id.to_owned(),
            },
        );
    }

    fn drop_downtrack(
        &mut self,
        subscriber: ParticipantKey,
        conn: ConnKey,
        sender: RTCRtpSenderId,
        ssrc: u32,
    ) {
        let Some(s) = self.participants.get_mut(subscriber) else {
            return;
        };
        s.down.retain(|d| d.ssrc != ssrc);
        s.needs_offer = true;
        self.offers_due = true;
        if let Some(c) = self.conns.get_mut(conn) {
            if c.pc.remove_track(sender).is_err() {
                self.stats.engine_errors += 1;
            }
        }
    }

    // ----- signalling -----

    fn join(&mut self, now: Instant, participant_id: String, room: String, name: String) {
        if self.by_id.contains_key(&participant_id) {
            return;
        }
        if self.rooms.get(&room).map_or(0, Vec::len) >= self.cfg.max_participants {
            let msg = format!(
                "the meeting is full ({} participants)",
                self.cfg.max_participants
            );
            self.out.push_back(Output::Signal {
                participant_id: participant_id.clone(),
                msg: ServerMessage::error(ErrorCode::RoomFull, msg),
            });
            self.out.push_back(Output::Gone { participant_id });
            return;
        }
        let key = self.participants.vacant_key();
        let mut conns = [0; 2];
        for (i, role) in [Target::Publisher, Target::Subscriber]
            .into_iter()
            .enumerate()
        {
            let ufrag = self.random_token(16);
            let pwd = self.random_token(32);
            let pc = match peer::new_peer(
                now,
                role,
                &ufrag,
                &pwd,
                &self.cfg.candidates,
                &self.cfg.srtp_profiles,
            ) {
                Ok(pc) => pc,
                Err(e) => {
                    tracing::error!(error = %e, "could not create peer connection");
                    for &c in &conns[..i] {
                        self.close_conn(c);
                    }
                    self.out.push_back(Output::Signal {
                        participant_id: participant_id.clone(),
                        msg: ServerMessage::error(
                            ErrorCode::Unavailable,
                            "the media engine could not create a connection",
                        ),
                    });
                    self.out.push_back(Output::Gone { participant_id });
                    return;
                }
            };
            let deadline = Some(now);
            conns[i] = self.conns.insert(Conn {
                pc,
                owner: key,
                role,
                ufrag: ufrag.clone(),
                addrs: Vec::new(),
                last_rx: now,
                negotiated: false,
                connected: false,
                deadline,
            });
            self.by_ufrag.insert(ufrag, conns[i]);
        }
        let members = self.rooms.entry(room.clone()).or_default();
        let others: Vec<ParticipantKey> = members.clone();
        members.push(key);
        let participant = Participant {
            id: participant_id.clone(),
            name,
            room: room.clone(),
            publisher: conns[0],
            subscriber: conns[1],
            announced: Vec::new(),
            up: Vec::new(),
            down: Vec::new(),
            negotiation: Negotiation::Stable,
            needs_offer: false,
        };
        let info = participant.info();
        self.participants.insert(participant);
        self.by_id.insert(participant_id.clone(), key);
        tracing::info!(participant = %participant_id, "joined");
        self.out.push_back(Output::Signal {
            participant_id: participant_id.clone(),
            msg: ServerMessage::Joined {
                v: crate::signalling::PROTOCOL_VERSION,
                room: room.clone(),
                participant_id,
                participants: others
                    .iter()
                    .map(|&o| self.participants[o].info())
                    .collect(),
                // The session adds what it knows of chat and identity.
                chat: None,
                identity: None,
            },
        });
        self.broadcast(
            &room,
            Some(key),
            ServerMessage::ParticipantJoined { participant: info },
        );
        for o in others {
            let tracks: Vec<String> = self.participants[o]
                .up
                .iter()
                .map(|u| u.id.clone())
                .collect();
            for t in tracks {
                self.subscribe(key, o, &t);
            }
        }
    }

    fn handle_signal(&mut self, now: Instant, p: ParticipantKey, msg: ClientMessage) {
        match msg {
            ClientMessage::PublisherOffer { sdp, tracks } => {
                self.publisher_offer(now, p, sdp, tracks)
            }
            ClientMessage::SubscriberAnswer { sdp } => self.subscriber_answer(now, p, sdp),
            ClientMessage::Candidate { target, candidate } => {
                if let Some(c) = candidate {
                    self.remote_candidate(p, target, c);
                }
            }
            ClientMessage::Mute { mid, muted } => self.mute(p, &mid, muted),
            ClientMessage::TrackSettings { track_id, quality } => {
                self.track_settings(now, p, &track_id, quality)
            }
            ClientMessage::Leave {} => self.remove_participant(p),
            // The session let this through only from a host.
            ClientMessage::Remove { participant_id } => {
                let target = self.by_id.get(&participant_id).copied();
                let same_room = |t| self.participants[t].room == self.participants[p].room;
                match target {
                    Some(t) if t != p && same_room(t) => {
                        let msg = "a host removed you from the meeting".to_owned();
                        self.reply_error(t, ErrorCode::Removed, msg);
                        self.remove_participant(t);
                    }
                    _ => {
                        let msg = format!("no participant `{participant_id}` to remove here");
                        self.reply_error(p, ErrorCode::BadMessage, msg);
                    }
                }
            }
            // Handled by the session; never reach a worker.
            ClientMessage::Join { .. } | ClientMessage::Chat { .. } => {}
        }
    }

    fn reply_error(&mut self, p: ParticipantKey, code: ErrorCode, message: String) {
        if let Some(part) = self.participants.get(p) {
            self.out.push_back(Output::Signal {
                participant_id: part.id.clone(),
                msg: ServerMessage::Error { code, message },
            });
        }
    }

    fn publisher_offer(
        &mut self,
        now: Instant,
        p: ParticipantKey,
        sdp: String,
        tracks: Vec<TrackAnnouncement>,
    ) {
        // Stopped transceivers stay in the SDP with port 0 until reused.
        let sections = sdp
            .lines()
            .filter(|l| l.starts_with("m=") && l.split(' ').nth(1) != Some("0"))
            .count();
        if sections > MAX_TRACKS_PER_PUBLISHER {
            let msg = format!(
                "publisher offer refused: {sections} media sections, at most \
                 {MAX_TRACKS_PER_PUBLISHER} may be published"
            );
            self.reply_error(p, ErrorCode::BadSdp, msg);
            return;
        }
        let part = &mut self.participants[p];
        let conn = part.publisher;
        // Tracks no longer announced are unpublished.
        let gone: Vec<String> = part
            .up
            .iter()
            .filter(|u| !tracks.iter().any(|t| t.mid == u.mid))
            .map(|u| u.id.clone())
            .collect();
        part.announced = tracks;
        let pid = part.id.clone();
        for id in gone {
            self.unpublish(p, &id);
        }
        let pc = &mut self.conns[conn].pc;
        let answer = RTCSessionDescription::offer(sdp)
            .and_then(|offer| pc.set_remote_description(now, offer))
            .and_then(|()| pc.create_answer(None))
            .and_then(|answer| pc.set_local_description(now, answer))
            .map(|()| pc.local_description().map(|d| d.sdp));
        match answer {
            Ok(Some(sdp)) => {
                self.mark_negotiated(now, conn);
                self.out.push_back(Output::Signal {
                    participant_id: pid,
                    msg: ServerMessage::PublisherAnswer { sdp },
                });
            }
            Ok(None) => self.stats.engine_errors += 1,
            Err(e) => self.reply_error(
                p,
                ErrorCode::BadSdp,
                format!("publisher offer refused: {e}"),
            ),
        }
        self.drain_conn(now, conn);
    }

    fn subscriber_answer(&mut self, now: Instant, p: ParticipantKey, sdp: String) {
        let part = &mut self.participants[p];
        let Negotiation::Offered { again } = part.negotiation else {
            self.reply_error(
                p,
                ErrorCode::BadSdp,
                "no subscriber offer is outstanding".into(),
            );
            return;
        };
        let conn = part.subscriber;
        let pc = &mut self.conns[conn].pc;
        let res =
            RTCSessionDescription::answer(sdp).and_then(|a| pc.set_remote_description(now, a));
        part.negotiation = Negotiation::Stable;
        part.needs_offer |= again;
        self.offers_due |= again;
        if let Err(e) = res {
            self.reply_error(
                p,
                ErrorCode::BadSdp,
                format!("subscriber answer refused: {e}"),
            );
            return;
        }
        self.mark_negotiated(now, conn);
        self.resolve_payload_types(now, p);
        self.drain_conn(now, conn);
    }

    /// After an answer: the payload type each new down-track must carry, and
    /// a keyframe for each new video down-track.
    fn resolve_payload_types(&mut self, now: Instant, subscriber: ParticipantKey) {
        let downs: Vec<(ParticipantKey, String)> = self.participants[subscriber]
            .down
            .iter()
            .map(|d| (d.publisher, d.track_id.clone()))
            .collect();
        for (publisher, track_id) in downs {
            let Some(up) = up_track_mut(&mut self.participants, publisher, &track_id) else {
                continue;
            };
            let Some(sub) = up
                .subs
                .iter_mut()
                .find(|s| s.subscriber == subscriber && s.offered && s.pt.is_none())
            else {
                continue;
            };
            let Some(c) = self.conns.get_mut(sub.conn) else {
                continue;
            };
            if let Some(mut sender) = c.pc.rtp_sender(sub.sender) {
                let codecs = &sender.get_parameters().rtp_parameters.codecs;
                let mime = &up.codec.mime_type;
                sub.pt = codecs
                    .iter()
                    .find(|c| {
                        c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)
                            && c.rtp_codec.sdp_fmtp_line == up.codec.sdp_fmtp_line
                    })
                    .or_else(|| {
                        codecs
                            .iter()
                            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                    })
                    .map(|c| c.payload_type);
            }
            if sub.pt.is_none() {
                tracing::warn!(codec = %up.codec.mime_type, "subscriber did not accept the publisher's codec");
            }
            self.request_keyframe(now, publisher, &track_id, subscriber);
        }
    }

    fn mark_negotiated(&mut self, now: Instant, conn: ConnKey) {
        if let Some(c) = self.conns.get_mut(conn) {
            if !c.negotiated {
                c.negotiated = true;
                c.last_rx = now;
            }
        }
    }

    fn remote_candidate(&mut self, p: ParticipantKey, target: Target, c: Candidate) {
        let part = &self.participants[p];
        let conn = match target {
            Target::Publisher => part.publisher,
            Target::Subscriber => part.subscriber,
        };
        let init = rtc::peer_connection::transport::RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_mline_index,
            username_fragment: c.username_fragment,
            ..Default::default()
        };
        // ICE-lite learns the browser's address from its checks; a candidate
        // the engine cannot use (mDNS names, TCP) is not worth an error.
        if let Err(e) = self.conns[conn].pc.add_remote_candidate(init) {
            tracing::debug!(error = %e, "remote candidate ignored");
        }
    }

    fn mute(&mut self, p: ParticipantKey, mid: &str, muted: bool) {
        let part = &mut self.participants[p];
        if let Some(a) = part.announced.iter_mut().find(|a| a.mid == mid) {
            a.muted = muted;
        }
        let Some(up) = part.up.iter_mut().find(|u| u.mid == mid) else {
            return;
        };
        up.muted = muted;
        let msg = ServerMessage::TrackMuted {
            participant_id: part.id.clone(),
            track_id: up.id.clone(),
            muted,
        };
        let room = part.room.clone();
        self.broadcast(&room, Some(p), msg);
    }

    /// Sends an offer to every subscriber whose down-tracks changed and who
    /// has no offer outstanding.
    fn flush_negotiations(&mut self, now: Instant) {
        if !std::mem::take(&mut self.offers_due) {
            return;
        }
        let due: Vec<ParticipantKey> = self
            .participants
            .iter()
            .filter(|(_, p)| p.needs_offer)
            .map(|(k, _)| k)
            .collect();
        for k in due {
            let p = &mut self.participants[k];
            p.needs_offer = false;
            if let Negotiation::Offered { again } = &mut p.negotiation {
                *again = true;
                continue;
            }
            let conn = p.subscriber;
            let pc = &mut self.conns[conn].pc;
            let res = pc
                .create_offer(None)
                .and_then(|o| pc.set_local_description(now, o))
                .map(|()| pc.local_description().map(|d| d.sdp));
            match res {
                Ok(Some(sdp)) => {
                    p.negotiation = Negotiation::Offered { again: false };
                    self.out.push_back(Output::Signal {
                        participant_id: p.id.clone(),
                        msg: ServerMessage::SubscriberOffer { sdp },
                    });
                    for (_, q) in self.participants.iter_mut() {
                        for up in &mut q.up {
                            for sub in up.subs.iter_mut().filter(|s| s.subscriber == k) {
                                sub.offered = true;
                            }
                        }
                    }
                }
                Ok(None) => self.stats.engine_errors += 1,
                Err(e) => {
                    self.stats.engine_errors += 1;
                    tracing::warn!(error = %e, "could not create subscriber offer");
                }
            }
            self.flush_writes(conn);
        }
    }

    // ----- lifecycle -----

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
            .map(|(k, _)| k)
            .collect();
        for conn in due {
            // An earlier connection's event may have removed this one (a
            // failed connection removes its participant's other one too).
            let Some(c) = self.conns.get_mut(conn) else {
                continue;
            };
            if let Err(e) = c.pc.handle_timeout(now) {
                self.stats.engine_errors += 1;
                tracing::debug!(conn, error = %e, "engine timeout error");
            }
            self.drain_conn(now, conn);
        }
        if self.next_housekeeping.is_some_and(|t| t <= now) {
            self.housekeeping(now);
            self.next_housekeeping = (!self.participants.is_empty()).then(|| now + HOUSEKEEPING);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let silent: Vec<ParticipantKey> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.negotiated && now.saturating_duration_since(c.last_rx) > self.cfg.peer_timeout
            })
            .map(|(_, c)| c.owner)
            .collect();
        for p in silent {
            if let Some(part) = self.participants.get(p) {
                tracing::info!(participant = %part.id, "media connection silent, removing");
                let msg = ServerMessage::error(
                    ErrorCode::Timeout,
                    "no media from your browser for too long; you were removed",
                );
                self.out.push_back(Output::Signal {
                    participant_id: part.id.clone(),
                    msg,
                });
                self.remove_participant(p);
            }
        }
        // Keyframe requests that were held back by pacing.
        let mut owed: Vec<(ConnKey, RTCRtpReceiverId, u32)> = Vec::new();
        let mut simulcast: Vec<(ParticipantKey, String)> = Vec::new();
        for (k, p) in self.participants.iter_mut() {
            for u in &mut p.up {
                for l in &mut u.layers {
                    if l.keyframes.poll(now) {
                        owed.push((p.publisher, u.receiver, l.ssrc));
                    }
                }
                if u.layers.len() > 1 {
                    simulcast.push((k, u.id.clone()));
                }
            }
        }
        for (conn, receiver, ssrc) in owed {
            self.send_pli(now, conn, receiver, ssrc);
        }
        // Layers that stopped or started since.
        for (publisher, track_id) in simulcast {
            self.reselect_layers(now, publisher, &track_id);
        }
    }

    fn remove_participant(&mut self, p: ParticipantKey) {
        let Some(part) = self.participants.try_remove(p) else {
            return;
        };
        tracing::info!(participant = %part.id, "left");
        self.by_id.remove(&part.id);
        for up in &part.up {
            for sub in &up.subs {
                self.drop_downtrack(sub.subscriber, sub.conn, sub.sender, sub.ssrc);
            }
        }
        for d in &part.down {
            if let Some(up) = up_track_mut(&mut self.participants, d.publisher, &d.track_id) {
                up.subs.retain(|s| s.subscriber != p);
            }
        }
        self.close_conn(part.publisher);
        self.close_conn(part.subscriber);
        if let Some(members) = self.rooms.get_mut(&part.room) {
            members.retain(|&m| m != p);
            if members.is_empty() {
                self.rooms.remove(&part.room);
            }
        }
        self.broadcast(
            &part.room,
            None,
            ServerMessage::ParticipantLeft {
                participant_id: part.id.clone(),
            },
        );
        self.out.push_back(Output::Gone {
            participant_id: part.id,
        });
    }

    fn close_conn(&mut self, conn: ConnKey) {
        let Some(mut c) = self.conns.try_remove(conn) else {
            return;
        };
        self.by_ufrag.remove(&c.ufrag);
        for a in &c.addrs {
            self.by_addr.remove(a);
        }
        // Sends DTLS close_notify, so the browser notices at once.
        let _ = c.pc.close();
        c.drain_writes(&mut self.out);
    }

    // ----- helpers -----

    fn others<'a>(
        &'a self,
        room: &str,
        except: ParticipantKey,
    ) -> impl Iterator<Item = ParticipantKey> + 'a {
        self.rooms
            .get(room)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&k| k != except)
    }

    fn broadcast(&mut self, room: &str, except: Option<ParticipantKey>, msg: ServerMessage) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        for &m in members {
            if Some(m) == except {
                continue;
            }
            if let Some(p) = self.participants.get(m) {
                self.out.push_back(Output::Signal {
                    participant_id: p.id.clone(),
                    msg: msg.clone(),
                });
            }
        }
    }

    fn random_token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }
}
