//! Limits that keep one client, or one address, from taking the server
//! down for everyone else: signalling connections in total and per source
//! address, joins per address per minute, meetings per server. Each
//! refusal names the limit (a stable code) and is counted in `/metrics`.
//!
//! Behind a reverse proxy every client has the proxy's address, so the
//! per-address limits then count the proxy: raise them there.

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
    #[error("the media worker is overloaded; try again shortly")]
    WorkerQueue,
    #[error("too many ICE candidates for one connection")]
    Candidates,
}

impl Limit {
    /// The `limit` label of `meet_limits_hit_total`.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConnectionsPerAddress => "connections_per_address",
            Limit::JoinsPerAddress => "joins_per_address",
            Limit::Meetings => "meetings",
            Limit::WorkerQueue => "worker_queue",
            Limit::Candidates => "candidates",
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
}

#[derive(Default)]
struct Address {
    connections: usize,
    /// When its joins of the last minute were admitted, oldest first.
    joins: VecDeque<Instant>,
}

#[derive(Default)]
struct Counts {
    connections: usize,
    addresses: HashMap<IpAddr, Address>,
}

#[derive(Clone)]
pub struct Limits {
    bounds: Bounds,
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
    pub fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            counts: Default::default(),
        }
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
                        .back()
                        .is_some_and(|&t| now.duration_since(t) < MINUTE)
            });
        }
        let address = counts.addresses.entry(ip).or_default();
        while address
            .joins
            .front()
            .is_some_and(|&t| now.duration_since(t) >= MINUTE)
        {
            address.joins.pop_front();
        }
        if address.joins.len() >= self.bounds.joins_per_address_per_minute {
            return Err(Limit::JoinsPerAddress);
        }
        address.joins.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(Bounds {
            connections: 3,
            connections_per_address: 2,
            joins_per_address_per_minute: 2,
            meetings: 1,
        })
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
