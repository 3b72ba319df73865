//! The emulated meeting the routing tests drive: the routing core with
//! simulated time and webrtc-rs peers standing in for browsers, datagrams
//! moving between them and the [`Router`] in memory, and the clock moving
//! only when a test moves it.

// Each test file uses its own part of the harness.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sfu::room::api::{Command, Event, Role, Source, TrackAnnouncement};
use sfu::room::{Input, Output, Router, RouterConfig, Transport};

pub const SERVER: &str = "10.0.0.1:4000";
pub const STEP: Duration = Duration::from_millis(5);

pub fn server_addr() -> SocketAddr {
    SERVER.parse().unwrap()
}

/// One emulated browser: a publisher and a subscriber peer connection, and
/// what its subscriber received.
pub struct Browser {
    pub id: String,
    /// Each connection has its own address, as in a browser.
    pub pub_addr: SocketAddr,
    pub sub_addr: SocketAddr,
    pub publisher: RTCPeerConnection,
    pub subscriber: RTCPeerConnection,
    /// Our sending streams: kind, sender, ssrc (one per simulcast layer).
    pub senders: Vec<(RtpCodecKind, RTCRtpSenderId, u32)>,
    /// Kinds of our published tracks, in the order of their transceivers.
    pub kinds: Vec<RtpCodecKind>,
    /// Datagrams to the server are dropped while this is set.
    pub unplugged: bool,
    /// Subscriber offers left unanswered, before answering again.
    pub ignore_offers: usize,
    /// Events the core sent, in order.
    pub inbox: Vec<Event>,
    /// Subscriber side: incoming RTP by the track's stream id (publisher).
    pub received: HashMap<String, Vec<(RtpCodecKind, rtc::rtp::Packet)>>,
    pub track_kinds: HashMap<String, (String, RtpCodecKind)>,
    /// Subscriber side: the sender reports that came with the media.
    pub sender_reports: Vec<SenderReport>,
    /// Subscriber side: the receiver of each publisher's video.
    pub video_receivers: HashMap<String, RTCRtpReceiverId>,
    /// Publisher side: keyframe requests from the server, in all and by SSRC.
    pub plis: usize,
    pub plis_by_ssrc: HashMap<u32, usize>,
}

pub fn client_pc(now: Instant, addr: SocketAddr) -> RTCPeerConnection {
    sfu::engine::client::new_client_peer(now, addr).unwrap()
}

/// Says whether the network loses a datagram the server sends to an address.
pub type LossRule = Box<dyn FnMut(SocketAddr, &[u8]) -> bool>;

/// The meeting: one router and the browsers around it.
pub struct Net {
    pub now: Instant,
    pub router: Router,
    pub browsers: Vec<Browser>,
    /// Loses datagrams on their way from the server to a browser (called
    /// with the browser's address) and from a browser to the server
    /// (called with the browser's address they came from).
    pub loss: Option<LossRule>,
    pub uplink_loss: Option<LossRule>,
    /// Roles other than participant, by browser id, for their joins.
    pub roles: HashMap<String, Role>,
    /// Whom a joining browser takes the place of (`Command::Join`).
    pub replaces: HashMap<String, String>,
    /// Rate-limited links from the server, by the address they lead to.
    pub downlinks: HashMap<SocketAddr, Downlink>,
}

/// A link from the server that carries `rate` bits per second: a datagram
/// waits for those before it to go out, and one that finds the queue full
/// (`limit` bytes, a router's buffer) is dropped.
pub struct Downlink {
    pub rate: f64,
    pub limit: usize,
    queue: VecDeque<(Instant, BytesMut)>,
    queued: usize,
    busy_until: Instant,
    pub dropped: usize,
}

impl Downlink {
    /// A link of `rate` bits per second with 200 ms of buffer.
    pub fn new(now: Instant, rate: f64) -> Self {
        Self {
            rate,
            limit: Self::buffer(rate),
            queue: VecDeque::new(),
            queued: 0,
            busy_until: now,
            dropped: 0,
        }
    }

    /// Bytes of buffer: 200 ms at `rate`, as a home router has.
    fn buffer(rate: f64) -> usize {
        ((rate * 0.2 / 8.0) as usize).max(10_000)
    }

