//! The leases this server holds: renewed while their meetings run, let go
//! when they end, and given up at once when another server turns out to
//! hold one (a higher fencing number: never two owners of a meeting).

use tokio::time::Instant;

use super::{Cluster, Lease, KEEP_UNUSED, LEASE, LEASE_MARGIN};

/// What the cluster needs of this server's own meetings.
pub trait Local: Send + Sync + 'static {
    /// Whether anyone is in `room` here, holds a seat in it or waits to
    /// be let in.
    fn in_use(&self, room: &str) -> bool;
    /// Another server holds `room` now: whoever is in it here must go
    /// (their clients come back through the normal path, to that server).
    fn lost(&self, room: &str);
    /// Participants in meetings here, and meetings.
    fn load(&self) -> (usize, usize);
    /// Whether this server drains (takes no new meetings).
    fn draining(&self) -> bool;
    /// Every meeting's own policy as shared (room, JSON; `{}`: none).
    fn policies(&self, shared: Vec<(String, String)>);
    /// The withdrawn invite links as shared (id, until in Unix seconds).
    fn revocations(&self, shared: Vec<(String, u64)>);
}

impl Cluster {
    /// One round: lets go of the leases of meetings that ended here and
    /// renews the others.
    pub(super) async fn renew_leases(&self, local: &dyn Local) {
        let now = Instant::now();
        let (renew, ended): (Vec<_>, Vec<_>) = {
            let held = self.lock_held();
            held.iter()
                .map(|(room, h)| (room.clone(), h.lease.clone(), h.used))
                .partition(|(room, _, used)| {
                    local.in_use(room) || now.duration_since(*used) < KEEP_UNUSED
                })
        };
        for (room, lease, _) in ended {
            self.forget(&room, &lease);
            if let Err(e) = self.inner.store.release(&room, &lease, true).await {
                self.redis_failed(&e);
            }
        }
        let renew: Vec<(String, Lease)> = renew.into_iter().map(|(r, l, _)| (r, l)).collect();
        if renew.is_empty() {
            // Nothing asked of Redis: nothing learnt of whether it is up.
            return;
        }
        let asked = Instant::now();
        let holders = match self
            .inner
            .store
            .renew(&self.inner.me.id, &renew, LEASE)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                // Kept while Redis is away: running meetings go on, and
                // new joins stop once the lease can no longer be counted on.
                self.redis_failed(&e);
                return;
            }
        };
        self.inner.metrics.redis_up.set(1);
        for ((room, was), now_held) in renew.into_iter().zip(holders) {
            if now_held.node == self.inner.me.id {
                if let Some(h) = self.lock_held().get_mut(&room) {
                    h.lease = now_held;
                    h.valid_until = asked + LEASE - LEASE_MARGIN;
                }
                continue;
            }
            tracing::warn!(
                room = %room,
                holder = %now_held.node,
                fence = now_held.fence,
                "another server holds this meeting now; closing it here"
            );
            self.forget(&room, &was);
            self.inner.metrics.leases_lost.inc();
            local.lost(&room);
        }
    }

    /// Lets go of every lease at a stop, so that the meetings' clients
    /// find another server at once rather than after the lease lapses.
    pub(super) async fn release_all(&self) {
        let held: Vec<(String, Lease)> = self
            .lock_held()
            .drain()
            .map(|(room, h)| (room, h.lease))
            .collect();
        self.inner.metrics.leases.set(0);
        for (room, lease) in held {
            let _ = self.inner.store.release(&room, &lease, false).await;
        }
    }

    /// Drops `room`'s lease from those held, if it is still `lease`.
    fn forget(&self, room: &str, lease: &Lease) {
        let mut held = self.lock_held();
        if held.get(room).is_some_and(|h| &h.lease == lease) {
            held.remove(room);
        }
        self.inner.metrics.leases.set(held.len() as i64);
    }
}
