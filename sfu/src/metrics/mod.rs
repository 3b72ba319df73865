//! Prometheus metrics; `docs/metrics.md` is the catalogue, and a test keeps
//! the two equal. Workers count in plain integers on their own thread and
//! publish into the shared registry a few times a second (see
//! [`WorkerMetrics::publish`]), so the per-packet path touches no atomic that
//! another core also writes. Sessions and the chat bridge are counted where
//! they run, or read at scrape time.

#[cfg(target_os = "linux")]
mod process;
mod worker;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub use worker::WorkerMetrics;

use crate::room::api::Role;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Every metric name registered, whether or not it has a value yet.
    names: Vec<String>,
    worker: worker::Families,
    /// Participants in meetings, by role (counted by their sessions).
    participants: IntGaugeVec,
    joins: IntCounter,
    pub signalling_connections: IntGauge,
    pub signalling_errors: IntCounterVec,
    pub limits_hit: IntCounterVec,
    /// Signalling WebSocket upgrades refused, by reason.
    pub websocket_refused: IntCounterVec,
    chat_outbox: IntGauge,
    chat_delayed: IntGauge,
    /// Unlabelled, but a vector so that it is absent without chat.
    chat_reachable: IntGaugeVec,
    chat_messages: IntCounterVec,
    /// Whether a relay could be allocated on each configured TURN server, by URL.
    pub turn_reachable: IntGaugeVec,
    /// Whether each media worker's thread runs, read at scrape time.
    worker_up: IntGaugeVec,
    draining: IntGauge,
    drain_deadline: IntGauge,
    /// notAfter of the certificates meet serves (`https`) or relies on
    /// (each `turns:` URL), Unix seconds.
    pub certificate_expiry: IntGaugeVec,
    /// Several servers sharing meetings through Redis (`cluster/`).
    pub cluster: ClusterMetrics,
}

/// What a server of several sharing meetings counts (all 0 alone).
#[derive(Clone)]
pub struct ClusterMetrics {
    /// Clients sent to the server that holds their meeting.
    pub redirects: IntCounter,
    /// Meetings this server holds the lease of.
    pub leases: IntGauge,
    /// Meetings whose lease went to another server while held here.
    pub leases_lost: IntCounter,
    /// 1 while the last command to Redis was answered.
    pub redis_up: IntGauge,
    /// Servers in the registry, as last read (this one included).
    pub nodes: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers metrics, noting their names.
struct Registrar {
    registry: Registry,
    names: Vec<String>,
}

impl Registrar {
    fn add<C: Collector + Clone + 'static>(&mut self, c: C) -> C {
        self.add_boxed(Box::new(c.clone()));
        c
    }

    fn add_boxed(&mut self, c: Box<dyn Collector>) {
        self.names
            .extend(c.desc().iter().map(|d| d.fq_name.clone()));
        self.registry
            .register(c)
            .expect("metric names are static and unique");
    }

