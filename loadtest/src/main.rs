//! `loadtest`: real WebRTC load against the SFU, measured.
//!
//!   loadtest --scenario video --participants 6 --duration 20
//!   loadtest --scenario audio --ramp --json results.json
//!   loadtest --smoke            (what CI runs: correctness, not speed)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use loadtest::peer::VideoPlan;
use loadtest::scenario::{self, RunPlan, Scenario};
use loadtest::server::ServerProcess;
use loadtest::stats::Summary;

#[derive(Parser)]
#[command(version, about = "Real WebRTC load against the SFU, measured")]
struct Cli {
    #[arg(long, value_enum, default_value = "video")]
    scenario: Scenario,
    /// Listeners (audio), participants (video) or viewers (livestream).
    #[arg(long, default_value_t = 4)]
    participants: usize,
    /// Measured seconds, after joining and warm-up.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 600)]
    video_kbps: u32,
    /// Media workers (cores) the server may use.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Find the largest N within capacity (loss < 0.5 %, p99 < 10 ms),
    /// doubling from --participants up to --max-participants.
    #[arg(long)]
    ramp: bool,
    #[arg(long, default_value_t = 256)]
    max_participants: usize,
    /// The sfu binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A short run of each scenario that fails unless media flows and
    /// latency is measured.
    #[arg(long)]
    smoke: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rtc=error,rtc_ice=error,rtc_dtls=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let bin = match &cli.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("sfu"),
    };
    let audio = Arc::new(loadtest::media::speech_frames(10).context("encoding Opus")?);
    let video = VideoPlan {
        bitrate_bps: cli.video_kbps * 1000,
        fps: 30,
        keyframe_interval: Duration::from_secs(3),
    };
    let mut results = Vec::new();
    let server = ServerProcess::start(&bin, cli.workers).await?;
    let plans: Vec<(Scenario, usize)> = if cli.smoke {
        vec![
            (Scenario::Video, 3),
            (Scenario::Audio, 2),
            (Scenario::Livestream, 3),
        ]
    } else {
        vec![(cli.scenario, cli.participants)]
    };
    for (i, (sc, n)) in plans.into_iter().enumerate() {
        let mut n = n;
        loop {
            let plan = RunPlan {
                scenario: sc,
                n,
                warmup: Duration::from_secs(if cli.smoke { 2 } else { cli.warmup }),
                duration: Duration::from_secs(if cli.smoke { 3 } else { cli.duration }),
                video,
                room: format!("load-{i}-{n}"),
            };
            let s = scenario::run(&server, &plan, audio.clone()).await;
            print_row(&s, results.is_empty());
            let ok = scenario::within_capacity(&s);
            results.push(s);
            if !cli.ramp || !ok || n * 2 > cli.max_participants {
                break;
            }
            n *= 2;
        }
    }
    server.stop().await;

    if cli.ramp {
        let passing = results.iter().rfind(|s| scenario::within_capacity(s));
        match passing {
            Some(s) => println!(
                "capacity: {} participants ({} per worker core) within loss < 0.5 % and p99 < 10 ms",
                s.participants,
                s.participants / s.server_workers.max(1)
            ),
            None => println!("capacity: even the smallest step missed the criteria"),
        }
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
        println!("results written to {}", path.display());
    }
    if cli.smoke {
        for s in &results {
            if s.packets_received == 0 || s.latency_p50_ms <= 0.0 || s.loss_percent > 5.0 {
                bail!("smoke run failed: {s:?}");
            }
        }
        println!("smoke: {} passed, 0 failed", results.len());
    }
    Ok(())
}

fn print_row(s: &Summary, header: bool) {
    if header {
        println!(
            "{:<11} {:>6} {:>5} {:>9} {:>7} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8}",
            "scenario",
            "peers",
            "pubs",
            "pkts/s",
            "loss%",
            "p50 ms",
            "p99 ms",
            "jit ms",
            "freeze",
            "join ms",
            "cpu%",
            "rss MiB"
        );
    }
    println!(
        "{:<11} {:>6} {:>5} {:>9.0} {:>7.2} {:>8.2} {:>8.2} {:>7.2} {:>7} {:>8.0} {:>7.1} {:>8.1}",
        s.scenario,
        s.participants,
        s.publishers,
        s.forwarded_packets_per_second,
        s.loss_percent,
        s.latency_p50_ms,
        s.latency_p99_ms,
        s.jitter_ms,
        s.freezes,
        s.join_p50_ms,
        s.server_cpu_percent,
        s.server_rss_mib
    );
}
