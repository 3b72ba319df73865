//! A meeting's history read back from its room, for a server that takes
//! over a meeting another one carried (it failed, or was drained): what
//! was said since the meeting's chat began, the meeting's own messages
//! (relayed by the bot or written by ghosts) and the room's alike.

use std::collections::{HashMap, HashSet};

use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::UInt;
use serde_json::Value;

use crate::bridge::Inner;
use crate::events::{convert, ChatEvent, RoomEvent, AUTHOR_KEY};
use crate::meeting::{Meeting, HISTORY};
use crate::shared_outbox::relay_txn;
use crate::sync::{display_name, is_bridge_user, may_apply};

/// Events asked for per page of the room's timeline.
const PAGE: u32 = 100;
/// Most of the room's events read for a meeting's history: state and call
/// membership are among them, and the meeting keeps the last [`HISTORY`]
/// of its chat events.
pub(crate) const MAX_EVENTS: usize = 4 * HISTORY;
/// The room's events read again once the meeting is open, for those that
/// came while its history was read (shown once: see `Meeting::push`).
pub(crate) const CATCH_UP: usize = PAGE as usize;

impl Inner {
    /// Fills `m`'s history with its room's events since its chat began,
    /// oldest first; returns the outbox ids its meeting messages carry
    /// (sent, though perhaps still in the outbox). What cannot be read
    /// (the homeserver is away) is left out, with a warning: the meeting
    /// goes on without it.
    /// At most `max_events` of the room's latest events are read.
    pub(crate) async fn load_history(&self, m: &Meeting, max_events: usize) -> HashSet<String> {
        let mut sent = HashSet::new();
        let (Some(room), Some(bot)) = (self.client.get_room(&m.room_id), self.client.user_id())
        else {
            return sent;
        };
        let bot = bot.to_string();
        let mut events: Vec<Value> = Vec::new();
        let mut from: Option<String> = None;
        'pages: loop {
            let mut options = MessagesOptions::backward().from(from.as_deref());
            options.limit = UInt::from(PAGE);
            let page = match room.messages(options).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(room_id = %m.room_id, error = %e, "cannot read the meeting's history from its room");
                    break;
                }
            };
            for event in &page.chunk {
                let Ok(v) = event.raw().deserialize_as::<Value>() else {
                    continue;
                };
                let ts = v
                    .get("origin_server_ts")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if ts < m.since_ms || events.len() == max_events {
                    break 'pages;
                }
                events.push(v);
            }
            match page.end {
                Some(end) if !page.chunk.is_empty() => from = Some(end),
                _ => break,
            }
        }
        events.reverse();
        let mut names = HashMap::new();
        for sender in events.iter().filter_map(|e| e.get("sender")?.as_str()) {
            if !names.contains_key(sender) {
                names.insert(sender.to_owned(), display_name(&room, sender).await);
            }
        }
        let ours = |u: &str| is_bridge_user(u, &bot, self.ghosts.as_ref());
        for v in &events {
            let sender = v.get("sender").and_then(Value::as_str).unwrap_or_default();
            let name_of = |u: &str| names.get(u).cloned().unwrap_or_else(|| u.to_owned());
            let from_bridge = ours(sender);
            if let (true, Some(txn)) = (from_bridge, relay_txn(v)) {
                sent.insert(txn.to_owned());
            }
            let event = if from_bridge {
                relayed(v)
            } else {
                match convert(v, ours, name_of) {
                    Some(RoomEvent::Chat(e)) => Some(e),
                    _ => None,
                }
            };
            let Some(event) = event else {
                continue;
            };
            if !may_apply(m, Some(&room), &event, sender).await {
                continue;
            }
            if let ChatEvent::Message { id, .. } | ChatEvent::Reaction { id, .. } = &event {
                // A relay is the bridge's: no Matrix user may edit it.
                m.record_sender(id, if from_bridge { "" } else { sender });
            }
            m.push(event);
        }
        sent
    }
}

/// A meeting's message as the bridge relayed it (by the bot or a ghost),
/// with its author as the meeting knew them.
fn relayed(event: &Value) -> Option<ChatEvent> {
    let author = event.get("content")?.get(AUTHOR_KEY)?;
    let field = |k: &str| author.get(k).and_then(Value::as_str);
    Some(ChatEvent::Message {
        id: event.get("event_id")?.as_str()?.to_owned(),
        sender: field("user_id").unwrap_or_default().to_owned(),
        name: field("name").unwrap_or_default().to_owned(),
        body: field("text")?.to_owned(),
        ts: event.get("origin_server_ts").and_then(Value::as_u64)?,
        reply_to: None,
        pending: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_relay_is_the_meeting_message_it_carries() {
        let event = json!({
            "type": "m.room.message", "sender": "@meetbot:hs", "event_id": "$e",
            "origin_server_ts": 1234,
            "content": {"msgtype": "m.text", "body": "Ada: hi",
                AUTHOR_KEY: {"name": "Ada", "user_id": "@ada:hs", "text": "hi"}},
        });
        assert_eq!(
            relayed(&event),
            Some(ChatEvent::Message {
                id: "$e".into(),
                sender: "@ada:hs".into(),
                name: "Ada".into(),
                body: "hi".into(),
                ts: 1234,
                reply_to: None,
                pending: false,
            })
        );
        let notice = json!({"type": "m.room.message", "sender": "@meetbot:hs", "event_id": "$n",
            "origin_server_ts": 1, "content": {"msgtype": "m.notice", "body": "Meeting: …"}});
        assert_eq!(
            relayed(&notice),
            None,
            "the bot's own notices are not the meeting's"
        );
    }
}
