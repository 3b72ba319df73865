//! Who is in which meeting, as the shell sees it: one entry per joined
//! signalling session, whatever its protocol, with a way to end that
//! session. The admin API lists and removes from here; the media workers
//! keep their own state and never wait on this.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::room::api::Role;

/// A participant as the shell admitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    pub guest: bool,
    /// Matrix user id of a signed-in participant.
    pub user_id: Option<String>,
}

/// Why a session was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// An administrator removed the participant.
    Removed,
    /// An administrator closed the meeting.
    MeetingClosed,
}

struct Entry {
    member: Member,
    end: Option<oneshot::Sender<Ended>>,
}

type Meetings = HashMap<String, BTreeMap<String, Entry>>;

#[derive(Clone, Default)]
pub struct Roster {
    meetings: Arc<Mutex<Meetings>>,
}

/// A session's place in the roster; leaving it (drop) takes the entry out.
pub struct Seat {
    roster: Roster,
    room: String,
    participant_id: String,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut meetings = self.roster.lock();
        if let Some(members) = meetings.get_mut(&self.room) {
            members.remove(&self.participant_id);
            if members.is_empty() {
                meetings.remove(&self.room);
            }
        }
    }
}

impl Roster {
    fn lock(&self) -> std::sync::MutexGuard<'_, Meetings> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.meetings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seats a participant; the receiver fires if it is to be ended.
    pub fn seat(
        &self,
        room: &str,
        participant_id: &str,
        member: Member,
    ) -> (Seat, oneshot::Receiver<Ended>) {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(room.to_owned()).or_default().insert(
            participant_id.to_owned(),
            Entry {
                member,
                end: Some(tx),
            },
        );
        let seat = Seat {
            roster: self.clone(),
            room: room.to_owned(),
            participant_id: participant_id.to_owned(),
        };
        (seat, rx)
    }

    /// Every meeting with someone in it, and how many, by name.
    pub fn meetings(&self) -> Vec<(String, usize)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(room, members)| (room.clone(), members.len()))
            .collect();
        all.sort();
        all
    }

    /// A meeting's participants by id; `None` if nobody is in it.
    pub fn members(&self, room: &str) -> Option<Vec<(String, Member)>> {
        let meetings = self.lock();
        let members = meetings.get(room)?;
        Some(
            members
                .iter()
                .map(|(id, e)| (id.clone(), e.member.clone()))
                .collect(),
        )
    }

    /// Ends one participant's session; false if it is not in `room`.
    pub fn end(&self, room: &str, participant_id: &str, why: Ended) -> bool {
        let mut meetings = self.lock();
        let Some(entry) = meetings
            .get_mut(room)
            .and_then(|m| m.get_mut(participant_id))
        else {
            return false;
        };
        if let Some(end) = entry.end.take() {
            let _ = end.send(why);
        }
        true
    }

    /// Ends every session in `room`; how many there were.
    pub fn end_all(&self, room: &str, why: Ended) -> usize {
        let mut meetings = self.lock();
        let Some(members) = meetings.get_mut(room) else {
            return 0;
        };
        for entry in members.values_mut() {
            if let Some(end) = entry.end.take() {
                let _ = end.send(why);
            }
        }
        members.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.into(),
            role: Role::Participant,
            guest: true,
            user_id: None,
        }
    }

    #[test]
    fn seats_are_listed_until_dropped() {
        let roster = Roster::default();
        let (a, _) = roster.seat("standup", "p1", member("A"));
        let (b, _) = roster.seat("standup", "p2", member("B"));
        let (_c, _) = roster.seat("retro", "p3", member("C"));
        assert_eq!(
            roster.meetings(),
            vec![("retro".into(), 1), ("standup".into(), 2)]
        );
        drop(a);
        let left = roster.members("standup").unwrap();
        assert_eq!(left, vec![("p2".into(), member("B"))]);
        drop(b);
        assert!(roster.members("standup").is_none());
    }

    #[test]
    fn ending_tells_the_session_once() {
        let roster = Roster::default();
        let (_a, mut a_end) = roster.seat("r", "p1", member("A"));
        let (_b, mut b_end) = roster.seat("r", "p2", member("B"));
        assert!(!roster.end("r", "nobody", Ended::Removed));
        assert!(!roster.end("other", "p1", Ended::Removed));
        assert!(roster.end("r", "p1", Ended::Removed));
        assert_eq!(a_end.try_recv(), Ok(Ended::Removed));
        assert_eq!(roster.end_all("r", Ended::MeetingClosed), 2);
        assert!(b_end.try_recv() == Ok(Ended::MeetingClosed));
    }
}
