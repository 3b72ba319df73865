//! What an administrator changes on any server, shared with the others:
//! meetings' own policies and withdrawn invite links. Each server keeps
//! its own copy (its files, read at start) and takes the others' changes
//! at its next heartbeat, when their version in Redis moved.

use super::{unix_ms, Cluster, Local, Unavailable};

fn unix_now() -> u64 {
    unix_ms() / 1000
}

impl Cluster {
    /// Shares a meeting's own policy (JSON; `{}`: back to the
    /// deployment's), set on this server.
    pub async fn share_policy(&self, room: &str, overrides: &str) -> Result<(), Unavailable> {
        self.inner
            .store
            .share_policy(room, overrides)
            .await
            .map_err(|e| self.redis_failed(&e))
    }

    /// Shares an invite link withdrawn on this server, until `until`.
    pub async fn share_revocation(&self, id: &str, until: u64) -> Result<(), Unavailable> {
        self.inner
            .store
            .share_revocation(id, until, unix_now())
            .await
            .map_err(|e| self.redis_failed(&e))
    }

    /// Takes what the others changed since the last reading.
    pub(super) async fn pull_shared(&self, local: &dyn Local) {
        let store = &self.inner.store;
        let Ok((policies, revoked)) = store.shared_versions().await else {
            return;
        };
        let (seen_policies, seen_revoked) = *self.inner.pulled.lock().expect("pulled lock");
        if policies != seen_policies {
            if let Ok(shared) = store.policies().await {
                local.policies(shared);
                self.inner.pulled.lock().expect("pulled lock").0 = policies;
            }
        }
        if revoked != seen_revoked {
            if let Ok(shared) = store.revoked(unix_now()).await {
                local.revocations(shared);
                self.inner.pulled.lock().expect("pulled lock").1 = revoked;
            }
        }
    }
}
