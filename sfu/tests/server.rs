//! The real server on ephemeral ports, driven over real sockets: signalling
//! over WebSocket, HTTP endpoints, and garbage on the media port.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{expect_error, recv, send, Running, Ws};
use sfu::shell::config::Config;

/// The server, with the HTTP helpers these tests use.
struct TestServer(Running);

impl std::ops::Deref for TestServer {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl TestServer {
    async fn start() -> Self {
        Self(Running::start(&Running::config()).await)
    }

    /// A bare HTTP/1.1 GET: status code and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(self.http).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).await.unwrap();
        let status = raw[9..12].parse().unwrap();
        let body = raw
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    async fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.get("/metrics").await;
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Waits (bounded) until a metric reaches at least `min`; workers
    /// publish their figures a few times a second.
    async fn wait_metric(&self, name: &str, min: f64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let v = self.metric(name).await;
            if v >= min {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} stayed at {v}, expected {min}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

async fn join(ws: &mut Ws, room: &str, name: &str) -> Value {
    send(
        ws,
        json!({"type": "join", "v": 1, "room": room, "name": name}),
    )
    .await;
    let m = recv(ws).await;
    assert_eq!(m["type"], "joined", "{m}");
    m
}

#[tokio::test]
async fn bad_messages_get_errors_and_the_session_goes_on() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.send(Message::Text("not json".into())).await.unwrap();
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, json!({"type": "dance"})).await;
    expect_error(&mut ws, "bad_message").await;
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    expect_error(&mut ws, "bad_message").await;
    send(&mut ws, json!({"type": "mute", "mid": "0", "muted": true})).await;
    expect_error(&mut ws, "not_joined").await;
    let huge = json!({"type": "subscriber_answer", "sdp": "x".repeat(100 * 1024)});
    send(&mut ws, huge).await;
    expect_error(&mut ws, "too_large").await;
    send(
        &mut ws,
        json!({"type": "join", "v": 2, "room": "r", "name": "A"}),
    )
    .await;
    expect_error(&mut ws, "unsupported_version").await;
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "room": "r", "name": "  "}),
    )
    .await;
    expect_error(&mut ws, "invalid_name").await;
    let joined = join(&mut ws, "r", "Alice").await;
    assert_eq!(joined["participants"], json!([]));
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "room": "r", "name": "A"}),
    )
    .await;
    expect_error(&mut ws, "already_joined").await;
    // Nonsense SDP is refused with a clear error, and the session lives on.
    send(
        &mut ws,
        json!({"type": "publisher_offer", "sdp": "v=0 nonsense", "tracks": []}),
    )
    .await;
    expect_error(&mut ws, "bad_sdp").await;
    send(&mut ws, json!({"type": "subscriber_answer", "sdp": "v=0"})).await;
    expect_error(&mut ws, "bad_sdp").await;
    assert_eq!(server.metric("meet_signalling_errors_total").await, 10.0);
    server.stop().await;
}

