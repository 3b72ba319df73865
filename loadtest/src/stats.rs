//! What a subscriber measures about the streams it receives.
//!
//! One-way latency needs the send time of each packet, from one clock shared
//! by the whole process (`t0`): publishers put it inside their payloads (see
//! `media.rs`), where every SFU leaves it alone.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// A video stream counts as frozen when no new frame arrived for this long.
pub const FREEZE_GAP: Duration = Duration::from_millis(500);

/// Which stream a packet belongs to, as the receiver learnt it.
#[derive(Debug, Clone)]
pub struct StreamKey {
    /// Unique per stream (publisher and track).
    pub key: String,
    pub clock: u32,
    pub video: bool,
}

/// One received stream.
#[derive(Debug)]
struct Stream {
    clock: u32,
    video: bool,
    first_seq: u16,
    /// Highest sequence number, unwrapped.
    highest: i64,
    received: u64,
    /// RFC 3550 interarrival jitter, in clock units.
    jitter: f64,
    last_transit: Option<f64>,
    last_frame_ts: Option<u32>,
    last_frame_at: Option<Instant>,
}

/// A receiver's measurements, mergeable across receivers.
pub struct Measurements {
    t0: Instant,
    streams: HashMap<String, Stream>,
    /// One-way latency in microseconds: of all packets, and of audio alone.
    pub latency_us: Histogram<u64>,
    pub audio_latency_us: Histogram<u64>,
    pub freezes: u64,
    pub packets: u64,
    /// Video packets received per simulcast layer (0 lowest).
    pub layer_packets: [u64; 3],
    /// Payload bytes received, audio and video.
    pub bytes: u64,
}

impl Measurements {
    pub fn new(t0: Instant) -> Self {
        Self {
            t0,
            streams: HashMap::new(),
            latency_us: histogram(),
            audio_latency_us: histogram(),
            freezes: 0,
            packets: 0,
            layer_packets: [0; 3],
            bytes: 0,
        }
    }

    /// A video packet of simulcast layer `layer` arrived.
    pub fn layer(&mut self, layer: u8) {
        if let Some(n) = self.layer_packets.get_mut(usize::from(layer)) {
            *n += 1;
        }
    }

    /// Records one RTP packet of `stream` arriving at `now`, sent at
    /// `sent_us` after `t0` when known.
    pub fn packet(
        &mut self,
        now: Instant,
        stream: &StreamKey,
        seq: u16,
        ts: u32,
        sent_us: Option<u64>,
    ) {
        let StreamKey { key, clock, video } = stream;
        let (clock, video) = (*clock, *video);
        self.packets += 1;
        if let Some(latency) =
            sent_us.and_then(|us| now.checked_duration_since(self.t0 + Duration::from_micros(us)))
        {
            let us = (latency.as_micros() as u64).max(1);
            let _ = self.latency_us.record(us);
            if !video {
                let _ = self.audio_latency_us.record(us);
            }
        }
        let s = self
            .streams
            .entry(key.to_owned())
            .or_insert_with(|| Stream {
                clock,
                video,
                first_seq: seq,
                highest: i64::from(seq),
                received: 0,
                jitter: 0.0,
                last_transit: None,
                last_frame_ts: None,
                last_frame_at: None,
            });
        s.received += 1;
        // Unwrap the 16-bit sequence number around the highest seen.
        let delta = i64::from(seq.wrapping_sub(s.highest as u16) as i16);
        if delta > 0 {
            s.highest += delta;
        }
        let arrival = now.duration_since(self.t0).as_secs_f64() * f64::from(s.clock);
        let transit = arrival - f64::from(ts);
        if let Some(last) = s.last_transit {
            s.jitter += ((transit - last).abs() - s.jitter) / 16.0;
        }
        s.last_transit = Some(transit);
        if s.video && s.last_frame_ts != Some(ts) {
            if s.last_frame_at
                .is_some_and(|at| now.duration_since(at) > FREEZE_GAP)
            {
                self.freezes += 1;
            }
            s.last_frame_ts = Some(ts);
            s.last_frame_at = Some(now);
        }
    }

    /// Packets expected (from the sequence numbers) and received, over all streams.
    pub fn expected_received(&self) -> (u64, u64) {
        self.expected_received_of(|_| true)
    }

    /// The same, of audio streams alone.
    pub fn audio_expected_received(&self) -> (u64, u64) {
        self.expected_received_of(|s| !s.video)
    }

    fn expected_received_of(&self, which: impl Fn(&Stream) -> bool) -> (u64, u64) {
        self.streams
            .values()
            .filter(|s| which(s))
            .fold((0, 0), |(e, r), s| {
                let expected = (s.highest - i64::from(s.first_seq) + 1).max(0) as u64;
                (e + expected, r + s.received.min(expected))
            })
    }

