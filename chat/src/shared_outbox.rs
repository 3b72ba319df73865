//! Where servers share meetings, a meeting's messages wait in the shared
//! outbox ([`ChatShare`]) instead of the server's own, so that what its
//! participants wrote outlives the server they wrote it on: the server
//! holding the meeting's sending (its owner, normally) sends them in
//! order, each once. A message another server may have sent before it
//! died is looked for in the room first (by the id it carries in its
//! content), since that server's transaction ids do not guard this one's
//! resends.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::{RoomId, UInt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bridge::Inner;
use crate::events::{ChatEvent, AUTHOR_KEY};
use crate::meeting::{Meeting, HISTORY};
use crate::outbox::SendError;
use crate::share::ChatShare;
use crate::store::Outgoing;
use crate::time::{RETRY_MAX, RETRY_MIN};
use crate::{lock, ChatError};

/// How often a meeting's outbox is tried again while another server
/// still holds its sending.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Events of the room looked through for a message that may be there
/// (as many as a meeting's history keeps).
const LOOK_BACK: u32 = HISTORY as u32;
/// Where a meeting message carries its outbox id (in its author).
pub(crate) const TXN_KEY: &str = "txn";

/// The outbox id a meeting message the bridge relayed carries, if any.
pub(crate) fn relay_txn(event: &Value) -> Option<&str> {
    event
        .get("content")?
        .get(AUTHOR_KEY)?
        .get(TXN_KEY)?
        .as_str()
}

/// A meeting message waiting in the shared outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    seq: i64,
    room_id: String,
    content: String,
    txn_id: String,
    person: Option<String>,
}

impl Item {
    /// The id the meeting shows it under until it is sent.
    fn pending_id(&self) -> String {
        format!("local-s{}", self.seq)
    }

    fn outgoing(&self, meeting: &str) -> Outgoing {
        Outgoing {
            seq: self.seq,
            room_id: self.room_id.clone(),
            event_type: "m.room.message".into(),
            state_key: None,
            content: self.content.clone(),
            txn_id: self.txn_id.clone(),
            meeting: Some(meeting.to_owned()),
            person: self.person.clone(),
        }
    }

    /// As the meeting shows it while it waits.
    fn pending(&self, since_ms: u64) -> Option<ChatEvent> {
        let content: Value = serde_json::from_str(&self.content).ok()?;
        let author = content.get(AUTHOR_KEY)?;
        let field = |k: &str| author.get(k).and_then(Value::as_str).unwrap_or_default();
        Some(ChatEvent::Message {
            id: self.pending_id(),
            sender: field("user_id").to_owned(),
            name: field("name").to_owned(),
            body: field("text").to_owned(),
            ts: since_ms,
            reply_to: None,
            pending: true,
        })
    }
}

/// Why a meeting's outbox is stuck for now.
#[derive(Debug, thiserror::Error)]
enum Stuck {
    #[error("{0}")]
    Redis(String),
    #[error("homeserver: {0}")]
    Homeserver(String),
}

impl Stuck {
    fn redis(e: crate::ShareError) -> Self {
        Stuck::Redis(e.to_string())
    }
}

impl Inner {
    /// Queues a meeting message (`content`, in room `room_id`) in the
    /// shared outbox; returns the id it is shown under until sent, and its
    /// outbox id.
    pub(crate) async fn post_shared(
        &self,
        share: &dyn ChatShare,
        meeting: &str,
        room_id: &str,
        mut content: Value,
        person: Option<String>,
    ) -> Result<(String, String), ChatError> {
        let seq = share.next_seq().await?;
        let txn_id = format!("{}s{seq}-{:08x}", self.txn_prefix, rand::random::<u32>());
        content[AUTHOR_KEY][TXN_KEY] = Value::String(txn_id.clone());
        let item = Item {
            seq,
            room_id: room_id.to_owned(),
            content: content.to_string(),
            txn_id,
            person,
        };
        let json = serde_json::to_string(&item).expect("an outbox item serializes");
        let bound = self.config.max_outbox_per_meeting;
        share
            .outbox_push(meeting, &json, bound)
            .await?
            .map_err(ChatError::Backlog)?;
        Ok((item.pending_id(), item.txn_id))
    }

    /// `meeting`'s shared outbox may hold something to send.
    pub(crate) fn mark_unsent(&self, meeting: &str) {
        lock(&self.unsent).insert(meeting.to_owned());
        self.shared_wake.notify_one();
    }

