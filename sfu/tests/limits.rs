//! The limits that keep one client from taking a server down, against a
//! real server: each refusal has its stable code and is counted. Every
//! limit of `Limit::ALL` is hit by a test (see the last one for where).

use serde_json::{json, Value};
use sfu::access::limits::Limit;
use sfu::shell::config::Config;
use sfu::worker::Intake;
use tokio_tungstenite::tungstenite::Error as WsError;

mod common;

use common::{closed, expect_error, join, join_with, next_of, recv, send, Admin, Running};

/// A refused upgrade's status and JSON body.
async fn refused_upgrade(server: &Running) -> (u16, Value) {
    match tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http)).await {
        Err(WsError::Http(r)) => {
            let body = r.body().as_deref().unwrap_or_default();
            (r.status().as_u16(), serde_json::from_slice(body).unwrap())
        }
        other => panic!("the connection was not refused: {other:?}"),
    }
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
    let (status, body) = refused_upgrade(&server).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "connections_per_address", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    // Two joins in this minute already: the third is refused.
    let m = join(&mut c, "one", "C").await;
    assert_eq!(m["code"], "too_many_joins", "{m}");
    for limit in ["meetings", "connections_per_address", "joins_per_address"] {
        assert_eq!(server.limits_hit(limit).await, 1.0, "{limit}");
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
    assert_eq!(server.limits_hit("candidates").await, 1.0);
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
        server.limits_hit("messages_of_kind").await,
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
    assert_eq!(server.limits_hit("chat_messages").await, 1.0);
    drop(ws);
    server.stop().await;
}

