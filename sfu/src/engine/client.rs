//! Browser-like peer connections, for the tests and the load generator,
//! which stand in for browsers: full ICE, the engine's default codecs (VP8
//! with RTX among them), NACK both ways, and keyframe requests delivered to
//! the caller.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::interceptor::{NackResponderBuilder, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionParameters,
    RtpCodecKind,
};

use super::peer::{
    host_candidate, register_nack, Context, PeerError, SDES_MID, SDES_RTP_STREAM_ID,
};
use super::{feedback, nack, rtx};

/// A browser-like client connection at `addr`.
pub fn new_client_peer(now: Instant, addr: SocketAddr) -> Result<RTCPeerConnection, PeerError> {
    let mut media_engine = MediaEngine::default();
    media_engine
        .register_default_codecs()
        .context("registering default codecs")?;
    new_client_peer_with(now, addr, media_engine)
}

/// Like [`new_client_peer`], with the codecs `media_engine` has: a browser
/// that decodes only some.
pub fn new_client_peer_with(
    now: Instant,
    addr: SocketAddr,
    mut media_engine: MediaEngine,
) -> Result<RTCPeerConnection, PeerError> {
    register_nack(&mut media_engine);
    configure_simulcast_extension_headers(&mut media_engine)
        .context("registering simulcast header extensions")?;
    // The engine's defaults, but with our NACK generator and RTX repair, as
    // a browser's would be.
    let registry = configure_twcc_receiver_only(Registry::new(), &mut media_engine)
        .context("registering interceptors")?;
    let registry = configure_rtcp_reports(registry)
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::from(rtx::SLOT), rtx::RtxRepair::default())
        .with(Slot::NackGenerator, nack::NackGenerator::default())
        .with(
            Slot::Custom(feedback::SLOT),
            feedback::FeedbackRelay::default(),
        );
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().build())
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
        .context("building client peer connection")?;
    pc.add_local_candidate(host_candidate(addr)?)
        .context("adding host candidate")?;
    Ok(pc)
}

/// A local track to send, for [`new_client_peer`] users: one encoding per
/// `(rid, ssrc)`, a single one with an empty rid, or simulcast layers.
pub fn local_track(
    stream_id: &str,
    kind: RtpCodecKind,
    mime: &str,
    clock_rate: u32,
    channels: u16,
    encodings: &[(&str, u32)],
) -> rtc::media_stream::MediaStreamTrack {
    let codec = RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    };
    rtc::media_stream::MediaStreamTrack::new(
        stream_id.to_owned(),
        format!("{stream_id}-{kind}"),
        format!("{stream_id}-{kind}"),
        kind,
        encodings
            .iter()
            .map(|&(rid, ssrc)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: rid.to_owned(),
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            })
            .collect(),
    )
}

/// The negotiated ids of the `sdes:mid` and `sdes:rtp-stream-id` header
/// extensions, which a simulcast sender puts on its packets so the
/// receiver can tell the layers apart (the engine does not add them).
pub fn simulcast_extension_ids(negotiated: &[RTCRtpHeaderExtensionParameters]) -> Option<(u8, u8)> {
    let id = |uri: &str| {
        negotiated
            .iter()
            .find(|e| e.uri == uri)
            .and_then(|e| u8::try_from(e.id).ok())
    };
    Some((id(SDES_MID)?, id(SDES_RTP_STREAM_ID)?))
}
