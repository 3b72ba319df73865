//! What a participant shows the room besides its media: a raised hand
//! (kept until lowered, so that a late joiner sees it) and reactions
//! (passed on once, kept nowhere).

use super::api::{Event, Reaction, Refusal};
use super::participant::ParticipantKey;
use super::Router;

impl Router {
    /// `p` raises or lowers its own hand.
    pub(super) fn raise_hand(&mut self, p: ParticipantKey, raised: bool) {
        self.set_hand(p, raised);
    }

    /// Host `host` lowers the hand of `target_id`, in its room.
    pub(super) fn lower_hand(&mut self, host: ParticipantKey, target_id: &str) {
        if !self.participants[host].role.may_moderate() {
            let msg = "only hosts may lower others' hands".to_owned();
            return self.refuse(host, Refusal::NotAllowed, msg);
        }
        let room = &self.participants[host].room;
        let target = self
            .by_id
            .get(target_id)
            .copied()
            .filter(|&t| self.participants[t].room == *room);
        match target {
            Some(t) => self.set_hand(t, false),
            None => {
                let msg = format!("no participant `{target_id}` here");
                self.refuse(host, Refusal::NoSuchParticipant, msg);
            }
        }
    }

    fn set_hand(&mut self, p: ParticipantKey, raised: bool) {
        let part = &mut self.participants[p];
        if part.hand_raised == raised {
            return;
        }
        part.hand_raised = raised;
        let (room, participant_id) = (part.room.clone(), part.id.clone());
        let event = Event::HandRaised {
            participant_id,
            raised,
        };
        self.broadcast(&room, None, event);
    }

    /// `p` reacts: everyone in its room is told, `p` too (its own page
    /// shows what the others see).
    pub(super) fn react(&mut self, p: ParticipantKey, reaction: Reaction) {
        let part = &self.participants[p];
        let (room, participant_id) = (part.room.clone(), part.id.clone());
        let event = Event::Reacted {
            participant_id,
            reaction,
        };
        self.broadcast(&room, None, event);
    }
}
