//! The room core of one worker: its rooms, their participants and every
//! participant's two peer connections. Sans-IO, in the manner of str0m:
//! the shell feeds [`Input`]s (a datagram, a participant's [`Command`], a
//! timeout), each with `now`, and drains [`Output`]s (datagrams to send,
//! [`Event`]s for participants) and the next deadline. Nothing here reads
//! the clock, touches a socket or spawns a task, so tests drive it with
//! simulated time.
//!
//! The path of a media packet: datagram → its connection (`connection.rs`)
//! → the engine decrypts it once → the publisher's up-track fans it out to
//! its down-tracks (`crate::media`) → each subscriber's engine encrypts →
//! datagrams out. Who is in which room is `membership.rs`, what hosts do to
//! others' media `moderation.rs`, hands and reactions `gestures.rs`; publishing,
//! subscribing and the subscriber connection's negotiation have a file
//! each; who speaks is `speakers.rs`, each subscriber's share of its
//! link `bandwidth.rs`.

pub mod api;
mod bandwidth;
pub mod connection;
mod gestures;
pub mod ice;
mod ice_restart;
mod membership;
mod moderation;
pub mod negotiation;
pub mod participant;
mod publishing;
mod reports;
mod sender_reports;
mod speakers;
mod subscribing;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::RTCRtpReceiverId;
use rtc::sansio::Protocol;
use rtc::shared::time::SystemInstant;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use slab::Slab;

pub use api::{Command, Event, LeaveReason, Refusal, Role, Target};
use bandwidth::PACE_TICK;
use connection::{ConnKey, Connections};
use membership::Joiner;
use participant::{Participant, ParticipantKey};
pub use publishing::MAX_TRACKS_PER_PUBLISHER;
pub use reports::Samples;

use crate::engine::peer;
use crate::engine::SrtpProfile;
use crate::media::down_track::Route;
use crate::media::up_track::Sink;
use crate::media::{Kind, MediaStats, Quality, Source};

/// Tunables of the core; the shell fills them from the config.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Host candidates every connection advertises (this worker's port).
    pub candidates: Vec<SocketAddr>,
    /// Passive ICE-TCP host candidates (this worker's TCP port), for
    /// browsers whose firewall drops UDP; empty: none.
    pub tcp_candidates: Vec<SocketAddr>,
    /// A connection silent this long is considered gone.
    pub peer_timeout: Duration,
    /// Least time between two keyframe requests to one publisher track.
    pub keyframe_interval: Duration,
    /// Each subscriber's link gets a bandwidth estimate and an allocation
    /// (`bandwidth.rs`).
    pub bandwidth_estimation: bool,
    /// Publishers are told which simulcast layers anyone receives, and
    /// pause the others (`media/dynacast.rs`).
    pub dynacast: bool,
    /// Seed for ICE credentials and SSRCs (fixed in tests).
    pub seed: u64,
    pub srtp_profiles: Vec<SrtpProfile>,
    /// A room this full refuses further joins, unless a seat is idle: its
    /// participant joined this long ago and nothing of its ever connected.
    pub max_participants: usize,
    pub idle_seat: Duration,
    /// The wall clock at an instant, read by the shell: round trips are
    /// measured in the NTP time of the engine's sender reports.
    pub wallclock: SystemInstant,
}

/// How a datagram travels: on the worker's UDP socket, or as one frame on
/// one of its ICE-TCP connections (which the shell knows by `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
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
        transport: Transport,
    },
    /// A participant's session asks something.
    Command {
        participant_id: String,
        command: Command,
    },
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
        transport: Transport,
    },
    /// For a participant's session. After [`Event::Left`] nothing more
    /// comes for that participant.
    Event {
        participant_id: String,
        event: Event,
    },
}

/// Counters the shell turns into metrics. Plain integers: the core is single
/// threaded and the shell reads them between inputs.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub datagrams_in: u64,
    pub datagrams_dropped: u64,
    /// Sent to publishers.
    pub keyframe_requests: u64,
    /// From subscribers: PLI, and FIR entries.
    pub keyframe_requests_received: u64,
    /// NACK packets from subscribers.
    pub nacks_received: u64,
    /// Bandwidth probes of subscribers' links, and those that found the
    /// link larger.
    pub probes: u64,
    pub probes_carried: u64,
    pub engine_errors: u64,
    pub failures: ConnectionFailures,
    pub media: MediaStats,
}

/// Peer connections that failed, by why; each removes its participant.
#[derive(Debug, Default, Clone)]
pub struct ConnectionFailures {
    /// The engine's ICE agent gave up (consent checks stopped).
    pub ice_failed: u64,
    /// The connection failed with ICE up: the DTLS handshake or transport.
    pub dtls_failed: u64,
    /// Negotiated but never connected when its participant left: ICE or
    /// DTLS never completed (a firewall dropping UDP, say).
    pub not_connected: u64,
    /// Connected, then silent past the peer timeout.
    pub timeout: u64,
}

