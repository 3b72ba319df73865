//! Meetings and their rooms: each meeting's room, made or bound, and its state and history.
//!
//! A room the bridge makes is the meeting's invitation list: invite-only,
//! its history readable by joined members only, no alias anyone could
//! guess from the meeting's name (the store keeps which room is whose).
//! Only identified people make the bridge create one.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::api::client::room::Visibility;
use matrix_sdk::ruma::api::client::state::{get_state_event_for_key, send_state_event};
use matrix_sdk::ruma::events::AnyInitialStateEvent;
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{OwnedRoomId, OwnedRoomOrAliasId, RoomId, UserId};
use serde_json::{json, Value};
use url::Url;

use crate::bridge::{Chat, Inner};
use crate::call::CALL_MEMBER;
use crate::events::{ChatEvent, AUTHOR_KEY};
use crate::history::{CATCH_UP, MAX_EVENTS};
use crate::meeting::{Meeting, MeetingChat, HISTORY};
use crate::outbox::local_id;
use crate::store::unix_ms;
use crate::widget::WIDGET_EVENT;
use crate::{lock, ChatError};

/// A meeting nobody has listened to for this long is closed here (its room
/// stays); the next join opens it afresh, with history from then.
const MEETING_IDLE: Duration = Duration::from_secs(60);
/// A meeting whose chat began this long before it opened here ran on
/// another server first.
const TAKEN_OVER_AFTER_MS: u64 = 2_000;
/// A meeting opened here this recently, and listened to by nobody here
/// yet, is still as its room is (see [`Inner::cached`]).
const FRESH: Duration = Duration::from_secs(10);
/// How long opening a new meeting waits for the bot to sign in.
const SIGN_IN_WAIT: Duration = Duration::from_secs(3);

/// Whether opening a meeting may give it a new room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomUse {
    /// An identified participant (a Matrix user, a guest with an invite
    /// link) opens it: its room is created if it has none.
    MayCreate,
    /// An anonymous guest: the meeting's room if it has one (or the one
    /// the configuration names), never a new one.
    ExistingOnly,
}

impl Chat {
    /// Joins a meeting's chat, binding its room on first use, and creating
    /// one if `room_use` allows.
    pub async fn open_meeting(
        &self,
        meeting: &str,
        room_use: RoomUse,
    ) -> Result<MeetingChat, ChatError> {
        // In a task of its own, so a caller that stops waiting does not
        // cut a room creation short (leaving a room no meeting is bound to).
        let (inner, name) = (self.inner.clone(), meeting.to_owned());
        let opened = tokio::spawn(async move { inner.meeting(&name, room_use, None).await })
            .await
            .map_err(|e| ChatError::Invalid(format!("opening the meeting's room: {e}")))?;
        Ok(opened?.subscribe())
    }

    /// The meeting's history as of now (for a participant that fell behind).
    pub fn history(&self, meeting: &str) -> Option<Vec<ChatEvent>> {
        lock(&self.inner.meetings).get(meeting).map(|m| m.history())
    }
}

impl Inner {
    pub(crate) fn close_idle_meetings(&self) {
        let now = Instant::now();
        lock(&self.meetings).retain(|_, m| {
            let mut idle = lock(&m.idle_since);
            if m.tx.receiver_count() > 0 {
                *idle = None;
                return true;
            }
            now.duration_since(*idle.get_or_insert(now)) < MEETING_IDLE
        });
    }

