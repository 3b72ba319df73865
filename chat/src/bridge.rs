//! The bridge service: signs the bot in, keeps syncing, opens a room per
//! meeting, relays both ways and drains the outbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::api::client::filter::FilterDefinition;
use matrix_sdk::ruma::{RoomId, UserId};
use matrix_sdk::{Client, Room};
use serde_json::Value;
use tokio::sync::{watch, Notify};

use crate::events::{convert, ChatEvent, RoomEvent};
use crate::ghosts::Ghosts;
use crate::meetings::{Meeting, MeetingEvent};
use crate::openid::Verifier;
use crate::store::Store;
use crate::{lock, ChatConfig, ChatError};

pub(crate) const RETRY_MIN: Duration = Duration::from_millis(250);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(2);
/// Timeline events per room and sync.
const SYNC_TIMELINE_LIMIT: u32 = 200;
/// Long-poll timeout of `/sync`.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// See [`Chat::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatStats {
    /// Events waiting in the outbox.
    pub outbox: u64,
    pub delayed: bool,
    /// Room messages relayed into meetings since start.
    pub from_matrix: u64,
    /// Meeting messages delivered to rooms since start.
    pub to_matrix: u64,
}

/// The chat service; cheap to clone.
#[derive(Clone)]
pub struct Chat {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ChatConfig,
    pub(crate) client: Client,
    pub(crate) store: Store,
    pub(crate) verifier: Verifier,
    pub(crate) ghosts: Option<Ghosts>,
    /// Unique per store, so transaction ids never repeat across installs
    /// sharing a bot account.
    pub(crate) txn_prefix: String,
    pub(crate) meetings: Mutex<HashMap<String, Arc<Meeting>>>,
    /// Serialises room creation, so one meeting never gets two rooms.
    pub(crate) opening: tokio::sync::Mutex<()>,
    pub(crate) outbox_wake: Notify,
    pub(crate) signed_in: watch::Sender<bool>,
    pub(crate) sync_ok: AtomicBool,
    pub(crate) send_ok: AtomicBool,
    pub(crate) delayed: watch::Sender<bool>,
    pub(crate) started_ms: u64,
    /// Messages relayed from rooms into meetings, and delivered the other way.
    pub(crate) from_matrix: AtomicU64,
    pub(crate) to_matrix: AtomicU64,
    /// Background loops, stopped by [`Chat::shutdown`].
    pub(crate) tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Chat {
    /// Opens the store and starts signing in, syncing and sending in the
    /// background; a homeserver that is down only delays all that.
    pub async fn start(config: ChatConfig) -> Result<Chat, ChatError> {
        std::fs::create_dir_all(&config.store_dir).map_err(|source| ChatError::StoreDir {
            path: config.store_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.store_dir.join("chat.sqlite3"))?;
        let txn_prefix = match store.get("txn_prefix")? {
            Some(p) => p,
            None => {
                let p = format!("meet{:08x}-", rand::random::<u32>());
                store.set("txn_prefix", &p)?;
                p
            }
        };
        let client = Client::builder()
            .homeserver_url(config.homeserver.as_str())
            .sqlite_store(config.store_dir.join("sdk"), None)
            // We retry ourselves: the outbox and sync loops must notice an
            // outage to say so, not hang in the SDK's backoff.
            .request_config(
                RequestConfig::new()
                    .disable_retry()
                    .timeout(Duration::from_secs(10)),
            )
            .build()
            .await
            .map_err(|e| ChatError::Invalid(format!("cannot set up the Matrix client: {e}")))?;
        let verifier = Verifier::new(config.openid_homeservers.clone());
        let ghosts = config.appservice.as_ref().map(|a| {
            Ghosts::new(
                config.homeserver.clone(),
                a.as_token.clone(),
                a.prefix.clone(),
            )
        });
        let inner = Arc::new(Inner {
            config,
            client,
            store,
            verifier,
            ghosts,
            txn_prefix,
            meetings: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            outbox_wake: Notify::new(),
            signed_in: watch::channel(false).0,
            sync_ok: AtomicBool::new(false),
            send_ok: AtomicBool::new(true),
            delayed: watch::channel(false).0,
            started_ms: now_ms(),
            from_matrix: AtomicU64::new(0),
            to_matrix: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(inner.clone().run());
        lock(&inner.tasks).push(task.abort_handle());
        Ok(Chat { inner })
    }

    /// Stops syncing and sending; what is still in the outbox stays on
    /// disk for the next start.
    pub fn shutdown(&self) {
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
    }

    /// The bot's user id, once signed in.
    pub fn bot_user(&self) -> Option<String> {
        self.inner.client.user_id().map(|u| u.to_string())
    }

    /// `true` while the homeserver is unreachable or messages wait.
    pub fn delayed(&self) -> watch::Receiver<bool> {
        self.inner.delayed.subscribe()
    }

    /// Figures for the operator's metrics.
    pub fn stats(&self) -> ChatStats {
        ChatStats {
            outbox: self.inner.store.outbox_len().unwrap_or(0),
            delayed: *self.inner.delayed.borrow(),
            from_matrix: self.inner.from_matrix.load(Ordering::Relaxed),
            to_matrix: self.inner.to_matrix.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    async fn run(self: Arc<Self>) {
        let mut backoff = RETRY_MIN;
        while let Err(e) = self.sign_in().await {
            tracing::warn!(error = %e, "chat bot cannot sign in; retrying");
            self.set_sync_ok(false);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_MAX * 4);
        }
        tracing::info!(user = ?self.client.user_id(), "chat bot signed in");
        self.signed_in.send_replace(true);
        let outbox = tokio::spawn(self.clone().outbox());
        lock(&self.tasks).push(outbox.abort_handle());
        self.sync().await;
    }

    async fn sign_in(&self) -> Result<(), ChatError> {
        if let Some(saved) = self.store.get("session")? {
            let session: MatrixSession = serde_json::from_str(&saved)
                .map_err(|e| ChatError::Invalid(format!("stored session: {e}")))?;
            self.client.restore_session(session).await?;
        } else {
            self.client
                .matrix_auth()
                .login_username(&self.config.user, &self.config.password)
                .initial_device_display_name("meet chat bridge")
                .send()
                .await?;
            // Kept so the device, and with it the transaction id space
            // that makes resends idempotent, survives restarts.
            let session = self
                .client
                .matrix_auth()
                .session()
                .ok_or(ChatError::NotReady)?;
            let saved = serde_json::to_string(&session)
                .map_err(|e| ChatError::Invalid(format!("session: {e}")))?;
            self.store.set("session", &saved)?;
        }
        if self.config.openid_homeservers.is_empty() {
            if let Some(user) = self.client.user_id() {
                self.verifier
                    .allow(user.server_name().as_str(), self.config.homeserver.clone());
            }
        }
        Ok(())
    }

    async fn sync(self: Arc<Self>) {
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
                    }
                    self.set_sync_ok(true);
                    for (room_id, update) in response.rooms.joined {
                        let events: Vec<Value> = update
                            .timeline
                            .events
                            .iter()
                            .filter_map(|e| e.raw().deserialize_as::<Value>().ok())
                            .collect();
                        self.room_events(&room_id, &events).await;
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

    async fn room_events(&self, room_id: &RoomId, events: &[Value]) {
        let Some(bot) = self.client.user_id().map(|u| u.to_string()) else {
            return;
        };
        let bot = bot.as_str();
        let room = self.client.get_room(room_id);
        let meeting = self
            .store
            .meeting_of(room_id.as_str())
            .ok()
            .flatten()
            .and_then(|name| lock(&self.meetings).get(&name).cloned());
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
            match convert(ev, ours, name_of) {
                Some(RoomEvent::Chat(mut event)) => {
                    let Some(m) = meeting.as_ref().filter(|m| ts >= m.since_ms) else {
                        continue;
                    };
                    let sender = ev.get("sender").and_then(Value::as_str).unwrap_or_default();
                    let allowed = match &event {
                        ChatEvent::Edit { id, .. } => m.sender_of(id).as_deref() == Some(sender),
                        ChatEvent::Redact { id } => {
                            m.sender_of(id).as_deref() == Some(sender)
                                || can_redact(room.as_ref(), sender).await
                        }
                        _ => true,
                    };
                    if !allowed {
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
                // Commands from before this process started were answered
                // (or not) by the one before.
                Some(RoomEvent::Command { .. }) if ts + 5_000 >= self.started_ms => {
                    if let Err(e) = self.command(room_id).await {
                        tracing::warn!(%room_id, error = %e, "cannot answer !meet");
                    }
                }
                _ => {}
            }
        }
    }

    fn set_sync_ok(&self, ok: bool) {
        self.sync_ok.store(ok, Ordering::Relaxed);
        self.update_delayed();
    }

    pub(crate) fn set_send_ok(&self, ok: bool) {
        self.send_ok.store(ok, Ordering::Relaxed);
        self.update_delayed();
    }

    fn update_delayed(&self) {
        let delayed =
            !self.sync_ok.load(Ordering::Relaxed) || !self.send_ok.load(Ordering::Relaxed);
        self.delayed
            .send_if_modified(|d| std::mem::replace(d, delayed) != delayed);
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

async fn display_name(room: &Room, user: &str) -> String {
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
fn is_bridge_user(user: &str, bot: &str, ghosts: Option<&Ghosts>) -> bool {
    user == bot || (server_of(user) == server_of(bot) && ghosts.is_some_and(|g| g.owns(user)))
}

/// The server part of a user id (which may carry a port).
pub(crate) fn server_of(user_id: &str) -> Option<&str> {
    user_id.strip_prefix('@')?.split_once(':').map(|(_, s)| s)
}

pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_for_rooms_and_meetings() {
        assert_eq!(escape_html("<b>&\""), "&lt;b&gt;&amp;&quot;");
        assert_eq!(server_of("@a:example.org:8448"), Some("example.org:8448"));
        assert_eq!(server_of("nobody"), None);
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
