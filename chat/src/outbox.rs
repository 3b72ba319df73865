//! The outbox: meeting messages queued on disk and sent to their rooms in order, once each.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use matrix_sdk::ruma::api::client::message::send_message_event;
use matrix_sdk::ruma::api::client::state::send_state_event;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::RoomId;
use serde_json::{json, Value};

use crate::bridge::{Chat, Inner};
use crate::events::escape_html;
use crate::events::{ChatEvent, AUTHOR_KEY};
use crate::ghosts::{Bot, GhostError};
use crate::store::{Outgoing, Queued};
use crate::time::{now_ms, RETRY_MAX, RETRY_MIN};
use crate::{lock, ChatError, MAX_MESSAGE_CHARS};

/// Who wrote a message in a meeting.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    /// Set for participants signed in with a Matrix identity.
    pub user_id: Option<String>,
    /// The person, for a ghost user of their own; `None` for an anonymous
    /// guest, whose words the bot relays (no account is made for them).
    person: Option<String>,
}

impl Author {
    /// A participant signed in as Matrix user `user_id`: one ghost per
    /// Matrix user.
    pub fn matrix(name: &str, user_id: &str) -> Self {
        Self {
            name: name.to_owned(),
            user_id: Some(user_id.to_owned()),
            person: Some(format!("matrix:{user_id}")),
        }
    }

    /// A guest admitted with an invite link, in session `participant_id`:
    /// a ghost per visit, since a link may be passed on and nothing tells
    /// its holders apart.
    pub fn invited(name: &str, participant_id: &str) -> Self {
        Self {
            name: name.to_owned(),
            user_id: None,
            person: Some(format!("guest:{participant_id}")),
        }
    }

    /// A guest let in by the deployment's openness alone.
    pub fn anonymous(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            user_id: None,
            person: None,
        }
    }
}

impl Chat {
    /// Queues a message from a meeting participant for the room; it is on
    /// disk and shown (pending) in the meeting when this returns.
    pub async fn post(&self, meeting: &str, author: &Author, text: &str) -> Result<(), ChatError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ChatError::Invalid(format!(
                "a message has 1 to {MAX_MESSAGE_CHARS} characters"
            )));
        }
        let m = lock(&self.inner.meetings)
            .get(meeting)
            .cloned()
            .ok_or_else(|| ChatError::NoMeeting(meeting.to_owned()))?;
        let content = json!({
            "msgtype": "m.text",
            "body": format!("{}: {}", author.name, text),
            "format": "org.matrix.custom.html",
            "formatted_body": format!("<strong>{}</strong>: {}", escape_html(&author.name), escape_html(text)),
            // The plain text too: a ghost user sends it without the name.
            AUTHOR_KEY: { "name": author.name, "user_id": author.user_id, "text": text },
        });
        // Kept beside the event, never sent: whose ghost writes it.
        let person = author.person.clone();
        let (pending_id, txn) = match &self.inner.share {
            // Where servers share meetings, in the shared outbox, so that
            // it outlives this server.
            Some(share) => {
                let (id, txn) = self
                    .inner
                    .post_shared(share.as_ref(), meeting, m.room_id.as_str(), content, person)
                    .await?;
                (id, Some(txn))
            }
            None => {
                let id = self
                    .post_here(meeting, m.room_id.as_str(), content, person)
                    .await?;
                (id, None)
            }
        };
        if let Some(txn) = &txn {
            m.waits(txn, &pending_id);
        }
        m.push(ChatEvent::Message {
            id: pending_id,
            sender: author.user_id.clone().unwrap_or_default(),
            name: author.name.clone(),
            body: text.to_owned(),
            ts: now_ms(),
            reply_to: None,
            pending: true,
        });
        // Woken only now, so that its delivery follows it.
        match &self.inner.share {
            Some(_) => self.inner.mark_unsent(meeting),
            None => self.inner.outbox_wake.notify_one(),
        }
        Ok(())
    }

    /// Queues a meeting message in this server's outbox (on disk);
    /// returns the id it is shown under until sent.
    async fn post_here(
        &self,
        meeting: &str,
        room_id: &str,
        content: Value,
        person: Option<String>,
    ) -> Result<String, ChatError> {
        // The write waits for the disk (synchronous=FULL): off the runtime.
        let (inner, room_id, meeting_name) =
            (self.inner.clone(), room_id.to_owned(), meeting.to_owned());
        let bound = self.inner.config.max_outbox_per_meeting;
        let seq = tokio::task::spawn_blocking(move || {
            // Counted, not reserved: posts at the same moment may pass it by
            // a few, which bounds the disk all the same.
            let waiting = inner.store.outbox_len_for(&meeting_name)?;
            if waiting >= bound {
                return Err(ChatError::Backlog(waiting));
            }
            let content = content.to_string();
            let event = Queued {
                meeting: Some(&meeting_name),
                person: person.as_deref(),
                ..Queued::new(&room_id, "m.room.message", None, &content)
            };
            inner.store.enqueue(&inner.txn_prefix, &event)
        })
        .await
        .map_err(|e| ChatError::Invalid(format!("writing the outbox: {e}")))??;
        Ok(local_id(seq))
    }
}

