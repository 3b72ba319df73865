//! `loadtest`: real WebRTC load against the SFU, measured.
//!
//!   loadtest --scenario video --participants 6 --duration 20
//!   loadtest --scenario audio --ramp --json results.json
//!   loadtest --scenario constrained --participants 6 --duration 30
//!   loadtest --smoke            (what CI runs: correctness, not speed)

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use loadtest::janus::JanusProcess;
use loadtest::peer::VideoPlan;
use loadtest::scenario::{self, RunPlan, Scenario, Sfu};
use loadtest::server::ServerProcess;
use loadtest::stats::Summary;
use sfu::signalling::v1::Quality;

#[derive(Clone, Copy, ValueEnum)]
enum QualityArg {
    Low,
    Medium,
    High,
}

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
    /// Video bitrate per publisher, kbit/s (of the top simulcast layer; the
    /// others get a third and a tenth of it).
    #[arg(long, default_value_t = 900)]
    video_kbps: u32,
    /// Publish one video stream at --video-kbps instead of three layers.
    #[arg(long)]
    no_simulcast: bool,
    /// The simulcast layer subscribers ask for.
    #[arg(long, value_enum, default_value = "high")]
    quality: QualityArg,
    /// Subscribers ask for the lowest layer first and for --quality a
    /// second before measuring, so that every video down-track has moved
    /// between layers (VP8 picture ids are then rewritten: the costly case).
    #[arg(long)]
    move_layers: bool,
    /// Media workers (cores) our server may use.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Find the largest N within capacity (loss < 0.5 %, p99 < 10 ms),
    /// doubling from --participants up to --max-participants.
    #[arg(long)]
    ramp: bool,
    #[arg(long, default_value_t = 256)]
    max_participants: usize,
    /// The ramp's latency criterion (p99, ms). Raise it to find where a
    /// server saturates rather than where its tail first passes 10 ms.
    #[arg(long, default_value_t = 10.0)]
    max_p99_ms: f64,
    /// Run the same scenario against Janus (Debian's janus, VideoRoom) too.
    /// Janus never offers loopback candidates: run inside ops/netns-pair.sh
    /// with --media-ip 10.99.0.1 --client-ip 10.99.0.2 (ops/bench.sh does).
    #[arg(long)]
    compare_janus: bool,
    /// Network namespace to start the servers in (ops/netns-pair.sh sets
    /// LOADTEST_SERVER_NETNS); without one they run beside the generator.
    #[arg(long, env = "LOADTEST_SERVER_NETNS")]
    server_netns: Option<String>,
    /// The servers' media address.
    #[arg(long, default_value = "127.0.0.1")]
    media_ip: IpAddr,
    /// The simulated participants' address.
    #[arg(long, default_value = "127.0.0.1")]
    client_ip: IpAddr,
    /// The sfu binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Janus configuration templates.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/janus"))]
    janus_config: PathBuf,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency and CPU against participants into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// The last participant's downlink, kbit/s (a queue draining at that
    /// rate with 200 ms of buffer, inside the generator): a member on a
    /// weak link, reported on its own. The constrained scenario has its
    /// own downlinks.
    #[arg(long)]
    downlink_kbps: Option<u32>,
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
        simulcast: !cli.no_simulcast,
    };
    let quality = match cli.quality {
        QualityArg::Low => Quality::Low,
        QualityArg::Medium => Quality::Medium,
        QualityArg::High => Quality::High,
    };
    let steps: Vec<(Scenario, usize)> = if cli.smoke {
        vec![
            (Scenario::Video, 3),
            (Scenario::Audio, 2),
            (Scenario::Livestream, 3),
            (Scenario::Constrained, 3),
        ]
    } else {
        vec![(cli.scenario, cli.participants)]
    };
    let netns = cli.server_netns.as_deref();
    let ours = ServerProcess::start(&bin, cli.workers, cli.media_ip, netns, &[]).await?;
    // The constrained scenario measures bandwidth estimation: a server of
    // its own with it on.
    let estimating = if steps.iter().any(|(sc, _)| *sc == Scenario::Constrained) {
        let env = [("MEET_BANDWIDTH_ESTIMATION", "true")];
        Some(ServerProcess::start(&bin, cli.workers, cli.media_ip, netns, &env).await?)
    } else {
        None
    };
    let janus = if cli.compare_janus {
        Some(JanusProcess::start(&cli.janus_config, cli.media_ip, netns).await?)
    } else {
        None
    };
    let mut sfus = vec![Sfu::Ours(&ours)];
    sfus.extend(janus.as_ref().map(Sfu::Janus));

    let mut results: Vec<Summary> = Vec::new();
    for sfu in &sfus {
        for (i, &(sc, first)) in steps.iter().enumerate() {
            let sfu = match (sfu, sc, &estimating) {
                (Sfu::Ours(_), Scenario::Constrained, Some(e)) => Sfu::Ours(e),
                _ => *sfu,
            };
            // Estimates take a few seconds to find each link.
            let smoke_warmup = if sc == Scenario::Constrained { 8 } else { 2 };
            let mut n = first;
            loop {
                let plan = RunPlan {
                    scenario: sc,
                    n,
                    warmup: Duration::from_secs(if cli.smoke { smoke_warmup } else { cli.warmup }),
                    duration: Duration::from_secs(if cli.smoke { 3 } else { cli.duration }),
                    video,
                    // The smoke run checks that layer choice works.
                    quality: if cli.smoke && sc == Scenario::Livestream {
                        Quality::Low
                    } else {
                        quality
                    },
                    move_layers: cli.move_layers,
                    room: format!("load-{}-{i}-{n}", sfu.name()),
                    narrow: cli.downlink_kbps.map(|k| f64::from(k) * 1000.0),
                };
                let s = scenario::run(sfu, &plan, audio.clone(), cli.client_ip).await?;
                print_row(&s, results.is_empty());
                print_downlinks(&s);
                let ok = scenario::within_capacity(&s, cli.max_p99_ms);
                results.push(s);
                if !cli.ramp || !ok || n * 2 > cli.max_participants {
                    break;
                }
                n *= 2;
            }
        }
    }

    if cli.ramp {
        for sfu in &sfus {
            let passing = results
                .iter()
                .filter(|s| s.sfu == sfu.name())
                .rfind(|s| scenario::within_capacity(s, cli.max_p99_ms));
            match passing {
                Some(s) => println!(
                    "capacity ({}): {} participants within loss < 0.5 % and p99 < {} ms{}",
                    sfu.name(),
                    s.participants,
                    cli.max_p99_ms,
                    s.participants
                        .checked_div(s.server_workers)
                        .map(|n| format!(", {n} per media worker core"))
                        .unwrap_or_default()
                ),
                None => println!(
                    "capacity ({}): even the smallest step missed the criteria",
                    sfu.name()
                ),
            }
        }
    }
    print_ratios(&results);
    print_memory_slopes(&results);
    drop(sfus);
    ours.stop().await;
    if let Some(e) = estimating {
        e.stop().await;
    }
    if let Some(j) = janus {
        j.stop().await;
    }
    if let Some(path) = &cli.plot {
        loadtest::plot::draw(&results, path)?;
        println!("plot written to {}", path.display());
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
        println!("results written to {}", path.display());
    }
    if cli.smoke {
        for s in &results {
            if let Err(why) = smoke_check(s) {
                bail!("smoke run failed: {why}: {s:?}");
            }
        }
        println!("smoke: {} passed, 0 failed", results.len());
    }
    Ok(())
}