    fn send(&mut self, now: Instant, data: BytesMut) {
        // UDP and IPv4 headers ride along.
        let bytes = data.len() + 28;
        if self.queued + bytes > self.limit {
            self.dropped += 1;
            return;
        }
        let start = self.busy_until.max(now);
        self.busy_until = start + Duration::from_secs_f64(bytes as f64 * 8.0 / self.rate);
        self.queued += bytes;
        self.queue.push_back((self.busy_until, data));
    }

    fn due(&mut self, now: Instant) -> Option<BytesMut> {
        if self.queue.front().is_some_and(|(at, _)| *at <= now) {
            let (_, data) = self.queue.pop_front()?;
            self.queued -= data.len() + 28;
            return Some(data);
        }
        None
    }
}

impl Net {
    pub fn new(peer_timeout: Duration) -> Self {
        Self {
            now: Instant::now(),
            router: Router::new(RouterConfig {
                candidates: vec![server_addr()],
                tcp_candidates: Vec::new(),
                peer_timeout,
                keyframe_interval: Duration::from_millis(300),
                bandwidth_estimation: true,
                dynacast: true,
                seed: 7,
                srtp_profiles: sfu::shell::config::Config::default().srtp_profiles,
                max_participants: 4,
                idle_seat: Duration::from_secs(30),
                wallclock: rtc::shared::time::SystemInstant::now(Instant::now()),
            }),
            browsers: Vec::new(),
            loss: None,
            uplink_loss: None,
            roles: HashMap::new(),
            replaces: HashMap::new(),
            downlinks: HashMap::new(),
        }
    }

    pub fn browser_ref(&self, id: &str) -> &Browser {
        self.browsers.iter().find(|b| b.id == id).unwrap()
    }

    pub fn browser(&mut self, id: &str) -> &mut Browser {
        self.browsers.iter_mut().find(|b| b.id == id).unwrap()
    }

    /// A browser joins `room`, and publishes audio and video if `publish`.
    pub fn join(&mut self, id: &str, room: &str, publish: bool) {
        let tracks = if publish { AUDIO_VIDEO } else { &[] };
        self.join_publishing(id, room, tracks);
    }

    /// A browser joins `room` and publishes `tracks`.
    pub fn join_publishing(&mut self, id: &str, room: &str, tracks: &[TrackSpec]) {
        self.begin_join(id, room, tracks);
        self.settle();
    }

    /// Like [`Net::join_publishing`], but returns before anything the
    /// server sent is delivered, so a test can act in between.
    pub fn begin_join(&mut self, id: &str, room: &str, tracks: &[TrackSpec]) {
        let sub_addr = self.next_addr(1);
        let subscriber = client_pc(self.now, sub_addr);
        self.begin_join_with(id, room, tracks, subscriber);
    }

    /// A browser's address; each connection has its own.
    pub fn next_addr(&self, which: u16) -> SocketAddr {
        let n = self.browsers.len() as u16;
        SocketAddr::from(([10, 0, 0, 2], 5000 + 2 * n + which))
    }

    /// Like [`Net::begin_join`], with the given subscriber connection.
    pub fn begin_join_with(
        &mut self,
        id: &str,
        room: &str,
        tracks: &[TrackSpec],
        subscriber: RTCPeerConnection,
    ) {
        let (pub_addr, sub_addr) = (self.next_addr(0), self.next_addr(1));
        self.browsers.push(Browser {
            id: id.to_owned(),
            pub_addr,
            sub_addr,
            publisher: client_pc(self.now, pub_addr),
            subscriber,
            senders: Vec::new(),
            kinds: Vec::new(),
            unplugged: false,
            ignore_offers: 0,
            inbox: Vec::new(),
            received: HashMap::new(),
            track_kinds: HashMap::new(),
            video_receivers: HashMap::new(),
            sender_reports: Vec::new(),
            plis: 0,
            plis_by_ssrc: HashMap::new(),
        });
        self.command(
            id,
            Command::Join {
                room: room.to_owned(),
                name: id.to_uppercase(),
                role: self.roles.get(id).copied().unwrap_or_default(),
                guest: false,
                replaces: self.replaces.get(id).cloned(),
            },
        );
        if !tracks.is_empty() {
            self.publish(id, tracks);
        }
    }

