//! The server's media workers under the load generator's peers: real
//! webrtc-rs connections over UDP on 127.0.0.1 (only browsers refuse
//! loopback candidates), against a server in this process.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadtest::peer::{self, PeerPlan, VideoPlan};
use loadtest::progress::Progress;
use loadtest::signal::Target;
use sfu::room::api::Quality;
use sfu::shell::config::Config;
use sfu::shell::server::Server;

/// The value of every sample of `name` on a worker, from `/metrics`.
async fn per_worker(http: std::net::SocketAddr, name: &str) -> Vec<(String, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix("{worker=\""))
        .filter_map(|rest| {
            let (worker, value) = rest.split_once("\"} ")?;
            Some((worker.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_two_workers_carry_media_at_once() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 2,
        media_ips: vec!["127.0.0.1".parse().unwrap()],
        anonymous_join: true,
        ..Config::default()
    };
    let server = Server::bind(&config).await.expect("server binds");
    let http = server.http_addr();
    // Rooms are spread over workers by a hash of their name; take two that
    // landed on different ones.
    let first = server.media_port_for("room-0");
    let other = (1..64)
        .map(|i| format!("room-{i}"))
        .find(|r| server.media_port_for(r) != first)
        .expect("64 rooms, all on one of two workers");
    let rooms = ["room-0".to_owned(), other];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let audio = Arc::new(loadtest::media::speech_frames(2).unwrap());
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(3);
    let until = measure_from + Duration::from_secs(3);
    let mut peers = Vec::new();
    for room in &rooms {
        for name in ["a", "b"] {
            let plan = PeerPlan {
                target: Target::Ours { http },
                client_ip: IpAddr::from([127, 0, 0, 1]),
                room: room.clone(),
                name: format!("{room}-{name}"),
                audio: true,
                video: Some(VideoPlan {
                    bitrate_bps: 300_000,
                    fps: 15,
                    keyframe_interval: Duration::from_secs(2),
                    simulcast: false,
                }),
                t0,
                quality: Quality::High,
                move_layers: false,
                measure_from,
                until,
                downlink: None,
            };
            peers.push(tokio::spawn(peer::run(
                plan,
                audio.clone(),
                Arc::new(Progress::default()),
            )));
        }
    }
    for p in peers {
        let report = p.await.unwrap();
        assert_eq!(report.error, None);
        assert_eq!(
            report.measurements.streams(),
            2,
            "each hears and sees the other one in its room"
        );
        let (expected, received) = report.measurements.expected_received();
        assert!(
            received > 50 && received * 100 >= expected * 99,
            "{received} of {expected}"
        );
    }
    // Both workers forwarded, at the same time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let forwarded = per_worker(http, "meet_rtp_packets_forwarded_total").await;
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    assert!(forwarded.iter().all(|(_, n)| *n > 100.0), "{forwarded:?}");
    let _ = stop.send(());
    running.await.unwrap().unwrap();
}