/// What a smoke run must show: media flows, both latencies are measured,
/// and subscribers get the simulcast layer they asked for (the top one,
/// but the lowest in the livestream).
fn smoke_check(s: &Summary) -> Result<(), &'static str> {
    if s.scenario == "constrained" {
        // Narrow links lose what overflows them: judged by link.
        if s.packets_received == 0 || s.participants_failed > 0 {
            return Err("media did not flow");
        }
        return constrained_check(s);
    }
    if s.packets_received == 0 || s.loss_percent > 5.0 || s.participants_failed > 0 {
        return Err("media did not flow");
    }
    if s.latency_p50_ms <= 0.0 || s.audio_latency_p50_ms.is_nan() {
        return Err("latency was not measured");
    }
    let layers = s.video_layer_packets;
    let total: u64 = layers.iter().sum();
    let wanted = if s.scenario == "livestream" { 0 } else { 2 };
    if s.scenario != "audio" && total == 0 {
        return Err("no video arrived");
    }
    if s.scenario != "audio" && layers[wanted] * 10 < total * 9 {
        return Err("subscribers did not get the simulcast layer they asked for");
    }
    Ok(())
}

/// What the constrained scenario must show: each viewer gets what its own
/// link carries, sound first. The one on 300 kbit/s gets the low layer and
/// never the top one, with its audio intact; the unlimited one gets more
/// than twice as much as it.
fn constrained_check(s: &Summary) -> Result<(), &'static str> {
    let class = |kbps: Option<u32>| s.downlinks.iter().find(|c| c.kbps == kbps);
    let (Some(narrow), Some(wide)) = (class(Some(300)), class(None)) else {
        return Err("a kind of downlink is missing");
    };
    if narrow.audio_loss_percent > 1.0 {
        return Err("audio was lost on the 300 kbit/s link");
    }
    let [low, _, top] = narrow.video_layer_packets;
    let total: u64 = narrow.video_layer_packets.iter().sum();
    if top > 0 || low * 10 < total * 8 {
        return Err("the 300 kbit/s link was not given the low layer");
    }
    if wide.received_kbps < 2.0 * narrow.received_kbps {
        return Err("the unlimited link got no more than the 300 kbit/s one");
    }
    Ok(())
}

