//! What hosts do to others' media: muting a participant's track so that
//! the core stops forwarding it, and the lock that keeps it muted. The
//! rest of moderation (removing, banning, locking and ending a meeting)
//! is about who is in a room, not about media: `membership.rs` and the
//! shell.

use super::api::{Event, Refusal, Role};
use super::participant::ParticipantKey;
use super::Router;

impl Router {
    /// Host `host` mutes `track_id` of participant `target_id`, and every
    /// other track of that source the participant has or publishes later.
    pub(super) fn host_mute(
        &mut self,
        host: ParticipantKey,
        target_id: &str,
        track_id: &str,
        locked: bool,
    ) {
        if !self.participants[host].role.may_moderate() {
            let msg = "only hosts may mute others".to_owned();
            return self.refuse(host, Refusal::NotAllowed, msg);
        }
        let room = self.participants[host].room.clone();
        let target = self
            .by_id
            .get(target_id)
            .copied()
            .filter(|&t| self.participants[t].room == room);
        let source = target.and_then(|t| {
            let up = self.participants[t].up.iter().find(|u| u.id == track_id)?;
            Some((t, up.source))
        });
        let Some((t, source)) = source else {
            let msg = format!("no track `{track_id}` of `{target_id}` here");
            return self.refuse(host, Refusal::NoSuchParticipant, msg);
        };
        let part = &mut self.participants[t];
        part.held.retain(|(s, _)| *s != source);
        part.held.push((source, locked));
        let mut newly_muted = Vec::new();
        for up in part.up.iter_mut().filter(|u| u.source == source) {
            if !up.muted {
                newly_muted.push(up.id.clone());
            }
            up.hold();
        }
        for a in part.announced.iter_mut().filter(|a| a.source == source) {
            a.muted = true;
        }
        let participant_id = part.id.clone();
        tracing::info!(participant = %participant_id, ?source, locked, "muted by a host");
        self.emit(
            t,
            Event::MutedByHost {
                track_id: track_id.to_owned(),
                source,
                locked,
            },
        );
        for track_id in newly_muted {
            let event = Event::TrackMuted {
                participant_id: participant_id.clone(),
                track_id,
                muted: true,
            };
            self.broadcast(&room, Some(t), event);
        }
    }

    /// `p`'s rights changed (the shell decided it); the room learns it.
    pub(super) fn set_role(&mut self, p: ParticipantKey, role: Role) {
        let part = &mut self.participants[p];
        if part.role == role {
            return;
        }
        if !part.role.may_publish() || !role.may_publish() {
            let msg = "a viewer's role does not change in the meeting".to_owned();
            return self.refuse(p, Refusal::NotAllowed, msg);
        }
        part.role = role;
        let (room, participant_id) = (part.room.clone(), part.id.clone());
        tracing::info!(participant = %participant_id, ?role, "role changed");
        let event = Event::RoleChanged {
            participant_id,
            role,
        };
        self.broadcast(&room, None, event);
    }

    /// Whether `p` may unmute its track `mid`; releases a host's hold on
    /// its source when so. False (and refused) while a host locks it.
    pub(super) fn may_unmute(&mut self, p: ParticipantKey, mid: &str) -> bool {
        let part = &mut self.participants[p];
        let Some(source) = part.up.iter().find(|u| u.mid == mid).map(|u| u.source) else {
            return true;
        };
        match part.hold(source) {
            None => true,
            Some(true) => {
                let msg = "a host muted this and has not allowed unmuting".to_owned();
                self.refuse(p, Refusal::NotAllowed, msg);
                false
            }
            Some(false) => {
                part.held.retain(|(s, _)| *s != source);
                for up in part.up.iter_mut().filter(|u| u.source == source) {
                    up.release();
                }
                true
            }
        }
    }
}