    /// `id` adds `tracks` to what it publishes and offers everything anew.
    pub fn publish(&mut self, id: &str, tracks: &[TrackSpec]) {
        let index = self.browsers.iter().position(|b| b.id == id).unwrap() as u32;
        let b = self.browser(id);
        let mut ssrc = 1000 * (index + 1) + b.senders.len() as u32;
        for &(kind, rids) in tracks {
            let (mime, clock, ch) = match kind {
                RtpCodecKind::Audio => (MIME_TYPE_OPUS, 48000, 2),
                _ => (MIME_TYPE_VP8, 90000, 0),
            };
            let encodings: Vec<(&str, u32)> = rids
                .iter()
                .map(|&rid| {
                    ssrc += 1;
                    (rid, ssrc)
                })
                .collect();
            let sender = b
                .publisher
                .add_track(sfu::engine::client::local_track(
                    "local", kind, mime, clock, ch, &encodings,
                ))
                .unwrap();
            for (_, ssrc) in encodings {
                b.senders.push((kind, sender, ssrc));
            }
            b.kinds.push(kind);
        }
        self.offer_again(id);
    }

    /// `id` offers everything it publishes anew (after `restart_ice`, with
    /// new ICE credentials).
    pub fn offer_again(&mut self, id: &str) {
        let now = self.now;
        let b = self.browser(id);
        let offer = b.publisher.create_offer(None).unwrap();
        b.publisher.set_local_description(now, offer).unwrap();
        let tids: Vec<_> = b.publisher.get_transceivers().collect();
        let mut announce = Vec::new();
        for (tid, &kind) in tids.into_iter().zip(&b.kinds) {
            let mid = b
                .publisher
                .rtp_transceiver(tid)
                .unwrap()
                .mid()
                .clone()
                .unwrap();
            let source = match kind {
                RtpCodecKind::Audio => Source::Microphone,
                _ => Source::Camera,
            };
            announce.push(TrackAnnouncement {
                mid,
                source,
                muted: false,
            });
        }
        let sdp = b.publisher.local_description().unwrap().sdp;
        self.command(
            id,
            Command::Publish {
                sdp,
                tracks: announce,
            },
        );
    }

    pub fn command(&mut self, id: &str, command: Command) {
        self.router.handle_input(
            self.now,
            Input::Command {
                participant_id: id.to_owned(),
                command,
            },
        );
    }

