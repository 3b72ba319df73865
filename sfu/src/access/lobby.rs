//! The lobby: people who knocked on a meeting (no invite link, no Matrix
//! membership, or the meeting is locked) and wait for a host to let them
//! in or not, and guests who wait for a host to come at all. Hosts'
//! sessions watch the list of who is waiting; a waiting session holds a
//! [`Ticket`] and learns the decision through it.
//!
//! Strangers (nobody vouched for them: no invite link, no Matrix identity,
//! and no open deployment that lets them wait for a host) are bounded per
//! address and meeting, and have a door of their own: however many
//! strangers knock, those whom a link or the Matrix room lets in and who
//! wait only because the meeting is locked (or for a host) still find room.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

/// Most strangers waiting at one meeting's door, and most others.
pub const MAX_WAITING: usize = 100;

/// Someone waiting, as hosts see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Knock {
    /// The lobby's id for them (not their participant id).
    pub id: String,
    pub name: String,
}

/// Why a knock found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LobbyFull {
    #[error("too many people are waiting to be let into this meeting; try again later")]
    Full,
    /// The stranger's address has as many waiting at this meeting as it
    /// may (`max_knocks_per_address`).
    #[error("too many people from your address are waiting to be let into this meeting; try again later")]
    Address,
}

struct Waiting {
    name: String,
    /// Let in as soon as a host comes.
    until_host: bool,
    /// A stranger's address.
    stranger: Option<IpAddr>,
    decide: oneshot::Sender<bool>,
}

/// Who knocks, as the lobby bounds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knocker {
    /// A stranger from this address, who may have so many waiting at one
    /// meeting from there.
    Stranger { ip: IpAddr, per_address: usize },
    /// Someone a link, the Matrix room or the deployment lets in, who waits
    /// for a host or for the lock to open.
    Vouched,
}

struct Door {
    waiting: BTreeMap<String, Waiting>,
    /// Who is waiting, for hosts' sessions.
    list: watch::Sender<Vec<Knock>>,
}

impl Door {
    fn publish(&self) {
        let list: Vec<Knock> = self
            .waiting
            .iter()
            .map(|(id, w)| Knock {
                id: id.clone(),
                name: w.name.clone(),
            })
            .collect();
        self.list.send_replace(list);
    }
}

#[derive(Clone, Default)]
pub struct Lobby {
    doors: Arc<Mutex<HashMap<String, Door>>>,
}

/// A place in a meeting's lobby; dropping it (the decision came, or the
/// knocker gave up) takes it out of the list.
pub struct Ticket {
    lobby: Lobby,
    room: String,
    id: String,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut doors = self.lobby.lock();
        if let Some(door) = doors.get_mut(&self.room) {
            if door.waiting.remove(&self.id).is_some() {
                door.publish();
            }
        }
        Lobby::sweep(&mut doors, &self.room);
    }
}

