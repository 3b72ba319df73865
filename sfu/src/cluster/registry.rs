//! The registry: each server publishes its record (address, origin,
//! whether it drains, its load) for a few seconds at a time and reads the
//! others'; one that stops refreshing drops out of placement and its
//! meetings move once their leases lapse.

use std::sync::Arc;

use tokio::sync::watch;

use std::time::Duration;

use super::{Cluster, Local, HEARTBEAT, NODE_TTL, RENEW_EVERY};

/// How soon a heartbeat that Redis did not answer is tried again.
const RETRY: Duration = Duration::from_millis(500);

impl Cluster {
    /// Publishes this server and renews its leases until `stop`, then
    /// takes both away.
    pub async fn run(self, local: Arc<dyn Local>, mut stop: watch::Receiver<bool>) {
        let mut heartbeat = tokio::time::Instant::now();
        let mut renew = tokio::time::interval(RENEW_EVERY);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(heartbeat) => {
                    // While Redis is away, asked again sooner: back in the
                    // registry soon after it returns.
                    let up = self.heartbeat(local.as_ref()).await;
                    heartbeat = tokio::time::Instant::now() + if up { HEARTBEAT } else { RETRY };
                }
                _ = renew.tick() => self.renew_leases(local.as_ref()).await,
                () = async { let _ = stop.wait_for(|s| *s).await; } => break,
            }
        }
        self.release_all().await;
        if let Err(e) = self.inner.store.unregister(self.id()).await {
            tracing::warn!(error = %e, "could not take this server out of the registry");
        }
    }

    /// Refreshes this server's record and reads everyone's; whether Redis
    /// answered.
    async fn heartbeat(&self, local: &dyn Local) -> bool {
        let (participants, meetings) = local.load();
        let me = super::Node {
            draining: local.draining(),
            participants,
            meetings,
            written_ms: super::unix_ms(),
            ..self.inner.me.clone()
        };
        let nodes = match self.inner.store.register(&me, NODE_TTL).await {
            Ok(()) => self.inner.store.nodes().await,
            Err(e) => Err(e),
        };
        match nodes {
            Ok(mut nodes) => {
                if self.inner.metrics.redis_up.get() == 0 {
                    tracing::info!(nodes = nodes.len(), "registered with Redis");
                }
                self.inner.metrics.redis_up.set(1);
                // Its own load as of now, not as of the last round.
                nodes.retain(|n| n.id != me.id);
                nodes.push(me);
                self.set_nodes(nodes);
                self.pull_shared(local).await;
                true
            }
            Err(e) => {
                self.redis_failed(&e);
                false
            }
        }
    }
}