/// The constrained scenario's viewers, by their downlink.
fn print_downlinks(s: &Summary) {
    for c in &s.downlinks {
        let link = c
            .kbps
            .map_or("unlimited".to_owned(), |k| format!("{k} kbit/s"));
        println!(
            "  downlink {link}: {} receivers, {:.0} kbit/s received each, video packets by layer {:?}, {} freezes ({:.2} per stream-minute), audio lost {:.2} %, {} datagrams dropped by the link",
            c.viewers, c.received_kbps, c.video_layer_packets, c.freezes, c.freezes_per_stream_minute, c.audio_loss_percent, c.dropped
        );
    }
}

/// Server memory per added participant, and per added down-track (stream
/// a subscriber receives), between consecutive steps of a ramp: what each
/// costs the server, its connections included.
fn print_memory_slopes(results: &[Summary]) {
    for w in results.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.sfu != b.sfu || a.scenario != b.scenario || b.participants <= a.participants {
            continue;
        }
        let kib = (b.server_rss_mib - a.server_rss_mib) * 1024.0;
        let per = |n: usize| kib / n as f64;
        println!(
            "memory ({}) {} n={}→{}: {:.0} KiB per added participant, {:.0} KiB per added down-track (stream received)",
            a.sfu,
            a.scenario,
            a.participants,
            b.participants,
            per(b.participants - a.participants),
            per(b.streams_received.saturating_sub(a.streams_received).max(1)),
        );
    }
}

/// Ours against Janus for each scenario and size both ran.
fn print_ratios(results: &[Summary]) {
    for o in results.iter().filter(|s| s.sfu == "ours") {
        let Some(j) = results.iter().find(|j| {
            j.sfu == "janus" && j.scenario == o.scenario && j.participants == o.participants
        }) else {
            continue;
        };
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        println!(
            "ours/janus {} n={}: CPU per stream {:.2}, p50 latency {:.2}, p99 latency {:.2}",
            o.scenario,
            o.participants,
            ratio(
                o.server_cpu_percent_per_stream,
                j.server_cpu_percent_per_stream
            ),
            ratio(o.latency_p50_ms, j.latency_p50_ms),
            ratio(o.latency_p99_ms, j.latency_p99_ms),
        );
    }
}

fn print_row(s: &Summary, header: bool) {
    if header {
        println!(
            "{:<6} {:<11} {:>6} {:>5} {:>8} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>6} {:>8} {:>7} {:>9} {:>7}",
            "sfu",
            "scenario",
            "peers",
            "pubs",
            "rx pps",
            "loss%",
            "p50 ms",
            "p99 ms",
            "worst99",
            "audio99",
            "jit ms",
            "freeze",
            "join ms",
            "cpu%",
            "cpu%/strm",
            "rss MiB"
        );
    }
    println!(
        "{:<6} {:<11} {:>6} {:>5} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>8.2} {:>7.2} {:>6} {:>8.0} {:>7.1} {:>9.3} {:>7.1}",
        s.sfu,
        s.scenario,
        s.participants,
        s.publishers,
        s.received_packets_per_second,
        s.loss_percent,
        s.latency_p50_ms,
        s.latency_p99_ms,
        s.latency_p99_worst_subscriber_ms,
        s.audio_latency_p99_ms,
        s.jitter_ms,
        s.freezes,
        s.join_p50_ms,
        s.server_cpu_percent,
        s.server_cpu_percent_per_stream,
        s.server_rss_mib
    );
}