    /// Mean interarrival jitter over streams, in milliseconds.
    pub fn mean_jitter_ms(&self) -> f64 {
        if self.streams.is_empty() {
            return 0.0;
        }
        let sum: f64 = self
            .streams
            .values()
            .map(|s| s.jitter / f64::from(s.clock) * 1000.0)
            .sum();
        sum / self.streams.len() as f64
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    pub fn video_streams(&self) -> usize {
        self.streams.values().filter(|s| s.video).count()
    }

    pub fn merge(&mut self, other: &Measurements) {
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.audio_latency_us.add(&other.audio_latency_us);
        self.freezes += other.freezes;
        self.packets += other.packets;
        self.bytes += other.bytes;
        for (a, b) in self.layer_packets.iter_mut().zip(other.layer_packets) {
            *a += b;
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid")
}

/// The summary of one run, as printed and written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// "ours" or "janus".
    pub sfu: String,
    pub scenario: String,
    pub participants: usize,
    pub publishers: usize,
    pub subscribers_connected: usize,
    /// Participants that could not join or failed on the way.
    pub participants_failed: usize,
    pub streams_received: usize,
    pub packets_received: u64,
    pub loss_percent: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// The highest of the subscribers' own p99 latencies: what the one
    /// served last sees.
    pub latency_p99_worst_subscriber_ms: f64,
    pub latency_max_ms: f64,
    /// Audio packets alone (NaN where no audio was received).
    pub audio_latency_p50_ms: f64,
    pub audio_latency_p99_ms: f64,
    /// Video packets subscribers received of each simulcast layer, lowest
    /// first (all in the top one without simulcast).
    pub video_layer_packets: [u64; 3],
    pub jitter_ms: f64,
    pub freezes: u64,
    pub join_p50_ms: f64,
    pub join_max_ms: f64,
    pub server_cpu_percent: f64,
    pub server_rss_mib: f64,
    /// RTP packets all subscribers received, per second.
    pub received_packets_per_second: f64,
    /// Server CPU (percent of one core) per stream received by a subscriber.
    pub server_cpu_percent_per_stream: f64,
    /// Media workers our server ran with (0 for Janus: its own threading).
    pub server_workers: usize,
    /// The constrained scenario's viewers, by the rate of their downlink.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub downlinks: Vec<DownlinkClass>,
}

/// What the viewers on one kind of downlink received.
#[derive(Debug, Clone, Serialize)]
pub struct DownlinkClass {
    /// The downlink's rate; `None`: unlimited.
    pub kbps: Option<u32>,
    pub viewers: usize,
    /// Payload each viewer received, on average, in kbit/s.
    pub received_kbps: f64,
    pub video_layer_packets: [u64; 3],
    pub freezes: u64,
    pub freezes_per_stream_minute: f64,
    /// Audio packets lost, of those due.
    pub audio_loss_percent: f64,
    /// Datagrams the downlinks dropped (their buffers overflowed).
    pub dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str, clock: u32, video: bool) -> StreamKey {
        StreamKey {
            key: key.to_owned(),
            clock,
            video,
        }
    }

    #[test]
    fn latency_loss_and_freezes() {
        let t0 = Instant::now();
        let mut m = Measurements::new(t0);
        // Audio: sent every 20 ms, arrives 3 ms later; packet 3 lost.
        let audio = key("a", 48_000, false);
        for i in [0u16, 1, 2, 4, 5] {
            let sent_ms = u64::from(i) * 20;
            let now = t0 + Duration::from_millis(sent_ms + 3);
            m.packet(
                now,
                &audio,
                100 + i,
                (sent_ms * 48) as u32,
                Some(sent_ms * 1000),
            );
        }
        assert_eq!(m.expected_received(), (6, 5));
        let p50 = m.latency_us.value_at_quantile(0.5);
        assert!((2_990..=3_010).contains(&p50), "{p50}");
        assert_eq!(m.audio_latency_us.len(), 5);
        assert!(m.mean_jitter_ms() < 0.01);
        // Video: a frame at 0 ms and the next only 800 ms later: one freeze.
        let video = key("v", 90_000, true);
        m.packet(t0 + Duration::from_millis(1), &video, 1, 0, None);
        m.packet(t0 + Duration::from_millis(801), &video, 2, 72_000, None);
        assert_eq!(m.freezes, 1);
        assert_eq!(m.streams(), 2);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut m = Measurements::new(t0);
        let audio = key("a", 48_000, false);
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            m.packet(t0 + Duration::from_millis(i as u64), &audio, seq, 0, None);
        }
        assert_eq!(m.expected_received(), (4, 4));
    }
}
