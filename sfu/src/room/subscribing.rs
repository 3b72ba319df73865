//! Subscriptions: a down-track on a participant's subscriber connection for
//! each track the others publish, the offers that carry them (one at a
//! time, see `negotiation.rs`), the payload types the answers settle, the
//! quality each subscriber asks for, and what its feedback asks of the
//! publisher (keyframes) and of us (retransmissions).

use std::time::Instant;

use rand::Rng;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::api::{Event, Kind, LeaveReason, Quality, Refusal, Source};
use super::negotiation::Expired;
use super::participant::{ParticipantKey, Received};
use super::{Fanout, Router};
use crate::engine::peer::rtx_payload_type;
use crate::media::down_track::{DownTrack, DownTrackInit, Route};
use crate::media::keyframe::VideoCodec;
use crate::media::up_track::UpTrack;

impl Router {
    /// Gives `subscriber` a down-track of `publisher`'s track `track_id`.
    pub(super) fn subscribe(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        publisher: ParticipantKey,
        track_id: &str,
    ) {
        let ssrc: u32 = self.rng.random();
        let rtx_ssrc: u32 = self.rng.random();
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
        let video = up.kind == Kind::Video;
        // Video is resent on an RTX stream of its own (RFC 4588), so that a
        // resent packet is never taken for a replay of the original.
        let rtx_ssrc = video.then_some(rtx_ssrc);
        let track = MediaStreamTrack::new(
            stream_id,
            up.id.clone(),
            up.id.clone(),
            if video {
                RtpCodecKind::Video
            } else {
                RtpCodecKind::Audio
            },
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rtx: rtx_ssrc.map(|ssrc| RTCRtpRtxParameters { ssrc }),
                    ..Default::default()
                },
                codec: RTCRtpCodec {
                    rtcp_feedback: vec![],
                    ..up.codec.clone()
                },
                ..Default::default()
            }],
        );
        let clock_rate = up.codec.clock_rate;
        let vp8 = VideoCodec::from_mime(&up.codec.mime_type) == VideoCodec::Vp8;
        // Until the subscriber says otherwise, the best layer there is.
        let layer = up.best_layer();
        let Some(p) = self.participants.get_mut(subscriber) else {
            return;
        };
        let conn = p.subscriber;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let sender = match c.pc.add_track(track) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not add down-track");
                self.stats.engine_errors += 1;
                return;
            }
        };
        p.received.push(Received {
            ssrc,
            publisher,
            track_id: track_id.to_owned(),
        });
        p.negotiation.changed();
        self.offers_due = true;
        let down = DownTrack::new(
            now,
            DownTrackInit {
                route: Route {
                    subscriber,
                    conn,
                    sender,
                    paced: video,
                },
                ssrc,
                rtx_ssrc,
                video,
                clock_rate,
                vp8,
                layer,
            },
        );
        if let Some(up) = self.participants[publisher].up_track_mut(track_id) {
            up.downs.push(down);
        }
    }

    /// Takes a down-track off its subscriber's connection.
    pub(super) fn drop_down_track(&mut self, route: Route, ssrc: u32) {
        let Some(s) = self.participants.get_mut(route.subscriber) else {
            return;
        };
        s.received.retain(|r| r.ssrc != ssrc);
        s.negotiation.changed();
        self.offers_due = true;
        if let Some(c) = self.conns.get_mut(route.conn) {
            if c.pc.remove_track(route.sender).is_err() {
                self.stats.engine_errors += 1;
            }
        }
    }

    /// Sends an offer to every subscriber whose down-tracks changed and who
    /// has no offer outstanding.
    pub(super) fn flush_negotiations(&mut self, now: Instant) {
        if !std::mem::take(&mut self.offers_due) {
            return;
        }
        let due: Vec<ParticipantKey> = self
            .participants
            .iter_mut()
            .filter_map(|(k, p)| p.negotiation.offer_due().then_some(k))
            .collect();
        for k in due {
            let conn = self.participants[k].subscriber;
            let restart = self.participants[k]
                .negotiation
                .take_ice_restart()
                .then(|| self.arm_ice_restart(conn, true))
                .flatten();
            let Some(c) = self.conns.get_mut(conn) else {
                continue;
            };
            let pc = &mut c.pc;
            let res = pc
                .create_offer(None)
                .and_then(|o| pc.set_local_description(now, o))
                .map(|()| pc.local_description().map(|d| d.sdp));
            match res {
                Ok(Some(sdp)) => {
                    if let Some(creds) = restart {
                        self.settle_ice_restart(conn, creds);
                    }
                    self.participants[k].negotiation.offered(now);
                    self.emit(k, Event::SubscriberOffer { sdp });
                    self.for_each_down_track(k, |d| d.offered = true);
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

    /// Offers nobody answered: rolled back and made again, or, when a
    /// browser answered none in a row, its participant removed.
    pub(super) fn expire_offers(&mut self, now: Instant) {
        let expired: Vec<(ParticipantKey, Expired)> = self
            .participants
            .iter_mut()
            // Nobody answers for a dropped participant while its seat is
            // held: it answers anew when it comes back.
            .filter(|(_, p)| !p.reconnecting)
            .filter_map(|(k, p)| p.negotiation.expire(now).map(|e| (k, e)))
            .collect();
        for (k, expired) in expired {
            let part = &self.participants[k];
            tracing::info!(participant = %part.id, ?expired, "subscriber offer unanswered");
            if expired == Expired::GiveUp {
                self.remove_participant(k, LeaveReason::NoAnswer);
                continue;
            }
            let conn = part.subscriber;
            if let Some(c) = self.conns.get_mut(conn) {
                let rollback = RTCSessionDescription::rollback(None)
                    .and_then(|r| c.pc.set_local_description(now, r));
                if let Err(e) = rollback {
                    tracing::warn!(error = %e, "could not roll back an unanswered offer");
                    self.stats.engine_errors += 1;
                }
            }
            self.offers_due = true;
        }
    }

    pub(super) fn subscriber_answer(&mut self, now: Instant, p: ParticipantKey, sdp: String) {
        let part = &mut self.participants[p];
        if !part.negotiation.answered() {
            let msg = "no subscriber offer is outstanding".to_owned();
            self.refuse(p, Refusal::BadSdp, msg);
            return;
        }
        self.offers_due = true;
        let conn = part.subscriber;
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let rejected: Vec<String> = rejected_mids(&sdp).map(str::to_owned).collect();
        let res =
            RTCSessionDescription::answer(sdp).and_then(|a| c.pc.set_remote_description(now, a));
        if let Err(e) = res {
            self.refuse(
                p,
                Refusal::BadSdp,
                format!("subscriber answer refused: {e}"),
            );
            return;
        }
        c.mark_negotiated(now);
        self.resolve_payload_types(now, p, &rejected);
        self.learn_transport_cc(conn);
        self.drain_conn(now, conn);
    }

    /// After an answer: the payload types each new down-track must carry,
    /// and a keyframe for each new video down-track. A down-track whose
    /// media section the answer rejected (`rejected`, by mid: a browser
    /// that cannot decode the codec) gets none, and so is never sent.
    fn resolve_payload_types(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        rejected: &[String],
    ) {
        for (publisher, track_id) in self.received_tracks(subscriber) {
            let Some(up) = self
                .participants
                .get_mut(publisher)
                .and_then(|q| q.up_track_mut(&track_id))
            else {
                continue;
            };
            let codec = up.codec.clone();
            let Some(d) = up
                .down_mut(subscriber)
                .filter(|d| d.offered && !d.is_negotiated())
            else {
                continue;
            };
            let Some(c) = self.conns.get_mut(d.route.conn) else {
                continue;
            };
            let mid =
                c.pc.get_transceivers()
                    .collect::<Vec<_>>()
                    .into_iter()
                    .find(|&t| RTCRtpSenderId::from(t) == d.route.sender)
                    .and_then(|t| c.pc.rtp_transceiver(t).and_then(|t| t.mid().clone()));
            let codecs =
                c.pc.rtp_sender(d.route.sender)
                    .filter(|_| !mid.is_some_and(|m| rejected.contains(&m)))
                    .map(|mut s| s.get_parameters().rtp_parameters.codecs.clone())
                    .unwrap_or_default();
            let pt = payload_type(&codecs, &codec);
            d.negotiated(pt, pt.and_then(|pt| rtx_payload_type(&codecs, pt)));
            if pt.is_none() {
                tracing::warn!(codec = %codec.mime_type, "subscriber did not accept the publisher's codec");
            }
            self.request_keyframe(now, publisher, &track_id, subscriber);
        }
    }

    /// A subscriber says which quality it wants of a track it receives.
    pub(super) fn set_quality(
        &mut self,
        now: Instant,
        p: ParticipantKey,
        track_id: &str,
        quality: Quality,
    ) {
        let Some(publisher) = self.participants[p]
            .received
            .iter()
            .find(|r| r.track_id == track_id)
            .map(|r| r.publisher)
        else {
            tracing::debug!(track_id, "settings for a track not received");
            return;
        };
        let Some(conn) = self.participants[publisher].publisher else {
            return;
        };
        let Some(up) = self.participants[publisher].up_track_mut(track_id) else {
            return;
        };
        if let Some(d) = up.down_mut(p) {
            d.quality = quality;
        }
        let receiver = up.receiver;
        for layer in up.reselect(now) {
            self.send_pli(now, conn, receiver, layer);
        }
    }

    /// A subscriber's decoder lost its way (PLI/FIR for one of our SSRCs).
    pub(super) fn subscriber_wants_keyframe(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        ssrc: u32,
    ) {
        let Some((publisher, track_id)) = self.received(subscriber, ssrc) else {
            return;
        };
        self.request_keyframe(now, publisher, &track_id, subscriber);
    }

    /// A keyframe of the layer `subscriber` receives (or is moving to) of
    /// a publisher's track.
    pub(super) fn request_keyframe(
        &mut self,
        now: Instant,
        publisher: ParticipantKey,
        track_id: &str,
        subscriber: ParticipantKey,
    ) {
        let Some(p) = self.participants.get_mut(publisher) else {
            return;
        };
        let Some(conn) = p.publisher else {
            return;
        };
        let Some(up) = p.up_track_mut(track_id) else {
            return;
        };
        if let Some(layer) = up.keyframe_for(now, subscriber) {
            let receiver = up.receiver;
            self.send_pli(now, conn, receiver, layer);
        }
    }

    /// The subscriber connection (re)connected: its decoders start afresh,
    /// so every video down-track waits for a new keyframe.
    pub(super) fn restart_down_tracks(&mut self, now: Instant, subscriber: ParticipantKey) {
        for (publisher, track_id) in self.received_tracks(subscriber) {
            if let Some(d) = self.down_track_mut(subscriber, publisher, &track_id) {
                d.pause();
            }
            self.request_keyframe(now, publisher, &track_id, subscriber);
        }
    }

    /// A subscriber's NACK: the packets it lists, rebuilt and sent again.
    pub(super) fn retransmit(
        &mut self,
        now: Instant,
        subscriber: ParticipantKey,
        nack: &TransportLayerNack,
    ) {
        let Some((publisher, track_id)) = self.received(subscriber, nack.media_ssrc) else {
            return;
        };
        let seqs: Vec<u16> = nack.nacks.iter().flat_map(|pair| *pair).collect();
        let Some(up) = self.participants[publisher].up_track_mut(&track_id) else {
            return;
        };
        let mut sink = Fanout {
            conns: &mut self.conns,
            out: &mut self.out,
            errors: &mut self.stats.engine_errors,
            samples: &mut self.samples,
            pace: &mut self.next_pace_tick,
        };
        up.retransmit(
            now,
            nack.media_ssrc,
            &seqs,
            &mut sink,
            &mut self.stats.media,
        );
    }

    /// Which publisher's track `subscriber` receives as `ssrc`.
    pub(super) fn received(
        &self,
        subscriber: ParticipantKey,
        ssrc: u32,
    ) -> Option<(ParticipantKey, String)> {
        self.participants
            .get(subscriber)?
            .received
            .iter()
            .find(|r| r.ssrc == ssrc)
            .map(|r| (r.publisher, r.track_id.clone()))
    }

    /// Applies `f` to every down-track `subscriber` has.
    fn for_each_down_track(
        &mut self,
        subscriber: ParticipantKey,
        mut f: impl FnMut(&mut DownTrack),
    ) {
        for (publisher, track_id) in self.received_tracks(subscriber) {
            if let Some(d) = self.down_track_mut(subscriber, publisher, &track_id) {
                f(d);
            }
        }
    }

    /// The publisher and track id of each track `subscriber` receives.
    pub(super) fn received_tracks(
        &self,
        subscriber: ParticipantKey,
    ) -> Vec<(ParticipantKey, String)> {
        self.participants.get(subscriber).map_or(Vec::new(), |p| {
            p.received
                .iter()
                .map(|r| (r.publisher, r.track_id.clone()))
                .collect()
        })
    }

    /// `subscriber`'s down-track of `publisher`'s track `track_id`.
    fn down_track_mut(
        &mut self,
        subscriber: ParticipantKey,
        publisher: ParticipantKey,
        track_id: &str,
    ) -> Option<&mut DownTrack> {
        self.up_track_mut(publisher, track_id)?.down_mut(subscriber)
    }

    /// `publisher`'s up-track `track_id`.
    pub(super) fn up_track_mut(
        &mut self,
        publisher: ParticipantKey,
        track_id: &str,
    ) -> Option<&mut UpTrack> {
        self.participants.get_mut(publisher)?.up_track_mut(track_id)
    }
}

/// The mids of the media sections an SDP answer rejects (port 0).
fn rejected_mids(sdp: &str) -> impl Iterator<Item = &str> {
    sdp.split("\nm=").skip(1).filter_map(|section| {
        let port = section.split(' ').nth(1)?;
        let mid = section
            .lines()
            .find_map(|l| l.trim_end().strip_prefix("a=mid:"))?;
        (port == "0").then_some(mid)
    })
}

/// The payload type the subscriber negotiated for the publisher's codec:
/// the same codec with the same format parameters if it took that, else
/// the same codec.
fn payload_type(codecs: &[RTCRtpCodecParameters], codec: &RTCRtpCodec) -> Option<u8> {
    let mime = &codec.mime_type;
    codecs
        .iter()
        .find(|c| {
            c.rtp_codec.mime_type.eq_ignore_ascii_case(mime)
                && c.rtp_codec.sdp_fmtp_line == codec.sdp_fmtp_line
        })
        .or_else(|| {
            codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        })
        .map(|c| c.payload_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sections_an_answer_rejects() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   m=video 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n";
        assert_eq!(rejected_mids(sdp).collect::<Vec<_>>(), ["1"]);
    }
}