    /// Delivers everything the router has to say, and the browsers' replies,
    /// until nothing is in flight.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(out) = self.router.poll_output() {
                moved = true;
                self.deliver(out);
            }
            for i in 0..self.browsers.len() {
                let b = &mut self.browsers[i];
                let mut datagrams = Vec::new();
                for (pc, from) in [
                    (&mut b.publisher, b.pub_addr),
                    (&mut b.subscriber, b.sub_addr),
                ] {
                    while let Some(w) = pc.poll_write() {
                        datagrams.push((from, w.message));
                    }
                }
                let unplugged = b.unplugged;
                self.browser_events(i);
                for (from, data) in datagrams {
                    moved = true;
                    let lost = self
                        .uplink_loss
                        .as_mut()
                        .is_some_and(|lose| lose(from, &data));
                    if !unplugged && !lost {
                        self.router.handle_input(
                            self.now,
                            Input::Datagram {
                                from,
                                local: IpAddr::from([10, 0, 0, 1]),
                                data: &data,
                                transport: Transport::Udp,
                            },
                        );
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never settled");
    }

    /// `id`'s subscriber connection is reached over a link of `rate` bits
    /// per second from now on (`None`: without limit).
    pub fn limit_downlink(&mut self, id: &str, rate: Option<f64>) {
        let now = self.now;
        let to = self.browser(id).sub_addr;
        match rate {
            Some(rate) => match self.downlinks.get_mut(&to) {
                // The queue stays: what is in it still has to go out.
                Some(link) => {
                    link.rate = rate;
                    link.limit = Downlink::buffer(rate);
                }
                None => {
                    self.downlinks.insert(to, Downlink::new(now, rate));
                }
            },
            None => {
                if let Some(mut link) = self.downlinks.remove(&to) {
                    while let Some((_, data)) = link.queue.pop_front() {
                        self.arrive(to, data);
                    }
                }
            }
        }
    }

    /// Hands over what the rate-limited links have carried by now.
    fn carry(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        for (&to, link) in &mut self.downlinks {
            while let Some(data) = link.due(now) {
                due.push((to, data));
            }
        }
        for (to, data) in due {
            self.arrive(to, data);
        }
    }

    /// A datagram from the server reaches the browser at `to`.
    fn arrive(&mut self, to: SocketAddr, data: BytesMut) {
        let now = self.now;
        let Some(b) = self
            .browsers
            .iter_mut()
            .find(|b| b.pub_addr == to || b.sub_addr == to)
        else {
            return;
        };
        if b.unplugged {
            return;
        }
        let pc = if b.pub_addr == to {
            &mut b.publisher
        } else {
            &mut b.subscriber
        };
        let _ = pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: to,
                peer_addr: server_addr(),
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        });
    }

    pub fn deliver(&mut self, out: Output) {
        match out {
            Output::Transmit { to, data, .. } => {
                if self.loss.as_mut().is_some_and(|lose| lose(to, &data)) {
                    return;
                }
                let now = self.now;
                if let Some(link) = self.downlinks.get_mut(&to) {
                    link.send(now, data);
                    return;
                }
                self.arrive(to, data);
            }
            Output::Event {
                participant_id,
                event,
            } => {
                let now = self.now;
                let b = self.browser(&participant_id);
                b.inbox.push(event.clone());
                match event {
                    Event::PublisherAnswer { sdp } => {
                        b.publisher
                            .set_remote_description(
                                now,
                                RTCSessionDescription::answer(sdp).unwrap(),
                            )
                            .unwrap();
                    }
                    Event::SubscriberOffer { .. } if b.ignore_offers > 0 => b.ignore_offers -= 1,
                    Event::SubscriberOffer { sdp } => {
                        b.subscriber
                            .set_remote_description(now, RTCSessionDescription::offer(sdp).unwrap())
                            .unwrap();
                        let answer = b.subscriber.create_answer(None).unwrap();
                        b.subscriber.set_local_description(now, answer).unwrap();
                        let sdp = b.subscriber.local_description().unwrap().sdp;
                        self.command(&participant_id, Command::SubscriberAnswer { sdp });
                    }
                    _ => {}
                }
            }
        }
    }

    pub fn browser_events(&mut self, i: usize) {
        let b = &mut self.browsers[i];
        while let Some(e) = b.subscriber.poll_event() {
            if let RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) = e {
                let kind = b
                    .subscriber
                    .rtp_receiver(init.receiver_id)
                    .map(|r| r.track().kind())
                    .unwrap();
                let stream = init.stream_ids.first().cloned().unwrap_or_default();
                if kind == RtpCodecKind::Video {
                    b.video_receivers.insert(stream.clone(), init.receiver_id);
                }
                b.track_kinds.insert(init.track_id, (stream, kind));
            }
        }
        while b.publisher.poll_event().is_some() {}
        while let Some(m) = b.subscriber.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = &m.message {
                let srs = packets.iter().filter_map(|p| p.as_any().downcast_ref());
                b.sender_reports.extend(srs.cloned());
            }
            if let RTCMessage::RtpPacket(track_id, p) = m.message {
                let Some((stream, kind)) = b.track_kinds.get(&track_id).cloned() else {
                    panic!(
                        "{} got pt {} on {track_id}, never opened",
                        b.id, p.header.payload_type
                    );
                };
                // A copy of a packet it has (a bandwidth probe's, or a
                // retransmission that crossed the original) is dropped, as a
                // browser's jitter buffer drops it.
                let got = b.received.entry(stream).or_default();
                let seq = p.header.sequence_number;
                let dup = got
                    .iter()
                    .rev()
                    .take(512)
                    .any(|(k, q)| *k == kind && q.header.sequence_number == seq);
                if !dup {
                    got.push((kind, p));
                }
            }
        }
        while let Some(m) = b.publisher.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = m.message {
                for p in &packets {
                    if let Some(pli) = p.as_any().downcast_ref::<PictureLossIndication>() {
                        b.plis += 1;
                        *b.plis_by_ssrc.entry(pli.media_ssrc).or_default() += 1;
                    }
                }
            }
        }
    }

    /// Advances the clock by `d` in small steps, firing every timer on time.
    pub fn run_for(&mut self, d: Duration, mut each_step: impl FnMut(&mut Net)) {
        let end = self.now + d;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            if self.router.poll_timeout().is_some_and(|t| t <= now) {
                self.router.handle_input(now, Input::Timeout);
            }
            for b in &mut self.browsers {
                for pc in [&mut b.publisher, &mut b.subscriber] {
                    if pc.poll_timeout().is_some_and(|t| t <= now) {
                        let _ = pc.handle_timeout(now);
                    }
                }
            }
            self.carry();
            each_step(self);
            self.settle();
        }
    }
}

