//! Building the media engine's peer connections the way this SFU needs them:
//! ICE-lite with our own host candidates (UDP, and passive ICE-TCP where
//! configured) and credentials (so datagrams on the shared port can be
//! routed by ufrag), no ICE servers, AES-GCM SRTP first,
//! only the codecs every browser can both send and decode, and RTX for
//! video, so that a resent packet travels on a stream of its own.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::ice::tcp_type::TcpType;
use rtc::interceptor::{ReceiverReportBuilder, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability,
    RtpCodecKind, TYPE_RTCP_FB_TRANSPORT_CC,
};

use super::{feedback, nack, rtx};
use crate::room::api::Target;

pub use rtc::peer_connection::RTCPeerConnection as PeerConnection;

/// An SRTP protection profile (RFC 5764, RFC 7714).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SrtpProfile {
    #[serde(rename = "aead_aes_128_gcm")]
    AeadAes128Gcm,
    #[serde(rename = "aead_aes_256_gcm")]
    AeadAes256Gcm,
    #[serde(rename = "aes128_cm_hmac_sha1_80")]
    Aes128CmHmacSha1_80,
}

/// Errors from the media engine, with what we were doing.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{context}: {source}")]
    Engine {
        context: &'static str,
        #[source]
        source: rtc::shared::error::Error,
    },
}

pub(crate) trait Context<T> {
    fn context(self, context: &'static str) -> Result<T, PeerError>;
}

impl<T> Context<T> for Result<T, rtc::shared::error::Error> {
    fn context(self, context: &'static str) -> Result<T, PeerError> {
        self.map_err(|source| PeerError::Engine { context, source })
    }
}

pub(crate) const SDES_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub(crate) const SDES_RTP_STREAM_ID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// Transport-wide sequence numbers, negotiated with subscribers.
pub const TRANSPORT_CC: &str = rtc::sdp::extmap::TRANSPORT_CC_URI;
/// Each audio packet's level (RFC 6464), negotiated with publishers.
pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str, pt: u8) -> RTCRtpCodecParameters {
    let rtcp_feedback = if mime.starts_with("video/") && mime != MIME_TYPE_RTX {
        // NACK and PLI feedback are added by `register_nack`.
        vec![RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        }]
    } else {
        vec![]
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback,
        },
        payload_type: pt,
    }
}

/// Opus, VP8 and two H.264 profiles: what Chromium, Firefox and Safari all
/// decode; each video codec with its RTX form (RFC 4588).
fn media_engine() -> Result<MediaEngine, PeerError> {
    let mut m = MediaEngine::default();
    let h264 = |profile: &str| {
        format!("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}")
    };
    let regs = [
        (
            codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", 111),
            RtpCodecKind::Audio,
        ),
        (codec(MIME_TYPE_VP8, 90000, 0, "", 96), RtpCodecKind::Video),
        (
            codec(MIME_TYPE_RTX, 90000, 0, "apt=96", 97),
            RtpCodecKind::Video,
        ),
        (
            codec(MIME_TYPE_H264, 90000, 0, &h264("42e01f"), 102),
            RtpCodecKind::Video,
        ),
        (
            codec(MIME_TYPE_RTX, 90000, 0, "apt=102", 103),
            RtpCodecKind::Video,
        ),
        (
            codec(MIME_TYPE_H264, 90000, 0, &h264("42001f"), 104),
            RtpCodecKind::Video,
        ),
        (
            codec(MIME_TYPE_RTX, 90000, 0, "apt=104", 105),
            RtpCodecKind::Video,
        ),
    ];
    for (c, kind) in regs {
        m.register_codec(c, kind).context("registering codec")?;
    }
    // The default interceptors register MID for video only.
    m.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: SDES_MID.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )
    .context("registering sdes:mid for audio")?;
    Ok(m)
}

/// The RTX payload type that repairs `pt` among negotiated `codecs`.
pub fn rtx_payload_type(codecs: &[RTCRtpCodecParameters], pt: u8) -> Option<u8> {
    codecs
        .iter()
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX))
        .find(|c| {
            c.rtp_codec
                .sdp_fmtp_line
                .split(';')
                .filter_map(|p| p.trim().strip_prefix("apt="))
                .any(|apt| apt.trim().parse() == Ok(pt))
        })
        .map(|c| c.payload_type)
}

/// Negotiates generic NACK and PLI for video.
pub(crate) fn register_nack(media_engine: &mut MediaEngine) {
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: "nack".to_owned(),
                parameter: parameter.to_owned(),
            },
            RtpCodecKind::Video,
        );
    }
}

