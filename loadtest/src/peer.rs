//! One simulated participant: joins through the SFU's signalling like the
//! web client does, publishes real Opus and synthetic VP8 (in simulcast
//! layers, as browsers do) over a webrtc-rs publisher connection, and
//! measures what its subscriber connection receives. Each participant is one task with its own two UDP sockets on
//! 127.0.0.1, bounded by its plan's end time.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use sfu::signalling::v1::{Quality, Source, TrackAnnouncement};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::media::{self, AUDIO_CLOCK, AUDIO_FRAME_MS, VIDEO_CLOCK};
use crate::progress::Progress;
use crate::shaper::Shaper;
use crate::signal::{Event, Signaller, Target};
use crate::stats::{Measurements, StreamKey};

#[derive(Debug, Clone, Copy)]
pub struct VideoPlan {
    /// Bitrate of the top layer (the only one without simulcast).
    pub bitrate_bps: u32,
    pub fps: u32,
    pub keyframe_interval: Duration,
    /// Send three layers, as browsers' simulcast does.
    pub simulcast: bool,
}

impl VideoPlan {
    /// Per encoding: rid, layer (0 lowest) and bitrate. Top first, as
    /// Janus expects by default; our SFU ranks by rid whatever the order.
    /// The lower layers get a third and a tenth of the top's bitrate, close
    /// to what browsers send at half and a quarter of the resolution.
    fn layers(&self) -> Vec<(&'static str, u8, u32)> {
        let top = self.bitrate_bps;
        if self.simulcast {
            vec![("f", 2, top), ("h", 1, top / 3), ("q", 0, top / 10)]
        } else {
            vec![("", 2, top)]
        }
    }
}

#[derive(Clone)]
pub struct PeerPlan {
    pub target: Target,
    /// Our sockets' address.
    pub client_ip: IpAddr,
    pub room: String,
    pub name: String,
    pub audio: bool,
    pub video: Option<VideoPlan>,
    /// The clock publishers stamp RTP timestamps and send times from.
    pub t0: Instant,
    /// The simulcast layer this participant asks for of the video it gets.
    pub quality: Quality,
    /// Ask for the lowest layer first and for `quality` a second before
    /// measuring starts, so that every down-track has moved between layers.
    pub move_layers: bool,
    /// Packets before this are not measured (warm-up).
    pub measure_from: Instant,
    pub until: Instant,
    /// The rate of this participant's downlink (`shaper.rs`); `None`:
    /// as fast as the machine goes.
    pub downlink: Option<f64>,
}

pub struct PeerReport {
    pub measurements: Measurements,
    /// Datagrams its downlink dropped (see `PeerPlan::downlink`).
    pub dropped: u64,
    /// From starting to join until the first media packet arrived.
    pub join: Option<Duration>,
    pub error: Option<String>,
}

fn engine<T>(r: Result<T, impl std::fmt::Display>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("media engine: {e}"))
}

/// One outgoing stream: a track, or one simulcast layer of it.
struct Sender {
    id: RTCRtpSenderId,
    ssrc: u32,
    kind: RtpCodecKind,
    /// Empty without simulcast.
    rid: &'static str,
    layer: u8,
    bitrate_bps: u32,
    /// The transceiver's mid, which simulcast packets carry.
    mid: Bytes,
    /// Learnt at the first send, after negotiation: payload type, and the
    /// ids of the mid and rid header extensions for simulcast layers.
    pt: Option<u8>,
    ext: Option<(u8, u8)>,
    seq: u16,
    picture_id: u16,
    keyframe_wanted: bool,
    next_keyframe: Instant,
}

struct Conn {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    addr: SocketAddr,
    connected: bool,
}

impl Conn {
    async fn new(now: Instant, ip: IpAddr) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = socket.local_addr()?;
        let pc = engine(sfu::engine::client::new_client_peer(now, addr))?;
        Ok(Self {
            pc,
            socket,
            addr,
            connected: false,
        })
    }

    fn read(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let r = self.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
        if let Err(e) = r {
            tracing::debug!(error = %e, %from, "datagram refused");
        }
    }

    async fn flush(&mut self) {
        while let Some(w) = self.pc.poll_write() {
            let _ = self.socket.send_to(&w.message, w.transport.peer_addr).await;
        }
    }

    fn deadline(&mut self) -> Option<Instant> {
        self.pc.poll_timeout()
    }
}