/// Per published track: its kind and its encodings' rids (one empty rid
/// for a track without simulcast).
pub type TrackSpec = (RtpCodecKind, &'static [&'static str]);
pub const AUDIO_VIDEO: &[TrackSpec] = &[(RtpCodecKind::Audio, &[""]), (RtpCodecKind::Video, &[""])];
pub const SIMULCAST_VIDEO: &[TrackSpec] = &[(RtpCodecKind::Video, &["q", "h", "f"])];

/// A publisher's media at 50 audio packets and 25 video frames a second; a
/// keyframe at the start and whenever the server asked for one.
pub struct Media {
    pub step: u64,
    pub seq: HashMap<String, u16>,
    pub plis_seen: HashMap<String, usize>,
}

pub fn vp8_payload(keyframe: bool, frame: u64) -> Bytes {
    let mut p = vec![0x10, if keyframe { 0x00 } else { 0x01 }];
    p.extend_from_slice(&frame.to_be_bytes());
    Bytes::from(p)
}

impl Media {
    pub fn new() -> Self {
        Self {
            step: 0,
            seq: HashMap::new(),
            plis_seen: HashMap::new(),
        }
    }

    pub fn send(&mut self, net: &mut Net, publishers: &[&str]) {
        self.step += 1;
        let ms = self.step * STEP.as_millis() as u64;
        let now = net.now;
        for &id in publishers {
            let b = net.browser(id);
            let pli_seen = self.plis_seen.entry(id.to_owned()).or_default();
            let keyframe_wanted = b.plis > *pli_seen || ms <= 40;
            for (kind, sender, ssrc) in b.senders.clone() {
                let (due, clock) = match kind {
                    RtpCodecKind::Audio => (ms.is_multiple_of(20), 48),
                    _ => (ms.is_multiple_of(40), 90),
                };
                if !due {
                    continue;
                }
                let payload = match kind {
                    RtpCodecKind::Audio => Bytes::from_static(&[0xfc, 0xff, 0xfe]),
                    _ => {
                        if keyframe_wanted {
                            *pli_seen = b.plis;
                        }
                        vp8_payload(keyframe_wanted, ms / 40)
                    }
                };
                let seq = self.seq.entry(format!("{id}{ssrc}")).or_insert(0);
                *seq = seq.wrapping_add(1);
                write_rtp(b, now, sender, ssrc, *seq, (ms * clock) as u32, payload);
            }
        }
    }

    /// `id` sends a keyframe of `packets` packets at once, each naming its
    /// index (`[0x10 or 0x00, 0x00, BURST, index]`), as a large keyframe
    /// leaves a browser.
    pub fn keyframe_burst(&mut self, net: &mut Net, id: &str, packets: u8) {
        let now = net.now;
        let ts = (self.step * STEP.as_millis() as u64 * 90) as u32 + 45;
        let b = net.browser(id);
        let (_, sender, ssrc) = *b
            .senders
            .iter()
            .find(|(kind, _, _)| *kind == RtpCodecKind::Video)
            .unwrap();
        for i in 0..packets {
            let seq = self.seq.entry(format!("{id}{ssrc}")).or_insert(0);
            *seq = seq.wrapping_add(1);
            let start = if i == 0 { 0x10 } else { 0x00 };
            let payload = Bytes::from(vec![start, 0x00, BURST, i]);
            write_rtp(b, now, sender, ssrc, *seq, ts, payload);
        }
    }
}