/// Published tracks by kind and source: how the shell counts them.
pub type TrackCounts = HashMap<(Kind, Source), usize>;

/// How often [`Router`] looks for silent peers, owed keyframe requests,
/// simulcast layers that stopped or started, and unanswered offers.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

pub struct Router {
    cfg: RouterConfig,
    rng: StdRng,
    rooms: HashMap<String, Vec<ParticipantKey>>,
    participants: Slab<Participant>,
    by_id: HashMap<String, ParticipantKey>,
    conns: Connections,
    out: VecDeque<Output>,
    next_housekeeping: Option<Instant>,
    /// When the subscribers' sender reports are due (`sender_reports.rs`).
    next_sender_reports: Option<Instant>,
    /// Some participant's subscriber connection needs an offer: spares a
    /// scan per datagram.
    offers_due: bool,
    /// Reused buffer for RTP read from one connection before fanning it out.
    rtp_scratch: Vec<(String, rtc::rtp::Packet)>,
    stats: Stats,
    samples: Samples,
    /// Who speaks in each room.
    speakers: HashMap<String, speakers::RoomSpeakers>,
    /// When connections under a bandwidth probe are next topped up.
    next_probe_tick: Option<Instant>,
    /// When the subscriber connections' pacers release packets next.
    next_pace_tick: Option<Instant>,
}

impl Router {
    pub fn new(cfg: RouterConfig) -> Self {
        // The engine itself needs this provider for DTLS and SRTP; the
        // crate is always built with one.
        let crypto = rtc::crypto::default_provider().expect("rtc has a built-in crypto provider");
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            cfg,
            rooms: HashMap::new(),
            participants: Slab::new(),
            by_id: HashMap::new(),
            conns: Connections::new(crypto),
            out: VecDeque::new(),
            next_housekeeping: None,
            next_sender_reports: None,
            offers_due: false,
            rtp_scratch: Vec::new(),
            stats: Stats::default(),
            samples: Samples::default(),
            speakers: HashMap::new(),
            next_probe_tick: None,
            next_pace_tick: None,
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

    pub fn published_tracks(&self) -> TrackCounts {
        let mut counts = TrackCounts::new();
        for u in self.participants.iter().flat_map(|(_, p)| &p.up) {
            *counts.entry((u.kind, u.source)).or_default() += 1;
        }
        counts
    }

    /// Subscriptions to simulcast tracks, by the layer each forwards now
    /// (low, medium, high).
    pub fn forwarded_layers(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        let ups = self.participants.iter().flat_map(|(_, p)| &p.up);
        for q in ups.filter(|u| u.is_simulcast()).flat_map(|u| u.forwarded()) {
            counts[match q {
                Quality::Low => 0,
                Quality::Medium => 1,
                Quality::High => 2,
            }] += 1;
        }
        counts
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
            .chain(self.next_probe_tick)
            .chain(self.next_pace_tick)
            .min()
    }

    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        if self.next_housekeeping.is_none() && !self.participants.is_empty() {
            self.next_housekeeping = Some(now + HOUSEKEEPING);
        }
        match input {
            Input::Datagram {
                from,
                local,
                data,
                transport,
            } => self.handle_datagram(now, from, local, data, transport),
            Input::Command {
                participant_id,
                command,
            } => self.command(now, participant_id, command),
            Input::Timeout => self.handle_timeout(now),
        }
        self.flush_negotiations(now);
    }

    fn command(&mut self, now: Instant, participant_id: String, command: Command) {
        if let Command::Join {
            room,
            name,
            role,
            guest,
            replaces,
        } = command
        {
            let who = Joiner {
                id: participant_id,
                name,
                role,
                guest,
                replaces,
            };
            return self.join(now, who, room);
        }
        let Some(&p) = self.by_id.get(&participant_id) else {
            return;
        };
        match command {
            Command::Join { .. } => {}
            Command::Publish { sdp, tracks } => self.publish(now, p, sdp, tracks),
            Command::SubscriberAnswer { sdp } => self.subscriber_answer(now, p, sdp),
            Command::RestartSubscriberIce => self.restart_subscriber_ice(p),
            Command::Candidate { target, candidate } => {
                let conn = self.participants[p].conn(target);
                // ICE-lite learns the browser's address from its checks; a
                // candidate the engine cannot use (mDNS names, TCP) is not
                // worth an error.
                if let Some(c) = conn.and_then(|conn| self.conns.get_mut(conn)) {
                    if let Err(e) = c.pc.add_remote_candidate(candidate) {
                        tracing::debug!(error = %e, "remote candidate ignored");
                    }
                }
            }
            Command::Mute { mid, muted } => self.mute(p, &mid, muted),
            Command::SetQuality { track_id, quality } => {
                self.set_quality(now, p, &track_id, quality)
            }
            Command::Remove { participant_id } => self.remove_other(p, &participant_id),
            Command::HostMute {
                participant_id,
                track_id,
                locked,
            } => self.host_mute(p, &participant_id, &track_id, locked),
            Command::SetRole { role } => self.set_role(p, role),
            Command::RaiseHand { raised } => self.raise_hand(p, raised),
            Command::LowerHand { participant_id } => self.lower_hand(p, &participant_id),
            Command::React { reaction } => self.react(p, reaction),
            Command::Reconnecting => self.reconnecting(p),
            Command::Leave => self.remove_participant(p, LeaveReason::Left),
        }
    }

