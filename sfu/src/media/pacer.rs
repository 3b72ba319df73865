//! A subscriber connection's pacer: its video leaves at the pace of the
//! link's estimate, not in bursts. A keyframe of one camera is
//! sent to every subscriber at once; to a small link, tens of packets at
//! once overflow a home router's buffer, and the subscriber loses the
//! keyframe it waited for. Queued here, they go out over a few hundred
//! milliseconds instead. Audio is not paced (it is small and must not wait
//! behind a keyframe), nor are probes (they are timed by the estimator).
//!
//! A token bucket: up to [`BURST`] worth of bytes go at once, the rest
//! waits. The queue is bounded: past [`MAX_QUEUED`] packets the link is
//! far behind whatever its estimate says, and a packet goes out at once
//! rather than wait (the allocation steps down as the estimate falls).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::rtp::Packet;
use rtc::rtp_transceiver::RTCRtpSenderId;

use super::link::PACKET_OVERHEAD;

/// The pace, as a multiple of the link's estimate. libwebrtc paces at 2.5
/// times its estimate; on the small links this is for, the estimate is
/// often a little above the link already (it climbs until delay shows),
/// and anything faster still overflows a router's buffer with a keyframe
/// (a 15 kB keyframe into 400 kbit/s: 18 datagrams lost in six at 1.5
/// times, 12 at 1.2, none at 1.0; `sfu/tests/bandwidth.rs`). The
/// allocation keeps what is sent below the estimate, so the queue drains.
pub const PACE_FACTOR: f64 = 1.0;
/// What may go at once, at the pace.
const BURST: Duration = Duration::from_millis(20);
/// Most packets that wait.
pub const MAX_QUEUED: usize = 512;

pub struct Pacer {
    queue: VecDeque<(RTCRtpSenderId, Packet)>,
    /// Bytes that may go now (negative: owed), as of `at`.
    budget: f64,
    at: Instant,
}

fn size(packet: &Packet) -> f64 {
    (packet.payload.len() + PACKET_OVERHEAD) as f64
}

impl Pacer {
    pub fn new(now: Instant) -> Self {
        Self {
            queue: VecDeque::with_capacity(64),
            // A packet or so may go at once from the start.
            budget: 1500.0,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, estimate: f64) {
        let rate = estimate * PACE_FACTOR / 8.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let most = (rate * BURST.as_secs_f64()).max(1500.0);
        self.budget = (self.budget + rate * elapsed).min(most);
    }

    /// `packet` for `sender` is to leave, with the link's estimate at
    /// `estimate` bits per second: handed back if it may go now, else it
    /// waits its turn.
    pub fn offer(
        &mut self,
        now: Instant,
        estimate: f64,
        sender: RTCRtpSenderId,
        packet: Packet,
    ) -> Option<(RTCRtpSenderId, Packet)> {
        self.refill(now, estimate);
        if (self.queue.is_empty() && self.budget > 0.0) || self.queue.len() >= MAX_QUEUED {
            self.budget -= size(&packet);
            return Some((sender, packet));
        }
        self.queue.push_back((sender, packet));
        None
    }

    /// The next packet whose turn has come.
    pub fn poll(&mut self, now: Instant, estimate: f64) -> Option<(RTCRtpSenderId, Packet)> {
        if self.queue.is_empty() {
            return None;
        }
        self.refill(now, estimate);
        if self.budget <= 0.0 {
            return None;
        }
        let (sender, packet) = self.queue.pop_front()?;
        self.budget -= size(&packet);
        Some((sender, packet))
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(bytes: usize) -> Packet {
        Packet {
            payload: bytes::Bytes::from(vec![0; bytes - PACKET_OVERHEAD]),
            ..Default::default()
        }
    }

    #[test]
    fn a_burst_leaves_at_the_pace() {
        let t0 = Instant::now();
        // 600 kbit/s estimate: paced at 75 000 bytes a second.
        let estimate = 600_000.0;
        let mut p = Pacer::new(t0);
        let sender = RTCRtpSenderId::from(0);
        let t1 = t0 + Duration::from_secs(1);
        // A keyframe of 30 packets of 1000 bytes: the burst's worth goes
        // at once (1500 bytes: two packets, the second on credit).
        let mut now_out = 0;
        for _ in 0..30 {
            if p.offer(t1, estimate, sender, packet(1000)).is_some() {
                now_out += 1;
            }
        }
        assert_eq!(now_out, 2);
        // The other 28 over the next 28000/75000 s: about 373 ms.
        let mut out = Vec::new();
        let mut t = t1;
        while !p.is_empty() {
            t += Duration::from_millis(5);
            while p.poll(t, estimate).is_some() {
                out.push(t - t1);
            }
        }
        assert_eq!(out.len(), 28);
        let last = *out.last().unwrap();
        assert!(
            last >= Duration::from_millis(360) && last <= Duration::from_millis(400),
            "{last:?}"
        );
        // Audio-sized packets after a pause go at once again.
        let t2 = t + Duration::from_secs(1);
        assert!(p.offer(t2, estimate, sender, packet(200)).is_some());
    }

    #[test]
    fn a_link_far_behind_is_not_queued_for_ever() {
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        let sender = RTCRtpSenderId::from(0);
        let mut passed = 0;
        for _ in 0..MAX_QUEUED + 10 {
            if p.offer(t0, 100_000.0, sender, packet(1200)).is_some() {
                passed += 1;
            }
        }
        // The first burst's worth (two, the second on credit), then 512
        // wait, and the last 8 find the queue full and go.
        assert_eq!(passed, 2 + 8);
    }
}