impl Lobby {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Door>> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.doors.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn door<'a>(doors: &'a mut HashMap<String, Door>, room: &str) -> &'a mut Door {
        doors.entry(room.to_owned()).or_insert_with(|| Door {
            waiting: BTreeMap::new(),
            list: watch::channel(Vec::new()).0,
        })
    }

    /// Whether anyone waits to be let into `room`.
    pub fn is_waiting(&self, room: &str) -> bool {
        self.lock().get(room).is_some_and(|d| !d.waiting.is_empty())
    }

    /// Forgets a door nobody waits at and no host watches.
    fn sweep(doors: &mut HashMap<String, Door>, room: &str) {
        if doors
            .get(room)
            .is_some_and(|d| d.waiting.is_empty() && d.list.receiver_count() == 0)
        {
            doors.remove(room);
        }
    }

    /// `name` knocks on `room`: a ticket while waiting, and the hosts'
    /// decision (true: come in) when it comes; `until_host`: the first
    /// host to come lets it in.
    pub fn knock(
        &self,
        room: &str,
        name: &str,
        until_host: bool,
        who: Knocker,
    ) -> Result<(Ticket, oneshot::Receiver<bool>), LobbyFull> {
        let mut doors = self.lock();
        let door = Self::door(&mut doors, room);
        let stranger = match who {
            Knocker::Stranger { ip, .. } => Some(ip),
            Knocker::Vouched => None,
        };
        let same_kind = door
            .waiting
            .values()
            .filter(|w| w.stranger.is_some() == stranger.is_some());
        if same_kind.count() >= MAX_WAITING {
            return Err(LobbyFull::Full);
        }
        if let Knocker::Stranger { ip, per_address } = who {
            let from_there = door.waiting.values().filter(|w| w.stranger == Some(ip));
            if from_there.count() >= per_address {
                return Err(LobbyFull::Address);
            }
        }
        let id = format!("{:016x}", rand::random::<u64>());
        let (tx, rx) = oneshot::channel();
        let waiting = Waiting {
            name: name.to_owned(),
            until_host,
            stranger,
            decide: tx,
        };
        door.waiting.insert(id.clone(), waiting);
        door.publish();
        let ticket = Ticket {
            lobby: self.clone(),
            room: room.to_owned(),
            id,
        };
        Ok((ticket, rx))
    }

    /// Who waits at `room`'s door, now and as it changes (for a host).
    pub fn watch(&self, room: &str) -> watch::Receiver<Vec<Knock>> {
        let mut doors = self.lock();
        // Doors that only departed hosts watched go now.
        doors.retain(|_, d| !d.waiting.is_empty() || d.list.receiver_count() > 0);
        Self::door(&mut doors, room).list.subscribe()
    }

    /// A host lets `id` in (or not); false if nobody by that id waits.
    pub fn decide(&self, room: &str, id: &str, admit: bool) -> bool {
        let mut doors = self.lock();
        let Some(door) = doors.get_mut(room) else {
            return false;
        };
        let Some(waiting) = door.waiting.remove(id) else {
            return false;
        };
        door.publish();
        // The knocker may have given up a moment ago.
        let _ = waiting.decide.send(admit);
        true
    }

    /// A host is in `room` now: everyone who waited only for that comes in.
    pub fn host_arrived(&self, room: &str) {
        let mut doors = self.lock();
        let Some(door) = doors.get_mut(room) else {
            return;
        };
        let waited: Vec<String> = door
            .waiting
            .iter()
            .filter(|(_, w)| w.until_host)
            .map(|(id, _)| id.clone())
            .collect();
        if waited.is_empty() {
            return;
        }
        for id in waited {
            if let Some(w) = door.waiting.remove(&id) {
                let _ = w.decide.send(true);
            }
        }
        door.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Knocker = Knocker::Vouched;

    fn stranger(ip: &str) -> Knocker {
        Knocker::Stranger {
            ip: ip.parse().unwrap(),
            per_address: 3,
        }
    }

    #[tokio::test]
    async fn hosts_see_who_knocks_and_let_them_in_or_not() {
        let lobby = Lobby::default();
        let mut hosts = lobby.watch("r");
        let (_ann, ann_in) = lobby.knock("r", "Ann", false, V).unwrap();
        let (bo, mut bo_in) = lobby.knock("r", "Bo", false, V).unwrap();
        assert!(hosts.has_changed().unwrap());
        let waiting = hosts.borrow_and_update().clone();
        assert_eq!(waiting.len(), 2);
        let ann_id = waiting.iter().find(|k| k.name == "Ann").unwrap().id.clone();
        assert!(lobby.decide("r", &ann_id, true));
        assert_eq!(ann_in.await, Ok(true));
        assert!(!lobby.decide("r", &ann_id, true), "decided once");
        assert_eq!(hosts.borrow_and_update().len(), 1);
        // Bo gives up: off the list, and no decision ever comes.
        drop(bo);
        assert!(hosts.borrow_and_update().is_empty());
        assert!(bo_in.try_recv().is_err());
        assert!(!lobby.decide("other", "x", true));
    }

    #[tokio::test]
    async fn a_host_coming_lets_in_those_who_waited_for_one() {
        let lobby = Lobby::default();
        let mut hosts = lobby.watch("r");
        let (_gus, gus_in) = lobby.knock("r", "Gus", true, V).unwrap();
        let (_sam, mut sam_in) = lobby.knock("r", "Sam", false, V).unwrap();
        lobby.host_arrived("other");
        lobby.host_arrived("r");
        assert_eq!(gus_in.await, Ok(true));
        assert!(
            sam_in.try_recv().is_err(),
            "a stranger still waits for a decision"
        );
        let waiting = hosts.borrow_and_update().clone();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].name, "Sam");
    }

    #[test]
    fn a_door_has_room_for_so_many_strangers_and_so_many_others() {
        let lobby = Lobby::default();
        let tickets: Vec<_> = (0..MAX_WAITING)
            .map(|i| {
                let ip = format!("192.0.2.{}", i % 50);
                lobby
                    .knock("r", &format!("n{i}"), false, stranger(&ip))
                    .unwrap()
            })
            .collect();
        let one_more = lobby.knock("r", "one more", false, stranger("192.0.2.99"));
        assert_eq!(one_more.err(), Some(LobbyFull::Full));
        // Strangers fill their door, not the one of those vouched for.
        let vouched: Vec<_> = (0..MAX_WAITING)
            .map(|i| lobby.knock("r", &format!("v{i}"), false, V).unwrap())
            .collect();
        assert_eq!(
            lobby.knock("r", "one more", false, V).err(),
            Some(LobbyFull::Full)
        );
        drop((tickets, vouched));
        assert!(lobby.doors.lock().unwrap().is_empty(), "an empty door goes");
    }

    #[test]
    fn one_address_has_so_many_strangers_waiting_at_one_meeting() {
        let lobby = Lobby::default();
        let mut here: Vec<_> = (0..3)
            .map(|_| lobby.knock("r", "x", false, stranger("192.0.2.1")).unwrap())
            .collect();
        let refused = lobby.knock("r", "x", false, stranger("192.0.2.1"));
        assert_eq!(refused.err(), Some(LobbyFull::Address));
        // Elsewhere, at another meeting, or vouched for: room.
        assert!(lobby.knock("r", "y", false, stranger("192.0.2.2")).is_ok());
        assert!(lobby.knock("s", "x", false, stranger("192.0.2.1")).is_ok());
        assert!(lobby.knock("r", "x", false, V).is_ok());
        // One of them gives up: one more may wait.
        here.pop();
        assert!(lobby.knock("r", "x", false, stranger("192.0.2.1")).is_ok());
    }
}