/// The interceptors one side needs, and the feedback it negotiates. Every
/// interceptor is walked by every packet, so each side gets only its own:
/// the publisher side only receives media (RTX turned back into media, our
/// NACK generator, receiver reports, transport-wide CC feedback for the
/// browser's bandwidth estimate, the audio level of each packet); the
/// subscriber side only sends it (its sender reports come from the room
/// core, and its NACKs are answered there from the shared layer buffers,
/// not from a history per
/// connection).
fn interceptors(
    role: Target,
    transport_cc: bool,
    media_engine: &mut MediaEngine,
) -> Result<Registry, PeerError> {
    register_nack(media_engine);
    configure_simulcast_extension_headers(media_engine)
        .context("registering simulcast header extensions")?;
    let registry = match role {
        Target::Publisher => {
            // How loud each packet is, for the room's active speaker.
            media_engine
                .register_header_extension(
                    RTCRtpHeaderExtensionCapability {
                        uri: AUDIO_LEVEL.to_owned(),
                    },
                    RtpCodecKind::Audio,
                    None,
                )
                .context("registering the audio level extension")?;
            configure_twcc_receiver_only(Registry::new(), media_engine)
                .context("registering transport-wide CC")?
                .with(Slot::from(rtx::SLOT), rtx::RtxRepair::default())
                .with(Slot::NackGenerator, nack::NackGenerator::default())
                .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        }
        // No sender reports from the engine: it would pair the timestamps
        // we forward with the time we send them, losing the publisher's
        // lip sync; the room core sends its own (room/sender_reports.rs).
        Target::Subscriber => {
            if transport_cc {
                register_transport_cc(media_engine)?;
            }
            Registry::new()
        }
    };
    Ok(registry.with(
        Slot::Custom(feedback::SLOT),
        feedback::FeedbackRelay::default(),
    ))
}

/// Negotiates transport-wide sequence numbers and the browser's reports of
/// when each arrived (TWCC), for every kind: the subscriber's bandwidth
/// estimate. The room core numbers what it sends (`media/estimator.rs`),
/// so no interceptor does.
fn register_transport_cc(media_engine: &mut MediaEngine) -> Result<(), PeerError> {
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        media_engine.register_feedback(
            RTCPFeedback {
                typ: TYPE_RTCP_FB_TRANSPORT_CC.to_owned(),
                parameter: String::new(),
            },
            kind,
        );
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: TRANSPORT_CC.to_owned(),
                },
                kind,
                None,
            )
            .context("registering transport-wide sequence numbers")?;
    }
    Ok(())
}

/// What a new peer connection is to be.
pub struct PeerOptions<'a> {
    /// The participant's publisher or subscriber side.
    pub role: Target,
    /// Its ICE credentials.
    pub ufrag: &'a str,
    pub pwd: &'a str,
    /// Where it is reached over UDP, and over ICE-TCP.
    pub candidates: &'a [SocketAddr],
    pub tcp_candidates: &'a [SocketAddr],
    pub srtp_profiles: &'a [SrtpProfile],
    /// Negotiate transport-wide sequence numbers and feedback (a
    /// subscriber side whose link gets a bandwidth estimate).
    pub transport_cc: bool,
}

/// A new peer connection as `options` say.
pub fn new_peer(now: Instant, options: PeerOptions<'_>) -> Result<RTCPeerConnection, PeerError> {
    let PeerOptions {
        role,
        ufrag,
        pwd,
        candidates,
        tcp_candidates,
        srtp_profiles,
        transport_cc,
    } = options;
    let setting_engine = SettingEngineBuilder::new()
        .with_lite(true)
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .with_srtp_protection_profiles(
            srtp_profiles
                .iter()
                .map(|p| match p {
                    SrtpProfile::AeadAes128Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                    SrtpProfile::AeadAes256Gcm => SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
                    SrtpProfile::Aes128CmHmacSha1_80 => {
                        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80
                    }
                })
                .collect(),
        )
        .with_ice_credentials(ufrag.to_owned(), pwd.to_owned())
        .build();
    let mut media_engine = media_engine()?;
    let registry = interceptors(role, transport_cc, &mut media_engine)?;
    // No ICE servers: we are ICE-lite and contact nothing ourselves.
    let config = RTCConfigurationBuilder::new().build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(config)
        .with_setting_engine(setting_engine)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .context("building peer connection")?;
    for &addr in candidates {
        pc.add_local_candidate(host_candidate(addr)?)
            .context("adding host candidate")?;
    }
    for &addr in tcp_candidates {
        pc.add_local_candidate(tcp_host_candidate(addr)?)
            .context("adding ICE-TCP host candidate")?;
    }
    Ok(pc)
}

/// A UDP host candidate at `addr`, as the engine takes it.
pub fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, PeerError> {
    candidate(addr, "udp", TcpType::Unspecified)
}

/// A passive ICE-TCP host candidate at `addr` (RFC 6544): the browser
/// connects to it, we never connect out.
fn tcp_host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, PeerError> {
    candidate(addr, "tcp", TcpType::Passive)
}

fn candidate(
    addr: SocketAddr,
    network: &str,
    tcp_type: TcpType,
) -> Result<RTCIceCandidateInit, PeerError> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: network.to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        tcp_type,
    }
    .new_candidate_host()
    .map_err(|e| PeerError::Engine {
        context: "creating host candidate",
        source: rtc::shared::error::Error::Other(e.to_string()),
    })?;
    RTCIceCandidate::from(&candidate)
        .to_json()
        .context("encoding host candidate")
}

/// Builds a PLI for `media_ssrc`, boxed as the engine's RTCP writer wants it.
pub fn pli(media_ssrc: u32) -> Vec<Box<dyn rtc::rtcp::Packet>> {
    let p = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc,
    };
    vec![Box::new(p)]
}