    fn gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("static metric definition"))
    }

    fn gauges(&mut self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("static metric definition"))
    }

    fn counter(&mut self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("static metric definition"))
    }

    fn counters(&mut self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(
            IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition"),
        )
    }

    fn histogram(&mut self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts).expect("static metric definition"))
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registrar {
            registry: Registry::new(),
            names: Vec::new(),
        };
        let worker = worker::Families::register(&mut r);
        let participants = r.gauges(
            "meet_participants",
            "Participants in meetings, by role (host: may remove others)",
            &["role"],
        );
        // Both shown from the start, at 0.
        for role in ["host", "participant"] {
            participants.with_label_values(&[role]);
        }
        let joins = r.counter(
            "meet_joins_total",
            "Participants admitted and handed to their meeting's worker",
        );
        let signalling_connections = r.gauge(
            "meet_signalling_connections",
            "Open signalling WebSocket connections",
        );
        let signalling_errors = r.counters(
            "meet_signalling_errors_total",
            "Error replies sent on signalling connections, by code",
            &["code"],
        );
        let limits_hit = r.counters(
            "meet_limits_hit_total",
            "Requests refused because a configured limit was reached, by limit",
            &["limit"],
        );
        let websocket_refused = r.counters(
            "meet_websocket_refused_total",
            "Signalling WebSocket upgrades refused: a page of another origin, or a name the server is not reached under, by reason",
            &["reason"],
        );
        // Both shown from the start, at 0.
        for reason in ["origin", "host"] {
            websocket_refused.with_label_values(&[reason]);
        }
        let chat_outbox = r.gauge(
            "meet_chat_outbox_events",
            "Chat events waiting in the outbox for the Matrix homeserver",
        );
        let chat_delayed = r.gauge(
            "meet_chat_delayed",
            "1 while the Matrix homeserver is unreachable and chat is delayed",
        );
        let chat_reachable = r.gauges(
            "meet_chat_homeserver_reachable",
            "1 while the Matrix homeserver answers, 0 while it does not; absent without chat",
            &[],
        );
        let chat_messages = r.counters(
            "meet_chat_messages_total",
            "Chat messages relayed between meetings and Matrix rooms, by direction",
            &["direction"],
        );
        let turn_reachable = r.gauges(
            "meet_turn_reachable",
            "1 while a relay can be allocated on the configured TURN server with turn_secret, 0 while not, by URL",
            &["url"],
        );
        let worker_up = r.gauges(
            "meet_worker_up",
            "1 while the media worker's thread runs, 0 once it has stopped, by worker",
            &["worker"],
        );
        let draining = r.gauge(
            "meet_draining",
            "1 while the server drains for a stop (takes no new meetings), else 0",
        );
        let drain_deadline = r.gauge(
            "meet_drain_deadline_timestamp_seconds",
            "When the drain under way gives up waiting for meetings to end (Unix seconds); 0 while serving",
        );
        let certificate_expiry = r.gauges(
            "meet_certificate_expiry_timestamp_seconds",
            "When a certificate meet serves (https) or relies on (a turns: URL) expires, Unix seconds",
            &["endpoint"],
        );
        let cluster = ClusterMetrics {
            redirects: r.counter(
                "meet_cluster_redirects_total",
                "Joins sent on to the server that holds the meeting (or was chosen for it)",
            ),
            leases: r.gauge(
                "meet_cluster_leases",
                "Meetings whose lease this server holds in Redis",
            ),
            leases_lost: r.counter(
                "meet_cluster_leases_lost_total",
                "Meetings closed here because another server holds their lease now",
            ),
            redis_up: r.gauge(
                "meet_cluster_redis_up",
                "1 while Redis answers this server's commands, 0 while it does not (0 without redis)",
            ),
            nodes: r.gauge(
                "meet_cluster_nodes",
                "Servers in the cluster's registry as this one last read it (0 without redis)",
            ),
        };
        // CPU, memory, file descriptors and threads of this process, read
        // from /proc at scrape time.
        #[cfg(target_os = "linux")]
        r.add_boxed(Box::new(process::Process::new()));
        Self {
            registry: r.registry,
            names: r.names,
            worker,
            participants,
            joins,
            signalling_connections,
            signalling_errors,
            limits_hit,
            websocket_refused,
            chat_outbox,
            chat_delayed,
            chat_reachable,
            chat_messages,
            turn_reachable,
            worker_up,
            draining,
            drain_deadline,
            certificate_expiry,
            cluster,
        }
    }

    /// Takes whether each worker runs (read at scrape time).
    pub fn workers_up(&self, running: impl IntoIterator<Item = bool>) {
        for (i, up) in running.into_iter().enumerate() {
            self.worker_up
                .with_label_values(&[&i.to_string()])
                .set(i64::from(up));
        }
    }

    /// Takes the drain's state: its deadline while one is under way.
    pub fn drain(&self, deadline: Option<std::time::SystemTime>) {
        self.draining.set(i64::from(deadline.is_some()));
        let secs = deadline
            .and_then(|d| d.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        self.drain_deadline.set(secs);
    }

    /// A participant joined; the guard counts it out again when dropped.
    pub fn joined(&self, role: Role) -> ParticipantGuard {
        self.joins.inc();
        let role = match role {
            Role::Host => "host",
            Role::Participant => "participant",
            Role::Viewer => "viewer",
        };
        let gauge = self.participants.with_label_values(&[role]);
        gauge.inc();
        ParticipantGuard(gauge)
    }

    /// Takes the chat bridge's figures (read at scrape time).
    pub fn chat(&self, stats: chat::ChatStats) {
        self.chat_outbox.set(stats.outbox as i64);
        self.chat_delayed.set(i64::from(stats.delayed));
        self.chat_reachable
            .with_label_values(&[] as &[&str])
            .set(i64::from(!stats.delayed));
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
        self.worker.for_worker(index)
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("encoding into a Vec cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }

    /// Every metric name, including those without a value yet.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// One participant in `meet_participants`, until dropped.
pub struct ParticipantGuard(IntGauge);

impl Drop for ParticipantGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/metrics.md`'s table: name and type of each metric.
    fn catalogue() -> Vec<(String, String)> {
        include_str!("../../../docs/metrics.md")
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let kind = cells.next()?;
                Some((name.to_owned(), kind.to_owned()))
            })
            .collect()
    }

    #[test]
    fn the_catalogue_lists_every_metric_and_nothing_else() {
        let m = Metrics::new();
        let doc = catalogue();
        let mut documented: Vec<&str> = doc.iter().map(|(n, _)| n.as_str()).collect();
        let mut registered: Vec<&str> = m.names().iter().map(String::as_str).collect();
        documented.sort_unstable();
        registered.sort_unstable();
        assert_eq!(
            documented, registered,
            "docs/metrics.md against the registry"
        );
        // Types, of those with a value.
        let mut w = m.worker(0);
        crate::worker::Publish::publish(&mut w, crate::worker::Snapshot::default());
        m.chat(chat::ChatStats {
            outbox: 0,
            delayed: false,
            from_matrix: 0,
            to_matrix: 0,
        });
        drop(m.joined(Role::Host));
        m.signalling_errors
            .with_label_values(&["bad_message"])
            .inc();
        m.limits_hit.with_label_values(&["meetings"]).inc();
        for family in m.registry.gather() {
            let kind = format!("{:?}", family.get_field_type()).to_lowercase();
            let (_, doc_kind) = doc.iter().find(|(n, _)| n == family.name()).unwrap();
            assert_eq!(doc_kind, &kind, "{}", family.name());
        }
    }
}
