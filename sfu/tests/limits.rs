//! The limits that keep one client from taking a server down, against a
//! real server: each refusal has its stable code and is counted.

use serde_json::{json, Value};
use sfu::shell::config::Config;

mod common;

use common::{expect_error, recv, send, Running, Ws};

async fn join(ws: &mut Ws, room: &str, name: &str) -> Value {
    send(
        ws,
        json!({"type": "join", "v": 1, "room": room, "name": name}),
    )
    .await;
    recv(ws).await
}

async fn limits_hit(server: &Running, limit: &str) -> f64 {
    let body = reqwest::get(format!("http://{}/metrics", server.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("meet_limits_hit_total{{limit=\"{limit}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn connections_joins_and_meetings_are_bounded() {
    let server = Running::start(&Config {
        max_connections_per_address: 3,
        max_joins_per_address_per_minute: 2,
        max_meetings: 1,
        ..Running::config()
    })
    .await;
    let mut a = server.ws().await;
    assert_eq!(join(&mut a, "one", "A").await["type"], "joined");
    // A second meeting does not fit (and the refusal is no join).
    let mut b = server.ws().await;
    let m = join(&mut b, "two", "B").await;
    assert_eq!(m["code"], "too_many_meetings", "{m}");
    assert_eq!(join(&mut b, "one", "B").await["type"], "joined");
    // A fourth connection from this address is refused before the upgrade.
    let mut c = server.ws().await;
    let url = format!("ws://{}/ws", server.http);
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("a fourth connection was not refused: {other:?}"),
    }
    // Two joins in this minute already: the third is refused.
    let m = join(&mut c, "one", "C").await;
    assert_eq!(m["code"], "too_many_joins", "{m}");
    for limit in ["meetings", "connections_per_address", "joins_per_address"] {
        assert_eq!(limits_hit(&server, limit).await, 1.0, "{limit}");
    }
    // The joined ones are still served.
    send(&mut a, json!({"type": "mute", "mid": "0", "muted": true})).await;
    drop((a, b, c));
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_candidates_is_cut_off() {
    let server = Running::start(&Running::config()).await;
    let mut ws = server.ws().await;
    assert_eq!(join(&mut ws, "r", "A").await["type"], "joined");
    let candidate = json!({
        "type": "candidate",
        "target": "subscriber",
        "candidate": {"candidate": "candidate:1 1 udp 1 192.0.2.1 5000 typ host", "sdpMid": "0"}
    });
    // Past the rate limit otherwise: spread over seconds.
    for i in 0..65 {
        send(&mut ws, candidate.clone()).await;
        if i % 40 == 39 {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
    }
    expect_error(&mut ws, "too_many_candidates").await;
    assert_eq!(limits_hit(&server, "candidates").await, 1.0);
    server.stop().await;
}
