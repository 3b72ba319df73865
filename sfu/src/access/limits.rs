//! Limits that keep one client, or one address, from taking the server
//! down for everyone else: signalling connections in total and per source
//! address, joins per address per minute, meetings per server, strangers
//! knocking on one meeting from one address. Each
//! refusal names the limit (a stable code) and is counted in `/metrics`.
//! [`PerMinute`] bounds what one session may do per minute (chat).
//!
//! Behind a reverse proxy every client has the proxy's address; with the
//! proxy in `trusted_proxies` its `X-Forwarded-For` names the client.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A limit that was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error("the server has as many connections as it takes")]
    Connections,
    #[error("too many connections from your address")]
    ConnectionsPerAddress,
    #[error("too many joins from your address in the last minute; wait a little")]
    JoinsPerAddress,
    #[error("the server holds as many meetings as it may; try again later")]
    Meetings,
    /// The meeting has `max_participants`; the media worker, which holds
    /// the meeting, refuses the join (`room_full`).
    #[error("this meeting has as many participants as it takes")]
    Participants,
    #[error("the media worker is overloaded; try again shortly")]
    WorkerQueue,
    #[error("too many ICE candidates for one connection")]
    Candidates,
    #[error("too many messages of this kind in the last second; this one was ignored")]
    MessagesOfKind,
    #[error("too many chat messages in the last minute; wait a little")]
    ChatMessages,
    #[error("too many meetings with new Matrix rooms opened by you today")]
    RoomsPerUser,
    #[error("too many chat messages of this meeting wait for the homeserver; try again when chat is back")]
    ChatOutbox,
    /// Strangers from one address waiting in one meeting's lobby.
    #[error("too many people from your address are waiting to be let into this meeting; try again later")]
    KnocksPerAddress,
}

impl Limit {
    /// Every limit, so that each one's counter exists from the start (a
    /// rate over a series that is not there yet says nothing).
    pub const ALL: [Limit; 12] = [
        Limit::Connections,
        Limit::ConnectionsPerAddress,
        Limit::JoinsPerAddress,
        Limit::Meetings,
        Limit::Participants,
        Limit::WorkerQueue,
        Limit::Candidates,
        Limit::MessagesOfKind,
        Limit::ChatMessages,
        Limit::RoomsPerUser,
        Limit::ChatOutbox,
        Limit::KnocksPerAddress,
    ];

    /// The `limit` label of `meet_limits_hit_total`.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConnectionsPerAddress => "connections_per_address",
            Limit::JoinsPerAddress => "joins_per_address",
            Limit::Meetings => "meetings",
            Limit::Participants => "participants",
            Limit::WorkerQueue => "worker_queue",
            Limit::Candidates => "candidates",
            Limit::MessagesOfKind => "messages_of_kind",
            Limit::ChatMessages => "chat_messages",
            Limit::ChatOutbox => "chat_outbox",
            Limit::RoomsPerUser => "rooms_per_user",
            Limit::KnocksPerAddress => "knocks_per_address",
        }
    }
}

/// The configured bounds.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub connections: usize,
    pub connections_per_address: usize,
    pub joins_per_address_per_minute: usize,
    pub meetings: usize,
    pub chat_messages_per_minute: usize,
    /// Strangers one address may have waiting in one meeting's lobby.
    pub knocks_per_address: usize,
}

/// Events of the last minute, for a bound per sliding minute.
#[derive(Default)]
pub struct PerMinute {
    /// When each was let through, oldest first.
    times: VecDeque<Instant>,
}

impl PerMinute {
    /// Lets one more through at `now` if fewer than `bound` were in the
    /// minute before.
    pub fn take(&mut self, now: Instant, bound: usize) -> bool {
        while self
            .times
            .front()
            .is_some_and(|&t| now.duration_since(t) >= MINUTE)
        {
            self.times.pop_front();
        }
        if self.times.len() >= bound {
            return false;
        }
        self.times.push_back(now);
        true
    }

    fn last(&self) -> Option<Instant> {
        self.times.back().copied()
    }

    fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
}

#[derive(Default)]
struct Address {
    connections: usize,
    /// Its joins of the last minute.
    joins: PerMinute,
}

#[derive(Default)]
struct Counts {
    connections: usize,
    addresses: HashMap<IpAddr, Address>,
}

#[derive(Clone)]
pub struct Limits {
    bounds: Bounds,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Arc<[IpAddr]>,
    counts: Arc<Mutex<Counts>>,
}

