//! A subscriber's downlink of a given rate, inside the load generator: a
//! queue that drains at that rate and drops what overflows its buffer
//! (200 ms of it, as a home router has), so that the server's bandwidth
//! estimate sees the delay and loss of a real narrow link. Datagrams wait
//! here between the socket and the peer's engine.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Bytes each datagram costs beyond its payload: UDP and IPv4 headers.
const HEADERS: usize = 28;

pub struct Shaper {
    bits_per_second: f64,
    limit: usize,
    queued: usize,
    busy_until: Instant,
    queue: VecDeque<(Instant, SocketAddr, Vec<u8>)>,
    pub dropped: u64,
}

impl Shaper {
    pub fn new(now: Instant, bits_per_second: f64) -> Self {
        Self {
            bits_per_second,
            limit: ((bits_per_second * 0.2 / 8.0) as usize).max(10_000),
            queued: 0,
            busy_until: now,
            queue: VecDeque::new(),
            dropped: 0,
        }
    }

    /// A datagram from `from` arrived at `now`: queued, or dropped when
    /// the buffer is full.
    pub fn push(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let bytes = data.len() + HEADERS;
        if self.queued + bytes > self.limit {
            self.dropped += 1;
            return;
        }
        let start = self.busy_until.max(now);
        self.busy_until =
            start + Duration::from_secs_f64(bytes as f64 * 8.0 / self.bits_per_second);
        self.queued += bytes;
        self.queue.push_back((self.busy_until, from, data.to_vec()));
    }

    /// When the next datagram leaves the link.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|(at, _, _)| *at)
    }

    /// The next datagram that has left the link by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        if self.next_due()? > now {
            return None;
        }
        let (_, from, data) = self.queue.pop_front()?;
        self.queued -= data.len() + HEADERS;
        Some((from, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_at_its_rate_and_drops_what_overflows() {
        let t0 = Instant::now();
        let from = SocketAddr::from(([127, 0, 0, 1], 9));
        // 400 kbit/s: 10 000 bytes of buffer (the floor), 50 KB/s.
        let mut s = Shaper::new(t0, 400_000.0);
        let datagram = [0u8; 972]; // 1000 bytes on the wire
        for _ in 0..12 {
            s.push(t0, from, &datagram);
        }
        assert_eq!(s.dropped, 2, "ten fit the buffer");
        // Each takes 20 ms on the link.
        assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(20)));
        assert!(s.pop_due(t0 + Duration::from_millis(19)).is_none());
        let mut out = 0;
        while s.pop_due(t0 + Duration::from_millis(100)).is_some() {
            out += 1;
        }
        assert_eq!(out, 5);
        // Room again for what left.
        s.push(t0 + Duration::from_millis(100), from, &datagram);
        assert_eq!(s.dropped, 2);
    }
}