pub async fn run(plan: PeerPlan, audio: Arc<Vec<Bytes>>, progress: Arc<Progress>) -> PeerReport {
    let mut report = PeerReport {
        measurements: Measurements::new(plan.t0),
        dropped: 0,
        join: None,
        error: None,
    };
    if let Err(e) = drive(&plan, &audio, progress, &mut report).await {
        report.error = Some(e.to_string());
    }
    report
}

async fn drive(
    plan: &PeerPlan,
    audio: &[Bytes],
    progress: Arc<Progress>,
    report: &mut PeerReport,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (tx, mut events) = mpsc::unbounded_channel();
    let mut signaller = Signaller::connect(
        &plan.target,
        &plan.room,
        &plan.name,
        plan.quality,
        plan.move_layers,
        tx,
        progress.clone(),
    )
    .await?;
    let now = Instant::now();
    let mut publisher = Conn::new(now, plan.client_ip).await?;
    let mut subscriber = Conn::new(now, plan.client_ip).await?;
    let mut downlink = plan.downlink.map(|rate| Shaper::new(now, rate));
    let mut senders: Vec<Sender> = Vec::new();
    let mut kinds = Vec::new();
    let stream = plan.name.replace(' ', "-");
    for (wanted, kind, mime, clock, channels) in [
        (
            plan.audio,
            RtpCodecKind::Audio,
            MIME_TYPE_OPUS,
            AUDIO_CLOCK,
            2,
        ),
        (
            plan.video.is_some(),
            RtpCodecKind::Video,
            MIME_TYPE_VP8,
            VIDEO_CLOCK,
            0,
        ),
    ] {
        if !wanted {
            continue;
        }
        let layers = match (kind, plan.video) {
            (RtpCodecKind::Video, Some(v)) => v.layers(),
            _ => vec![("", 0, 0)],
        };
        let encodings: Vec<(&str, u32)> = layers
            .iter()
            .map(|&(rid, _, _)| (rid, rand::random()))
            .collect();
        let track =
            sfu::engine::client::local_track(&stream, kind, mime, clock, channels, &encodings);
        let id = engine(publisher.pc.add_track(track))?;
        kinds.push(kind);
        for (&(rid, layer, bitrate_bps), &(_, ssrc)) in layers.iter().zip(&encodings) {
            senders.push(Sender {
                id,
                ssrc,
                kind,
                rid,
                layer,
                bitrate_bps,
                mid: Bytes::new(),
                pt: None,
                ext: None,
                seq: rand::random(),
                picture_id: rand::random::<u16>() & 0x7fff,
                keyframe_wanted: true,
                next_keyframe: now,
            });
        }
    }
    if !senders.is_empty() {
        let offer = engine(publisher.pc.create_offer(None))?;
        engine(publisher.pc.set_local_description(now, offer))?;
        let transceivers: Vec<_> = publisher.pc.get_transceivers().collect();
        let mut tracks = Vec::new();
        for (t, &kind) in transceivers.into_iter().zip(&kinds) {
            let mid = publisher
                .pc
                .rtp_transceiver(t)
                .and_then(|t| t.mid().clone())
                .unwrap_or_default();
            for s in senders.iter_mut().filter(|s| s.kind == kind) {
                s.mid = Bytes::from(mid.clone());
            }
            let source = match kind {
                RtpCodecKind::Audio => Source::Microphone,
                _ => Source::Camera,
            };
            tracks.push(TrackAnnouncement {
                mid,
                source,
                muted: false,
            });
        }
        let sdp = publisher
            .pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| anyhow::anyhow!("no local description"))?;
        signaller.publish(sdp, tracks).await?;
    }
    signaller.subscribe(!senders.is_empty());

    let mut incoming: std::collections::HashMap<String, StreamKey> = Default::default();
    let mut next_audio = Instant::now();
    let mut next_video = Instant::now();
    let mut audio_index = 0usize;
    let mut pub_buf = vec![0u8; 2048];
    let mut sub_buf = vec![0u8; 2048];
    // Video tracks on the lowest layer, to move to the asked-for one then.
    let mut to_move: Vec<String> = Vec::new();
    let move_at = plan.measure_from - Duration::from_secs(1);

    while Instant::now() < plan.until {
        let mut deadline = plan.until;
        if !to_move.is_empty() {
            deadline = deadline.min(move_at);
        }
        let due = downlink.as_ref().and_then(Shaper::next_due);
        for d in [publisher.deadline(), subscriber.deadline(), due]
            .into_iter()
            .flatten()
        {
            deadline = deadline.min(d);
        }
        if publisher.connected {
            if plan.audio {
                deadline = deadline.min(next_audio);
            }
            if plan.video.is_some() {
                deadline = deadline.min(next_video);
            }
        }
        tokio::select! {
            event = events.recv() => {
                let now = Instant::now();
                match event {
                    Some(Event::PublisherAnswer(sdp)) => {
                        let answer = engine(RTCSessionDescription::answer(sdp))?;
                        engine(publisher.pc.set_remote_description(now, answer))?;
                    }
                    Some(Event::SubscriberOffer(sdp)) => {
                        let offer = engine(RTCSessionDescription::offer(sdp))?;
                        engine(subscriber.pc.set_remote_description(now, offer))?;
                        let answer = engine(subscriber.pc.create_answer(None))?;
                        engine(subscriber.pc.set_local_description(now, answer))?;
                        let sdp = subscriber.pc.local_description().map(|d| d.sdp).unwrap_or_default();
                        signaller.answer(sdp).await?;
                    }
                    Some(Event::VideoTrack(id)) if plan.move_layers => {
                        signaller.track_settings(id.clone(), Quality::Low).await?;
                        to_move.push(id);
                    }
                    Some(Event::VideoTrack(id)) => signaller.track_settings(id, plan.quality).await?,
                    Some(Event::Failed(why)) => anyhow::bail!("signalling: {why}"),
                    None => anyhow::bail!("signalling ended"),
                }
            }
            r = publisher.socket.recv_from(&mut pub_buf) => {
                let (n, from) = r?;
                publisher.read(Instant::now(), from, &pub_buf[..n]);
            }
            r = subscriber.socket.recv_from(&mut sub_buf) => {
                let (n, from) = r?;
                match &mut downlink {
                    Some(link) => link.push(Instant::now(), from, &sub_buf[..n]),
                    None => subscriber.read(Instant::now(), from, &sub_buf[..n]),
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
        let now = Instant::now();
        if let Some(link) = &mut downlink {
            while let Some((from, data)) = link.pop_due(now) {
                subscriber.read(now, from, &data);
            }
            report.dropped = link.dropped;
        }
        if now >= move_at {
            for id in to_move.drain(..) {
                signaller.track_settings(id, plan.quality).await?;
            }
        }
        for c in [&mut publisher, &mut subscriber] {
            if c.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = c.pc.handle_timeout(now);
            }
            while let Some(e) = c.pc.poll_event() {
                match e {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                        RTCPeerConnectionState::Connected,
                    ) => c.connected = true,
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let kind =
                            c.pc.rtp_receiver(init.receiver_id)
                                .map(|r| r.track().kind());
                        let video = kind == Some(RtpCodecKind::Video);
                        let from = init.stream_ids.first().cloned().unwrap_or_default();
                        incoming.insert(
                            init.track_id.clone(),
                            StreamKey {
                                key: format!("{from}/{}", init.track_id),
                                clock: if video { VIDEO_CLOCK } else { AUDIO_CLOCK },
                                video,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
        while let Some(m) = subscriber.pc.poll_read() {
            if let RTCMessage::RtpPacket(track_id, p) = m.message {
                if report.join.is_none() {
                    report.join = Some(now.duration_since(started));
                }
                progress.packets.fetch_add(1, Ordering::Relaxed);
                if now < plan.measure_from {
                    continue;
                }
                report.measurements.bytes += p.payload.len() as u64;
                if let Some(stream) = incoming.get(&track_id) {
                    let sent_us = if stream.video {
                        if let Some(layer) = media::vp8_layer(&p.payload) {
                            report.measurements.layer(layer);
                        }
                        media::sent_us(&p.payload)
                    } else {
                        media::opus_sent_us(&p.payload)
                    };
                    report.measurements.packet(
                        now,
                        stream,
                        p.header.sequence_number,
                        p.header.timestamp,
                        sent_us,
                    );
                }
            }
        }
        while let Some(m) = publisher.pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = m.message {
                for p in &packets {
                    let any = p.as_any();
                    let ssrcs: Vec<u32> =
                        if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                            vec![pli.media_ssrc]
                        } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                            fir.fir.iter().map(|e| e.ssrc).collect()
                        } else {
                            continue;
                        };
                    for s in senders.iter_mut().filter(|s| ssrcs.contains(&s.ssrc)) {
                        s.keyframe_wanted = true;
                    }
                }
            }
        }
        if publisher.connected {
            let since_t0 = now.duration_since(plan.t0);
            let sent_us = since_t0.as_micros() as u64;
            if plan.audio && now >= next_audio {
                let ts = (sent_us * u64::from(AUDIO_CLOCK) / 1_000_000) as u32;
                let payload =
                    media::opus_with_send_time(&audio[audio_index % audio.len()], sent_us);
                audio_index += 1;
                for s in senders.iter_mut().filter(|s| s.kind == RtpCodecKind::Audio) {
                    send_rtp(&mut publisher.pc, s, now, ts, true, payload.clone());
                }
                next_audio = catch_up(next_audio, Duration::from_millis(AUDIO_FRAME_MS), now);
            }
            if let Some(v) = plan.video {
                if now >= next_video {
                    let ts = (sent_us * u64::from(VIDEO_CLOCK) / 1_000_000) as u32;
                    for s in senders.iter_mut().filter(|s| s.kind == RtpCodecKind::Video) {
                        let keyframe = s.keyframe_wanted || now >= s.next_keyframe;
                        if keyframe {
                            s.keyframe_wanted = false;
                            s.next_keyframe = now + v.keyframe_interval;
                        }
                        s.picture_id = s.picture_id.wrapping_add(1) & 0x7fff;
                        let packets = media::vp8_frame(
                            keyframe,
                            media::frame_size(s.bitrate_bps, v.fps, keyframe),
                            s.picture_id,
                            sent_us,
                            s.layer,
                        );
                        let last = packets.len() - 1;
                        for (i, payload) in packets.into_iter().enumerate() {
                            send_rtp(&mut publisher.pc, s, now, ts, i == last, payload);
                        }
                    }
                    next_video = catch_up(next_video, Duration::from_secs(1) / v.fps, now);
                }
            }
        }
        publisher.flush().await;
        subscriber.flush().await;
    }
    signaller.leave().await;
    Ok(())
}

/// The next tick after `now`, skipping ticks a slow loop missed rather than
/// sending a burst to make up for them.
fn catch_up(next: Instant, period: Duration, now: Instant) -> Instant {
    let next = next + period;
    if next + period < now {
        now + period
    } else {
        next
    }
}

fn send_rtp(
    pc: &mut RTCPeerConnection,
    s: &mut Sender,
    now: Instant,
    ts: u32,
    marker: bool,
    payload: Bytes,
) {
    let Some(mut sender) = pc.rtp_sender(s.id) else {
        return;
    };
    if s.pt.is_none() {
        let params = sender.get_parameters();
        s.pt = params.rtp_parameters.codecs.first().map(|c| c.payload_type);
        if !s.rid.is_empty() {
            s.ext = sfu::engine::client::simulcast_extension_ids(
                &params.rtp_parameters.header_extensions,
            );
        }
    }
    s.seq = s.seq.wrapping_add(1);
    let mut header = rtc::rtp::header::Header {
        version: 2,
        payload_type: s.pt.unwrap_or(0),
        sequence_number: s.seq,
        timestamp: ts,
        ssrc: s.ssrc,
        marker,
        ..Default::default()
    };
    // Simulcast layers name themselves, as browsers' do: the receiver
    // learns which SSRC is which rid from these.
    if let Some((mid_id, rid_id)) = s.ext {
        let _ = header.set_extension(mid_id, s.mid.clone());
        let _ = header.set_extension(rid_id, Bytes::from_static(s.rid.as_bytes()));
    }
    let _ = sender.write_rtp(now, rtc::rtp::Packet { header, payload });
}