    /// The open meeting `name`, opened now if need be. A room created for
    /// it invites `host` and makes them a moderator (they opened it).
    pub(crate) async fn meeting(
        &self,
        name: &str,
        room_use: RoomUse,
        host: Option<&UserId>,
    ) -> Result<Arc<Meeting>, ChatError> {
        if let Some(m) = self.cached(name) {
            return Ok(m);
        }
        let _guard = self.opening.lock().await;
        if let Some(m) = self.cached(name) {
            return Ok(m);
        }
        let mut created = false;
        let now = unix_ms(SystemTime::now());
        let bound = match self.room_of(name).await? {
            // In use: kept from retention (unless retention forgot it just
            // now, on another server: then it gets a room anew).
            Some(id) if self.touch(name, now).await? => Some(id),
            _ => None,
        };
        let room_id = match bound {
            Some(id) => RoomId::parse(id).map_err(|e| ChatError::Invalid(e.to_string()))?,
            None => {
                let configured = self.config.rooms.get(name);
                if configured.is_none() && room_use == RoomUse::ExistingOnly {
                    return Err(ChatError::NoRoom(name.to_owned()));
                }
                self.signed_in_now().await?;
                let id = match configured {
                    Some(existing) => self.bind_existing(existing).await?,
                    None => {
                        let now = Instant::now();
                        if let Some(host) = host {
                            if !self.room_quota.allows(host.as_str(), now) {
                                return Err(ChatError::TooManyRooms(self.room_quota.per_day()));
                            }
                        }
                        let id = self.create_room(name, host).await?;
                        if let Some(host) = host {
                            self.room_quota.record(host.as_str(), now);
                        }
                        created = true;
                        id
                    }
                };
                let bound = self.bind(name, id.as_str(), now).await?;
                if bound != id.as_str() {
                    // Another server gave the meeting a room at the same
                    // moment (the meeting moved as it opened): theirs it
                    // is, set up by them; ours is left.
                    tracing::info!(room_id = %id, "another server bound the meeting first; leaving our room");
                    if let Some(room) = self.client.get_room(&id) {
                        let _ = room.leave().await;
                    }
                    created = false;
                    RoomId::parse(bound).map_err(|e| ChatError::Invalid(e.to_string()))?
                } else {
                    self.set_up_room(&id, name, created, host).await?;
                    id
                }
            }
        };
        // Rooms we create have none; a bound room may.
        let alias = self
            .client
            .get_room(&room_id)
            .and_then(|r| r.canonical_alias())
            .map(|a| a.to_string())
            .filter(|_| !created);
        let since = self.chat_since(name, now as u64).await?;
        let m = Arc::new(Meeting::new(room_id, alias, since));
        let taken_over = since + TAKEN_OVER_AFTER_MS < now as u64;
        let sent = if taken_over {
            // It ran on another server before: its history is the room's.
            self.load_history(&m, MAX_EVENTS).await
        } else {
            HashSet::new()
        };
        // Messages written before a restart and still waiting are shown as
        // pending again, so that their delivery has something to mark.
        for item in self.store.waiting_for(name, HISTORY as u32)? {
            let content: Value = serde_json::from_str(&item.content).unwrap_or_default();
            let Some(author) = content.get(AUTHOR_KEY) else {
                continue;
            };
            let field = |k: &str| author.get(k).and_then(Value::as_str).unwrap_or_default();
            m.push(ChatEvent::Message {
                id: local_id(item.seq),
                sender: field("user_id").to_owned(),
                name: field("name").to_owned(),
                body: field("text").to_owned(),
                ts: m.since_ms,
                reply_to: None,
                pending: true,
            });
        }
        let left_unsent = match &self.share {
            Some(share) => self.show_waiting(share.as_ref(), &m, name, &sent).await?,
            None => false,
        };
        lock(&self.meetings).insert(name.to_owned(), m.clone());
        if taken_over {
            // What the room got while its history was read went to no
            // open meeting here.
            self.load_history(&m, CATCH_UP).await;
        }
        if left_unsent {
            self.mark_unsent(name);
        }
        Ok(m)
    }

    /// A room just bound to `meeting`: its widget, and moderator rights
    /// for `host` in a room we `created` for them.
    async fn set_up_room(
        &self,
        id: &RoomId,
        meeting: &str,
        created: bool,
        host: Option<&UserId>,
    ) -> Result<(), ChatError> {
        if created {
            self.add_widget(id, meeting)?;
        } else {
            self.add_widget_if_allowed(id, meeting).await?;
        }
        if let (true, Some(host)) = (created, host) {
            self.make_moderator(id, host).await;
        }
        Ok(())
    }

    /// The meeting open here, if it may be used as it is. Where servers
    /// share meetings, one nobody here listens to may have run on another
    /// server since (its chat went on there, unseen here: the bridge
    /// leaves its own relays out of what it syncs), so it is opened anew
    /// unless it was opened just now (by a sign-in, for the join that
    /// follows).
    fn cached(&self, name: &str) -> Option<Arc<Meeting>> {
        let mut meetings = lock(&self.meetings);
        let m = meetings.get(name)?;
        let stale =
            self.share.is_some() && m.tx.receiver_count() == 0 && m.opened.elapsed() > FRESH;
        if stale {
            meetings.remove(name);
            return None;
        }
        Some(m.clone())
    }

    async fn bind_existing(&self, room: &str) -> Result<OwnedRoomId, ChatError> {
        let id = OwnedRoomOrAliasId::try_from(room)
            .map_err(|e| ChatError::Invalid(format!("room `{room}`: {e}")))?;
        Ok(self
            .client
            .join_room_by_id_or_alias(&id, &[])
            .await?
            .room_id()
            .to_owned())
    }

