//! What each media worker publishes: its core's counters and gauges and its
//! shell's own, labelled by worker, and the quality samples (receiver
//! reports, join times) into histograms shared by all workers.

use std::collections::HashSet;

use prometheus::{
    Counter, CounterVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

use super::Registrar;
use crate::media::{Kind, Source};
use crate::room::Stats;
use crate::worker::{Publish, Snapshot, WorkerCounters};

/// A worker counter: name, help, and the [`Stats`] field that feeds it.
type CounterDef = (&'static str, &'static str, Field);

const COUNTERS: [CounterDef; 18] = [
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
        "meet_keyframe_requests_received_total",
        "Keyframe requests (PLI, FIR) received from subscribers",
        |s| s.keyframe_requests_received,
    ),
    (
        "meet_rtcp_nacks_received_total",
        "NACK packets received from subscribers (each asks for one or more packets again)",
        |s| s.nacks_received,
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
    (
        "meet_bandwidth_probes_total",
        "Probes of subscribers' links (a short burst above the estimate, to find a larger link)",
        |s| s.probes,
    ),
    (
        "meet_bandwidth_probes_carried_total",
        "Probes whose burst the subscriber's link carried in full",
        |s| s.probes_carried,
    ),
    (
        "meet_tracks_paused_total",
        "Video subscriptions paused because the subscriber's link could not carry even their lowest layer",
        |s| s.media.pauses,
    ),
    (
        "meet_dynacast_updates_total",
        "Times a publisher was told to send other simulcast layers, as subscribers came to want more or less of its video",
        |s| s.media.layer_updates,
    ),
];

/// A [`Stats`] field.
type Field = fn(&Stats) -> u64;

/// Why a peer connection failed: label, and the field that counts it.
const FAILURES: [(&str, Field); 4] = [
    ("ice_failed", |s| s.failures.ice_failed),
    ("dtls_failed", |s| s.failures.dtls_failed),
    ("not_connected", |s| s.failures.not_connected),
    ("timeout", |s| s.failures.timeout),
];

const LAYERS: [&str; 3] = ["low", "medium", "high"];

/// The families every worker publishes into.
#[derive(Clone)]
pub(super) struct Families {
    rooms: IntGaugeVec,
    participants: IntGaugeVec,
    tracks: IntGaugeVec,
    layers: IntGaugeVec,
    counters: Vec<IntCounterVec>,
    failures: IntCounterVec,
    slow_wakeups: IntCounterVec,
    busy: CounterVec,
    oversized: IntCounterVec,
    datagrams_sent: IntCounterVec,
    bytes_received: IntCounterVec,
    bytes_sent: IntCounterVec,
    send_dropped: IntCounterVec,
    tcp_connections: IntGaugeVec,
    tcp_refused: IntCounterVec,
    loss: Histogram,
    jitter: Histogram,
    rtt: Histogram,
    join_to_media: Histogram,
}

/// Classes of `meet_send_dropped_total`.
const SEND_DROPPED: [&str; 4] = ["media", "control", "refused", "tcp"];

impl Families {
    pub(super) fn register(r: &mut Registrar) -> Self {
        let w = &["worker"];
        Self {
            rooms: r.gauges("meet_rooms", "Meetings with at least one participant", w),
            participants: r.gauges(
                "meet_worker_participants",
                "Participants in the meetings on a media worker",
                w,
            ),
            tracks: r.gauges(
                "meet_published_tracks",
                "Tracks being published, by kind and source",
                &["worker", "kind", "source"],
            ),
            layers: r.gauges(
                "meet_simulcast_subscriptions",
                "Subscriptions to simulcast video, by the layer forwarded to them now",
                &["worker", "layer"],
            ),
            counters: COUNTERS
                .iter()
                .map(|(name, help, _)| r.counters(name, help, w))
                .collect(),
            failures: r.counters(
                "meet_media_connection_failures_total",
                "Peer connections that failed (ICE, DTLS, never connected, gone silent), by reason; each removes its participant",
                &["worker", "reason"],
            ),
            slow_wakeups: r.counters(
                "meet_worker_slow_wakeups_total",
                "Media worker wake-ups that kept it busy over 5 ms: every room on it waited",
                w,
            ),
            busy: r.add(
                CounterVec::new(
                    Opts::new(
                        "meet_worker_busy_seconds_total",
                        "Time a media worker spent working rather than waiting; its rate is the busy fraction",
                    ),
                    w,
                )
                .expect("static metric definition"),
            ),
            oversized: r.counters(
                "meet_datagrams_oversized_total",
                "Datagrams longer than the media port takes, dropped unread",
                w,
            ),
            datagrams_sent: r.counters(
                "meet_datagrams_sent_total",
                "UDP datagrams sent on the media ports",
                w,
            ),
            bytes_received: r.counters(
                "meet_media_received_bytes_total",
                "UDP payload bytes received on the media ports",
                w,
            ),
            bytes_sent: r.counters(
                "meet_media_sent_bytes_total",
                "UDP payload bytes sent on the media ports",
                w,
            ),
            send_dropped: r.counters(
                "meet_send_dropped_total",
                "Datagrams given up on before sending: media or control when the socket could not keep up, refused by the kernel, or for an ICE-TCP connection that could not keep up or is gone",
                &["worker", "class"],
            ),
            tcp_connections: r.gauges(
                "meet_ice_tcp_connections",
                "ICE-TCP connections open on a media worker's TCP port",
                w,
            ),
            tcp_refused: r.counters(
                "meet_ice_tcp_connections_refused_total",
                "ICE-TCP connections closed as they came: too many on the worker or from one address",
                w,
            ),
            loss: r.histogram(
                "meet_media_loss_ratio",
                "Fraction of packets lost, from subscribers' receiver reports on what we send them",
                &[0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            ),
            jitter: r.histogram(
                "meet_media_jitter_seconds",
                "Interarrival jitter, from subscribers' receiver reports",
                &[0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25],
            ),
            rtt: r.histogram(
                "meet_media_rtt_seconds",
                "Round trip between the server and subscribers, from their receiver reports",
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6],
            ),
            join_to_media: r.histogram(
                "meet_join_to_media_seconds",
                "From a participant's join to the first media packet sent to it",
                &[0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0],
            ),
        }
    }

    pub(super) fn for_worker(&self, index: usize) -> WorkerMetrics {
        let label = index.to_string();
        let one = |v: &IntCounterVec| v.with_label_values(&[&label]);
        // What browsers publish, shown from the start.
        let tracks_seen = HashSet::from([
            (Kind::Audio, Source::Microphone),
            (Kind::Video, Source::Camera),
            (Kind::Audio, Source::ScreenShareAudio),
            (Kind::Video, Source::ScreenShare),
        ]);
        for &(kind, source) in &tracks_seen {
            self.tracks
                .with_label_values(&[&label, kind_label(kind), source_label(source)]);
        }
        WorkerMetrics {
            rooms: self.rooms.with_label_values(&[&label]),
            participants: self.participants.with_label_values(&[&label]),
            tracks: self.tracks.clone(),
            tracks_seen,
            layers: LAYERS.map(|l| self.layers.with_label_values(&[&label, l])),
            counters: self.counters.iter().map(one).collect(),
            failures: FAILURES
                .map(|(reason, _)| self.failures.with_label_values(&[&label, reason])),
            slow_wakeups: one(&self.slow_wakeups),
            busy: self.busy.with_label_values(&[&label]),
            oversized: one(&self.oversized),
            datagrams_sent: one(&self.datagrams_sent),
            bytes_received: one(&self.bytes_received),
            bytes_sent: one(&self.bytes_sent),
            send_dropped: SEND_DROPPED
                .map(|class| self.send_dropped.with_label_values(&[&label, class])),
            tcp_connections: self.tcp_connections.with_label_values(&[&label]),
            tcp_refused: one(&self.tcp_refused),
            loss: self.loss.clone(),
            jitter: self.jitter.clone(),
            rtt: self.rtt.clone(),
            join_to_media: self.join_to_media.clone(),
            label,
            published: Stats::default(),
            published_counters: WorkerCounters::default(),
        }
    }
}

pub struct WorkerMetrics {
    label: String,
    rooms: IntGauge,
    participants: IntGauge,
    tracks: IntGaugeVec,
    /// Kinds and sources shown: 0 when none are published.
    tracks_seen: HashSet<(Kind, Source)>,
    layers: [IntGauge; 3],
    counters: Vec<IntCounter>,
    failures: [IntCounter; 4],
    slow_wakeups: IntCounter,
    busy: Counter,
    oversized: IntCounter,
    datagrams_sent: IntCounter,
    bytes_received: IntCounter,
    bytes_sent: IntCounter,
    send_dropped: [IntCounter; 4],
    tcp_connections: IntGauge,
    tcp_refused: IntCounter,
    loss: Histogram,
    jitter: Histogram,
    rtt: Histogram,
    join_to_media: Histogram,
    published: Stats,
    published_counters: WorkerCounters,
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    }
}

