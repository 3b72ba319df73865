//! Several servers sharing the meetings through Redis (or Valkey), when
//! `redis` is configured; without it this module is not used and the
//! server runs alone. Each server publishes itself in a registry
//! (`registry.rs`); each meeting belongs to one server through a lease
//! with a fencing number (`lease.rs`); a server asked for a meeting it
//! does not hold sends the client to the one that does, or places a new
//! meeting on the least loaded server (`route`); participants' seats are
//! kept there for the meeting's next server (`seats.rs`); what an
//! administrator changes on one server reaches the others (`shared.rs`);
//! the chat bridges share meetings' Matrix rooms and the bot's duties
//! (`chat.rs`). Redis itself is reached only through `store.rs`.

mod chat;
mod connection;
mod lease;
mod registry;
mod seats;
mod shared;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use connection::Target;
use tokio::time::Instant;

use crate::metrics::ClusterMetrics;
pub use lease::Local;
pub use seats::SharedSeat;
use store::Store;

/// How long a meeting's lease lasts unrenewed: a dead owner's meetings
/// move after at most this long.
pub const LEASE: Duration = Duration::from_secs(4);
/// How often an owner renews its leases: one lost round trip costs no
/// lease.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// An owner stops counting on its lease this long before Redis lets it
/// lapse, for clocks that drift and a renewal's round trip.
const LEASE_MARGIN: Duration = Duration::from_secs(1);
/// How long a server's record lasts unrefreshed.
const NODE_TTL: Duration = Duration::from_secs(6);
/// How often a server refreshes its record and reads the others'.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A lease taken for a join is kept this long even while the meeting
/// shows nobody (the join may still be on its way in, or in the lobby).
const KEEP_UNUSED: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("`redis`: {0}")]
    Url(String),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis holds a lease this server cannot read: {0:?}")]
    Corrupt(String),
}

/// A join cannot be placed now: Redis does not answer, or the meeting's
/// server is gone and its lease has not lapsed yet.
#[derive(Debug, thiserror::Error)]
#[error("the meeting's server cannot be found just now; try again in a moment")]
pub struct Unavailable;

/// This server, as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    /// Where clients reach its signalling (`node_url`).
    pub url: String,
    /// The origin of its pages, whose clients may open meetings anywhere
    /// in the cluster.
    pub origin: Option<String>,
    pub draining: bool,
    /// Participants in its meetings.
    pub participants: usize,
    pub meetings: usize,
    /// When it wrote this record (Unix ms, its own clock): one that has
    /// not written for a while is passed over for new meetings before its
    /// record expires.
    #[serde(default)]
    pub written_ms: u64,
}

/// Who holds a meeting, and under which fencing number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub node: String,
    pub fence: u64,
}

impl Lease {
    fn parse(s: &str) -> Option<Self> {
        let (node, fence) = s.rsplit_once(' ')?;
        Some(Self {
            node: node.to_owned(),
            fence: fence.parse().ok()?,
        })
    }
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.node, self.fence)
    }
}

/// Where a join goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// This server holds the meeting; `locked`: a host locked it on the
    /// server it ran on before it came here (to be locked here too).
    Here { locked: bool },
    /// Another one does (or was chosen for it): the client goes to `url`.
    There { node: String, url: String },
}

/// A lease this server holds.
struct Held {
    lease: Lease,
    /// Until when it may be counted on without a renewal.
    valid_until: Instant,
    /// The last join routed here for it.
    used: Instant,
    /// When a join took it.
    taken: Instant,
}

/// This server's part in the cluster; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// This server's id, address and origin (its load is filled in at
    /// each heartbeat).
    me: Node,
    held: Mutex<HashMap<String, Held>>,
    /// The registry as last read.
    nodes: RwLock<Vec<Node>>,
    /// The versions of the shared policies and withdrawn links last taken.
    pulled: Mutex<(u64, u64)>,
    metrics: ClusterMetrics,
}

