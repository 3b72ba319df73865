//! Who is in which room: joining (two peer connections per participant,
//! subscriptions to what the others publish), leaving and being removed,
//! and telling the others.

use std::time::Instant;

use rand::Rng;

use super::api::{Event, LeaveReason, Refusal, Role, Target};
use super::connection::{ConnKey, Credentials};
use super::participant::{Participant, ParticipantKey};
use super::{Output, Router};
use crate::engine::peer::{self, PeerError};

/// Who asks to join, as the shell admitted them.
pub(super) struct Joiner {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub guest: bool,
    /// The participant this one is, come back on a new connection.
    pub replaces: Option<String>,
}

impl Router {
    pub(super) fn join(&mut self, now: Instant, who: Joiner, room: String) {
        let participant_id = who.id;
        if self.by_id.contains_key(&participant_id) {
            return;
        }
        // Its old self, in this room, gives up its seat to it.
        let replaced = who
            .replaces
            .as_ref()
            .and_then(|id| self.by_id.get(id).copied())
            .filter(|&k| self.participants[k].room == room);
        let seated = self.rooms.get(&room).map_or(0, Vec::len) - usize::from(replaced.is_some());
        if seated >= self.cfg.max_participants {
            match self.idle_seat(now, &room) {
                Some(idle) => self.remove_participant(idle, LeaveReason::Idle),
                None => {
                    let max = self.cfg.max_participants;
                    self.emit_to(
                        participant_id,
                        Event::Left {
                            reason: LeaveReason::RoomFull { max },
                        },
                    );
                    return;
                }
            }
        }
        let key = self.participants.vacant_key();
        // The publisher connection waits for the first offer: a participant
        // who only watches never needs one.
        let subscriber = match self.new_connection(now, key, Target::Subscriber) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not create peer connection");
                self.emit_to(
                    participant_id,
                    Event::Left {
                        reason: LeaveReason::Unavailable,
                    },
                );
                return;
            }
        };
        let members = self.rooms.entry(room.clone()).or_default();
        let others: Vec<ParticipantKey> = members
            .iter()
            .copied()
            .filter(|&m| Some(m) != replaced)
            .collect();
        members.push(key);
        let participant = Participant {
            id: participant_id.clone(),
            name: who.name,
            room: room.clone(),
            role: who.role,
            guest: who.guest,
            publisher: None,
            subscriber,
            announced: Vec::new(),
            up: Vec::new(),
            received: Vec::new(),
            negotiation: Default::default(),
            held: Vec::new(),
            hand_raised: false,
            reconnecting: false,
        };
        let info = participant.info();
        self.participants.insert(participant);
        self.by_id.insert(participant_id.clone(), key);
        tracing::info!(participant = %participant_id, "joined");
        let participants = others
            .iter()
            .map(|&o| self.participants[o].info())
            .collect();
        self.emit(
            key,
            Event::Joined {
                room: room.clone(),
                participant_id,
                participants,
            },
        );
        let replaces = replaced.map(|r| self.participants[r].id.clone());
        let joined = Event::ParticipantJoined {
            participant: info,
            replaces,
        };
        self.broadcast(&room, Some(key), joined);
        if let Some(old) = replaced {
            self.remove_participant(old, LeaveReason::Replaced);
        }
        for o in others {
            let tracks: Vec<String> = self.participants[o]
                .up
                .iter()
                .map(|u| u.id.clone())
                .collect();
            for t in tracks {
                self.subscribe(now, key, o, &t);
            }
        }
    }

    /// The longest-seated participant of `room` whose seat is idle: it
    /// joined `idle_seat` ago or more and neither of its connections ever
    /// connected. Sockets that join and do nothing else could otherwise
    /// keep a meeting full; someone alone with nothing to negotiate keeps
    /// their seat until it is needed.
    fn idle_seat(&self, now: Instant, room: &str) -> Option<ParticipantKey> {
        let connected = |c: Option<ConnKey>| {
            c.and_then(|c| self.conns.get(c))
                .is_some_and(|c| c.connected)
        };
        self.rooms
            .get(room)?
            .iter()
            .filter_map(|&k| {
                let p = &self.participants[k];
                let since = self.conns.get(p.subscriber)?.created;
                let idle = now.saturating_duration_since(since) >= self.cfg.idle_seat
                    && !connected(Some(p.subscriber))
                    && !connected(p.publisher);
                idle.then_some((since, k))
            })
            .min()
            .map(|(_, k)| k)
    }

    /// A peer connection of `owner`'s, with fresh ICE credentials.
    pub(super) fn new_connection(
        &mut self,
        now: Instant,
        owner: ParticipantKey,
        role: Target,
    ) -> Result<ConnKey, PeerError> {
        let creds = self.new_credentials();
        let estimated = role == Target::Subscriber && self.cfg.bandwidth_estimation;
        let pc = peer::new_peer(
            now,
            peer::PeerOptions {
                role,
                ufrag: &creds.ufrag,
                pwd: &creds.pwd,
                candidates: &self.cfg.candidates,
                tcp_candidates: &self.cfg.tcp_candidates,
                srtp_profiles: &self.cfg.srtp_profiles,
                transport_cc: estimated,
            },
        )?;
        Ok(self.conns.insert(now, pc, owner, role, creds, estimated))
    }

    /// Fresh ICE credentials: a new connection's, or a restart's.
    pub(super) fn new_credentials(&mut self) -> Credentials {
        Credentials {
            ufrag: self.random_token(16),
            pwd: self.random_token(32),
        }
    }

    /// `p`'s connection to its client dropped: the others see it as
    /// reconnecting while the shell holds its seat.
    pub(super) fn reconnecting(&mut self, p: ParticipantKey) {
        let part = &mut self.participants[p];
        if part.reconnecting {
            return;
        }
        part.reconnecting = true;
        let (room, participant_id) = (part.room.clone(), part.id.clone());
        tracing::info!(participant = %participant_id, "reconnecting");
        let event = Event::ParticipantReconnecting { participant_id };
        self.broadcast(&room, Some(p), event);
    }

    /// `p` asks to remove another participant of its room.
    pub(super) fn remove_other(&mut self, p: ParticipantKey, target_id: &str) {
        let target = self.by_id.get(target_id).copied();
        let same_room = |t: ParticipantKey| self.participants[t].room == self.participants[p].room;
        match target {
            Some(t) if t != p && same_room(t) => self.remove_participant(t, LeaveReason::Removed),
            _ => self.refuse(
                p,
                Refusal::NoSuchParticipant,
                format!("no participant `{target_id}` to remove here"),
            ),
        }
    }

    pub(super) fn remove_participant(&mut self, p: ParticipantKey, reason: LeaveReason) {
        let Some(part) = self.participants.try_remove(p) else {
            return;
        };
        tracing::info!(participant = %part.id, ?reason, "left");
        // Leaving before media ever flowed on a negotiated connection: the
        // browser gave up on ICE or DTLS (other reasons are counted where
        // they arise).
        let stuck = [part.publisher, Some(part.subscriber)]
            .into_iter()
            .flatten()
            .filter_map(|c| self.conns.get(c))
            .any(|c| c.negotiated && !c.connected);
        if stuck && reason == LeaveReason::Left {
            self.stats.failures.not_connected += 1;
        }
        self.by_id.remove(&part.id);
        for up in &part.up {
            for d in &up.downs {
                self.drop_down_track(d.route, d.ssrc);
            }
        }
        for r in &part.received {
            if let Some(up) = self
                .participants
                .get_mut(r.publisher)
                .and_then(|q| q.up_track_mut(&r.track_id))
            {
                up.downs.retain(|d| d.route.subscriber != p);
            }
        }
        if let Some(c) = part.publisher {
            self.conns.close(c, &mut self.out);
        }
        self.conns.close(part.subscriber, &mut self.out);
        if let Some(members) = self.rooms.get_mut(&part.room) {
            members.retain(|&m| m != p);
            if members.is_empty() {
                self.rooms.remove(&part.room);
            }
        }
        self.broadcast(
            &part.room,
            None,
            Event::ParticipantLeft {
                participant_id: part.id.clone(),
            },
        );
        self.emit_to(part.id, Event::Left { reason });
    }

    /// Everyone in `room` but `except`.
    pub(super) fn others(
        &self,
        room: &str,
        except: ParticipantKey,
    ) -> impl Iterator<Item = ParticipantKey> + '_ {
        self.rooms
            .get(room)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&k| k != except)
    }

    pub(super) fn broadcast(&mut self, room: &str, except: Option<ParticipantKey>, event: Event) {
        let Some(members) = self.rooms.get(room) else {
            return;
        };
        for &m in members {
            if Some(m) == except {
                continue;
            }
            if let Some(p) = self.participants.get(m) {
                self.out.push_back(Output::Event {
                    participant_id: p.id.clone(),
                    event: event.clone(),
                });
            }
        }
    }

    pub(super) fn emit(&mut self, p: ParticipantKey, event: Event) {
        if let Some(part) = self.participants.get(p) {
            let participant_id = part.id.clone();
            self.emit_to(participant_id, event);
        }
    }

    fn emit_to(&mut self, participant_id: String, event: Event) {
        self.out.push_back(Output::Event {
            participant_id,
            event,
        });
    }

    pub(super) fn refuse(&mut self, p: ParticipantKey, reason: Refusal, message: String) {
        self.emit(p, Event::Refused { reason, message });
    }

    pub(super) fn random_token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..len)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }
}
