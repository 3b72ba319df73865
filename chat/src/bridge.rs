//! The [`Chat`] handle: shared state, start and shutdown, the bot's sign-in, the delayed flag.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::RequestConfig;
use matrix_sdk::Client;
use tokio::sync::{watch, Notify};

use crate::admin::Admin;
use crate::ghosts::Ghosts;
use crate::meeting::Meeting;
use crate::openid::Verifier;
use crate::quota::RoomQuota;
use crate::share::ChatShare;
use crate::store::Store;
use crate::time::{now_ms, RETRY_MAX, RETRY_MIN};
use crate::{lock, ChatConfig, ChatError};

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
    /// What it shares with other servers, where servers share meetings.
    pub(crate) share: Option<Arc<dyn ChatShare>>,
    /// Holds the bot's duties now (see [`Inner::on_duty`]).
    pub(crate) on_duty: AtomicBool,
    pub(crate) client: Client,
    pub(crate) store: Store,
    pub(crate) verifier: Verifier,
    pub(crate) ghosts: Option<Ghosts>,
    /// The homeserver's admin API, with `admin_token`.
    pub(crate) admin: Option<Admin>,
    /// Unique per store, so transaction ids never repeat across installs
    /// sharing a bot account.
    pub(crate) txn_prefix: String,
    pub(crate) meetings: Mutex<HashMap<String, Arc<Meeting>>>,
    /// Serialises room creation, so one meeting never gets two rooms.
    pub(crate) opening: tokio::sync::Mutex<()>,
    pub(crate) room_quota: RoomQuota,
    pub(crate) outbox_wake: Notify,
    /// Wakes the shared outbox's sender (`shared_outbox.rs`), and the
    /// meetings whose shared outbox may hold something.
    pub(crate) shared_wake: Notify,
    pub(crate) unsent: Mutex<HashSet<String>>,
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
    /// Held by a retention pass, so that two never overlap.
    pub(crate) retention_running: tokio::sync::Mutex<()>,
}

impl Chat {
    /// Opens the store and starts signing in, syncing and sending in the
    /// background; a homeserver that is down only delays all that. With
    /// `share`, meetings' rooms and the bot's duties are shared with the
    /// other servers that carry meetings.
    pub async fn start(
        config: ChatConfig,
        share: Option<Arc<dyn ChatShare>>,
    ) -> Result<Chat, ChatError> {
        std::fs::create_dir_all(&config.store_dir).map_err(|source| ChatError::StoreDir {
            path: config.store_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.store_dir.join(crate::store::FILE))?;
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
        let room_quota = RoomQuota::new(config.max_rooms_per_user_per_day);
        let admin = config
            .admin_token
            .as_ref()
            .map(|t| Admin::new(config.homeserver.clone(), t.clone()));
        let inner = Arc::new(Inner {
            config,
            share: share.clone(),
            on_duty: AtomicBool::new(false),
            client,
            store,
            verifier,
            ghosts,
            admin,
            txn_prefix,
            meetings: Mutex::new(HashMap::new()),
            opening: tokio::sync::Mutex::new(()),
            room_quota,
            outbox_wake: Notify::new(),
            shared_wake: Notify::new(),
            unsent: Mutex::new(HashSet::new()),
            signed_in: watch::channel(false).0,
            sync_ok: AtomicBool::new(false),
            send_ok: AtomicBool::new(true),
            delayed: watch::channel(false).0,
            started_ms: now_ms(),
            from_matrix: AtomicU64::new(0),
            to_matrix: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            retention_running: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn(inner.clone().run());
        lock(&inner.tasks).push(task.abort_handle());
        if let Some(share) = share {
            let task = tokio::spawn(inner.clone().share_loop(share.clone()));
            lock(&inner.tasks).push(task.abort_handle());
            let task = tokio::spawn(inner.clone().shared_outbox(share));
            lock(&inner.tasks).push(task.abort_handle());
        }
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
        let retention = tokio::spawn(self.clone().retention());
        lock(&self.tasks).push(retention.abort_handle());
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

    pub(crate) fn set_sync_ok(&self, ok: bool) {
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
