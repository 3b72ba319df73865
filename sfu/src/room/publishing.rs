//! Publishing: a participant's offers for its publisher connection, the
//! up-tracks (and simulcast layers) the engine reports as they start, and
//! their mute state and end.

use std::time::Instant;

use rtc::peer_connection::event::RTCTrackEventInit;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::api::{Event, Kind, Refusal, Source, Target, TrackAnnouncement};
use super::participant::{track_info, ParticipantKey};
use super::Router;
use crate::engine::peer::AUDIO_LEVEL;
use crate::media::simulcast;
use crate::media::up_track::{UpTrack, UpTrackInit};

/// Most media sections one participant may publish: camera, microphone,
/// a screen share with its audio, and room to spare. Every subscriber gets
/// a down-track per published track, so this bounds what one participant
/// can make everyone else negotiate.
pub const MAX_TRACKS_PER_PUBLISHER: usize = 8;

impl Router {
    /// An offer for `p`'s publisher connection, with what it carries.
    pub(super) fn publish(
        &mut self,
        now: Instant,
        p: ParticipantKey,
        sdp: String,
        tracks: Vec<TrackAnnouncement>,
    ) {
        if !self.participants[p].role.may_publish() {
            let msg = "publisher offer refused: viewers receive only".to_owned();
            self.refuse(p, Refusal::NotAllowed, msg);
            return;
        }
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
            self.refuse(p, Refusal::BadSdp, msg);
            return;
        }
        let conn = match self.participants[p].publisher {
            Some(c) => c,
            None => match self.new_connection(now, p, Target::Publisher) {
                Ok(c) => *self.participants[p].publisher.insert(c),
                Err(e) => {
                    tracing::error!(error = %e, "could not create peer connection");
                    let msg = "the media engine could not create a connection".to_owned();
                    self.refuse(p, Refusal::Unavailable, msg);
                    return;
                }
            },
        };
        let part = &mut self.participants[p];
        // Tracks no longer announced are unpublished.
        let gone: Vec<String> = part
            .up
            .iter()
            .filter(|u| !tracks.iter().any(|t| t.mid == u.mid))
            .map(|u| u.id.clone())
            .collect();
        part.announced = tracks;
        for id in gone {
            self.unpublish(p, &id);
        }
        // The offer may restart ICE (the browser's path changed).
        let restart = self.arm_ice_restart(conn, false);
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let pc = &mut c.pc;
        let answer = RTCSessionDescription::offer(sdp)
            .and_then(|offer| pc.set_remote_description(now, offer))
            .and_then(|()| pc.create_answer(None))
            .and_then(|answer| pc.set_local_description(now, answer))
            .map(|()| pc.local_description().map(|d| d.sdp));
        match answer {
            Ok(Some(sdp)) => {
                c.mark_negotiated(now);
                self.emit(p, Event::PublisherAnswer { sdp });
                if let Some(creds) = restart {
                    self.settle_ice_restart(conn, creds);
                }
            }
            Ok(None) => self.stats.engine_errors += 1,
            Err(e) => self.refuse(p, Refusal::BadSdp, format!("publisher offer refused: {e}")),
        }
        self.drain_conn(now, conn);
    }

    /// The engine reports a track (or another simulcast layer of one)
    /// starting on `owner`'s publisher connection.
    pub(super) fn track_opened(
        &mut self,
        now: Instant,
        owner: ParticipantKey,
        init: RTCTrackEventInit,
    ) {
        let Some(p) = self.participants.get_mut(owner) else {
            return;
        };
        let Some(conn) = p.publisher else {
            return;
        };
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let rid = init.rid.clone().unwrap_or_default();
        // All the track's rids, as the publisher's SDP lists them.
        let rids: Vec<String> =
            c.pc.rtp_receiver(init.receiver_id)
                .map(|r| {
                    r.track()
                        .codings()
                        .iter()
                        .map(|c| c.rtp_coding_parameters.rid.clone())
                        .collect()
                })
                .unwrap_or_default();
        let rids: Vec<&str> = rids.iter().map(String::as_str).collect();
        let rank = simulcast::rank(&rid, &rids);
        if let Some(up) = p.up.iter_mut().find(|u| u.engine_track_id == init.track_id) {
            // Another simulcast layer of a track already published, or a
            // layer that came back with a new SSRC.
            if up.add_layer(now, rid, init.ssrc, rank) {
                tracing::debug!(track = %up.id, "simulcast layer started");
                let receiver = up.receiver;
                for layer in up.reselect(now) {
                    self.send_pli(now, conn, receiver, layer);
                }
            }
            return;
        }
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
        let params = &receiver.get_parameters().rtp_parameters;
        let Some(codec) = params.codecs.first().map(|c| c.rtp_codec.clone()) else {
            return;
        };
        let audio_level_id = params
            .header_extensions
            .iter()
            .find(|e| kind == Kind::Audio && e.uri == AUDIO_LEVEL)
            .and_then(|e| u8::try_from(e.id).ok());
        let mid = mid.unwrap_or_default();
        let announced = p.announced.iter().find(|a| a.mid == mid);
        let source = announced.map(|a| a.source).unwrap_or(match kind {
            Kind::Audio => Source::Microphone,
            Kind::Video => Source::Camera,
        });
        let muted = announced.is_some_and(|a| a.muted);
        let id = format!("{}-{}", p.id, mid);
        tracing::info!(participant = %p.id, %mid, codec = %codec.mime_type, "track published");
        let mut up = UpTrack::new(UpTrackInit {
            id: id.clone(),
            engine_track_id: init.track_id,
            mid,
            kind,
            source,
            muted,
            receiver: init.receiver_id,
            codec,
            keyframe_interval: self.cfg.keyframe_interval,
            audio_level_id,
            rids: rids
                .iter()
                .map(|r| (r.to_string(), simulcast::rank(r, &rids)))
                .collect(),
        });
        up.add_layer(now, rid, init.ssrc, rank);
        // A source a host muted stays muted in a new track.
        if p.hold(source).is_some() {
            up.hold();
        }
        let track = track_info(&up);
        p.up.push(up);
        let (room, participant_id) = (p.room.clone(), p.id.clone());
        self.broadcast(
            &room,
            Some(owner),
            Event::TrackPublished {
                participant_id,
                track,
            },
        );
        let others: Vec<ParticipantKey> = self.others(&room, owner).collect();
        for s in others {
            self.subscribe(now, s, owner, &id);
        }
    }

    /// Removes a published track from everyone who receives it.
    pub(super) fn unpublish(&mut self, publisher: ParticipantKey, track_id: &str) {
        let Some(p) = self.participants.get_mut(publisher) else {
            return;
        };
        let Some(i) = p.up.iter().position(|u| u.id == track_id) else {
            return;
        };
        let up = p.up.remove(i);
        let (room, participant_id) = (p.room.clone(), p.id.clone());
        for d in &up.downs {
            self.drop_down_track(d.route, d.ssrc);
        }
        self.broadcast(
            &room,
            Some(publisher),
            Event::TrackUnpublished {
                participant_id,
                track_id: track_id.to_owned(),
            },
        );
    }

    pub(super) fn mute(&mut self, p: ParticipantKey, mid: &str, muted: bool) {
        if !muted && !self.may_unmute(p, mid) {
            return;
        }
        let part = &mut self.participants[p];
        if let Some(a) = part.announced.iter_mut().find(|a| a.mid == mid) {
            a.muted = muted;
        }
        let Some(up) = part.up.iter_mut().find(|u| u.mid == mid) else {
            return;
        };
        up.muted = muted;
        let event = Event::TrackMuted {
            participant_id: part.id.clone(),
            track_id: up.id.clone(),
            muted,
        };
        let room = part.room.clone();
        self.broadcast(&room, Some(p), event);
    }

    /// Tells publishers which of their simulcast layers anyone receives
    /// now, where that changed (dynacast).
    pub(super) fn dynacast(&mut self, now: Instant) {
        let mut told = Vec::new();
        for (key, p) in self.participants.iter_mut() {
            for up in &mut p.up {
                if let Some(rids) = up.dynacast(now) {
                    tracing::debug!(track = %up.id, ?rids, "publisher told its layers");
                    told.push((key, up.id.clone(), up.mid.clone(), rids));
                }
            }
        }
        for (key, track_id, mid, rids) in told {
            self.stats.media.layer_updates += 1;
            self.emit(
                key,
                Event::LayersWanted {
                    track_id,
                    mid,
                    rids,
                },
            );
        }
    }
}
