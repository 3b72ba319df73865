//! One open meeting's chat: its room, the history kept for late joiners,
//! and the broadcast its participants' sessions listen to.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use matrix_sdk::ruma::OwnedRoomId;
use tokio::sync::broadcast;

use crate::events::ChatEvent;
use crate::lock;

/// Events kept per meeting for participants who join later.
pub(crate) const HISTORY: usize = 500;
/// Room events a slow participant may fall behind by before missing some.
const BROADCAST_CAPACITY: usize = 256;
/// What a participant's session receives from its meeting's room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetingEvent {
    Chat(ChatEvent),
    /// This Matrix user left, was kicked or banned, or their invitation
    /// was withdrawn or declined.
    MemberGone(String),
    /// Power levels changed, or room events may have been missed (a gap
    /// in the bot's timeline): Matrix users ask [`Chat::member`] again.
    Recheck,
}

/// A participant's view of a meeting's chat, taken at join.
pub struct MeetingChat {
    pub room_id: String,
    pub room_alias: Option<String>,
    /// Everything since the meeting opened here, oldest first.
    pub history: Vec<ChatEvent>,
    pub events: broadcast::Receiver<MeetingEvent>,
}

pub(crate) struct Meeting {
    pub(crate) room_id: OwnedRoomId,
    pub(crate) alias: Option<String>,
    /// Room events older than this are from before the meeting.
    pub(crate) since_ms: u64,
    pub(crate) tx: broadcast::Sender<MeetingEvent>,
    pub(crate) history: Mutex<VecDeque<ChatEvent>>,
    /// Who sent the messages and reactions shown: only they may edit, only
    /// they (or moderators) delete.
    senders: Mutex<HashMap<String, String>>,
    /// Since when no participant listens; the meeting is closed after a while.
    pub(crate) idle_since: Mutex<Option<Instant>>,
    /// When it was opened here.
    pub(crate) opened: Instant,
    /// Its messages shown pending that wait in the shared outbox: their
    /// pending ids by outbox id. Whichever server sends one, its relay in
    /// the room marks it delivered here.
    waiting: Mutex<HashMap<String, String>>,
}

impl Meeting {
    /// `since_ms`: when its chat began (here, or on the server that
    /// carried it before).
    pub(crate) fn new(room_id: OwnedRoomId, alias: Option<String>, since_ms: u64) -> Self {
        Self {
            room_id,
            alias,
            since_ms,
            tx: broadcast::channel(BROADCAST_CAPACITY).0,
            history: Mutex::new(VecDeque::new()),
            senders: Mutex::new(HashMap::new()),
            idle_since: Mutex::new(None),
            opened: Instant::now(),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// Its message shown as `pending_id` waits in the shared outbox as
    /// `txn`.
    pub(crate) fn waits(&self, txn: &str, pending_id: &str) {
        lock(&self.waiting).insert(txn.to_owned(), pending_id.to_owned());
    }

    /// The message that waited as `txn` is in the room as `event_id`:
    /// shown delivered, unless it was already.
    pub(crate) fn relayed(&self, txn: &str, event_id: &str) {
        let Some(local_id) = lock(&self.waiting).remove(txn) else {
            return;
        };
        self.record_sender(event_id, "");
        self.push(ChatEvent::Delivered {
            local_id,
            id: event_id.to_owned(),
        });
    }

    /// Its message shown as `pending_id` was sent (or refused) here.
    pub(crate) fn settled(&self, pending_id: &str) {
        lock(&self.waiting).retain(|_, p| p != pending_id);
    }

    pub(crate) fn record_sender(&self, event_id: &str, sender: &str) {
        let mut senders = lock(&self.senders);
        if senders.len() >= 4 * HISTORY {
            senders.clear(); // older than any history shown
        }
        senders.insert(event_id.to_owned(), sender.to_owned());
    }

    pub(crate) fn sender_of(&self, event_id: &str) -> Option<String> {
        lock(&self.senders).get(event_id).cloned()
    }

    pub(crate) fn history(&self) -> Vec<ChatEvent> {
        lock(&self.history).iter().cloned().collect()
    }

    /// Records and broadcasts under one lock, so a joining participant's
    /// history snapshot and subscription neither miss nor repeat an event.
    pub(crate) fn push(&self, event: ChatEvent) {
        let mut history = lock(&self.history);
        // A room event read back from the room and synced too (a meeting
        // that moved here) is shown once.
        if let ChatEvent::Message { id, .. } | ChatEvent::Reaction { id, .. } = &event {
            if history.iter().any(|e| known_id(e) == Some(id)) {
                return;
            }
        }
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(event.clone());
        let _ = self.tx.send(MeetingEvent::Chat(event));
    }

    pub(crate) fn subscribe(&self) -> MeetingChat {
        let history = lock(&self.history);
        MeetingChat {
            room_id: self.room_id.to_string(),
            room_alias: self.alias.clone(),
            history: history.iter().cloned().collect(),
            events: self.tx.subscribe(),
        }
    }
}

/// The room event id a history entry stands for, if any.
fn known_id(event: &ChatEvent) -> Option<&String> {
    match event {
        ChatEvent::Message { id, .. } | ChatEvent::Reaction { id, .. } => Some(id),
        ChatEvent::Delivered { id, .. } => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, pending: bool) -> ChatEvent {
        ChatEvent::Message {
            id: id.into(),
            sender: String::new(),
            name: "Ada".into(),
            body: "hi".into(),
            ts: 1,
            reply_to: None,
            pending,
        }
    }

    #[test]
    fn a_room_event_is_shown_once() {
        let m = Meeting::new(OwnedRoomId::try_from("!r:hs").unwrap(), None, 0);
        m.push(message("$a", false));
        m.push(message("local-s1", true));
        m.push(ChatEvent::Delivered {
            local_id: "local-s1".into(),
            id: "$b".into(),
        });
        // Read back from the room after being synced, or after its delivery.
        m.push(message("$a", false));
        m.push(message("$b", false));
        m.push(message("$c", false));
        assert_eq!(m.history().len(), 4);
    }
}