    // ----- media path -----

    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        local: IpAddr,
        data: &[u8],
        transport: Transport,
    ) {
        self.stats.datagrams_in += 1;
        let Some(conn) = self.conns.route(from, transport, data) else {
            self.stats.datagrams_dropped += 1;
            return;
        };
        let (candidates, transport_protocol) = match transport {
            Transport::Udp => (&self.cfg.candidates, TransportProtocol::UDP),
            Transport::Tcp => (&self.cfg.tcp_candidates, TransportProtocol::TCP),
        };
        let local_addr = candidates
            .iter()
            .find(|c| c.ip() == local)
            .or(candidates.first())
            .copied()
            .unwrap_or(SocketAddr::new(local, 0));
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.last_rx = now;
        let res = c.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol,
            },
            message: BytesMut::from(data),
        });
        if let Err(e) = res {
            // One peer's bad packet must not disturb the others.
            self.stats.engine_errors += 1;
            tracing::debug!(conn, error = %e, "engine refused datagram");
        }
        self.drain_conn(now, conn);
    }

    /// After any input to a connection: its events, its decrypted packets
    /// and feedback, its datagrams to send and its next deadline.
    fn drain_conn(&mut self, now: Instant, conn: ConnKey) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let (owner, role) = (c.owner, c.role);
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
        let mut publisher_reports = Vec::new();
        while let Some(m) = c.pc.poll_read() {
            match m.message {
                RTCMessage::RtpPacket(track_id, packet) => rtp.push((track_id, packet)),
                // Only keyframe requests, NACKs and reports get this far
                // (see engine/feedback.rs).
                RTCMessage::RtcpPacket(_, packets) if role == Target::Subscriber => {
                    feedback.extend(packets)
                }
                // A publisher's sender reports: its streams' clocks.
                RTCMessage::RtcpPacket(_, packets) => {
                    publisher_reports.extend(packets.into_iter().filter_map(|p| {
                        let sr = p.as_any().downcast_ref::<SenderReport>()?;
                        Some((sr.ssrc, sr.rtp_time, sr.ntp_time))
                    }))
                }
                _ => {}
            }
        }
        for (track_id, packet) in rtp.drain(..) {
            self.forward(now, owner, &track_id, packet);
        }
        self.rtp_scratch = rtp;
        for (ssrc, rtp, ntp) in publisher_reports {
            self.publisher_sender_report(now, conn, owner, ssrc, rtp, ntp);
        }
        for p in feedback {
            let any = p.as_any();
            if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                self.stats.keyframe_requests_received += 1;
                self.subscriber_wants_keyframe(now, owner, pli.media_ssrc);
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                for e in &fir.fir {
                    self.stats.keyframe_requests_received += 1;
                    self.subscriber_wants_keyframe(now, owner, e.ssrc);
                }
            } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
                self.transport_feedback(now, conn, cc);
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.stats.nacks_received += 1;
                self.retransmit(now, owner, nack);
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
                self.reception_reports(now, owner, &rr.reports);
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                self.reception_reports(now, owner, &sr.reports);
            }
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
        packet: rtc::rtp::Packet,
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
        let mut sink = Fanout {
            conns: &mut self.conns,
            out: &mut self.out,
            errors: &mut self.stats.engine_errors,
            samples: &mut self.samples,
            pace: &mut self.next_pace_tick,
        };
        let want = up.forward(now, packet, &mut sink, &mut self.stats.media);
        if let (Some(layer), Some(conn)) = (want, p.publisher) {
            let receiver = up.receiver;
            self.send_pli(now, conn, receiver, layer);
        }
    }

    /// Asks a publisher for a keyframe of one layer (SSRC) of a track.
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
        c.drain_writes(&mut self.out);
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
                state @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed),
            ) => {
                if state == RTCPeerConnectionState::Failed {
                    self.stats.failures.dtls_failed += 1;
                }
                tracing::info!(role = ?role, "media connection failed");
                self.remove_participant(owner, LeaveReason::MediaFailed);
            }
            RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(
                RTCIceConnectionState::Failed,
            ) => {
                self.stats.failures.ice_failed += 1;
                tracing::info!(role = ?role, "media connection failed");
                self.remove_participant(owner, LeaveReason::MediaFailed);
            }
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) => {
                let again = self
                    .conns
                    .get_mut(conn)
                    .is_some_and(|c| std::mem::replace(&mut c.connected, true));
                if role == Target::Subscriber {
                    // Start every video down-track on a fresh keyframe.
                    self.restart_down_tracks(now, owner);
                } else if again {
                    self.publisher_reconnected(now, owner);
                }
            }
            _ => {}
        }
    }

    // ----- time -----

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
        if self.next_probe_tick.is_some_and(|t| t <= now) {
            self.send_probes(now);
        }
        if self.next_pace_tick.is_some_and(|t| t <= now) {
            self.release_paced(now);
        }
        if self.next_housekeeping.is_some_and(|t| t <= now) {
            self.housekeeping(now);
            self.next_housekeeping = (!self.participants.is_empty()).then(|| now + HOUSEKEEPING);
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let silent: Vec<(ParticipantKey, bool)> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.negotiated && now.saturating_duration_since(c.last_rx) > self.cfg.peer_timeout
            })
            // The shell holds a dropped participant's seat for a while.
            .filter(|(_, c)| {
                self.participants
                    .get(c.owner)
                    .is_some_and(|p| !p.reconnecting)
            })
            .map(|(_, c)| (c.owner, c.connected))
            .collect();
        for (p, connected) in silent {
            if let Some(part) = self.participants.get(p) {
                let failures = &mut self.stats.failures;
                *if connected {
                    &mut failures.timeout
                } else {
                    &mut failures.not_connected
                } += 1;
                tracing::info!(participant = %part.id, "media connection silent, removing");
                self.remove_participant(p, LeaveReason::Timeout);
            }
        }
        self.expire_offers(now);
        // Keyframe requests held back by pacing, and simulcast layers that
        // stopped or started since.
        let mut owed: Vec<(ConnKey, RTCRtpReceiverId, u32)> = Vec::new();
        for (_, p) in self.participants.iter_mut() {
            let Some(conn) = p.publisher else {
                continue;
            };
            for u in &mut p.up {
                let receiver = u.receiver;
                if u.is_simulcast() {
                    owed.extend(u.reselect(now).into_iter().map(|l| (conn, receiver, l)));
                }
                owed.extend(u.owed_keyframes(now).map(|l| (conn, receiver, l)));
            }
        }
        for (conn, receiver, ssrc) in owed {
            self.send_pli(now, conn, receiver, ssrc);
        }
        self.detect_speakers();
        if self.cfg.dynacast {
            self.dynacast(now);
        }
        self.allocate_bandwidth(now);
        self.send_sender_reports(now);
    }
}