/// Marks the packets of a keyframe burst (their payload's third byte).
pub const BURST: u8 = 0xb5;

/// Sends one packet on a browser's publisher connection.
pub fn write_rtp(
    b: &mut Browser,
    now: Instant,
    sender: RTCRtpSenderId,
    ssrc: u32,
    sequence_number: u16,
    timestamp: u32,
    payload: Bytes,
) {
    let mut s = b.publisher.rtp_sender(sender).unwrap();
    let pt = s.get_parameters().rtp_parameters.codecs[0].payload_type;
    let packet = rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            payload_type: pt,
            sequence_number,
            timestamp,
            ssrc,
            marker: true,
            ..Default::default()
        },
        payload,
    };
    s.write_rtp(now, packet).unwrap();
}

pub fn video_from(b: &Browser, publisher: &str) -> Vec<rtc::rtp::Packet> {
    b.received
        .get(publisher)
        .map(|v| {
            v.iter()
                .filter(|(k, _)| *k == RtpCodecKind::Video)
                .map(|(_, p)| p.clone())
                .collect()
        })
        .unwrap_or_default()
}

pub fn audio_count(b: &Browser, publisher: &str) -> usize {
    b.received.get(publisher).map_or(0, |v| {
        v.iter().filter(|(k, _)| *k == RtpCodecKind::Audio).count()
    })
}

/// A VP8 packet as a simulcast publisher sends it, as far as the tests
/// need: the payload descriptor (the start-of-partition
/// bit where `start`, the 15-bit picture id, and the temporal layer and
/// layer-sync bit where `temporal` gives them), then the keyframe bit and
/// the layer's index, so that the tests can tell layers apart.
pub fn vp8_start(
    start: bool,
    keyframe: bool,
    picture_id: u16,
    temporal: Option<(u8, bool)>,
    layer: u8,
) -> Vec<u8> {
    let [hi, lo] = picture_id.to_be_bytes();
    let mut out = vec![if start { 0x90 } else { 0x80 }, 0x80, 0x80 | hi, lo];
    if let Some((tid, sync)) = temporal {
        out[1] |= 0x20;
        out.push(tid << 6 | if sync { 0x20 } else { 0 });
    }
    out.extend_from_slice(&[if keyframe { 0x00 } else { 0x01 }, layer]);
    out
}

/// The temporal layer of frame `frame` as L1T3 numbers them (0 2 1 2), and
/// whether it is a layer sync; a keyframe is in the base layer.
pub fn l1t3(frame: u32, keyframe: bool) -> (u8, bool) {
    if keyframe {
        return (0, false);
    }
    let tid = [0, 2, 1, 2][(frame % 4) as usize];
    (tid, matches!(frame % 4, 1 | 2))
}

/// Sends one frame (one packet) on each simulcast layer in `layers` of
/// `id`'s video track, each layer with its own sequence numbers, timestamps
/// and picture ids, and a keyframe where the server asked for one.
#[derive(Default)]
pub struct SimulcastMedia {
    pub steps: u32,
    pub frame: u32,
    pub plis_seen: HashMap<u32, usize>,
    /// Layers paused by the browser: only padding (bandwidth probes) goes
    /// out on them.
    pub paused: Vec<usize>,
    /// Bytes per frame of each layer, in packets of at most 1100 bytes;
    /// `None`: one small packet per frame.
    pub sizes: Option<[usize; 3]>,
    /// The next sequence number of each layer.
    pub seq: [u16; 3],
    /// Each layer in three temporal layers (L1T3), as browsers send VP8.
    pub temporal: bool,
    /// Bytes of each layer's keyframes, where they are larger than other
    /// frames (as a real encoder's are), and a keyframe every this many
    /// frames besides those asked for.
    pub keyframe_sizes: Option<[usize; 3]>,
    pub keyframe_every: Option<u32>,
}

