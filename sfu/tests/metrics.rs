//! A real server's `/metrics`, as Prometheus's own linter sees it
//! (`promtool check metrics`, from Debian's prometheus package, which
//! `ops/setup.sh test` installs), and against the catalogue in
//! `docs/metrics.md`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use serde_json::json;

mod common;

use common::{join, send, Running};
use sfu::worker::Intake;

/// The exposition of a server with a participant and a signalling error.
async fn scrape() -> String {
    let server = Running::start(&Running::config()).await;
    let mut ws = server.ws().await;
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "room": "r", "name": "Alice"}),
    )
    .await;
    send(&mut ws, json!({"type": "nonsense"})).await;
    let url = format!("http://{}/metrics", server.http);
    // The participant counts from the server's answer to its join.
    let mut body = String::new();
    for _ in 0..100 {
        body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if body.contains("meet_participants{role=")
            && body.contains("meet_signalling_errors_total{")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.stop().await;
    body
}

#[tokio::test]
async fn promtool_finds_nothing_to_complain_about() {
    let body = scrape().await;
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {promtool} (ops/setup.sh test installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{body}"
    );
}

#[tokio::test]
async fn every_metric_served_is_in_the_catalogue_with_its_type() {
    let body = scrape().await;
    let doc = include_str!("../../docs/metrics.md");
    let mut families = 0;
    for line in body.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        let row = format!("| `{name}` | {kind} |");
        assert!(doc.contains(&row), "docs/metrics.md lacks {row}");
        families += 1;
    }
    assert!(families > 30, "only {families} metrics served:\n{body}");
}

/// With `metrics_listen`, the metrics are there and not on the public
/// listener.
#[tokio::test]
async fn metrics_can_be_kept_off_the_public_listener() {
    let server = Running::start(&sfu::shell::config::Config {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Running::config()
    })
    .await;
    let public = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let private = server.metrics.expect("a metrics listener");
    let body = reqwest::get(format!("http://{private}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("meet_signalling_connections"), "{body}");
    server.stop().await;
}

/// The status of a GET, with the admin key when `key`.
async fn status(addr: SocketAddr, path: &str, key: bool) -> u16 {
    let mut request = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if key {
        request = request.bearer_auth(ADMIN_KEY);
    }
    request.send().await.unwrap().status().as_u16()
}

const ADMIN_KEY: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn the_admin_api_can_have_a_listener_of_its_own() {
    let server = Running::start(&sfu::shell::config::Config {
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin_key: ADMIN_KEY.into(),
        ..Running::config()
    })
    .await;
    let admin = server.admin.expect("an admin listener");
    assert_eq!(status(server.http, "/api/admin/meetings", true).await, 404);
    assert_eq!(status(server.http, "/api/openapi.json", false).await, 404);
    assert_eq!(status(admin, "/api/admin/meetings", true).await, 200);
    assert_eq!(status(admin, "/api/admin/meetings", false).await, 401);
    assert_eq!(status(admin, "/api/openapi.json", false).await, 200);
    // Metrics stay where they were: on the loopback public listener.
    assert_eq!(status(server.http, "/metrics", false).await, 200);
    assert_eq!(status(admin, "/metrics", false).await, 404);
    server.stop().await;
}

#[tokio::test]
async fn metrics_and_the_admin_api_may_share_one_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let internal: SocketAddr = ([127, 0, 0, 1], port).into();
    let server = Running::start(&sfu::shell::config::Config {
        metrics_listen: Some(internal),
        admin_listen: Some(internal),
        admin_key: ADMIN_KEY.into(),
        ..Running::config()
    })
    .await;
    assert_eq!(server.metrics, Some(internal));
    assert_eq!(server.admin, Some(internal));
    assert_eq!(status(internal, "/metrics", false).await, 200);
    assert_eq!(status(internal, "/api/admin/meetings", true).await, 200);
    assert_eq!(status(server.http, "/metrics", false).await, 404);
    assert_eq!(status(server.http, "/api/admin/meetings", true).await, 404);
    server.stop().await;
}

/// A public listener that is not on loopback (here the wildcard address,
/// reached over loopback) serves neither metrics nor the admin API unless
/// given their own addresses; meetings it serves all the same.
#[tokio::test]
async fn a_listener_facing_users_publishes_neither_metrics_nor_the_admin_api() {
    let server = Running::start(&sfu::shell::config::Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        admin_key: ADMIN_KEY.into(),
        ..Running::config()
    })
    .await;
    let public: SocketAddr = ([127, 0, 0, 1], server.http.port()).into();
    assert_eq!(status(public, "/metrics", false).await, 404);
    assert_eq!(status(public, "/api/admin/meetings", true).await, 404);
    assert_eq!(status(public, "/api/openapi.json", false).await, 404);
    assert_eq!(status(public, "/readyz", false).await, 200);
    assert_eq!(status(public, "/m/x", false).await, 200);
    server.stop().await;
}