fn source_label(source: Source) -> &'static str {
    match source {
        Source::Camera => "camera",
        Source::Microphone => "microphone",
        Source::ScreenShare => "screen_share",
        Source::ScreenShareAudio => "screen_share_audio",
    }
}

impl Publish for WorkerMetrics {
    /// Copies a worker's current figures into the registry: the core's,
    /// and what its shell counts itself.
    fn publish(&mut self, now: Snapshot<'_>) {
        self.rooms.set(now.rooms as i64);
        self.participants.set(now.participants as i64);
        self.tracks_seen.extend(now.tracks.keys().copied());
        for &(kind, source) in &self.tracks_seen {
            let n = now.tracks.get(&(kind, source)).copied().unwrap_or(0);
            self.tracks
                .with_label_values(&[&self.label, kind_label(kind), source_label(source)])
                .set(n as i64);
        }
        for (gauge, n) in self.layers.iter().zip(now.layers) {
            gauge.set(n as i64);
        }
        if let Some(stats) = now.stats {
            let before = &self.published;
            for ((_, _, field), counter) in COUNTERS.iter().zip(&self.counters) {
                counter.inc_by(field(stats).saturating_sub(field(before)));
            }
            for ((_, field), counter) in FAILURES.iter().zip(&self.failures) {
                counter.inc_by(field(stats).saturating_sub(field(before)));
            }
            self.published = stats.clone();
        }
        let (c, before) = (&now.counters, &self.published_counters);
        let pairs = [
            (&self.slow_wakeups, c.slow_wakeups, before.slow_wakeups),
            (&self.oversized, c.oversized, before.oversized),
            (
                &self.datagrams_sent,
                c.sent.datagrams,
                before.sent.datagrams,
            ),
            (&self.bytes_received, c.bytes_in, before.bytes_in),
            (&self.bytes_sent, c.sent.bytes, before.sent.bytes),
            (&self.send_dropped[0], c.dropped.media, before.dropped.media),
            (
                &self.send_dropped[1],
                c.dropped.control,
                before.dropped.control,
            ),
            (
                &self.send_dropped[2],
                c.dropped.refused,
                before.dropped.refused,
            ),
            (
                &self.send_dropped[3],
                c.tcp_dropped.packets,
                before.tcp_dropped.packets,
            ),
            (
                &self.tcp_refused,
                c.tcp_dropped.connections,
                before.tcp_dropped.connections,
            ),
        ];
        for (counter, now, before) in pairs {
            counter.inc_by(now.saturating_sub(before));
        }
        self.busy
            .inc_by(c.busy.saturating_sub(before.busy).as_secs_f64());
        self.tcp_connections.set(c.tcp_connections as i64);
        self.published_counters = *c;
        let s = &now.samples;
        for (h, values) in [
            (&self.loss, &s.loss),
            (&self.jitter, &s.jitter),
            (&self.rtt, &s.rtt),
            (&self.join_to_media, &s.join_to_media),
        ] {
            for &v in values {
                h.observe(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Metrics;
    use super::*;
    use crate::room::{Samples, TrackCounts};

    #[test]
    fn publishes_deltas() {
        let m = Metrics::new();
        let mut w = m.worker(0);
        let mut s = Stats::default();
        s.media.rtp_packets_out = 10;
        let mut c = WorkerCounters::default();
        let tracks = TrackCounts::from([((Kind::Video, Source::Camera), 2)]);
        w.publish(Snapshot {
            stats: Some(&s),
            counters: c,
            participants: 3,
            tracks: tracks.clone(),
            ..Default::default()
        });
        s.media.rtp_packets_out = 25;
        s.failures.not_connected = 1;
        c.slow_wakeups = 2;
        c.dropped.media = 7;
        let mut samples = Samples::default();
        samples.rtt.push(0.03);
        w.publish(Snapshot {
            stats: Some(&s),
            counters: c,
            participants: 3,
            samples,
            ..Default::default()
        });
        let text = m.encode();
        for line in [
            "meet_rtp_packets_forwarded_total{worker=\"0\"} 25",
            "meet_worker_participants{worker=\"0\"} 3",
            "meet_worker_slow_wakeups_total{worker=\"0\"} 2",
            "meet_send_dropped_total{class=\"media\",worker=\"0\"} 7",
            "meet_media_connection_failures_total{reason=\"not_connected\",worker=\"0\"} 1",
            "meet_media_rtt_seconds_bucket{le=\"0.05\"} 1",
            // Tracks gone count as none, not as the last figure seen.
            "meet_published_tracks{kind=\"video\",source=\"camera\",worker=\"0\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