impl SimulcastMedia {
    /// Called every step; sends 25 frames a second.
    pub fn send(&mut self, net: &mut Net, id: &str, layers: &[usize]) {
        self.steps += 1;
        if !self.steps.is_multiple_of(8) {
            return;
        }
        self.frame += 1;
        let now = net.now;
        let frame = self.frame;
        let b = net.browser(id);
        for &i in layers {
            let (_, sender, ssrc) = b.senders[i];
            let plis = b.plis_by_ssrc.get(&ssrc).copied().unwrap_or(0);
            let seen = self.plis_seen.entry(ssrc).or_default();
            let keyframe = frame == 1
                || plis > *seen
                || self.keyframe_every.is_some_and(|n| frame.is_multiple_of(n));
            *seen = plis;
            let mut s = b.publisher.rtp_sender(sender).unwrap();
            let params = s.get_parameters();
            let pt = params.rtp_parameters.codecs[0].payload_type;
            let (mid_id, rid_id) = sfu::engine::client::simulcast_extension_ids(
                &params.rtp_parameters.header_extensions,
            )
            .expect("mid and rid extensions negotiated");
            let mut header = rtc::rtp::header::Header {
                version: 2,
                payload_type: pt,
                timestamp: frame * 3600 + 1_000_000 * i as u32,
                ssrc,
                marker: true,
                ..Default::default()
            };
            // Like browsers, only until the receiver surely bound the SSRC.
            if frame <= 10 {
                let rid = ["q", "h", "f"][i];
                header.set_extension(mid_id, Bytes::from("0")).unwrap();
                header.set_extension(rid_id, Bytes::from(rid)).unwrap();
            }
            let picture_id = ((frame + 5000 * i as u32) & 0x7fff) as u16;
            let bytes = match (keyframe, self.keyframe_sizes) {
                (true, Some(sizes)) => sizes[i],
                _ => self.sizes.map_or(0, |sizes| sizes[i]),
            };
            let packets = bytes.div_ceil(1100).max(1);
            for k in 0..packets {
                // Far apart per layer, as independent encoders' would be.
                header.sequence_number = (20_000 * i as u16)
                    .wrapping_add(1)
                    .wrapping_add(self.seq[i]);
                self.seq[i] = self.seq[i].wrapping_add(1);
                header.marker = k + 1 == packets;
                let payload = if self.paused.contains(&i) {
                    header.padding = true;
                    Bytes::new()
                } else {
                    // Only the first packet starts the partition.
                    let temporal = self.temporal.then(|| l1t3(frame, keyframe));
                    let mut p =
                        vp8_start(k == 0, keyframe && k == 0, picture_id, temporal, i as u8);
                    p.resize((bytes / packets).max(p.len()), 0);
                    Bytes::from(p)
                };
                s.write_rtp(
                    now,
                    rtc::rtp::Packet {
                        header: header.clone(),
                        payload,
                    },
                )
                .unwrap();
            }
        }
    }
}

/// Layer, sequence number, timestamp and picture id of what `b` received
/// from `publisher`'s video.
pub fn received_layers(b: &Browser, publisher: &str) -> Vec<(u8, u16, u32, u16)> {
    video_from(b, publisher)
        .iter()
        .map(|p| {
            assert!(
                p.payload.len() >= 6,
                "a padding-only packet reached the viewer"
            );
            let pid = u16::from_be_bytes([p.payload[2] & 0x7f, p.payload[3]]);
            // The layer's index follows the keyframe bit, after the TID
            // where there is one.
            let tid = usize::from(p.payload[1] & 0x20 != 0);
            (
                p.payload[5 + tid],
                p.header.sequence_number,
                p.header.timestamp,
                pid,
            )
        })
        .collect()
}

/// The id of the first track `b` was told about.
pub fn published_track(b: &Browser) -> String {
    b.inbox
        .iter()
        .find_map(|m| match m {
            Event::TrackPublished { track, .. } => Some(track.id.clone()),
            _ => None,
        })
        .expect("track announced")
}