    /// A new room for the meeting, as its invitation list: invite-only,
    /// history for joined members only, no alias, guests of the
    /// homeserver kept out, messages kept as long as configured; `host`
    /// invited.
    async fn create_room(
        &self,
        meeting: &str,
        host: Option<&UserId>,
    ) -> Result<OwnedRoomId, ChatError> {
        let mut request = create_room::v3::Request::new();
        request.name = Some(format!("Meeting {meeting}"));
        request.topic = Some(format!("Video meeting: {}", self.meeting_link(meeting)));
        request.preset = Some(create_room::v3::RoomPreset::PrivateChat);
        request.visibility = Visibility::Private;
        request.invite = host.into_iter().map(UserId::to_owned).collect();
        request.initial_state = vec![
            state_event(
                "m.room.history_visibility",
                json!({ "history_visibility": "joined" }),
            ),
            // The preset lets the homeserver's guest accounts in.
            state_event(
                "m.room.guest_access",
                json!({ "guest_access": "forbidden" }),
            ),
        ];
        // MSC1763 message retention, as Synapse's `retention` support reads it.
        if let Some(keep) = self.config.room_retention {
            request.initial_state.push(state_event(
                "m.room.retention",
                json!({ "max_lifetime": keep.as_millis() as u64 }),
            ));
        }
        let levels = json!({
            "events": {
                "m.room.name": 50, "m.room.power_levels": 100,
                // What keeps the room an invitation list is the bot's to change.
                "m.room.join_rules": 100, "m.room.history_visibility": 100,
                "m.room.guest_access": 100, "m.room.canonical_alias": 100,
                "m.room.avatar": 50, "m.room.tombstone": 100,
                "m.room.server_acl": 100, "m.room.encryption": 100,
                "m.room.retention": 100,
                WIDGET_EVENT: 50,
                // Members announce their own call membership (MatrixRTC).
                CALL_MEMBER: 0,
            },
            // Moderators (hosts) extend the invitation list; the preset
            // would let every member.
            "invite": 50,
        });
        request.power_level_content_override = Some(raw(&levels).cast_unchecked());
        Ok(self.client.create_room(request).await?.room_id().to_owned())
    }

    /// Gives the user who opened a new room moderator rights (power 50:
    /// invite, kick, ban), so that they host the meeting and keep its
    /// invitation list. Read back and written whole, since who else is in
    /// the `users` map depends on the room version. A failure leaves them
    /// invited without the rights, which is safe; it is logged.
    async fn make_moderator(&self, room_id: &RoomId, user: &UserId) {
        let get = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            "m.room.power_levels".into(),
            String::new(),
        );
        let result = async {
            let current = self.client.send(get).await?;
            let mut levels: Value =
                serde_json::from_str(current.event_or_content.get()).unwrap_or_default();
            levels["users"][user.as_str()] = json!(50);
            let put = send_state_event::v3::Request::new_raw(
                room_id.to_owned(),
                "m.room.power_levels".into(),
                String::new(),
                raw(&levels).cast_unchecked(),
            );
            self.client.send(put).await.map(|_| ())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(%room_id, %user, error = %e, "cannot make the meeting's opener a moderator");
        }
    }

    /// Waits a little for the bot's sign-in, which may still be under way
    /// right after start.
    pub(crate) async fn signed_in_now(&self) -> Result<(), ChatError> {
        let mut signed_in = self.signed_in.subscribe();
        let wait = signed_in.wait_for(|s| *s);
        let signed = matches!(tokio::time::timeout(SIGN_IN_WAIT, wait).await, Ok(Ok(_)));
        if signed {
            Ok(())
        } else {
            Err(ChatError::NotReady)
        }
    }

    pub(crate) fn meeting_link(&self, meeting: &str) -> String {
        let mut url: Url = self.config.public_url.clone();
        url.path_segments_mut()
            .map(|mut p| {
                p.pop_if_empty().push("m").push(meeting);
            })
            .ok();
        url.to_string()
    }
}

fn raw(value: &Value) -> Raw<Value> {
    Raw::from_json(serde_json::value::to_raw_value(value).expect("a JSON value always serialises"))
}

fn state_event(kind: &str, content: Value) -> Raw<AnyInitialStateEvent> {
    raw(&json!({ "type": kind, "state_key": "", "content": content })).cast_unchecked()
}

pub(crate) fn random_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    (0..10)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
