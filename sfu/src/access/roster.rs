//! Who is in which meeting, as the shell sees it: one entry per joined
//! signalling session, whatever its protocol, with a way to end that
//! session; and what hosts decided about who else may come in (the lock
//! and the bans), for as long as someone is in the meeting. The admin API
//! and hosts act on it; the media workers keep their own state and never
//! wait on this.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
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
    /// What a ban keeps out (see [`ban_keys`]).
    pub ban_keys: Vec<String>,
}

/// What a host's ban of a participant keeps out of the meeting: a Matrix
/// user by their id; a guest by the invite link they came with (`invite`:
/// its id); a stranger (neither) by this session's own key (so that its
/// held seat cannot be taken back) and by their address, which is all
/// that tells them from the next stranger: they cannot knock again from
/// there (anonymous joins only are checked by it, see [`entry_keys`]).
/// Whoever came with a link or an identity is kept out by that alone, so
/// that their ban shuts out nobody else who shares their address.
pub fn ban_keys(
    user: Option<&str>,
    invite: Option<&str>,
    session: &str,
    ip: IpAddr,
) -> Vec<String> {
    match (user, invite) {
        (Some(user), _) => vec![format!("user:{user}")],
        (None, Some(invite)) => vec![format!("invite:{invite}")],
        (None, None) => vec![format!("guest:{session}"), address_key(ip)],
    }
}

/// What a new join is checked against: its identity, its link, or for an
/// anonymous one (nobody vouched for it) its address. Someone behind the
/// same address as a banned stranger still gets in with a link or a
/// Matrix identity.
pub fn entry_keys(user: Option<&str>, invite: Option<&str>, ip: IpAddr) -> Vec<String> {
    match (user, invite) {
        (Some(user), _) => vec![format!("user:{user}")],
        (None, Some(invite)) => vec![format!("invite:{invite}")],
        (None, None) => vec![address_key(ip)],
    }
}

/// What a join back to a held seat is checked against: the seat's own
/// keys, not its address (it was let in; others share the address).
pub fn seat_keys(ban_keys: &[String]) -> Vec<String> {
    ban_keys
        .iter()
        .filter(|k| !k.starts_with(ADDRESS))
        .cloned()
        .collect()
}

const ADDRESS: &str = "address:";

fn address_key(ip: IpAddr) -> String {
    format!("{ADDRESS}{ip}")
}

/// Why a session was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// An administrator removed the participant.
    Removed,
    /// An administrator or a host closed the meeting.
    MeetingClosed,
    /// Another server holds the meeting now (several servers sharing
    /// them): the client comes back through the normal path, to it.
    Moved,
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

    /// Whether `role` with `keys` (see [`entry_keys`]) may come into `room`
    /// now: hosts may while it is locked, nobody who was banned may.
    pub fn admits(&self, room: &str, role: Role, keys: &[String]) -> Result<(), Shut> {
        let meetings = self.lock();
        let Some(m) = meetings.get(room) else {
            return Ok(());
        };
        if keys.iter().any(|k| m.banned.contains(k)) {
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

    /// Keeps `participant_id` out of `room` from now on (while the
    /// meeting lasts, see [`ban_keys`]): the keys banned, `None` if it is
    /// not in `room`.
    pub fn ban(&self, room: &str, participant_id: &str) -> Option<Vec<String>> {
        let mut meetings = self.lock();
        let m = meetings.get_mut(room)?;
        let keys = m.members.get(participant_id)?.member.ban_keys.clone();
        m.banned.extend(keys.iter().cloned());
        Some(keys)
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
            ban_keys: vec![format!("invite:{name}")],
        }
    }

    fn keys(k: &str) -> Vec<String> {
        vec![k.to_owned()]
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
        assert_eq!(roster.admits("r", Role::Participant, &keys("x")), Ok(()));
        assert!(roster.set_locked("r", true));
        assert!(locked.has_changed().unwrap() && *locked.borrow_and_update());
        assert_eq!(
            roster.admits("r", Role::Participant, &[]),
            Err(Shut::Locked)
        );
        assert_eq!(roster.admits("r", Role::Host, &[]), Ok(()));
        assert!(roster.set_locked("r", false));
        assert!(roster.ban("r", "g").is_some());
        assert_eq!(
            roster.admits("r", Role::Host, &keys("invite:G")),
            Err(Shut::Banned)
        );
        assert_eq!(
            roster.admits("r", Role::Participant, &keys("invite:H")),
            Ok(())
        );
        assert!(roster.ban("r", "nobody").is_none());
        // An empty meeting is forgotten, lock and bans with it.
        drop((host, guest));
        assert_eq!(
            roster.admits("r", Role::Participant, &keys("invite:G")),
            Ok(())
        );
        assert!(!roster.set_locked("r", true));
    }

    #[test]
    fn a_banned_guest_is_kept_out_by_link_session_or_address() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let roster = Roster::default();
        let (_host, _, _) = roster.seat("r", "h", member("H"));
        let stranger = Member {
            ban_keys: ban_keys(None, None, "s1", ip),
            ..member("S")
        };
        let (_s, _, _) = roster.seat("r", "s", stranger);
        assert!(roster.ban("r", "s").is_some());
        let shut = |keys: Vec<String>| roster.admits("r", Role::Participant, &keys);
        // Knocking again from there, or back to the seat it held.
        assert_eq!(shut(entry_keys(None, None, ip)), Err(Shut::Banned));
        let seat = seat_keys(&ban_keys(None, None, "s1", other));
        assert_eq!(shut(seat), Err(Shut::Banned));
        // Elsewhere, or vouched for from the same address: in.
        assert_eq!(shut(entry_keys(None, None, other)), Ok(()));
        assert_eq!(shut(entry_keys(None, Some("link"), ip)), Ok(()));
        assert_eq!(shut(entry_keys(Some("@a:hs"), None, ip)), Ok(()));
        // Another stranger's seat from that address is not theirs.
        assert_eq!(shut(seat_keys(&ban_keys(None, None, "s2", ip))), Ok(()));

        // A guest banned by their link: strangers from their address may
        // still knock.
        let (_g, _, _) = roster.seat(
            "r",
            "g",
            Member {
                ban_keys: ban_keys(None, Some("link"), "g1", other),
                ..member("G")
            },
        );
        assert!(roster.ban("r", "g").is_some());
        assert_eq!(
            shut(entry_keys(None, Some("link"), other)),
            Err(Shut::Banned)
        );
        assert_eq!(shut(entry_keys(None, None, other)), Ok(()));
    }
}
