//! The scenarios: who publishes what to whom, run against a server for a
//! bounded time, summarised.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::ValueEnum;
use serde::Serialize;

use crate::janus::JanusProcess;
use crate::peer::{self, PeerPlan, PeerReport, VideoPlan};
use crate::progress::Progress;
use crate::server::{ServerProcess, Usage};
use crate::signal::{Feeds, Target};
use crate::stats::{DownlinkClass, Measurements, Summary};
use sfu::signalling::v1::Quality;

/// The SFU a run measures.
#[derive(Clone, Copy)]
pub enum Sfu<'a> {
    Ours(&'a ServerProcess),
    Janus(&'a JanusProcess),
}

impl Sfu<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Sfu::Ours(_) => "ours",
            Sfu::Janus(_) => "janus",
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            Sfu::Ours(s) => s.usage().ok(),
            Sfu::Janus(j) => j.usage().ok(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Ten audio publishers, N listeners: a large town-hall call.
    Audio,
    /// N participants, each publishing audio and video to all others.
    Video,
    /// One publisher of audio and video, N viewers.
    Livestream,
    /// One publisher of audio and simulcast video, N viewers on narrow
    /// links of their own ([`DOWNLINKS`], in turn): what each gets of a
    /// server with `bandwidth_estimation` on.
    Constrained,
}

/// The constrained scenario's downlinks, viewer by viewer in turn, in
/// bits per second (`None`: unlimited): the low layer fits the first, the
/// middle the second.
pub const DOWNLINKS: [Option<f64>; 3] = [Some(300_000.0), Some(1_000_000.0), None];

/// Publishers in the audio scenario.
pub const AUDIO_PUBLISHERS: usize = 10;
/// Longest measured period one run may have.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Pause between two joins, so joining is not one thundering herd.
const JOIN_SPACING: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct RunPlan {
    pub scenario: Scenario,
    /// Listeners (audio), participants (video) or viewers (livestream).
    pub n: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub video: VideoPlan,
    /// The simulcast layer subscribers ask for.
    pub quality: Quality,
    /// See `PeerPlan::move_layers`.
    pub move_layers: bool,
    pub room: String,
    /// The downlink of the last participant (one that receives), bits per
    /// second; the constrained scenario has its own.
    pub narrow: Option<f64>,
}

/// One participant of a run.
struct Role {
    name: String,
    audio: bool,
    video: bool,
    downlink: Option<f64>,
}

impl Role {
    fn new(name: String, audio: bool, video: bool) -> Self {
        Self {
            name,
            audio,
            video,
            downlink: None,
        }
    }
}

impl RunPlan {
    /// Every participant: what it publishes, and its downlink.
    fn roles(&self) -> Vec<Role> {
        let mut roles = self.roles_by_scenario();
        if let (Some(rate), Some(last)) = (self.narrow, roles.last_mut()) {
            if self.scenario != Scenario::Constrained {
                last.downlink = Some(rate);
            }
        }
        roles
    }

    fn roles_by_scenario(&self) -> Vec<Role> {
        let n = self.n.min(crate::server::MAX_PARTICIPANTS);
        let presenter = || Role::new("presenter".to_owned(), true, true);
        match self.scenario {
            Scenario::Audio => (0..AUDIO_PUBLISHERS)
                .map(|i| Role::new(format!("speaker-{i}"), true, false))
                .chain((0..n).map(|i| Role::new(format!("listener-{i}"), false, false)))
                .collect(),
            Scenario::Video => (0..n)
                .map(|i| Role::new(format!("member-{i}"), true, true))
                .collect(),
            Scenario::Livestream => std::iter::once(presenter())
                .chain((0..n).map(|i| Role::new(format!("viewer-{i}"), false, false)))
                .collect(),
            Scenario::Constrained => std::iter::once(presenter())
                .chain((0..n).map(|i| Role {
                    downlink: DOWNLINKS[i % DOWNLINKS.len()],
                    ..Role::new(format!("viewer-{i}"), false, false)
                }))
                .collect(),
        }
    }
}

/// Runs one scenario against `server`, printing progress once a second.
pub async fn run(
    sfu: Sfu<'_>,
    plan: &RunPlan,
    audio: Arc<Vec<Bytes>>,
    client_ip: IpAddr,
) -> anyhow::Result<Summary> {
    let roles = plan.roles();
    let publishers = roles.iter().filter(|r| r.audio || r.video).count();
    let target = match sfu {
        Sfu::Ours(s) => Target::Ours { http: s.http },
        Sfu::Janus(j) => {
            let room = rand::random::<u32>().into();
            j.create_room(room).await?;
            Target::Janus {
                api: j.http,
                room,
                feeds: Feeds::new(publishers),
            }
        }
    };
    let join_time = JOIN_SPACING * roles.len() as u32;
    let t0 = Instant::now();
    let measure_from = t0 + join_time + plan.warmup;
    let until = measure_from + plan.duration.min(MAX_DURATION);
    let progress = Arc::new(Progress::default());
    let mut tasks = Vec::new();
    for role in &roles {
        let p = PeerPlan {
            target: target.clone(),
            client_ip,
            quality: plan.quality,
            move_layers: plan.move_layers,
            room: plan.room.clone(),
            name: role.name.clone(),
            audio: role.audio,
            video: role.video.then_some(plan.video),
            t0,
            measure_from,
            until,
            downlink: role.downlink,
        };
        tasks.push(tokio::spawn(peer::run(p, audio.clone(), progress.clone())));
        tokio::time::sleep(JOIN_SPACING).await;
    }

    // Server figures over the measured period only.
    tokio::time::sleep_until(measure_from.into()).await;
    let usage_start = sfu.usage();
    let packets_start = progress.packets.load(Ordering::Relaxed);
    let measured_start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() + Duration::from_millis(500) < until {
        ticker.tick().await;
        eprint!(
            "\r  {:?} n={}: {} joined, {} packets received, {:.0} s left   ",
            plan.scenario,
            plan.n,
            progress.joined.load(Ordering::Relaxed),
            progress.packets.load(Ordering::Relaxed),
            until
                .saturating_duration_since(Instant::now())
                .as_secs_f64(),
        );
    }
    let elapsed = measured_start.elapsed().as_secs_f64().max(0.001);
    let usage_end = sfu.usage();
    let packets_end = progress.packets.load(Ordering::Relaxed);
    eprintln!();

    let mut total = Measurements::new(t0);
    let mut expected = 0;
    let mut received = 0;
    let mut jitter_sum = 0.0;
    let mut streams = 0;
    let mut joins = Vec::new();
    let mut connected = 0;
    let mut failed = 0;
    // Each subscriber's own p99: fairness shows in the worst of them.
    let mut worst_p99_us = 0u64;
    let mut downlinks: Vec<(Option<f64>, Vec<PeerReport>)> = Vec::new();
    for (t, role) in tasks.into_iter().zip(&roles) {
        let Ok(r) = t.await else {
            failed += 1;
            continue;
        };
        if let Some(e) = &r.error {
            failed += 1;
            tracing::warn!(error = %e, "a participant failed");
        }
        if let Some(j) = r.join {
            joins.push(j.as_secs_f64() * 1000.0);
        }
        if r.measurements.streams() > 0 {
            connected += 1;
            jitter_sum += r.measurements.mean_jitter_ms();
        }
        if r.measurements.latency_us.len() >= 100 {
            worst_p99_us = worst_p99_us.max(r.measurements.latency_us.value_at_quantile(0.99));
        }
        let (e, rc) = r.measurements.expected_received();
        expected += e;
        received += rc;
        streams += r.measurements.streams();
        total.merge(&r.measurements);
        let viewer = !(role.audio || role.video);
        if (plan.scenario == Scenario::Constrained && viewer) || role.downlink.is_some() {
            match downlinks
                .iter_mut()
                .find(|(rate, _)| *rate == role.downlink)
            {
                Some((_, reports)) => reports.push(r),
                None => downlinks.push((role.downlink, vec![r])),
            }
        }
    }
    joins.sort_by(f64::total_cmp);
    let (cpu, rss) = match (usage_start, usage_end) {
        (Some(a), Some(b)) => (
            (b.cpu_seconds - a.cpu_seconds) / elapsed * 100.0,
            b.rss_kib as f64 / 1024.0,
        ),
        _ => (0.0, 0.0),
    };
    let ms = |q: f64| total.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let audio_ms = |q: f64| {
        if total.audio_latency_us.is_empty() {
            f64::NAN
        } else {
            total.audio_latency_us.value_at_quantile(q) as f64 / 1000.0
        }
    };
    Ok(Summary {
        sfu: sfu.name().to_owned(),
        scenario: format!("{:?}", plan.scenario).to_lowercase(),
        participants: roles.len(),
        publishers,
        subscribers_connected: connected,
        participants_failed: failed,
        streams_received: streams,
        packets_received: total.packets,
        loss_percent: if expected == 0 {
            100.0
        } else {
            (expected - received) as f64 / expected as f64 * 100.0
        },
        latency_p50_ms: ms(0.5),
        latency_p99_ms: ms(0.99),
        latency_p99_worst_subscriber_ms: worst_p99_us as f64 / 1000.0,
        latency_max_ms: total.latency_us.max() as f64 / 1000.0,
        audio_latency_p50_ms: audio_ms(0.5),
        audio_latency_p99_ms: audio_ms(0.99),
        video_layer_packets: total.layer_packets,
        jitter_ms: if connected == 0 {
            0.0
        } else {
            jitter_sum / connected as f64
        },
        freezes: total.freezes,
        join_p50_ms: joins.get(joins.len() / 2).copied().unwrap_or(f64::NAN),
        join_max_ms: joins.last().copied().unwrap_or(f64::NAN),
        server_cpu_percent: cpu,
        server_rss_mib: rss,
        received_packets_per_second: (packets_end - packets_start) as f64 / elapsed,
        server_cpu_percent_per_stream: if streams == 0 {
            0.0
        } else {
            cpu / streams as f64
        },
        server_workers: match sfu {
            Sfu::Ours(s) => s.workers,
            Sfu::Janus(_) => 0,
        },
        downlinks: downlinks
            .iter()
            .map(|(rate, reports)| downlink_class(*rate, reports, elapsed))
            .collect(),
    })
}

/// What the viewers on downlinks of `rate` received over `elapsed`
/// seconds.
fn downlink_class(rate: Option<f64>, reports: &[PeerReport], elapsed: f64) -> DownlinkClass {
    let mut layers = [0; 3];
    let (mut bytes, mut freezes, mut dropped, mut streams) = (0, 0, 0, 0);
    let (mut due, mut got) = (0, 0);
    for r in reports {
        let m = &r.measurements;
        for (a, b) in layers.iter_mut().zip(m.layer_packets) {
            *a += b;
        }
        bytes += m.bytes;
        freezes += m.freezes;
        dropped += r.dropped;
        streams += m.video_streams();
        let (e, rc) = m.audio_expected_received();
        due += e;
        got += rc;
    }
    let viewers = reports.len().max(1);
    DownlinkClass {
        kbps: rate.map(|r| (r / 1000.0) as u32),
        viewers: reports.len(),
        received_kbps: bytes as f64 * 8.0 / 1000.0 / elapsed / viewers as f64,
        video_layer_packets: layers,
        freezes,
        freezes_per_stream_minute: if streams == 0 {
            0.0
        } else {
            freezes as f64 / streams as f64 / (elapsed / 60.0)
        },
        audio_loss_percent: if due == 0 {
            100.0
        } else {
            (due - got) as f64 / due as f64 * 100.0
        },
        dropped,
    }
}

/// Whether a run is within the capacity criteria: loss under 0.5 % and p99
/// added latency under `max_p99_ms` (10 ms by the book), and nobody failed
/// to join or dropped out.
pub fn within_capacity(s: &Summary, max_p99_ms: f64) -> bool {
    s.loss_percent < 0.5
        && s.latency_p99_ms < max_p99_ms
        && s.subscribers_connected > 0
        && s.participants_failed == 0
}
