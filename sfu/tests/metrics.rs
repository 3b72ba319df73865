//! A real server's `/metrics`, as Prometheus's own linter sees it
//! (`promtool check metrics`, from Debian's prometheus package, which
//! `ops/setup.sh test` installs), and against the catalogue in
//! `docs/metrics.md`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

mod common;

use common::{send, Running};

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