impl Inner {
    pub(crate) fn enqueue(
        &self,
        room_id: &str,
        event_type: &str,
        state_key: Option<&str>,
        content: &Value,
        meeting: Option<&str>,
    ) -> Result<(), ChatError> {
        let content = content.to_string();
        let event = Queued {
            meeting,
            ..Queued::new(room_id, event_type, state_key, &content)
        };
        self.store.enqueue(&self.txn_prefix, &event)?;
        self.outbox_wake.notify_one();
        Ok(())
    }

    /// Sends the outbox in order, one event at a time, until the process
    /// ends; an event leaves the outbox only once the homeserver took it.
    pub(crate) async fn outbox(self: Arc<Self>) {
        let mut backoff = RETRY_MIN;
        loop {
            let next = match self.store.first() {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the chat outbox");
                    tokio::time::sleep(RETRY_MAX).await;
                    continue;
                }
            };
            let Some(item) = next else {
                self.set_send_ok(true);
                self.outbox_wake.notified().await;
                continue;
            };
            match self.send(&item).await {
                Ok(event_id) => {
                    backoff = RETRY_MIN;
                    self.set_send_ok(true);
                    self.delivered(&item, event_id);
                }
                Err(SendError::Permanent(e)) => {
                    tracing::error!(seq = item.seq, error = %e, "homeserver refused a chat event; dropped");
                    self.delivered(&item, None);
                }
                Err(SendError::Transient(e)) => {
                    tracing::warn!(error = %e, "cannot send chat event; will retry");
                    self.set_send_ok(false);
                    // The sync loop wakes us as soon as the homeserver is back.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.outbox_wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn delivered(&self, item: &Outgoing, event_id: Option<String>) {
        if let Err(e) = self.store.remove(item.seq) {
            tracing::error!(error = %e, "cannot remove a sent event from the outbox");
        }
        if let Some(meeting) = &item.meeting {
            self.announce(meeting, local_id(item.seq), event_id);
        }
    }

    /// Tells the meeting (if open here) that its message shown pending as
    /// `local_id` reached the room as `event_id`, or never will (`None`).
    pub(crate) fn announce(&self, meeting: &str, local_id: String, event_id: Option<String>) {
        if event_id.is_some() {
            self.to_matrix.fetch_add(1, Ordering::Relaxed);
        }
        let meeting = lock(&self.meetings).get(meeting).cloned();
        if let Some(m) = meeting {
            m.settled(&local_id);
            m.push(match event_id {
                Some(id) => {
                    // Sent by the bridge: no Matrix user may edit it.
                    m.record_sender(&id, "");
                    ChatEvent::Delivered { local_id, id }
                }
                None => ChatEvent::Failed { local_id },
            });
        }
    }

    pub(crate) async fn send(&self, item: &Outgoing) -> Result<Option<String>, SendError> {
        let room_id = RoomId::parse(&item.room_id)
            .map_err(|e| SendError::Permanent(format!("room id: {e}")))?;
        let body = serde_json::value::RawValue::from_string(item.content.clone())
            .map_err(|e| SendError::Permanent(format!("content: {e}")))?;
        if let Some(id) = self.send_as_ghost(item, &room_id).await? {
            return Ok(Some(id));
        }
        match &item.state_key {
            None => {
                let request = send_message_event::v3::Request::new_raw(
                    room_id,
                    item.txn_id.as_str().into(),
                    item.event_type.as_str().into(),
                    Raw::from_json(body),
                );
                Ok(Some(self.client.send(request).await?.event_id.to_string()))
            }
            Some(key) => {
                let request = send_state_event::v3::Request::new_raw(
                    room_id,
                    item.event_type.as_str().into(),
                    key.clone(),
                    Raw::from_json(body),
                );
                Ok(Some(self.client.send(request).await?.event_id.to_string()))
            }
        }
    }

    /// Sends a participant's message as their ghost user, if ghosts are
    /// configured; `None`: send it through the bot instead (no ghosts, not
    /// a participant's message, or the homeserver refuses the ghost).
    async fn send_as_ghost(
        &self,
        item: &Outgoing,
        room_id: &RoomId,
    ) -> Result<Option<String>, SendError> {
        let (Some(ghosts), Some(bot)) = (&self.ghosts, self.client.user_id()) else {
            return Ok(None);
        };
        if item.meeting.is_none() || item.state_key.is_some() {
            return Ok(None);
        }
        // Messages queued before ghosts were per person carry none: relayed.
        let Some(person) = &item.person else {
            return Ok(None);
        };
        let content: Value = serde_json::from_str(&item.content).unwrap_or_default();
        let Some(author) = content.get(AUTHOR_KEY) else {
            return Ok(None);
        };
        let name = author
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("guest");
        let user_id = author.get("user_id").and_then(Value::as_str);
        let Some(text) = author.get("text").and_then(Value::as_str) else {
            return Ok(None);
        };
        let display = match user_id {
            Some(u) => format!("{name} ({u}, in the meeting)"),
            None => format!("{name} (guest)"),
        };
        // Its use now is what keeps the ghost from retention.
        let now = crate::store::unix_ms(std::time::SystemTime::now());
        let localpart = ghosts
            .localpart(&self.store, person, name, &display, now)
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let ghost = format!("@{localpart}:{}", bot.server_name());
        let ghost_content = json!({ "msgtype": "m.text", "body": text, AUTHOR_KEY: author });
        match ghosts
            .send(
                Bot {
                    client: &self.client,
                    store: &self.store,
                },
                &ghost,
                &display,
                room_id.as_str(),
                &item.txn_id,
                &ghost_content,
            )
            .await
        {
            Ok(id) => Ok(Some(id)),
            Err(GhostError::Transient(e)) => Err(SendError::Transient(e)),
            // Banned or muted in the room: the bot must not speak for them.
            Err(GhostError::Refused(e)) if e.contains("M_FORBIDDEN") => {
                Err(SendError::Permanent(e))
            }
            Err(GhostError::Refused(e)) => {
                tracing::warn!(error = %e, "the homeserver refuses our ghost user; relaying through the bot");
                Ok(None)
            }
        }
    }
}

/// Why an outbox event was not sent.
pub(crate) enum SendError {
    /// A refusal that a resend cannot change (bad event, no permission).
    Permanent(String),
    /// Unreachable, rate limited, server error: worth retrying.
    Transient(String),
}

impl From<matrix_sdk::HttpError> for SendError {
    fn from(e: matrix_sdk::HttpError) -> Self {
        use matrix_sdk::ruma::api::error::ErrorKind;
        // Only what the event itself causes is permanent; a lost login, a
        // proxy's error page or rate limiting keep the event waiting.
        let permanent = matches!(
            e.client_api_error_kind(),
            Some(
                ErrorKind::Forbidden
                    | ErrorKind::BadJson
                    | ErrorKind::NotJson
                    | ErrorKind::TooLarge
                    | ErrorKind::InvalidParam
            )
        );
        if matches!(e.client_api_error_kind(), Some(ErrorKind::UnknownToken(_))) {
            tracing::error!("the homeserver no longer accepts the chat bot's login; chat waits (remove the `session` entry of the chat store to sign in anew)");
        }
        if permanent {
            SendError::Permanent(e.to_string())
        } else {
            SendError::Transient(e.to_string())
        }
    }
}

pub(crate) fn local_id(seq: i64) -> String {
    format!("local-{seq}")
}