/// An open connection, counted until dropped.
pub struct Connection {
    limits: Limits,
    ip: IpAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.connections -= 1;
        if let Some(a) = counts.addresses.get_mut(&self.ip) {
            a.connections -= 1;
            if a.connections == 0 && a.joins.is_empty() {
                counts.addresses.remove(&self.ip);
            }
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);

impl Limits {
    pub fn new(bounds: Bounds, trusted_proxies: &[IpAddr]) -> Self {
        Self {
            bounds,
            trusted_proxies: trusted_proxies.into(),
            counts: Default::default(),
        }
    }

    /// The client's address for a connection from `peer`.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        client_address(peer, forwarded_for, &self.trusted_proxies)
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Nothing panics while holding it; poisoned counts are still whole.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a new connection from `ip`, if there is room for it.
    pub fn connect(&self, ip: IpAddr) -> Result<Connection, Limit> {
        let mut counts = self.lock();
        if counts.connections >= self.bounds.connections {
            return Err(Limit::Connections);
        }
        let address = counts.addresses.entry(ip).or_default();
        if address.connections >= self.bounds.connections_per_address {
            return Err(Limit::ConnectionsPerAddress);
        }
        address.connections += 1;
        counts.connections += 1;
        Ok(Connection {
            limits: self.clone(),
            ip,
        })
    }

    /// Counts a join from `ip` at `now`, if it has joined less than the
    /// bound in the last minute.
    pub fn join(&self, ip: IpAddr, now: Instant) -> Result<(), Limit> {
        let mut counts = self.lock();
        // Addresses whose connections closed are kept for their minute of
        // joins (closing must not reset the count), then swept.
        if counts.addresses.len() > 2 * self.bounds.connections + 1024 {
            counts.addresses.retain(|_, a| {
                a.connections > 0
                    || a.joins
                        .last()
                        .is_some_and(|t| now.duration_since(t) < MINUTE)
            });
        }
        let address = counts.addresses.entry(ip).or_default();
        if !address
            .joins
            .take(now, self.bounds.joins_per_address_per_minute)
        {
            return Err(Limit::JoinsPerAddress);
        }
        Ok(())
    }
}

/// The client's address: the peer's, or when the peer is a trusted proxy,
/// the last address in `X-Forwarded-For` that is not one (each proxy
/// appends the address it heard from; only the trusted ones' entries can be
/// believed, anything left of them the client may have written itself).
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in list.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.contains(&ip) {
                    break;
                }
            }
            // Garbage (or a port, an obfuscated name): stop at what the
            // trusted proxies vouched for.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_is_believed_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("127.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        // Not through a proxy: the header is the client's own word.
        assert_eq!(
            client_address(ip("192.0.2.1"), Some("198.51.100.7"), &trusted),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(proxy, Some("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        // Through two proxies; the leftmost entry is forged by the client.
        assert_eq!(
            client_address(
                proxy,
                Some("203.0.113.66, 198.51.100.7, 10.0.0.2"),
                &trusted
            ),
            ip("198.51.100.7")
        );
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        assert_eq!(
            client_address(proxy, Some("unknown"), &trusted),
            proxy,
            "nothing to believe"
        );
    }

    fn limits() -> Limits {
        Limits::new(
            Bounds {
                connections: 3,
                connections_per_address: 2,
                joins_per_address_per_minute: 2,
                meetings: 1,
                chat_messages_per_minute: 1,
                knocks_per_address: 1,
            },
            &[],
        )
    }

    #[test]
    fn connections_are_bounded_per_address_and_in_total_until_they_close() {
        let l = limits();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = l.connect(a).unwrap();
        let _a2 = l.connect(a).unwrap();
        assert_eq!(l.connect(a).err(), Some(Limit::ConnectionsPerAddress));
        let _b1 = l.connect(b).unwrap();
        assert_eq!(l.connect(b).err(), Some(Limit::Connections));
        drop(a1);
        assert!(l.connect(a).is_ok());
    }

    #[test]
    fn joins_per_address_are_counted_over_a_sliding_minute() {
        let l = limits();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.join(a, t0).is_ok());
        assert!(l.join(a, t0 + Duration::from_secs(30)).is_ok());
        assert_eq!(
            l.join(a, t0 + Duration::from_secs(59)),
            Err(Limit::JoinsPerAddress)
        );
        // Another address has its own minute.
        assert!(l.join("192.0.2.9".parse().unwrap(), t0).is_ok());
        // The first join is a minute old: one more fits.
        assert!(l.join(a, t0 + Duration::from_secs(60)).is_ok());
        assert_eq!(
            l.join(a, t0 + Duration::from_secs(61)),
            Err(Limit::JoinsPerAddress)
        );
    }
}