impl Cluster {
    pub fn new(
        redis: &str,
        id: String,
        url: String,
        origin: Option<String>,
        metrics: ClusterMetrics,
    ) -> Result<Self, ClusterError> {
        let me = Node {
            id,
            url,
            origin,
            draining: false,
            participants: 0,
            meetings: 0,
            written_ms: 0,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store: Store::new(redis)?,
                nodes: RwLock::new(vec![me.clone()]),
                me,
                held: Mutex::default(),
                pulled: Mutex::default(),
                metrics,
            }),
        })
    }

    pub fn id(&self) -> &str {
        &self.inner.me.id
    }

    /// The origins (`wss://meet-b.example.org`) of the servers reached
    /// under names of their own (an absolute `node_url`), for pages to
    /// connect to.
    pub fn ws_origins(&self) -> Vec<String> {
        let nodes = self.inner.nodes.read().expect("nodes lock");
        let mut origins: Vec<String> = nodes
            .iter()
            .filter_map(|n| url::Url::parse(&n.url).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .collect();
        origins.sort();
        origins.dedup();
        origins
    }

    /// Whether a page of `origin` belongs to a server of the cluster (its
    /// clients are sent between them).
    pub fn knows_origin(&self, origin: &str) -> bool {
        let nodes = self.inner.nodes.read().expect("nodes lock");
        nodes
            .iter()
            .filter_map(|n| n.origin.as_deref())
            .any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Where a join to `room` goes: here if this server holds its lease
    /// (or takes it now), else the server that holds it or was chosen for
    /// it. A meeting whose server is gone (out of the registry, or no
    /// longer renewing its lease) waits for its lease to lapse (at most
    /// [`LEASE`]) and is placed anew. `draining`: this server
    /// takes no new meetings; `running_here`: someone is in the meeting
    /// here already.
    pub async fn route(
        &self,
        room: &str,
        draining: bool,
        running_here: bool,
    ) -> Result<Route, Unavailable> {
        let now = Instant::now();
        let held = self
            .lock_held()
            .get_mut(room)
            .filter(|h| h.valid_until > now)
            .map(|h| {
                h.used = now;
                now.duration_since(h.taken) < LEASE
            });
        if let Some(arrived) = held {
            return self.here(room, arrived && !running_here).await;
        }
        let give_up = now + LEASE + LEASE_MARGIN;
        // The server whose lease is lapsing: dead or hung, though its
        // record may still look fresh for a few seconds.
        let mut passed_over = None;
        loop {
            let target = self.place(draining, passed_over.as_deref());
            let asked = Instant::now();
            let (lease, left) = self
                .inner
                .store
                .acquire(room, &target, LEASE)
                .await
                .map_err(|e| self.redis_failed(&e))?;
            self.inner.metrics.redis_up.set(1);
            if lease.node == self.inner.me.id {
                self.hold(room, lease, asked);
                return self.here(room, !running_here).await;
            }
            // A holder that missed two renewals is dead or hangs: its
            // clients would wait on it for nothing, and its lease lapses
            // within two seconds.
            let renewing = left + 2 * RENEW_EVERY > LEASE;
            if let Some(node) = self.find(&lease.node).await.filter(|_| renewing) {
                self.inner.metrics.redirects.inc();
                return Ok(Route::There {
                    node: node.id,
                    url: node.url,
                });
            }
            // Its server left the registry, or stopped renewing: its lease
            // lapses soon, and the meeting goes elsewhere.
            passed_over = Some(lease.node);
            if Instant::now() >= give_up {
                return Err(Unavailable);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Here, with the lock the meeting brought if it `arrived`: this
    /// server took it lately (within a lease) and nobody is in it here
    /// yet, so it may have run on another server until then.
    async fn here(&self, room: &str, arrived: bool) -> Result<Route, Unavailable> {
        let locked = arrived && self.locked(room).await?;
        Ok(Route::Here { locked })
    }

    /// The least loaded server that takes new meetings, this one on a tie
    /// (no hop for the client), else by id; this one when none is known;
    /// never `passed_over`.
    fn place(&self, draining: bool, passed_over: Option<&str>) -> String {
        let me = &self.inner.me.id;
        // Two heartbeats missed (clocks a second apart allowed for).
        let fresh_since = unix_ms().saturating_sub(2 * HEARTBEAT.as_millis() as u64 + 1000);
        let nodes = self.inner.nodes.read().expect("nodes lock");
        nodes
            .iter()
            // This server's own drain as of now, the others' as last read.
            .filter(|n| {
                if &n.id == me {
                    !draining
                } else {
                    !n.draining && n.written_ms >= fresh_since && Some(n.id.as_str()) != passed_over
                }
            })
            .min_by_key(|n| (n.participants, &n.id != me, n.id.clone()))
            .map_or_else(|| me.clone(), |n| n.id.clone())
    }

    /// A server of the registry, read again from Redis if the last reading
    /// does not have it (it may have just started).
    async fn find(&self, id: &str) -> Option<Node> {
        let known = |nodes: &[Node]| nodes.iter().find(|n| n.id == id).cloned();
        if let Some(n) = known(&self.inner.nodes.read().expect("nodes lock")) {
            return Some(n);
        }
        let nodes = self.inner.store.nodes().await.ok()?;
        let found = known(&nodes);
        self.set_nodes(nodes);
        found
    }

    fn set_nodes(&self, mut nodes: Vec<Node>) {
        let me = &self.inner.me;
        if !nodes.iter().any(|n| n.id == me.id) {
            nodes.push(me.clone());
        }
        self.inner.metrics.nodes.set(nodes.len() as i64);
        *self.inner.nodes.write().expect("nodes lock") = nodes;
    }

    fn hold(&self, room: &str, lease: Lease, asked: Instant) {
        let mut held = self.lock_held();
        held.insert(
            room.to_owned(),
            Held {
                lease,
                valid_until: asked + LEASE - LEASE_MARGIN,
                used: Instant::now(),
                taken: Instant::now(),
            },
        );
        self.inner.metrics.leases.set(held.len() as i64);
    }

    fn redis_failed(&self, e: &ClusterError) -> Unavailable {
        if self.inner.metrics.redis_up.get() != 0 {
            tracing::warn!(error = %e, "Redis does not answer");
        }
        self.inner.metrics.redis_up.set(0);
        Unavailable
    }

    fn lock_held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.inner.held.lock().expect("held leases lock")
    }
}

/// Now on this server's clock, in Unix milliseconds.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, participants: usize, age_ms: u64) -> Node {
        Node {
            id: id.into(),
            url: format!("/node/{id}/ws"),
            origin: None,
            draining: false,
            participants,
            meetings: 1,
            written_ms: unix_ms() - age_ms,
        }
    }

    // In a runtime: the (lazy) connection to Redis needs one to exist.
    #[tokio::test]
    async fn a_meeting_goes_to_the_least_loaded_live_server_but_not_back_to_one_that_stopped_renewing(
    ) {
        let metrics = crate::metrics::Metrics::new().cluster;
        // Never connected: placement reads the registry as last read.
        let cluster = Cluster::new(
            "redis://127.0.0.1:1/0",
            "a".into(),
            "/ws".into(),
            None,
            metrics,
        )
        .unwrap();
        cluster.set_nodes(vec![
            node("a", 10, 0),
            node("b", 3, 1000),
            node("c", 5, 1000),
            // Its record is older than two heartbeats: gone.
            node("d", 0, 6000),
        ]);
        assert_eq!(cluster.place(false, None), "b");
        // b held the meeting and stopped renewing it: hung, though its
        // record is fresh and it looks the least loaded.
        assert_eq!(cluster.place(false, Some("b")), "c");
        let mut drains = node("c", 5, 0);
        drains.draining = true;
        cluster.set_nodes(vec![node("a", 10, 0), node("b", 3, 0), drains]);
        assert_eq!(cluster.place(false, Some("b")), "a");
    }

    #[test]
    fn a_lease_reads_back_as_written_even_with_spaces_in_the_node_id() {
        let lease = Lease {
            node: "meet a".into(),
            fence: 42,
        };
        assert_eq!(Lease::parse(&lease.to_string()), Some(lease));
        assert_eq!(Lease::parse("a x"), None);
        assert_eq!(Lease::parse("nofence"), None);
    }
}