/// The fan-out's way to the subscribers' engines.
struct Fanout<'a> {
    conns: &'a mut Connections,
    out: &'a mut VecDeque<Output>,
    errors: &'a mut u64,
    samples: &'a mut Samples,
    /// When the pacers are due next, once one holds a packet back.
    pace: &'a mut Option<Instant>,
}

impl Sink for Fanout<'_> {
    fn ready(&self, conn: usize) -> bool {
        self.conns.get(conn).is_some_and(|c| c.connected)
    }

    fn send(&mut self, now: Instant, route: &Route, mut packet: rtc::rtp::Packet) -> bool {
        let Some(c) = self.conns.get_mut(route.conn) else {
            return false;
        };
        if let Some(b) = c.bandwidth.as_mut().filter(|_| route.paced) {
            let estimate = b.estimator.estimate();
            match b.pacer.offer(now, estimate, route.sender, packet) {
                Some((_, now_due)) => packet = now_due,
                None => {
                    self.pace.get_or_insert(now + PACE_TICK);
                    return true;
                }
            }
        }
        let sent = c.send_rtp(now, route.sender, packet, self.out);
        if !sent {
            *self.errors += 1;
        } else if !c.media_sent {
            c.media_sent = true;
            self.samples
                .first_media(now.saturating_duration_since(c.created));
        }
        sent
    }

    fn may_resend(&mut self, now: Instant, conn: usize, bytes: usize) -> bool {
        let Some(c) = self.conns.get_mut(conn) else {
            return false;
        };
        match c.bandwidth.as_mut() {
            Some(b) => b.may_resend(now, bytes),
            None => c.resends.may_resend(bytes),
        }
    }
}