#[tokio::test]
async fn participants_see_each_other_come_and_go() {
    let server = TestServer(
        Running::start(&Config {
            reconnect_grace_secs: 1,
            ..Running::config()
        })
        .await,
    );
    let mut alice = server.ws().await;
    let mut bob = server.ws().await;
    let a = join(&mut alice, "room", "Alice").await;
    let b = join(&mut bob, "room", "Bob").await;
    assert_eq!(b["participants"][0]["name"], "Alice");
    assert_eq!(b["participants"][0]["id"], a["participant_id"]);
    let m = recv(&mut alice).await;
    assert_eq!(m["type"], "participant_joined");
    assert_eq!(m["participant"]["name"], "Bob");
    assert_eq!(m["participant"]["id"], b["participant_id"]);
    // Someone in another room is not announced.
    let mut carol = server.ws().await;
    join(&mut carol, "elsewhere", "Carol").await;
    assert_eq!(server.metric("meet_signalling_connections").await, 3.0);
    send(&mut bob, json!({"type": "leave"})).await;
    let m = recv(&mut alice).await;
    assert_eq!(m["type"], "participant_left", "{m}");
    assert_eq!(m["participant_id"], b["participant_id"]);
    // Bob's client reads on to the close frame, which answers it, and his
    // socket is closed.
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), bob.next()).await;
        match frame.expect("the socket closes within 5 s") {
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| f.reason.to_string()).as_deref(), Some("left"));
            }
            Some(Ok(_)) => {}
            None | Some(Err(_)) => break,
        }
    }
    // A socket that just drops is reconnecting for the grace (here 1 s),
    // then gone.
    let mut eve = server.ws().await;
    let e = join(&mut eve, "elsewhere", "Eve").await;
    let carol_id = e["participants"][0]["id"].clone();
    drop(carol);
    let m = recv(&mut eve).await;
    assert_eq!(m["type"], "participant_reconnecting", "{m}");
    assert_eq!(m["participant_id"], carol_id);
    // Her seat is held; her socket no longer counts.
    assert_eq!(server.metric("meet_signalling_connections").await, 2.0);
    let m = recv(&mut eve).await;
    assert_eq!(m["type"], "participant_left", "{m}");
    assert_eq!(m["participant_id"], carol_id);
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_participant_comes_back_to_its_seat_with_its_secret() {
    let server = TestServer::start().await;
    let mut alice = server.ws().await;
    let mut bob = server.ws().await;
    join(&mut alice, "room", "Alice").await;
    let b = join(&mut bob, "room", "Bob").await;
    let (old_id, secret) = (b["participant_id"].clone(), b["resume"].clone());
    assert_eq!(secret.as_str().map(str::len), Some(32), "{b}");
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");
    drop(bob);
    let m = recv(&mut alice).await;
    assert_eq!(m["type"], "participant_reconnecting", "{m}");
    assert_eq!(m["participant_id"], old_id);

    // Another meeting's join, or a guess, gets no seat: a plain join.
    let mut mallory = server.ws().await;
    let join_with = |room: &str, secret: &Value| json!({"type": "join", "v": 1, "room": room, "name": "Bob", "resume": secret});
    send(&mut mallory, join_with("elsewhere", &secret)).await;
    let m = recv(&mut mallory).await;
    assert_eq!(
        (
            m["type"].as_str(),
            m["participants"].as_array().map(Vec::len)
        ),
        (Some("joined"), Some(0)),
        "{m}"
    );

    // Back with the secret: the new self takes the old one's place.
    let mut bob = server.ws().await;
    send(&mut bob, join_with("room", &secret)).await;
    let back = recv(&mut bob).await;
    assert_eq!(back["type"], "joined", "{back}");
    let names: Vec<&str> = back["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alice"], "not its old self");
    let m = recv(&mut alice).await;
    assert_eq!(m["type"], "participant_joined", "{m}");
    assert_eq!(m["participant"]["id"], back["participant_id"]);
    assert_eq!(m["replaces"], old_id);
    let m = recv(&mut alice).await;
    assert_eq!(m["type"], "participant_left", "{m}");
    assert_eq!(m["participant_id"], old_id);

    // The seat was taken once: the same secret again is a plain join.
    let mut again = server.ws().await;
    send(&mut again, join_with("room", &secret)).await;
    assert_eq!(recv(&mut again).await["type"], "joined");
    let m = recv(&mut alice).await;
    assert_eq!(
        (
            m["type"].as_str(),
            m.get("participant").and_then(|p| p.get("id")).is_some(),
            m.get("replaces")
        ),
        (Some("participant_joined"), true, None),
        "{m}"
    );
    // A page that closes (close code 1001) has left: no seat is held.
    again
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Away,
            reason: "".into(),
        }))
        .await
        .unwrap();
    assert_eq!(recv(&mut alice).await["type"], "participant_left");
    server.stop().await;
}

