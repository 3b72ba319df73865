//! Prometheus metrics. Workers count in plain integers on their own thread
//! and publish into the shared registry a few times a second (see
//! [`WorkerMetrics::publish`]), so the per-packet path touches no atomic that
//! another core also writes.

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::room::Stats;
use crate::worker::WorkerCounters;

/// A worker counter: name, help, and the [`Stats`] field that feeds it.
type CounterDef = (&'static str, &'static str, fn(&Stats) -> u64);

const COUNTERS: [CounterDef; 12] = [
    (
        "meet_datagrams_received_total",
        "UDP datagrams received on the media ports",
        |s| s.datagrams_in,
    ),
    (
        "meet_datagrams_dropped_total",
        "Datagrams dropped before the media engine (unknown sender or garbage)",
        |s| s.datagrams_dropped,
    ),
    (
        "meet_rtp_packets_received_total",
        "RTP packets received from publishers",
        |s| s.media.rtp_packets_in,
    ),
    (
        "meet_rtp_bytes_received_total",
        "RTP payload bytes received from publishers",
        |s| s.media.rtp_bytes_in,
    ),
    (
        "meet_rtp_packets_forwarded_total",
        "RTP packets forwarded to subscribers",
        |s| s.media.rtp_packets_out,
    ),
    (
        "meet_rtp_bytes_forwarded_total",
        "RTP payload bytes forwarded to subscribers",
        |s| s.media.rtp_bytes_out,
    ),
    (
        "meet_keyframe_requests_total",
        "Keyframe requests (PLI) sent to publishers",
        |s| s.keyframe_requests,
    ),
    (
        "meet_engine_errors_total",
        "Single packets or commands the media engine refused",
        |s| s.engine_errors,
    ),
    (
        "meet_simulcast_layer_switches_total",
        "Subscriptions moved to another simulcast layer of a video track",
        |s| s.media.layer_switches,
    ),
    (
        "meet_rtp_duplicates_total",
        "RTP packets that arrived a second time and were not forwarded again",
        |s| s.media.duplicates,
    ),
    (
        "meet_rtp_retransmissions_total",
        "RTP packets sent again for subscribers' NACKs",
        |s| s.media.retransmissions,
    ),
    (
        "meet_rtp_nacks_unanswered_total",
        "Packets subscribers asked for again that could not be resent (gone, never sent, or asked again too soon)",
        |s| s.media.nacks_unanswered,
    ),
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    rooms: IntGaugeVec,
    participants: IntGaugeVec,
    published_tracks: IntGaugeVec,
    counters: Vec<IntCounterVec>,
    slow_wakeups: IntCounterVec,
    oversized: IntCounterVec,
    send_dropped: IntCounterVec,
    pub signalling_connections: IntGauge,
    pub signalling_errors: IntCounterVec,
    chat_outbox: IntGauge,
    chat_delayed: IntGauge,
    chat_messages: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let register = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("metric names are static and unique");
        };
        let worker_gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &["worker"])
                .expect("static metric definition");
            register(Box::new(g.clone()));
            g
        };
        let rooms = worker_gauge("meet_rooms", "Rooms with at least one participant");
        let participants = worker_gauge("meet_participants", "Participants in meetings");
        let published_tracks = worker_gauge("meet_published_tracks", "Tracks being published");
        let counters = COUNTERS
            .iter()
            .map(|(name, help, _)| {
                let c = IntCounterVec::new(Opts::new(*name, *help), &["worker"])
                    .expect("static metric definition");
                register(Box::new(c.clone()));
                c
            })
            .collect();
        let slow_wakeups = IntCounterVec::new(
            Opts::new(
                "meet_worker_slow_wakeups_total",
                "Media worker wake-ups that kept it busy over 5 ms: every room on it waited",
            ),
            &["worker"],
        )
        .expect("static metric definition");
        register(Box::new(slow_wakeups.clone()));
        let oversized = IntCounterVec::new(
            Opts::new(
                "meet_datagrams_oversized_total",
                "Datagrams longer than the media port takes, dropped unread",
            ),
            &["worker"],
        )
        .expect("static metric definition");
        register(Box::new(oversized.clone()));
        let send_dropped = IntCounterVec::new(
            Opts::new(
                "meet_send_dropped_total",
                "Datagrams given up on before sending: media or control when the socket could not keep up, refused by the kernel",
            ),
            &["worker", "class"],
        )
        .expect("static metric definition");
        register(Box::new(send_dropped.clone()));
        let signalling_connections = IntGauge::new(
            "meet_signalling_connections",
            "Open signalling WebSocket connections",
        )
        .expect("static metric definition");
        register(Box::new(signalling_connections.clone()));
        let signalling_errors = IntCounterVec::new(
            Opts::new(
                "meet_signalling_errors_total",
                "Error replies sent on signalling connections, by code",
            ),
            &["code"],
        )
        .expect("static metric definition");
        register(Box::new(signalling_errors.clone()));
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("static metric definition");
            register(Box::new(g.clone()));
            g
        };
        let chat_outbox = gauge(
            "meet_chat_outbox_events",
            "Chat events waiting in the outbox for the Matrix homeserver",
        );
        let chat_delayed = gauge(
            "meet_chat_delayed",
            "1 while the Matrix homeserver is unreachable and chat is delayed",
        );
        let chat_messages = IntCounterVec::new(
            Opts::new(
                "meet_chat_messages_total",
                "Chat messages relayed between meetings and Matrix rooms, by direction",
            ),
            &["direction"],
        )
        .expect("static metric definition");
        register(Box::new(chat_messages.clone()));
        Self {
            registry,
            rooms,
            participants,
            published_tracks,
            counters,
            slow_wakeups,
            oversized,
            send_dropped,
            signalling_connections,
            signalling_errors,
            chat_outbox,
            chat_delayed,
            chat_messages,
        }
    }

    /// Takes the chat bridge's figures (read at scrape time).
    pub fn chat(&self, stats: chat::ChatStats) {
        self.chat_outbox.set(stats.outbox as i64);
        self.chat_delayed.set(i64::from(stats.delayed));
        for (direction, total) in [
            ("from_matrix", stats.from_matrix),
            ("to_matrix", stats.to_matrix),
        ] {
            let c = self.chat_messages.with_label_values(&[direction]);
            c.inc_by(total.saturating_sub(c.get()));
        }
    }

    /// The handle one worker publishes through.
    pub fn worker(&self, index: usize) -> WorkerMetrics {
        let label = index.to_string();
        WorkerMetrics {
            rooms: self.rooms.with_label_values(&[&label]),
            participants: self.participants.with_label_values(&[&label]),
            published_tracks: self.published_tracks.with_label_values(&[&label]),
            counters: self
                .counters
                .iter()
                .map(|c| c.with_label_values(&[&label]))
                .collect(),
            slow_wakeups: self.slow_wakeups.with_label_values(&[&label]),
            oversized: self.oversized.with_label_values(&[&label]),
            send_dropped: ["media", "control", "refused"]
                .map(|class| self.send_dropped.with_label_values(&[&label, class])),
            published: Stats::default(),
            published_counters: WorkerCounters::default(),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

pub struct WorkerMetrics {
    rooms: IntGauge,
    participants: IntGauge,
    published_tracks: IntGauge,
    counters: Vec<IntCounter>,
    slow_wakeups: IntCounter,
    oversized: IntCounter,
    send_dropped: [IntCounter; 3],
    published: Stats,
    published_counters: WorkerCounters,
}

impl WorkerMetrics {
    /// Copies a worker's current figures into the registry: the core's,
    /// and what its shell counts itself.
    pub fn publish(
        &mut self,
        stats: &Stats,
        counters: &WorkerCounters,
        rooms: usize,
        participants: usize,
        tracks: usize,
    ) {
        self.rooms.set(rooms as i64);
        self.participants.set(participants as i64);
        self.published_tracks.set(tracks as i64);
        for ((_, _, field), counter) in COUNTERS.iter().zip(&self.counters) {
            counter.inc_by(field(stats).saturating_sub(field(&self.published)));
        }
        self.published = stats.clone();
        let (now, before) = (counters, &self.published_counters);
        let pairs = [
            (&self.slow_wakeups, now.slow_wakeups, before.slow_wakeups),
            (&self.oversized, now.oversized, before.oversized),
            (
                &self.send_dropped[0],
                now.dropped.media,
                before.dropped.media,
            ),
            (
                &self.send_dropped[1],
                now.dropped.control,
                before.dropped.control,
            ),
            (
                &self.send_dropped[2],
                now.dropped.refused,
                before.dropped.refused,
            ),
        ];
        for (counter, now, before) in pairs {
            counter.inc_by(now.saturating_sub(before));
        }
        self.published_counters = *counters;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_deltas() {
        let m = Metrics::new();
        let mut w = m.worker(0);
        let mut s = Stats::default();
        s.media.rtp_packets_out = 10;
        let mut c = WorkerCounters::default();
        w.publish(&s, &c, 1, 3, 6);
        s.media.rtp_packets_out = 25;
        c.slow_wakeups = 2;
        c.dropped.media = 7;
        w.publish(&s, &c, 1, 3, 6);
        let text = m.encode();
        assert!(
            text.contains("meet_rtp_packets_forwarded_total{worker=\"0\"} 25"),
            "{text}"
        );
        assert!(text.contains("meet_participants{worker=\"0\"} 3"), "{text}");
        assert!(
            text.contains("meet_worker_slow_wakeups_total{worker=\"0\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("meet_send_dropped_total{class=\"media\",worker=\"0\"} 7"),
            "{text}"
        );
    }
}
