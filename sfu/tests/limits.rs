//! The limits that keep one client from taking a server down, against a
//! real server: each refusal has its stable code and is counted.

use serde_json::json;
use sfu::shell::config::Config;

mod common;

use common::{expect_error, join, recv, send, Running};

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

/// A client looping on one kind of message is slowed, not cut off: the
/// extra ones are refused and its socket stays open.
#[tokio::test]
async fn each_kind_of_message_is_bounded_per_second() {
    let server = Running::start(&Running::config()).await;
    let mut ws = server.ws().await;
    assert_eq!(join(&mut ws, "r", "A").await["type"], "joined");
    // 45 at once, under the overall 50 a second: 20 a second pass. Should
    // a one-second window end amid them, one of two holds 23 or more.
    for _ in 0..45 {
        send(&mut ws, json!({"type":"mute","mid":"0","muted":true})).await;
    }
    // Still there, and other kinds still pass.
    send(&mut ws, json!({"type":"chat","text":"hi"})).await;
    let mut refused = 0;
    loop {
        let m = recv(&mut ws).await;
        assert_eq!(m["type"], "error", "{m}");
        match m["code"].as_str() {
            Some("too_many_messages") => refused += 1,
            Some("chat_unavailable") => break,
            _ => panic!("{m}"),
        }
    }
    assert!((3..=25).contains(&refused), "{refused} refused");
    assert_eq!(
        limits_hit(&server, "messages_of_kind").await,
        f64::from(refused)
    );
    server.stop().await;
}

/// Behind a trusted proxy each client is counted by the address the proxy
/// names; what a client not behind one claims is ignored.
#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let connect = |server: &Running, forwarded_for: &'static str| {
        let mut request = format!("ws://{}/ws", server.http)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("x-forwarded-for", forwarded_for.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| matches!(r, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 429);
    let config = Config {
        max_connections_per_address: 1,
        ..Running::config()
    };
    let trusting = Running::start(&Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..config.clone()
    })
    .await;
    let a = connect(&trusting, "198.51.100.1").await.unwrap();
    let b = connect(&trusting, "198.51.100.2").await.unwrap();
    assert!(refused(connect(&trusting, "198.51.100.1").await));
    drop((a, b));
    trusting.stop().await;

    // No proxy in front (by default nginx on this host is trusted).
    let distrusting = Running::start(&Config {
        trusted_proxies: Vec::new(),
        ..config
    })
    .await;
    let a = connect(&distrusting, "198.51.100.1").await.unwrap();
    assert!(
        refused(connect(&distrusting, "198.51.100.2").await),
        "a client's own X-Forwarded-For was believed"
    );
    drop(a);
    distrusting.stop().await;
}

#[tokio::test]
async fn chat_messages_are_bounded_per_minute() {
    let server = Running::start(&Config {
        max_chat_messages_per_minute: 2,
        ..Running::config()
    })
    .await;
    let mut ws = server.ws().await;
    assert_eq!(join(&mut ws, "r", "A").await["type"], "joined");
    let chat = json!({"type": "chat", "text": "hello"});
    // This server has no chat: the first two are taken and refused for that.
    for _ in 0..2 {
        send(&mut ws, chat.clone()).await;
        expect_error(&mut ws, "chat_unavailable").await;
    }
    send(&mut ws, chat).await;
    expect_error(&mut ws, "too_many_chat_messages").await;
    assert_eq!(limits_hit(&server, "chat_messages").await, 1.0);
    drop(ws);
    server.stop().await;
}