    /// On duty: every meeting whose shared outbox holds something is
    /// tried, so that what a meeting's dead server left is sent even if
    /// the meeting does not go on anywhere (where it goes on, its server
    /// holds the sending and this one leaves it).
    pub(crate) async fn sweep_outboxes(&self, share: &dyn ChatShare) {
        match share.outbox_meetings().await {
            Ok(meetings) if !meetings.is_empty() => {
                lock(&self.unsent).extend(meetings);
                self.shared_wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read which meetings' messages wait"),
        }
    }

    /// Shows in `m` what waits for it in the shared outbox (written on
    /// another server that carried it before), leaving out what the room
    /// has already (`sent`: its outbox ids); whether anything waits there
    /// at all.
    pub(crate) async fn show_waiting(
        &self,
        share: &dyn ChatShare,
        m: &Meeting,
        meeting: &str,
        sent: &HashSet<String>,
    ) -> Result<bool, ChatError> {
        let waiting = share.outbox_waiting(meeting, HISTORY as u32).await?;
        let items = waiting
            .iter()
            .filter_map(|raw| serde_json::from_str::<Item>(raw).ok())
            .filter(|item| !sent.contains(&item.txn_id));
        for item in items {
            if let Some(event) = item.pending(m.since_ms) {
                m.push(event);
                m.waits(&item.txn_id, &item.pending_id());
            }
        }
        Ok(!waiting.is_empty())
    }

    /// Sends the shared outboxes of the meetings open here that may hold
    /// something (a message queued here, or left by the server that
    /// carried the meeting before), until the process ends.
    pub(crate) async fn shared_outbox(self: Arc<Self>, share: Arc<dyn ChatShare>) {
        let mut backoff = RETRY_MIN;
        loop {
            // Those open here, and for the server on duty those nobody
            // sends (see `sweep_outboxes`); taken before sending, so that
            // a message queued meanwhile marks its meeting again.
            let on_duty = self.on_duty();
            let unsent: Vec<String> = std::mem::take(&mut *lock(&self.unsent))
                .into_iter()
                .filter(|name| on_duty || lock(&self.meetings).contains_key(name))
                .collect();
            let (mut failing, mut homeserver_failing, mut sent) = (false, false, false);
            for meeting in unsent {
                match self.send_shared(share.as_ref(), &meeting).await {
                    Ok((any, done)) => {
                        sent |= any;
                        // Another server still sends it (it carried the
                        // meeting a moment ago): ours once its lease lapses.
                        if !done {
                            lock(&self.unsent).insert(meeting);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot send a meeting's chat messages; will retry");
                        lock(&self.unsent).insert(meeting);
                        failing = true;
                        homeserver_failing |= matches!(e, Stuck::Homeserver(_));
                    }
                }
            }
            // What this loop learnt of the homeserver (the other outbox
            // says what it learns too; Redis has its own metric).
            if homeserver_failing || sent {
                self.set_send_ok(!homeserver_failing);
            }
            let wait = if failing {
                backoff = (backoff * 2).min(RETRY_MAX);
                backoff
            } else {
                backoff = RETRY_MIN;
                LOOK_EVERY
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shared_wake.notified() => {}
            }
        }
    }

    /// Sends `meeting`'s shared outbox in order until it is empty, while
    /// this server holds its sending (asked before each message, so that
    /// a lease lost on the way stops it); whether it sent anything, and
    /// whether it got to the end.
    async fn send_shared(
        &self,
        share: &dyn ChatShare,
        meeting: &str,
    ) -> Result<(bool, bool), Stuck> {
        let mut sent = false;
        loop {
            if !share.outbox_claim(meeting).await.map_err(Stuck::redis)? {
                return Ok((sent, false));
            }
            let waiting = share
                .outbox_waiting(meeting, 1)
                .await
                .map_err(Stuck::redis)?;
            let Some(raw) = waiting.into_iter().next() else {
                return Ok((sent, true));
            };
            let Ok(item) = serde_json::from_str::<Item>(&raw) else {
                tracing::error!("an unreadable item in a meeting's shared outbox; dropped");
                share
                    .outbox_pop(meeting, &raw)
                    .await
                    .map_err(Stuck::redis)?;
                continue;
            };
            // Queued by another server, which may have sent it already.
            let there = if item.txn_id.starts_with(&self.txn_prefix) {
                None
            } else {
                self.in_room(&item).await?
            };
            let event_id = match there {
                Some(id) => Some(id),
                None => match self.send(&item.outgoing(meeting)).await {
                    Ok(id) => id,
                    Err(SendError::Permanent(e)) => {
                        tracing::error!(error = %e, "homeserver refused a chat message; dropped");
                        None
                    }
                    Err(SendError::Transient(e)) => return Err(Stuck::Homeserver(e)),
                },
            };
            share
                .outbox_pop(meeting, &raw)
                .await
                .map_err(Stuck::redis)?;
            self.announce(meeting, item.pending_id(), event_id);
            sent = true;
        }
    }

    /// The event that carries `item`, if it is among the room's latest.
    async fn in_room(&self, item: &Item) -> Result<Option<String>, Stuck> {
        let room_id = RoomId::parse(&item.room_id).map_err(|e| Stuck::Homeserver(e.to_string()))?;
        // Not synced here yet (just started): asked again later, rather
        // than sent again blind.
        let Some(room) = self.client.get_room(&room_id) else {
            return Err(Stuck::Homeserver(format!(
                "room {room_id} is not known here yet"
            )));
        };
        let mut options = MessagesOptions::backward();
        options.limit = UInt::from(LOOK_BACK);
        let page = room
            .messages(options)
            .await
            .map_err(|e| Stuck::Homeserver(e.to_string()))?;
        Ok(page.chunk.iter().find_map(|e| {
            let v: Value = e.raw().deserialize_as().ok()?;
            let txn = v.get("content")?.get(AUTHOR_KEY)?.get(TXN_KEY)?.as_str()?;
            (txn == item.txn_id).then(|| v.get("event_id")?.as_str().map(str::to_owned))?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_waiting_item_shows_as_its_author_wrote_it() {
        let content = json!({"msgtype": "m.text", "body": "Ada: hi",
            AUTHOR_KEY: {"name": "Ada", "user_id": null, "text": "hi", TXN_KEY: "t1"}});
        let item = Item {
            seq: 7,
            room_id: "!r:hs".into(),
            content: content.to_string(),
            txn_id: "t1".into(),
            person: None,
        };
        assert_eq!(
            item.pending(5),
            Some(ChatEvent::Message {
                id: "local-s7".into(),
                sender: String::new(),
                name: "Ada".into(),
                body: "hi".into(),
                ts: 5,
                reply_to: None,
                pending: true,
            })
        );
        assert_eq!(item.outgoing("m").meeting.as_deref(), Some("m"));
    }
}
