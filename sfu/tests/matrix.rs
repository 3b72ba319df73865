//! The server with meeting chat against a real Synapse (from PyPI, started
//! here on 127.0.0.1 by `ops/synapse.sh`): rooms per meeting, chat both
//! ways, OpenID sign-in, leaving the room, and a homeserver outage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use sfu::shell::config::Config;
use tokio_tungstenite::tungstenite::Message;

mod common;

use common::{send, Running, Ws};

const BOT_PASSWORD: &str = "bot-password-for-tests";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("meet-{what}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn synapse_sh(args: &[&str]) {
    let status = Command::new(repo().join("ops/synapse.sh"))
        .args(args)
        .status()
        .expect("ops/synapse.sh runs");
    assert!(status.success(), "ops/synapse.sh {args:?} failed");
}

/// A Synapse of our own; killed when dropped.
struct Synapse {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Synapse {
    fn start(users: &[&str]) -> Self {
        let dir = temp_dir("synapse");
        let port = free_port();
        synapse_sh(&["init", dir.to_str().unwrap(), &port.to_string()]);
        let mut s = Self {
            dir,
            port,
            child: None,
        };
        s.run();
        synapse_sh(&[
            "register",
            s.dir.to_str().unwrap(),
            "meetbot",
            BOT_PASSWORD,
            "--admin",
        ]);
        for u in users {
            synapse_sh(&["register", s.dir.to_str().unwrap(), u, &format!("{u}-pw")]);
        }
        s
    }