#[tokio::test]
async fn a_client_back_before_its_old_socket_died_takes_its_seat_over() {
    let server = TestServer::start().await;
    let mut alice = server.ws().await;
    let mut bob = server.ws().await;
    join(&mut alice, "room", "Alice").await;
    let b = join(&mut bob, "room", "Bob").await;
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");
    // Bob's page changed networks: his old socket is silent but, as far as
    // the server knows, open. He comes back on a new one.
    let mut bob_again = server.ws().await;
    let back =
        json!({"type": "join", "v": 1, "room": "room", "name": "Bob", "resume": b["resume"]});
    send(&mut bob_again, back).await;
    let joined = recv(&mut bob_again).await;
    assert_eq!(joined["type"], "joined", "{joined}");
    assert_eq!(
        joined["participants"].as_array().map(Vec::len),
        Some(1),
        "{joined}"
    );
    // The old socket is told it was replaced.
    loop {
        match bob.next().await {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.reason, "replaced");
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("the old socket ended without a close frame: {other:?}"),
        }
    }
    // Alice sees Bob back in his seat, not a second Bob.
    loop {
        let m = recv(&mut alice).await;
        if m["type"] == "participant_joined" {
            assert_eq!(m["replaces"], b["participant_id"], "{m}");
            break;
        }
        assert_eq!(m["type"], "participant_reconnecting", "{m}");
    }
    let m = recv(&mut alice).await;
    assert_eq!(m["type"], "participant_left", "{m}");
    assert_eq!(m["participant_id"], b["participant_id"]);
    server.stop().await;
}

