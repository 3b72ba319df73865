//! Who is in which meeting, as the shell sees it: one entry per joined
//! signalling session, whatever its protocol, with a way to end that
//! session; and what hosts decided about who else may come in (the lock
//! and the bans), for as long as someone is in the meeting. The admin API
//! and hosts act on it; the media workers keep their own state and never
//! wait on this.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};

use crate::room::api::Role;

/// A participant as the shell admitted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    pub guest: bool,
    /// Matrix user id of a signed-in participant.
    pub user_id: Option<String>,
    /// What a ban keeps out: the Matrix user, or the invite link a guest
    /// came with. `None` for an anonymous guest (an open deployment).
    pub ban_key: Option<String>,
}

/// Why a session was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// An administrator removed the participant.
    Removed,
    /// An administrator or a host closed the meeting.
    MeetingClosed,
}

/// Why the door is shut to someone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Shut {
    #[error("a host locked this meeting: nobody else may join now")]
    Locked,
    #[error("a host removed you from this meeting and does not let you back in")]
    Banned,
}

struct Entry {
    member: Member,
    end: Option<oneshot::Sender<Ended>>,
}

#[derive(Default)]
struct Meeting {
    members: BTreeMap<String, Entry>,
    /// Hosts let nobody else in; sessions watch it to tell their clients.
    locked: watch::Sender<bool>,
    banned: HashSet<String>,
}

type Meetings = HashMap<String, Meeting>;

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
        if let Some(m) = meetings.get_mut(&self.room) {
            m.members.remove(&self.participant_id);
            if m.members.is_empty() {
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

    /// Whether `role` with `ban_key` may come into `room` now: hosts may
    /// while it is locked, nobody who was banned may.
    pub fn admits(&self, room: &str, role: Role, ban_key: Option<&str>) -> Result<(), Shut> {
        let meetings = self.lock();
        let Some(m) = meetings.get(room) else {
            return Ok(());
        };
        if ban_key.is_some_and(|k| m.banned.contains(k)) {
            return Err(Shut::Banned);
        }
        if *m.locked.borrow() && !role.may_moderate() {
            return Err(Shut::Locked);
        }
        Ok(())
    }

    /// Whether anyone is in `room` (a seat held for a dropped connection
    /// counts).
    pub fn is_running(&self, room: &str) -> bool {
        self.lock().contains_key(room)
    }

    /// Whether someone who may moderate (a host) is in `room`.
    pub fn has_host(&self, room: &str) -> bool {
        self.lock()
            .get(room)
            .is_some_and(|m| m.members.values().any(|e| e.member.role.may_moderate()))
    }

    /// Seats a participant: the oneshot fires if it is to be ended, the
    /// watch says whether the meeting is locked.
    pub fn seat(
        &self,
        room: &str,
        participant_id: &str,
        member: Member,
    ) -> (Seat, oneshot::Receiver<Ended>, watch::Receiver<bool>) {
        let (tx, rx) = oneshot::channel();
        let mut meetings = self.lock();
        let m = meetings.entry(room.to_owned()).or_default();
        m.members.insert(
            participant_id.to_owned(),
            Entry {
                member,
                end: Some(tx),
            },
        );
        let locked = m.locked.subscribe();
        let seat = Seat {
            roster: self.clone(),
            room: room.to_owned(),
            participant_id: participant_id.to_owned(),
        };
        (seat, rx, locked)
    }

    /// Locks or unlocks a meeting; false if nobody is in it.
    pub fn set_locked(&self, room: &str, locked: bool) -> bool {
        let meetings = self.lock();
        let Some(m) = meetings.get(room) else {
            return false;
        };
        m.locked
            .send_if_modified(|l| std::mem::replace(l, locked) != locked);
        true
    }

    /// Keeps `participant_id`'s identity out of `room` from now on (while
    /// the meeting lasts); false if it has none to keep out.
    pub fn ban(&self, room: &str, participant_id: &str) -> bool {
        let mut meetings = self.lock();
        let Some(m) = meetings.get_mut(room) else {
            return false;
        };
        let Some(key) = m
            .members
            .get(participant_id)
            .and_then(|e| e.member.ban_key.clone())
        else {
            return false;
        };
        m.banned.insert(key);
        true
    }

    /// Every meeting with someone in it, and how many, by name.
    pub fn meetings(&self) -> Vec<(String, usize)> {
        let mut all: Vec<_> = self
            .lock()
            .iter()
            .map(|(room, m)| (room.clone(), m.members.len()))
            .collect();
        all.sort();
        all
    }

    /// A meeting's participants by id; `None` if nobody is in it.
    pub fn members(&self, room: &str) -> Option<Vec<(String, Member)>> {
        let meetings = self.lock();
        let members = &meetings.get(room)?.members;
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
            .and_then(|m| m.members.get_mut(participant_id))
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
        let Some(members) = meetings.get_mut(room).map(|m| &mut m.members) else {
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
            ban_key: Some(format!("invite:{name}")),
        }
    }

    #[test]
    fn seats_are_listed_until_dropped() {
        let roster = Roster::default();
        let (a, _, _) = roster.seat("standup", "p1", member("A"));
        let (b, _, _) = roster.seat("standup", "p2", member("B"));
        let (_c, _, _) = roster.seat("retro", "p3", member("C"));
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
        let (_a, mut a_end, _) = roster.seat("r", "p1", member("A"));
        let (_b, mut b_end, _) = roster.seat("r", "p2", member("B"));
        assert!(!roster.end("r", "nobody", Ended::Removed));
        assert!(!roster.end("other", "p1", Ended::Removed));
        assert!(roster.end("r", "p1", Ended::Removed));
        assert_eq!(a_end.try_recv(), Ok(Ended::Removed));
        assert_eq!(roster.end_all("r", Ended::MeetingClosed), 2);
        assert!(b_end.try_recv() == Ok(Ended::MeetingClosed));
    }

    #[test]
    fn hosts_lock_meetings_and_ban_identities_while_they_last() {
        let roster = Roster::default();
        let (host, _, _) = roster.seat("r", "h", member("H"));
        let (guest, _, mut locked) = roster.seat("r", "g", member("G"));
        assert_eq!(roster.admits("r", Role::Participant, Some("x")), Ok(()));
        assert!(roster.set_locked("r", true));
        assert!(locked.has_changed().unwrap() && *locked.borrow_and_update());
        assert_eq!(
            roster.admits("r", Role::Participant, None),
            Err(Shut::Locked)
        );
        assert_eq!(roster.admits("r", Role::Host, None), Ok(()));
        assert!(roster.set_locked("r", false));
        assert!(roster.ban("r", "g"));
        assert_eq!(
            roster.admits("r", Role::Host, Some("invite:G")),
            Err(Shut::Banned)
        );
        assert_eq!(
            roster.admits("r", Role::Participant, Some("invite:H")),
            Ok(())
        );
        // An empty meeting is forgotten, lock and bans with it.
        drop((host, guest));
        assert_eq!(
            roster.admits("r", Role::Participant, Some("invite:G")),
            Ok(())
        );
        assert!(!roster.set_locked("r", true));
    }
}