/// How long a scrape takes with 100 meetings of one participant each (a
/// measurement, not a check: `cargo test -p sfu --test metrics --
/// --ignored --nocapture`).
#[tokio::test]
#[ignore = "a measurement; run it by name"]
async fn scrape_time_with_100_meetings() {
    let server = Running::start(&Running::config()).await;
    let mut sockets = Vec::new();
    for i in 0..100 {
        let mut ws = server.ws().await;
        send(
            &mut ws,
            json!({"type": "join", "v": 1, "room": format!("m{i}"), "name": "P"}),
        )
        .await;
        assert_eq!(common::recv(&mut ws).await["type"], "joined");
        sockets.push(ws);
    }
    let url = format!("http://{}/metrics", server.http);
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        times.push(started.elapsed());
        bytes = body.len();
        assert!(body.contains("meet_participants{role=\"participant\"} 100"));
    }
    times.sort();
    println!(
        "measured: /metrics with 100 meetings ({bytes} bytes): median {:?}, max {:?} over 20 scrapes",
        times[10], times[19]
    );
    drop(sockets);
    server.stop().await;
}

/// A media worker that stops (halted, as one whose socket failed) takes
/// the server out of `/readyz` and reads 0 in `meet_worker_up`; the other
/// worker's meetings go on, and a join to the stopped one's is told so.
#[tokio::test]
async fn a_stopped_worker_shows_in_readiness_and_meet_worker_up() {
    let (halt, halted) = tokio::sync::watch::channel(false);
    let config = sfu::shell::config::Config {
        workers: 2,
        ..Running::config()
    };
    let intake = Intake {
        halt: Some((1, halted)),
        ..Intake::default()
    };
    let server = Running::start_with(&config, intake).await;
    let readyz = || async {
        let r = reqwest::get(format!("http://{}/readyz", server.http))
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);
    for w in ["0", "1"] {
        let up = format!("meet_worker_up{{worker=\"{w}\"}}");
        assert_eq!(server.metric(&up).await, 1.0, "worker {w}");
    }
    halt.send_replace(true);
    let mut answer = readyz().await;
    for _ in 0..100 {
        if answer.0 == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        answer = readyz().await;
    }
    assert_eq!(answer.0, 503, "{}", answer.1);
    assert_eq!(answer.1["failed"], json!(["workers"]), "{}", answer.1);
    assert_eq!(server.metric("meet_worker_up{worker=\"0\"}").await, 1.0);
    assert_eq!(server.metric("meet_worker_up{worker=\"1\"}").await, 0.0);
    // Meetings are spread over both workers by a hash of their name: some
    // land on the running one and are joined, the others are refused.
    // (All of 64 on one worker: one chance in 2^63.)
    let (mut joined, mut unavailable) = (0, 0);
    for i in 0..64 {
        if joined > 0 && unavailable > 0 {
            break;
        }
        let mut ws = server.ws().await;
        let m = join(&mut ws, &format!("room-{i}"), "Ann").await;
        match (m["type"].as_str(), m["code"].as_str()) {
            (Some("joined"), _) => joined += 1,
            (Some("error"), Some("unavailable")) => unavailable += 1,
            other => panic!("{other:?}: {m}"),
        }
    }
    assert!(
        joined > 0 && unavailable > 0,
        "{joined} joined, {unavailable} refused"
    );
    server.stop().await;
}
