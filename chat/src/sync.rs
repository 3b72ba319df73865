//! The `/sync` long-poll: room events into open meetings, `!meet` commands and invites.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::{RoomId, UserId};
use matrix_sdk::Room;
use serde_json::Value;

use crate::bridge::Inner;
use crate::events::{convert, ChatEvent, RoomEvent};
use crate::ghosts::Ghosts;
use crate::meeting::{Meeting, MeetingEvent};
use crate::openid::server_of;
use crate::shared_outbox::relay_txn;
use crate::time::{now_ms, RETRY_MAX, RETRY_MIN};

/// Timeline events per room and sync.
const SYNC_TIMELINE_LIMIT: u32 = 200;
/// Long-poll timeout of `/sync`.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

impl Inner {
    pub(crate) async fn sync(self: Arc<Self>) {
        // Synapse's default of 10 timeline events per room would drop
        // messages of a busy minute; members are loaded lazily.
        let mut filter = FilterDefinition::with_lazy_loading();
        filter.room.timeline.limit = Some(SYNC_TIMELINE_LIMIT.into());
        let settings = SyncSettings::default()
            .timeout(SYNC_TIMEOUT)
            .filter(filter.into());
        let mut backoff = RETRY_MIN;
        loop {
            match self.client.sync_once(settings.clone()).await {
                Ok(response) => {
                    backoff = RETRY_MIN;
                    self.close_idle_meetings();
                    if !self.sync_ok.load(Ordering::Relaxed) {
                        self.outbox_wake.notify_one();
                        self.shared_wake.notify_one();
                    }
                    self.set_sync_ok(true);
                    for (room_id, update) in response.rooms.joined {
                        let events: Vec<Value> = update
                            .timeline
                            .events
                            .iter()
                            .filter_map(|e| e.raw().deserialize_as::<Value>().ok())
                            .collect();
                        self.room_events(&room_id, &events, update.timeline.limited)
                            .await;
                    }
                    for (room_id, invite) in response.rooms.invited {
                        if !self.invite_allowed(&invite) {
                            tracing::info!(%room_id, "ignoring an invite from a server not allowed");
                            continue;
                        }
                        let client = self.client.clone();
                        tokio::spawn(async move {
                            if let Err(e) = client.join_room_by_id(&room_id).await {
                                tracing::warn!(%room_id, error = %e, "cannot accept invite");
                            }
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sync with the homeserver failed; retrying");
                    self.set_sync_ok(false);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Invites are accepted from users of the bot's own homeserver and of
    /// those allowed to sign in, not from anywhere.
    fn invite_allowed(&self, invite: &matrix_sdk::sync::InvitedRoomUpdate) -> bool {
        let Some(bot) = self.client.user_id() else {
            return false;
        };
        let inviter = invite.invite_state.events.iter().find_map(|e| {
            let v: Value = e.deserialize_as().ok()?;
            (v.get("type")?.as_str()? == "m.room.member"
                && v.get("state_key")?.as_str()? == bot.as_str())
            .then(|| v.get("sender")?.as_str().map(str::to_owned))?
        });
        let Some(server) = inviter.as_deref().and_then(server_of) else {
            return false;
        };
        server == bot.server_name().as_str() || self.config.openid_homeservers.contains_key(server)
    }

    /// `limited`: the timeline has a gap (events were left out), so a
    /// kick may be among what was missed.
    async fn room_events(&self, room_id: &RoomId, events: &[Value], limited: bool) {
        let Some(bot) = self.client.user_id().map(|u| u.to_string()) else {
            return;
        };
        let bot = bot.as_str();
        let room = self.client.get_room(room_id);
        let meeting = self.open_meeting_in(room_id.as_str());
        if let (true, Some(m)) = (limited, &meeting) {
            let _ = m.tx.send(MeetingEvent::Recheck);
        }
        // Names are shown only in an open meeting; elsewhere only `!meet`
        // matters, which needs none.
        let mut names = HashMap::new();
        if let (Some(room), Some(_)) = (&room, &meeting) {
            for sender in events.iter().filter_map(|ev| ev.get("sender")?.as_str()) {
                if !names.contains_key(sender) {
                    names.insert(sender.to_owned(), display_name(room, sender).await);
                }
            }
        }
        for ev in events {
            let ts = ev
                .get("origin_server_ts")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let name_of = |u: &str| names.get(u).cloned().unwrap_or_else(|| u.to_owned());
            let ours = |u: &str| is_bridge_user(u, bot, self.ghosts.as_ref());
            // A message of the meeting's that another server sent (one
            // that carried the meeting before, or the one on duty).
            let sender = ev.get("sender").and_then(Value::as_str).unwrap_or_default();
            if let (Some(m), Some(txn), Some(id), true) = (
                &meeting,
                relay_txn(ev),
                ev.get("event_id").and_then(Value::as_str),
                ours(sender),
            ) {
                m.relayed(txn, id);
            }
            match convert(ev, ours, name_of) {
                Some(RoomEvent::Chat(mut event)) => {
                    let Some(m) = meeting.as_ref().filter(|m| ts >= m.since_ms) else {
                        continue;
                    };
                    if !may_apply(m, room.as_ref(), &event, sender).await {
                        tracing::info!(%room_id, "ignoring an edit or redaction of someone else's message");
                        continue;
                    }
                    match &mut event {
                        ChatEvent::Message { id, ts, .. } => {
                            // A server's clock may be off; never the future.
                            *ts = (*ts).min(now_ms());
                            m.record_sender(id, sender);
                            self.from_matrix.fetch_add(1, Ordering::Relaxed);
                        }
                        ChatEvent::Reaction { id, .. } => m.record_sender(id, sender),
                        _ => {}
                    }
                    m.push(event);
                }
                Some(RoomEvent::MemberGone(user)) => {
                    if let Some(m) = &meeting {
                        let _ = m.tx.send(MeetingEvent::MemberGone(user));
                    }
                }
                // The SDK applied the sync's state before handing it over,
                // so a recheck reads the new power levels.
                Some(RoomEvent::PowerLevels) => {
                    if let Some(m) = &meeting {
                        let _ = m.tx.send(MeetingEvent::Recheck);
                    }
                    // Where servers share meetings, the one whose store
                    // noted the widget waiting adds it.
                    self.power_changed(room_id).await;
                }
                // Commands from before this process started were answered
                // (or not) by the one before; where servers share meetings,
                // the one on duty answers.
                Some(RoomEvent::Command { .. })
                    if ts + 5_000 >= self.started_ms && self.on_duty() =>
                {
                    if let Err(e) = self.command(room_id).await {
                        tracing::warn!(%room_id, error = %e, "cannot answer !meet");
                    }
                }
                _ => {}
            }
        }
    }
}

/// Whether `sender`'s edit or redaction may change the meeting's chat:
/// their own messages, and for moderators others' too (deleting only).
pub(crate) async fn may_apply(
    m: &Meeting,
    room: Option<&Room>,
    event: &ChatEvent,
    sender: &str,
) -> bool {
    match event {
        ChatEvent::Edit { id, .. } => m.sender_of(id).as_deref() == Some(sender),
        ChatEvent::Redact { id } => {
            m.sender_of(id).as_deref() == Some(sender) || can_redact(room, sender).await
        }
        _ => true,
    }
}

/// Whether the user may delete others' events in the room (moderators).
async fn can_redact(room: Option<&Room>, user: &str) -> bool {
    let (Some(room), Ok(user)) = (room, UserId::parse(user)) else {
        return false;
    };
    room.power_levels()
        .await
        .is_ok_and(|pl| pl.user_can_redact_event_of_other(&user))
}

pub(crate) async fn display_name(room: &Room, user: &str) -> String {
    let fallback = || {
        user.trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or(user)
            .to_owned()
    };
    let Ok(user_id) = UserId::parse(user) else {
        return fallback();
    };
    match room.get_member_no_sync(&user_id).await {
        Ok(Some(m)) => m.name().to_owned(),
        _ => fallback(),
    }
}

/// Whether `user` is the bot or one of its ghosts. Ghosts are ours only on
/// the bot's server: a remote `@meet_…` is someone else.
pub(crate) fn is_bridge_user(user: &str, bot: &str, ghosts: Option<&Ghosts>) -> bool {
    user == bot || (server_of(user) == server_of(bot) && ghosts.is_some_and(|g| g.owns(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_users_are_the_bot_and_its_ghosts_here() {
        let ghosts = Ghosts::new(
            "http://127.0.0.1:1".parse().unwrap(),
            "t".into(),
            "meet_".into(),
        );
        let bot = "@meetbot:hs";
        assert!(is_bridge_user(bot, bot, None));
        assert!(is_bridge_user("@meet_x_1:hs", bot, Some(&ghosts)));
        assert!(!is_bridge_user("@meet_x_1:elsewhere", bot, Some(&ghosts)));
        assert!(
            !is_bridge_user("@meet_x_1:hs", bot, None),
            "no ghosts configured"
        );
        assert!(!is_bridge_user("@alice:hs", bot, Some(&ghosts)));
    }
}