#[tokio::test]
async fn hands_and_reactions_reach_everyone_and_a_late_joiner_sees_a_hand() {
    let server = TestServer::start().await;
    let mut alice = server.ws().await;
    let mut bob = server.ws().await;
    let a = join(&mut alice, "room", "Alice").await;
    join(&mut bob, "room", "Bob").await;
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");
    send(&mut alice, json!({"type": "raise_hand", "raised": true})).await;
    for ws in [&mut alice, &mut bob] {
        let m = recv(ws).await;
        assert_eq!(m["type"], "hand_raised", "{m}");
        assert_eq!(m["participant_id"], a["participant_id"]);
        assert_eq!(m["raised"], true);
    }
    let mut carol = server.ws().await;
    let c = join(&mut carol, "room", "Carol").await;
    let alice_seen = c["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == a["participant_id"])
        .cloned()
        .unwrap();
    assert_eq!(alice_seen["hand_raised"], true, "{c}");
    for ws in [&mut alice, &mut bob] {
        assert_eq!(recv(ws).await["type"], "participant_joined");
    }
    // Only a host lowers someone else's hand.
    send(
        &mut bob,
        json!({"type": "lower_hand", "participant_id": a["participant_id"]}),
    )
    .await;
    expect_error(&mut bob, "not_allowed").await;
    send(&mut carol, json!({"type": "react", "reaction": "👏"})).await;
    for ws in [&mut alice, &mut bob, &mut carol] {
        let m = recv(ws).await;
        assert_eq!(m["type"], "reacted", "{m}");
        assert_eq!(m["participant_id"], c["participant_id"]);
        assert_eq!(m["reaction"], "👏");
    }
    // Words are not reactions; a loop of them is slowed, not fatal.
    send(&mut carol, json!({"type": "react", "reaction": "spam"})).await;
    expect_error(&mut carol, "bad_message").await;
    for _ in 0..6 {
        send(&mut carol, json!({"type": "react", "reaction": "🎉"})).await;
    }
    let mut refused = 0;
    for _ in 0..6 {
        let m = recv(&mut carol).await;
        match m["type"].as_str() {
            Some("reacted") => {}
            Some("error") if m["code"] == "too_many_messages" => refused += 1,
            _ => panic!("unexpected {m}"),
        }
    }
    // At most 5 a second (the 👏 before may share the second).
    assert!((1..=2).contains(&refused), "{refused} of 6 refused");
    send(&mut alice, json!({"type": "raise_hand", "raised": false})).await;
    loop {
        // Past Carol's reactions.
        let m = recv(&mut alice).await;
        if m["type"] != "reacted" {
            assert_eq!(
                (m["type"].as_str(), m["raised"].as_bool()),
                (Some("hand_raised"), Some(false)),
                "{m}"
            );
            break;
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn garbage_on_the_media_port_is_dropped_and_serving_goes_on() {
    let server = TestServer::start().await;
    let mut alice = server.ws().await;
    join(&mut alice, "room", "Alice").await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], server.media_port));
    for i in 0..200u32 {
        let junk: Vec<u8> = (0..(i % 1500)).map(|b| (b * 7 + i) as u8).collect();
        udp.send_to(&junk, target).await.unwrap();
    }
    // Well-formed STUN naming a ufrag nobody has.
    let mut stun = vec![0, 1, 0, 12, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    stun.extend_from_slice(&[0, 6, 0, 7]);
    stun.extend_from_slice(b"nobody:x\0");
    stun.truncate(32);
    udp.send_to(&stun, target).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if server.metric("meet_datagrams_dropped_total").await >= 201.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "garbage not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still serving: a new participant joins and is announced.
    let mut bob = server.ws().await;
    join(&mut bob, "room", "Bob").await;
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");
    server.wait_metric("meet_participants", 2.0).await;
    server.stop().await;
}

#[tokio::test]
async fn a_flooding_client_is_cut_off_and_the_others_go_on() {
    let server = TestServer::start().await;
    let mut alice = server.ws().await;
    join(&mut alice, "room", "Alice").await;
    let mut mallory = server.ws().await;
    join(&mut mallory, "room", "Mallory").await;
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");
    for _ in 0..200 {
        // Ignore send errors: the server may close before all are sent.
        let m = json!({"type": "mute", "mid": "0", "muted": true});
        if mallory
            .send(Message::Text(m.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // Mutes past their own bound are refused first; past 50 messages in
    // a second the socket goes, with a close frame after the last word.
    loop {
        let e = recv(&mut mallory).await;
        assert_eq!(e["type"], "error", "{e}");
        match e["code"].as_str() {
            Some("too_many_messages") => continue,
            Some("rate_limited") => break,
            _ => panic!("{e}"),
        }
    }
    assert_eq!(
        closed_with(&mut mallory).await,
        (1008, "rate_limited".into())
    );
    let left = recv(&mut alice).await;
    assert_eq!(left["type"], "participant_left", "{left}");
    // Alice's session is untouched.
    send(
        &mut alice,
        json!({"type": "mute", "mid": "0", "muted": true}),
    )
    .await;
    let mut bob = server.ws().await;
    join(&mut bob, "room", "Bob").await;
    assert_eq!(recv(&mut alice).await["type"], "participant_joined");
    server.stop().await;
}

/// The close frame that ends `ws`, next after what was read (pings aside).
async fn closed_with(ws: &mut Ws) -> (u16, String) {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a close frame within 5 s");
        match frame {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
            other => panic!("not a close frame: {other:?}"),
        }
    }
}

/// A client that floods before it joins hears every answer, the reason it
/// is cut off, and a close frame: the server reads what the client sent
/// meanwhile instead of leaving it unread in a socket it closes, which
/// the kernel answers with a reset that can cost the client those words.
#[tokio::test]
async fn a_flooding_client_hears_every_answer_and_a_close_frame() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    // All at once: the server reads them as fast as it can.
    for _ in 0..300 {
        let m = json!({"type": "mute", "mid": "0", "muted": true});
        ws.feed(Message::Text(m.to_string().into())).await.unwrap();
    }
    ws.flush().await.unwrap();
    // Each is answered (`not_joined`) until the 51st of a second.
    let mut answered = 0;
    loop {
        let e = recv(&mut ws).await;
        match e["code"].as_str() {
            Some("not_joined") => answered += 1,
            Some("rate_limited") => break,
            _ => panic!("{e}"),
        }
    }
    assert!(answered >= 50, "{answered} answered");
    assert_eq!(closed_with(&mut ws).await, (1008, "rate_limited".into()));
    server.stop().await;
}

/// A raw WebSocket upgrade of `/ws` with these `Host` and `Origin`: the
/// status, and the JSON body of a refusal.
async fn upgrade(server: &Running, host: &str, origin: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    // A refusal ends with its body; a switch to WebSocket with its head.
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if n == 0 || text.starts_with("HTTP/1.1 101") && text.contains("\r\n\r\n") {
            break;
        }
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")?
                        .parse()
                        .ok()
                })
                .unwrap_or(0usize);
            if body.len() >= length {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

/// DNS rebinding: a page on the attacker's name, pointed at our address,
/// is its own origin, so `Origin` matches `Host`; only the name tells it
/// apart. Refused (403, counted), while our names and addresses work.
#[tokio::test]
async fn a_page_rebound_to_our_address_cannot_open_the_websocket() {
    let server = TestServer::start().await;
    let port = server.http.port();
    let evil = format!("evil.example:{port}");
    let (status, body) = upgrade(&server, &evil, &format!("http://{evil}")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("host_not_allowed")),
        "{body}"
    );
    assert_eq!(
        server
            .metric("meet_websocket_refused_total{reason=\"host\"}")
            .await,
        1.0
    );
    // A foreign page at our own address: the origin check's part.
    let ours = format!("127.0.0.1:{port}");
    let (status, body) = upgrade(&server, &ours, "https://evil.example").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed")),
        "{body}"
    );
    assert_eq!(
        server
            .metric("meet_websocket_refused_total{reason=\"origin\"}")
            .await,
        1.0
    );
    for host in [ours, format!("localhost:{port}"), format!("[::1]:{port}")] {
        let (status, _) = upgrade(&server, &host, &format!("http://{host}")).await;
        assert_eq!(status, 101, "{host}");
    }
    server.stop().await;

    // Behind a proxy that passes its own `Host` (nginx's `$host`, no
    // port): the public URL's name, and the names configured beside it.
    let server = Running::start(&Config {
        public_url: "https://meet.example.org/".into(),
        allowed_hosts: vec!["video.example.org".into()],
        ..Running::config()
    })
    .await;
    let (status, _) = upgrade(&server, "meet.example.org", "https://meet.example.org").await;
    assert_eq!(status, 101);
    let (status, _) = upgrade(&server, "video.example.org", "https://video.example.org").await;
    assert_eq!(status, 101);
    let (status, body) = upgrade(&server, "evil.example", "https://meet.example.org").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("host_not_allowed")),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn http_endpoints() {
    let server = TestServer::start().await;
    let (status, body) = server.get("/m/weekly-sync").await;
    assert_eq!(status, 200);
    assert!(body.contains("join-form"));
    // Nothing on the page comes from another host.
    assert!(!body.contains("http://") && !body.contains("https://"));
    let (status, body) = server.get("/static/app.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("window.meet"));
    // A module it imports.
    let (status, body) = server.get("/static/peers.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("RTCPeerConnection"));
    assert_eq!(server.get("/static/missing.js").await.0, 404);
    assert_eq!(server.get("/").await.0, 303);
    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "meet_rooms",
        "meet_participants",
        "meet_published_tracks",
        "meet_rtp_packets_received_total",
        "meet_rtp_bytes_received_total",
        "meet_rtp_packets_forwarded_total",
        "meet_rtp_bytes_forwarded_total",
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{body}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn answers_advertise_the_configured_media_addresses() {
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    let config = sfu::shell::config::Config {
        media_ips: vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()],
        // Only advertised: nothing here ever sends to it.
        public_ip: Some("192.0.2.7".parse().unwrap()),
        ..Running::config()
    };
    let server = Running::start(&config).await;
    let mut ws = server.ws().await;
    join(&mut ws, "addresses", "Ann").await;
    // A real offer, from a client connection that is never driven.
    let now = std::time::Instant::now();
    let mut pc = sfu::engine::client::new_client_peer(now, "127.0.0.1:9".parse().unwrap()).unwrap();
    pc.add_track(sfu::engine::client::local_track(
        "ann",
        RtpCodecKind::Audio,
        "audio/opus",
        48_000,
        2,
        &[("", 4321)],
    ))
    .unwrap();
    let offer = pc.create_offer(None).unwrap();
    pc.set_local_description(now, offer).unwrap();
    let sdp = pc.local_description().unwrap().sdp;
    send(
        &mut ws,
        json!({"type": "publisher_offer", "sdp": sdp, "tracks": [{"mid": "0", "source": "microphone"}]}),
    )
    .await;
    let answer = recv(&mut ws).await;
    assert_eq!(answer["type"], "publisher_answer", "{answer}");
    let mut candidates: Vec<(String, u16)> = answer["sdp"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| c.split(' ').collect::<Vec<&str>>())
        // The engine lists each for the RTP and the (muxed) RTCP component.
        .filter(|f| f[1] == "1")
        .map(|f| (f[4].to_owned(), f[5].parse().unwrap()))
        .collect();
    candidates.sort();
    let port = server.media_port;
    assert_eq!(
        candidates,
        vec![
            ("127.0.0.1".to_owned(), port),
            ("127.0.0.2".to_owned(), port),
            ("192.0.2.7".to_owned(), port)
        ]
    );
    server.stop().await;
}