    fn run(&mut self) {
        let child = Command::new(repo().join("ops/synapse.sh"))
            .args(["run", self.dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("synapse starts");
        self.child = Some(child);
        synapse_sh(&["wait", &self.port.to_string(), "60"]);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The token of the application-service registration `init` wrote.
    fn as_token(&self) -> String {
        let out = Command::new(repo().join("ops/synapse.sh"))
            .args(["as-token", self.dir.to_str().unwrap()])
            .output()
            .expect("ops/synapse.sh runs");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Matrix user over plain Client-Server API calls.
struct MatrixUser {
    http: reqwest::Client,
    base: String,
    token: String,
    user_id: String,
}

impl MatrixUser {
    async fn login(syn: &Synapse, user: &str) -> Self {
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!("{}/_matrix/client/v3/login", syn.url()))
            .json(&json!({"type":"m.login.password","identifier":{"type":"m.id.user","user":user},"password":format!("{user}-pw")}))
            .send().await.unwrap().json().await.unwrap();
        Self {
            http,
            base: syn.url(),
            token: r["access_token"].as_str().expect("login").to_owned(),
            user_id: r["user_id"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/_matrix/client/v3{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// A room, user or event id as one URL path segment.
    fn enc(id: &str) -> String {
        id.replace('!', "%21")
            .replace('#', "%23")
            .replace('@', "%40")
            .replace('$', "%24")
            .replace(':', "%3A")
    }

    /// The room's messages, oldest first.
    async fn messages(&self, room: &str) -> Vec<Value> {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/rooms/{}/messages?dir=b&limit=200", Self::enc(room)),
                None,
            )
            .await;
        let mut events = v["chunk"].as_array().cloned().unwrap_or_default();
        events.reverse();
        events
    }

    async fn join(&self, room: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/join/{}", Self::enc(room)),
            Some(json!({})),
        )
        .await;
    }

    async fn say(&self, room: &str, content: Value) -> String {
        let txn = format!("t{}", rand::random::<u64>());
        let v = self
            .call(
                reqwest::Method::PUT,
                &format!("/rooms/{}/send/m.room.message/{txn}", Self::enc(room)),
                Some(content),
            )
            .await;
        v["event_id"].as_str().unwrap().to_owned()
    }

    /// Bodies of the room's messages from `sender`, oldest first.
    async fn bodies_from(&self, room: &str, sender: &str) -> Vec<String> {
        self.messages(room)
            .await
            .iter()
            .filter(|e| e["type"] == "m.room.message" && e["sender"] == sender)
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    }

    /// (sender, body) of the messages written in the meeting, oldest first.
    async fn relayed(&self, room: &str) -> Vec<(String, String)> {
        self.messages(room)
            .await
            .iter()
            .filter(|e| e["type"] == "m.room.message" && e["content"]["meet.author"].is_object())
            .map(|e| {
                let body = e["content"]["body"].as_str().unwrap_or_default();
                (e["sender"].as_str().unwrap().to_owned(), body.to_owned())
            })
            .collect()
    }

    async fn state(&self, room: &str, kind: &str, key: &str) -> Value {
        self.call(
            reqwest::Method::GET,
            &format!(
                "/rooms/{}/state/{kind}/{}",
                Self::enc(room),
                MatrixUser::enc(key)
            ),
            None,
        )
        .await
    }

    async fn openid(&self) -> Value {
        self.call(
            reqwest::Method::POST,
            &format!(
                "/user/{}/openid/request_token",
                MatrixUser::enc(&self.user_id)
            ),
            Some(json!({})),
        )
        .await
    }
}

struct TestServer(Running);

impl std::ops::Deref for TestServer {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl TestServer {
    async fn start(syn: &Synapse, store: &Path) -> Self {
        Self::start_with(syn, store, |_| {}).await
    }

    /// With `adjust` applied to the configuration.
    async fn start_with(syn: &Synapse, store: &Path, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            matrix_homeserver: syn.url(),
            matrix_user: "meetbot".into(),
            matrix_password: BOT_PASSWORD.into(),
            matrix_store: store.to_owned(),
            public_url: "http://meet.test/".into(),
            ..Running::config()
        };
        adjust(&mut config);
        Self(Running::start(&config).await)
    }

    async fn stop(self) {
        self.0.stop().await;
    }

    /// The value of a metric without labels, or with exactly `labels`.
    async fn metric(&self, name_and_labels: &str) -> f64 {
        let body = reqwest::get(format!("http://{}/metrics", self.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }

    async fn token(&self, room: &str, openid: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/token", self.http))
            .json(&json!({"room": room, "openid_token": openid}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Tries to join `room` with `token`; returns the error it gets.
    async fn refused_join(&self, room: &str, token: &Value) -> Value {
        let mut ws = self.ws().await;
        send(
            &mut ws,
            json!({"type":"join","v":1,"room":room,"name":"x","token":token}),
        )
        .await;
        next_of(&mut ws, "error").await
    }

    /// Joins `room`; returns the socket and the `joined` message.
    async fn join(&self, room: &str, name: &str, token: Option<&str>) -> (Ws, Value) {
        let mut ws = self.ws().await;
        let mut join = json!({"type":"join","v":1,"room":room,"name":name});
        if let Some(t) = token {
            join["token"] = json!(t);
        }
        send(&mut ws, join).await;
        let joined = next_of(&mut ws, "joined").await;
        (ws, joined)
    }
}

/// The next message of type `kind`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    next_where(ws, |m| m["type"] == kind, &format!("a `{kind}` message")).await
}

async fn next_where(ws: &mut Ws, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("socket open")
            .unwrap();
        if let Message::Text(t) = frame {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

async fn chat_event(ws: &mut Ws, kind: &str) -> Value {
    next_where(
        ws,
        |m| m["type"] == "chat_event" && m["event"]["kind"] == kind,
        &format!("a chat `{kind}` event"),
    )
    .await["event"]
        .clone()
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_chat_and_matrix_sign_in() {
    let syn = Synapse::start(&["alice", "bob"]);
    let store = temp_dir("store");
    let server = TestServer::start(&syn, &store).await;

    // The first participant opens the meeting: the bot creates its room.
    let (mut carol, joined) = server.join("standup", "Carol", None).await;
    let room = joined["chat"]["room_id"]
        .as_str()
        .unwrap_or_else(|| panic!("chat in {joined}"))
        .to_owned();
    assert_eq!(joined["chat"]["room_alias"], "#meet-standup:localhost");
    assert_eq!(
        next_of(&mut carol, "chat_history").await["events"],
        json!([])
    );

    let alice = MatrixUser::login(&syn, "alice").await;
    let bob = MatrixUser::login(&syn, "bob").await;
    alice.join(&room).await;
    // Element finds the meeting as a room widget.
    let widget = alice
        .state(&room, "im.vector.modular.widgets", "meet")
        .await;
    assert!(
        widget["url"]
            .as_str()
            .unwrap()
            .starts_with("http://meet.test/m/standup?widgetId="),
        "{widget}"
    );

    // OpenID sign-in: a member is admitted with her Matrix identity ...
    let (status, t) = server.token("standup", alice.openid().await).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["user_id"], "@alice:localhost");
    assert_eq!(t["host"], false);
    let (mut alice_ws, joined) = server.join("standup", "ignored", t["token"].as_str()).await;
    assert_eq!(joined["identity"]["user_id"], "@alice:localhost");
    let alice_pid = joined["participant_id"].as_str().unwrap().to_owned();
    let who = next_where(
        &mut carol,
        |m| m["type"] == "participant_joined",
        "alice joining",
    )
    .await;
    assert_eq!(who["participant"]["name"], "alice");
    // ... and announced as a MatrixRTC call member.
    let key = format!("_@alice:localhost_MEET{}_m.call", alice_pid.to_uppercase());
    let url = format!(
        "{}/_matrix/client/v3/rooms/{}/state/org.matrix.msc3401.call.member/{}",
        alice.base,
        MatrixUser::enc(&room),
        MatrixUser::enc(&key)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let member = loop {
        let r = alice
            .http
            .get(&url)
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if v["application"] == "m.call" {
            break v;
        }
        assert!(Instant::now() < deadline, "no call-member state event: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(member["scope"], "m.room");

    // A token for another meeting does not open this one.
    let (status, _) = server.token("standup", alice.openid().await).await;
    assert_eq!(status, 200);
    let e = server.refused_join("elsewhere", &t["token"]).await;
    assert_eq!(e["code"], "invalid_token", "{e}");

    // Refused: a non-member, a forged token, a homeserver not allowed, junk.
    let (status, e) = server.token("standup", bob.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_room_member")),
        "{e}"
    );
    let forged = json!({"access_token":"forged","matrix_server_name":"localhost","expires_in":3600,"token_type":"Bearer"});
    let (status, e) = server.token("standup", forged).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (401, Some("invalid_openid_token")),
        "{e}"
    );
    let mut foreign = alice.openid().await;
    foreign["matrix_server_name"] = json!("matrix.example.org");
    let (status, e) = server.token("standup", foreign).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("homeserver_not_allowed")),
        "{e}"
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("matrix.example.org"));
    let (status, e) = server.token("standup", json!("nonsense")).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("bad_request")),
        "{e}"
    );

    // Matrix → meeting: text, reply, edit, reaction, redaction.
    let t0 = Instant::now();
    let first = alice
        .say(
            &room,
            json!({"msgtype":"m.text","body":"hello from Matrix"}),
        )
        .await;
    let m = chat_event(&mut carol, "message").await;
    println!("measured: Matrix → meeting {:?}", t0.elapsed());
    assert_eq!(
        (m["id"].as_str(), m["sender"].as_str(), m["body"].as_str()),
        (
            Some(first.as_str()),
            Some("@alice:localhost"),
            Some("hello from Matrix")
        )
    );
    assert_eq!(m["name"], "alice");
    alice
        .say(&room, json!({"msgtype":"m.text","body":"> <@alice:localhost> hello from Matrix\n\nand a reply",
            "m.relates_to":{"m.in_reply_to":{"event_id":first}}}))
        .await;
    let reply = chat_event(&mut carol, "message").await;
    assert_eq!(
        (reply["body"].as_str(), reply["reply_to"].as_str()),
        (Some("and a reply"), Some(first.as_str()))
    );
    alice
        .say(&room, json!({"msgtype":"m.text","body":"* hello, edited","m.new_content":{"msgtype":"m.text","body":"hello, edited"},
            "m.relates_to":{"rel_type":"m.replace","event_id":first}}))
        .await;
    let edit = chat_event(&mut carol, "edit").await;
    assert_eq!(
        (edit["id"].as_str(), edit["body"].as_str()),
        (Some(first.as_str()), Some("hello, edited"))
    );
    // Nobody else edits Alice's words in the meeting.
    bob.join(&room).await;
    bob.say(&room, json!({"msgtype":"m.text","body":"* forged","m.new_content":{"msgtype":"m.text","body":"forged"},
        "m.relates_to":{"rel_type":"m.replace","event_id":first}}))
        .await;
    bob.say(&room, json!({"msgtype":"m.text","body":"bob was here"}))
        .await;
    let next = next_where(&mut carol, |m| m["type"] == "chat_event", "a chat event").await;
    assert_eq!(next["event"]["body"], "bob was here", "{next}");
    let reaction = alice
        .call(
            reqwest::Method::PUT,
            &format!("/rooms/{}/send/m.reaction/r1", MatrixUser::enc(&room)),
            Some(json!({"m.relates_to":{"rel_type":"m.annotation","event_id":first,"key":"👍"}})),
        )
        .await["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = chat_event(&mut carol, "reaction").await;
    assert_eq!(
        (r["target"].as_str(), r["key"].as_str()),
        (Some(first.as_str()), Some("👍"))
    );
    alice
        .call(
            reqwest::Method::PUT,
            &format!(
                "/rooms/{}/redact/{}/x1",
                MatrixUser::enc(&room),
                MatrixUser::enc(&reaction)
            ),
            Some(json!({})),
        )
        .await;
    let redact = chat_event(&mut carol, "redact").await;
    assert_eq!(redact["id"].as_str(), Some(reaction.as_str()));

    // Meeting → Matrix, relayed by the bot in Carol's name.
    let t0 = Instant::now();
    send(&mut carol, json!({"type":"chat","text":"hi Alice"})).await;
    let pending = chat_event(&mut carol, "message").await;
    assert_eq!(
        (pending["pending"].as_bool(), pending["body"].as_str()),
        (Some(true), Some("hi Alice"))
    );
    let delivered = chat_event(&mut carol, "delivered").await;
    assert_eq!(delivered["local_id"], pending["id"]);
    println!("measured: meeting → Matrix (delivered) {:?}", t0.elapsed());
    let bodies = alice.bodies_from(&room, "@meetbot:localhost").await;
    assert!(bodies.contains(&"Carol: hi Alice".to_owned()), "{bodies:?}");
    let to_matrix = r#"meet_chat_messages_total{direction="to_matrix"}"#;
    assert_eq!(server.metric(to_matrix).await, 1.0);
    let from_matrix = r#"meet_chat_messages_total{direction="from_matrix"}"#;
    assert_eq!(
        server.metric(from_matrix).await,
        3.0,
        "message, reply, bob's"
    );
    // Too long a message is refused, the session goes on.
    send(&mut carol, json!({"type":"chat","text":"x".repeat(4001)})).await;
    assert_eq!(next_of(&mut carol, "error").await["code"], "bad_message");

    // A late joiner gets the history since the meeting started.
    let (mut dave, _) = server.join("standup", "Dave", None).await;
    let history = next_of(&mut dave, "chat_history").await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "edit",
            "message",
            "reaction",
            "redact",
            "message",
            "delivered"
        ]
    );

    // `!meet` answers with the meeting's link.
    alice
        .say(&room, json!({"msgtype":"m.text","body":"!meet"}))
        .await;
    eventually("the bot's answer to !meet", || {
        let (alice, room) = (&alice, &room);
        async move {
            alice
                .bodies_from(room, "@meetbot:localhost")
                .await
                .iter()
                .any(|b| b == "Meeting: http://meet.test/m/standup")
        }
    })
    .await;

    // Leaving the room ends Alice's meeting session; the others stay.
    alice
        .call(
            reqwest::Method::POST,
            &format!("/rooms/{}/leave", MatrixUser::enc(&room)),
            Some(json!({})),
        )
        .await;
    let e = next_of(&mut alice_ws, "error").await;
    assert_eq!(e["code"], "removed", "{e}");
    let left = next_of(&mut carol, "participant_left").await;
    assert_eq!(left["participant_id"], alice_pid.as_str());
    // Her call membership is withdrawn (empty content), as MatrixRTC has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = bob
            .http
            .get(&url)
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        if r.json::<Value>().await.unwrap_or(Value::Null) == json!({}) {
            break;
        }
        assert!(Instant::now() < deadline, "call membership not withdrawn");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Her token is still unexpired, but she is out of the room: refused.
    let e = server.refused_join("standup", &t["token"]).await;
    assert_eq!(e["code"], "invalid_token", "{e}");

    // `!meet` in a room of her own gives a new meeting, never a name she
    // picks (which could take over someone else's meeting).
    let own = alice
        .call(
            reqwest::Method::POST,
            "/createRoom",
            Some(json!({"preset":"private_chat"})),
        )
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    alice
        .call(
            reqwest::Method::POST,
            &format!("/rooms/{}/invite", MatrixUser::enc(&own)),
            Some(json!({"user_id":"@meetbot:localhost"})),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let members = alice
            .call(
                reqwest::Method::GET,
                &format!("/rooms/{}/joined_members", MatrixUser::enc(&own)),
                None,
            )
            .await;
        if members["joined"].get("@meetbot:localhost").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bot did not accept the invite"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alice
        .say(&own, json!({"msgtype":"m.text","body":"!meet standup"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let bodies = alice.bodies_from(&own, "@meetbot:localhost").await;
        if let Some(b) = bodies.into_iter().next() {
            break b;
        }
        assert!(Instant::now() < deadline, "no answer to !meet in her room");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        answer.starts_with("Meeting: http://meet.test/m/"),
        "{answer}"
    );
    assert_ne!(answer, "Meeting: http://meet.test/m/standup");

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_waits_out_a_homeserver_outage_and_loses_nothing() {
    outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_users_wait_out_a_homeserver_outage_too() {
    outage(true).await;
}

/// Synapse dies during a meeting, the meeting server restarts meanwhile,
/// and all that was written arrives once, in order, when Synapse is back;
/// relayed by the bot or, with `ghosts`, sent by Carol's ghost user.
async fn outage(ghosts: bool) {
    let mut syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let as_token = if ghosts {
        syn.as_token()
    } else {
        String::new()
    };
    let config = |c: &mut Config| c.matrix_as_token = as_token.clone();
    let server = TestServer::start_with(&syn, &store, config).await;
    let (mut carol, joined) = server.join("outage", "Carol", None).await;
    let room = joined["chat"]["room_id"].as_str().unwrap().to_owned();
    let alice = MatrixUser::login(&syn, "alice").await;
    alice.join(&room).await;

    syn.kill();
    let status = next_of(&mut carol, "chat_status").await;
    assert_eq!(status["delayed"], true);
    for i in 0..10 {
        send(&mut carol, json!({"type":"chat","text":format!("m{i}")})).await;
        let m = chat_event(&mut carol, "message").await;
        assert_eq!(m["pending"], true);
    }
    assert_eq!(server.metric("meet_chat_outbox_events").await, 10.0);
    assert_eq!(server.metric("meet_chat_delayed").await, 1.0);
    // The meeting server restarts too: the outbox is on disk.
    server.stop().await;
    let server = TestServer::start_with(&syn, &store, config).await;
    let (mut carol, joined) = server.join("outage", "Carol", None).await;
    assert_eq!(joined["chat"]["room_id"].as_str(), Some(room.as_str()));
    // What waits from before the restart is shown, still pending.
    let history = next_of(&mut carol, "chat_history").await;
    let waiting: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pending"] == true)
        .map(|e| e["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        waiting,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    for i in 10..20 {
        send(&mut carol, json!({"type":"chat","text":format!("m{i}")})).await;
        chat_event(&mut carol, "message").await;
    }

    syn.run();
    let prefix = if ghosts { "" } else { "Carol: " };
    let expected: Vec<String> = (0..20).map(|i| format!("{prefix}m{i}")).collect();
    eventually("all 20 messages in the room", || {
        let (alice, room, expected) = (&alice, &room, &expected);
        async move { alice.relayed(room).await.len() >= expected.len() }
    })
    .await;
    // Give a duplicate the chance to show up before judging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let relayed = alice.relayed(&room).await;
    assert_eq!(
        relayed.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        expected
    );
    let senders: std::collections::BTreeSet<&str> =
        relayed.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(senders.len(), 1, "{senders:?}");
    let sender = senders.into_iter().next().unwrap();
    if ghosts {
        assert!(sender.starts_with("@meet_carol_"), "{sender}");
    } else {
        assert_eq!(sender, "@meetbot:localhost");
    }
    let status = next_where(
        &mut carol,
        |m| m["type"] == "chat_status" && m["delayed"] == false,
        "chat no longer delayed",
    )
    .await;
    assert_eq!(status["delayed"], false);

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_power_levels_give_host_rights_in_a_bound_room() {
    let syn = Synapse::start(&["alice"]);
    let alice = MatrixUser::login(&syn, "alice").await;
    // Alice's own room, bound to a meeting by configuration: she created
    // it, so she may kick there, so she is a host in the meeting.
    let room = alice
        .call(
            reqwest::Method::POST,
            "/createRoom",
            Some(json!({"preset":"public_chat","name":"Town hall"})),
        )
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store = temp_dir("store");
    let rooms: std::collections::BTreeMap<_, _> = [("town-hall".to_owned(), room.clone())].into();
    let server = TestServer::start_with(&syn, &store, |c| c.matrix_rooms = rooms).await;
    let (mut carol, joined) = server.join("town-hall", "Carol", None).await;
    assert_eq!(joined["chat"]["room_id"].as_str(), Some(room.as_str()));
    let carol_pid = joined["participant_id"].as_str().unwrap().to_owned();

    let (status, t) = server.token("town-hall", alice.openid().await).await;
    assert_eq!((status, t["host"].as_bool()), (200, Some(true)), "{t}");
    let (mut alice_ws, joined) = server.join("town-hall", "x", t["token"].as_str()).await;
    assert_eq!(joined["identity"]["host"], true);
    let alice_pid = joined["participant_id"].as_str().unwrap().to_owned();

    // A guest may not remove anyone; a host may.
    send(
        &mut carol,
        json!({"type":"remove","participant_id":alice_pid}),
    )
    .await;
    assert_eq!(next_of(&mut carol, "error").await["code"], "not_allowed");
    send(
        &mut alice_ws,
        json!({"type":"remove","participant_id":carol_pid}),
    )
    .await;
    let e = next_of(&mut carol, "error").await;
    assert_eq!(e["code"], "removed", "{e}");
    let left = next_of(&mut alice_ws, "participant_left").await;
    assert_eq!(left["participant_id"], carol_pid.as_str());

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_write_as_ghost_users_with_the_appservice() {
    let syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let as_token = syn.as_token();
    let server = TestServer::start_with(&syn, &store, |c| c.matrix_as_token = as_token).await;
    let (mut carol, joined) = server.join("ghosts", "Carol", None).await;
    let room = joined["chat"]["room_id"].as_str().unwrap().to_owned();
    let alice = MatrixUser::login(&syn, "alice").await;
    alice.join(&room).await;

    send(&mut carol, json!({"type":"chat","text":"hello as myself"})).await;
    let pending = chat_event(&mut carol, "message").await;
    let delivered = chat_event(&mut carol, "delivered").await;
    assert_eq!(delivered["local_id"], pending["id"]);
    let messages = alice.messages(&room).await;
    let event = messages
        .iter()
        .find(|e| e["event_id"] == delivered["id"])
        .unwrap_or_else(|| panic!("no delivered event in {messages:?}"))
        .clone();
    let ghost = event["sender"].as_str().unwrap();
    assert!(ghost.starts_with("@meet_carol_"), "{ghost}");
    assert_eq!(event["content"]["body"], "hello as myself");
    let profile = alice
        .call(
            reqwest::Method::GET,
            &format!("/profile/{}/displayname", MatrixUser::enc(ghost)),
            None,
        )
        .await;
    assert_eq!(profile["displayname"], "Carol (guest)");
    // The meeting shows Carol's message once: the ghost's echo is ours.
    alice
        .say(&room, json!({"msgtype":"m.text","body":"marker"}))
        .await;
    let next = chat_event(&mut carol, "message").await;
    assert_eq!(next["body"], "marker", "{next}");

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}