#[tokio::test]
async fn the_server_holds_so_many_connections() {
    let server = Running::start(&Config {
        max_connections: 2,
        ..Running::config()
    })
    .await;
    let a = server.ws().await;
    let b = server.ws().await;
    let (status, body) = refused_upgrade(&server).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"], "connections", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(server.limits_hit("connections").await, 1.0);
    // One closes: there is room again.
    drop(a);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut c = loop {
        if let Ok((ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws", server.http)).await
        {
            break ws;
        }
        assert!(tokio::time::Instant::now() < deadline, "no room again");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(join(&mut c, "r", "C").await["type"], "joined");
    drop((b, c));
    server.stop().await;
}

/// A meeting at `max_participants` is refused by its media worker, after
/// the join was handed to it; counted as `participants`.
#[tokio::test]
async fn a_meeting_holds_so_many_participants() {
    let server = Running::start(&Config {
        max_participants: 1,
        ..Running::config()
    })
    .await;
    let mut a = server.ws().await;
    assert_eq!(join(&mut a, "r", "A").await["type"], "joined");
    let mut b = server.ws().await;
    let m = join(&mut b, "r", "B").await;
    assert_eq!(m["code"], "room_full", "{m}");
    assert_eq!(server.limits_hit("participants").await, 1.0);
    // Another meeting has its own seats (the refusal closed B's socket).
    let mut b = server.ws().await;
    assert_eq!(join(&mut b, "s", "B").await["type"], "joined");
    drop((a, b));
    server.stop().await;
}

/// A media worker far behind: its queue of requests full. The worker is
/// held still (`Intake::gate`, a test's knob) with room for one request,
/// so what fills the queue is known, not raced: a join, whose `joined`
/// cannot come while the worker is held; then every further request to
/// that worker is refused, whether a message of the joined participant or
/// another's join. Let go, the worker takes the queued join.
#[tokio::test]
async fn a_worker_far_behind_refuses_more_work() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let intake = Intake {
        queue: 1,
        gate: Some(gate),
        ..Intake::default()
    };
    let server = Running::start_with(&Running::config(), intake).await;
    let mut a = server.ws().await;
    send(
        &mut a,
        json!({"type": "join", "v": 1, "room": "r", "name": "A"}),
    )
    .await;
    // Handled after the join, on the same socket: the queue holds it.
    send(&mut a, json!({"type": "mute", "mid": "0", "muted": true})).await;
    expect_error(&mut a, "overloaded").await;
    let mut b = server.ws().await;
    let m = join(&mut b, "r", "B").await;
    assert_eq!(m["code"], "overloaded", "{m}");
    assert_eq!(server.limits_hit("worker_queue").await, 2.0);
    open.send_replace(true);
    assert_eq!(recv(&mut a).await["type"], "joined");
    assert_eq!(join(&mut b, "r", "B").await["type"], "joined");
    drop((a, b));
    server.stop().await;
}

/// One address keeps so many strangers knocking at one meeting; strangers
/// fill their own part of the lobby, never the room of those a link lets
/// in who wait for a locked meeting to open.
#[tokio::test]
async fn strangers_cannot_fill_a_lobby_for_those_invited() {
    let server = Running::start(&Config {
        max_knocks_per_address: 2,
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..closed()
    })
    .await;
    let admin = Admin::new(&server);
    let host = admin.invite("board", json!({"role": "host"})).await;
    let guest = admin.invite("board", json!({"role": "participant"})).await;
    let mut hana = server.ws_from("198.51.100.1").await;
    assert_eq!(
        join_with(&mut hana, "board", "Hana", Some(&host)).await["type"],
        "joined"
    );

    let knock = |client: String, room: &'static str| {
        let server = &server;
        async move {
            let mut ws = server.ws_from(&client).await;
            let m = join_with(&mut ws, room, "Stranger", None).await;
            (ws, m)
        }
    };
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (ws, m) = knock("203.0.113.1".into(), "board").await;
        assert_eq!(m["type"], "lobby_waiting", "{m}");
        waiting.push(ws);
    }
    let (_ws, m) = knock("203.0.113.1".into(), "board").await;
    assert_eq!(m["code"], "too_many_knocks", "{m}");
    assert_eq!(server.limits_hit("knocks_per_address").await, 1.0);
    // At another meeting, and from another address, they may.
    let (ws, m) = knock("203.0.113.1".into(), "other").await;
    assert_eq!(m["type"], "lobby_waiting", "{m}");
    waiting.push(ws);

    // A hundred strangers from fifty addresses fill the strangers' part.
    for i in 2..=50 {
        for _ in 0..2 {
            let (ws, m) = knock(format!("203.0.113.{i}"), "board").await;
            assert_eq!(m["type"], "lobby_waiting", "{m}");
            waiting.push(ws);
        }
    }
    let (_ws, m) = knock("203.0.113.51".into(), "board").await;
    assert_eq!(m["code"], "lobby_full", "{m}");
    // The meeting is locked: an invited guest waits too, and is let in.
    send(&mut hana, json!({"type": "lock_meeting", "locked": true})).await;
    next_of(&mut hana, "meeting_locked").await;
    let mut gus = server.ws_from("203.0.113.1").await;
    let m = join_with(&mut gus, "board", "Gus", Some(&guest)).await;
    assert_eq!(m["type"], "lobby_waiting", "{m}");
    let id = loop {
        let lobby = next_of(&mut hana, "lobby").await;
        let gus = lobby["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "Gus")
            .map(|k| k["id"].as_str().unwrap().to_owned());
        if let Some(id) = gus {
            break id;
        }
    };
    send(&mut hana, json!({"type": "admit", "lobby_id": id})).await;
    let m = next_of(&mut gus, "joined").await;
    assert_eq!(m["role"], "participant", "{m}");
    drop((hana, gus, waiting));
    server.stop().await;
}

/// Where each limit is hit and its counter read: this file, unless named.
/// A limit added to `Limit::ALL` fails this until it has a test.
#[test]
fn every_limit_has_a_test() {
    let tested = [
        ("connections", "the_server_holds_so_many_connections"),
        (
            "connections_per_address",
            "connections_joins_and_meetings_are_bounded",
        ),
        (
            "joins_per_address",
            "connections_joins_and_meetings_are_bounded",
        ),
        ("meetings", "connections_joins_and_meetings_are_bounded"),
        ("participants", "a_meeting_holds_so_many_participants"),
        ("worker_queue", "a_worker_far_behind_refuses_more_work"),
        ("candidates", "a_flood_of_candidates_is_cut_off"),
        (
            "messages_of_kind",
            "each_kind_of_message_is_bounded_per_second",
        ),
        ("chat_messages", "chat_messages_are_bounded_per_minute"),
        (
            "rooms_per_user",
            "matrix_access.rs: an_anonymous_guest_makes_no_room_and_a_user_so_many_a_day",
        ),
        ("chat_outbox", "matrix.rs: outage (chat_backlog)"),
        (
            "knocks_per_address",
            "strangers_cannot_fill_a_lobby_for_those_invited",
        ),
    ];
    let mut labels: Vec<&str> = Limit::ALL.iter().map(|l| l.label()).collect();
    let mut covered: Vec<&str> = tested.iter().map(|(l, _)| *l).collect();
    labels.sort_unstable();
    covered.sort_unstable();
    assert_eq!(labels, covered);
}
