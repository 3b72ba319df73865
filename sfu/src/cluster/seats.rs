//! Participants' seats kept in Redis while their meeting runs here, so
//! that when this server goes away the meeting's next one seats them
//! again as they were (no lobby, no second use of an invite link), as a
//! seat held for a dropped connection would; whom its hosts banned,
//! so that the next server keeps them out too; and how many joins each
//! counted invite link admitted. The seat itself is opaque
//! here (the session layer's JSON).

use std::future::Future;

use super::store::Store;
use super::{Cluster, ClusterError, Unavailable};

/// A participant's seat kept in Redis until this is dropped (the
/// participant left, or its held seat was taken or ran out); a server that
/// dies drops nothing, and the seat waits for the meeting's next server.
pub struct SharedSeat {
    cluster: Cluster,
    room: String,
    secret: String,
}

impl SharedSeat {
    /// Leaves the seat in Redis: the participant is sent away from this
    /// server (it stops, or another holds the meeting now) and comes back
    /// to the meeting's next one.
    pub fn keep(mut self) {
        self.secret.clear();
    }
}

impl Drop for SharedSeat {
    fn drop(&mut self) {
        // Dropped outside the runtime (the process ends): the seat lapses
        // with its meeting; spawning there would panic.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.secret.is_empty() {
            return;
        }
        let store = self.cluster.inner.store.clone();
        let (room, secret) = (
            std::mem::take(&mut self.room),
            std::mem::take(&mut self.secret),
        );
        // Best effort: a seat Redis missed lapses with its meeting.
        runtime.spawn(async move {
            let _ = store.take_seat(&room, &secret).await;
        });
    }
}

impl Cluster {
    /// Keeps `seated` under the participant's `resume` secret in `room`.
    pub fn keep_seat(&self, room: &str, secret: &str, seated: String) -> SharedSeat {
        let (r, s) = (room.to_owned(), secret.to_owned());
        self.write_behind(
            "a seat is kept on this server only",
            move |store| async move { store.keep_seat(&r, &s, &seated).await },
        );
        SharedSeat {
            cluster: self.clone(),
            room: room.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// Keeps `keys` (a banned participant's) out of `room` on every server
    /// while the meeting lasts.
    pub fn ban(&self, room: &str, keys: Vec<String>) {
        let room = room.to_owned();
        self.write_behind("a ban holds on this server only", move |store| async move {
            store.ban(&room, &keys).await
        });
    }

    /// Keeps `room` locked (or not) for its next server.
    pub fn set_locked(&self, room: &str, locked: bool) {
        let room = room.to_owned();
        self.write_behind(
            "a meeting's lock holds on this server only",
            move |store| async move { store.set_locked(&room, locked).await },
        );
    }

    /// Whether a host locked `room` while another server held it.
    pub(super) async fn locked(&self, room: &str) -> Result<bool, Unavailable> {
        self.inner
            .store
            .locked(room)
            .await
            .map_err(|e| self.redis_failed(&e))
    }

    /// Whether a host of `room` banned any of `keys`, on whichever server.
    pub async fn banned(&self, room: &str, keys: &[String]) -> Result<bool, Unavailable> {
        self.inner
            .store
            .banned(room, keys)
            .await
            .map_err(|e| self.redis_failed(&e))
    }

    /// Counts a join of `room` that invite link `id` (expiring at `exp`)
    /// admitted, for the servers that hold the meeting after this one.
    pub fn invite_used(&self, room: &str, id: &str, exp: u64) {
        let (room, id) = (room.to_owned(), id.to_owned());
        self.write_behind(
            "an invite link's use is counted on this server only",
            move |store| async move { store.invite_used(&room, &id, exp).await },
        );
    }

    /// The joins invite link `id` admitted to `room`, on every server.
    pub async fn invite_uses(&self, room: &str, id: &str) -> Result<u32, Unavailable> {
        self.inner
            .store
            .invite_uses(room, id)
            .await
            .map_err(|e| self.redis_failed(&e))
    }

    /// The seat another server kept under `secret` in `room`, taken so
    /// that only one connection comes back to it.
    pub async fn take_seat(&self, room: &str, secret: &str) -> Option<String> {
        match self.inner.store.take_seat(room, secret).await {
            Ok(seated) => seated,
            Err(e) => {
                self.redis_failed(&e);
                None
            }
        }
    }
}

impl Cluster {
    /// Writes to Redis in the background: the session does not wait for
    /// it. What Redis did not take holds on this server only, as
    /// `otherwise` says in the log.
    fn write_behind<F>(&self, otherwise: &'static str, write: impl FnOnce(Store) -> F)
    where
        F: Future<Output = Result<(), ClusterError>> + Send + 'static,
    {
        let written = write(self.inner.store.clone());
        tokio::spawn(async move {
            if let Err(e) = written.await {
                tracing::warn!(error = %e, "{otherwise}: Redis did not take it");
            }
        });
    }
}
