//! What the tests against a real Synapse share (from PyPI, started here on
//! 127.0.0.1 by `ops/synapse.sh`): the homeserver, Matrix users over the
//! client-server API, and the meeting server logged in to it as its bot.
//! Each test file compiles this on its own and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use sfu::shell::config::Config;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{free_port, send, temp_dir, Running, Ws};

pub const BOT_PASSWORD: &str = "bot-password-for-tests";
pub const ADMIN_KEY: &str = "an-admin-key-of-at-least-32-characters";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn synapse_sh(args: &[&str]) {
    let status = Command::new(repo().join("ops/synapse.sh"))
        .args(args)
        .status()
        .expect("ops/synapse.sh runs");
    assert!(status.success(), "ops/synapse.sh {args:?} failed");
}

/// A Synapse of our own; killed when dropped.
pub struct Synapse {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Synapse {
    pub fn start(users: &[&str]) -> Self {
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

    pub fn run(&mut self) {
        let child = Command::new(repo().join("ops/synapse.sh"))
            .args(["run", self.dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("synapse starts");
        self.child = Some(child);
        synapse_sh(&["wait", &self.port.to_string(), "60"]);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The token of the application-service registration `init` wrote.
    pub fn as_token(&self) -> String {
        let out = Command::new(repo().join("ops/synapse.sh"))
            .args(["as-token", self.dir.to_str().unwrap()])
            .output()
            .expect("ops/synapse.sh runs");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn url(&self) -> String {
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
pub struct MatrixUser {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub user_id: String,
}

impl MatrixUser {
    pub async fn login(syn: &Synapse, user: &str) -> Self {
        Self::login_with(syn, user, &format!("{user}-pw")).await
    }

    pub async fn login_with(syn: &Synapse, user: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let r: Value = http
            .post(format!("{}/_matrix/client/v3/login", syn.url()))
            .json(&json!({"type":"m.login.password","identifier":{"type":"m.id.user","user":user},"password":password}))
            .send().await.unwrap().json().await.unwrap();
        Self {
            http,
            base: syn.url(),
            token: r["access_token"].as_str().expect("login").to_owned(),
            user_id: r["user_id"].as_str().unwrap().to_owned(),
        }
    }

    /// A call that may fail: its status and JSON body.
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn invite(&self, room: &str, user: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/rooms/{}/invite", Self::enc(room)),
            Some(json!({ "user_id": user })),
        )
        .await;
    }

    /// Makes a room as a client does (`options`: `/createRoom`'s body);
    /// returns its id.
    pub async fn create_room(&self, options: Value) -> String {
        self.call(reqwest::Method::POST, "/createRoom", Some(options))
            .await["room_id"]
            .as_str()
            .expect("a room id")
            .to_owned()
    }

    /// Invites `user` (the bot, say) and waits until it has joined.
    pub async fn invite_and_await(&self, room: &str, user: &str) {
        self.invite(room, user).await;
        eventually(&format!("{user} to join"), || async {
            let path = format!(
                "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
                Self::enc(room),
                Self::enc(user)
            );
            let (_, m) = self.try_call(reqwest::Method::GET, &path, None).await;
            m["membership"] == "join"
        })
        .await;
    }

    pub async fn kick(&self, room: &str, user: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/rooms/{}/kick", Self::enc(room)),
            Some(json!({ "user_id": user, "reason": "test" })),
        )
        .await;
    }

    /// Bans `user` from `room` (they leave it, and may not come back).
    pub async fn ban(&self, room: &str, user: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/rooms/{}/ban", Self::enc(room)),
            Some(json!({ "user_id": user, "reason": "test" })),
        )
        .await;
    }

    /// Sets `user`'s power level in `room`.
    pub async fn set_power(&self, room: &str, user: &str, level: u32) {
        let mut levels = self.state(room, "m.room.power_levels", "").await;
        levels["users"][user] = json!(level);
        self.call(
            reqwest::Method::PUT,
            &format!("/rooms/{}/state/m.room.power_levels/", Self::enc(room)),
            Some(levels),
        )
        .await;
    }

    /// Opens `meeting` with an OpenID sign-in, which makes its room with
    /// this user invited as a moderator, and accepts the invitation.
    /// Returns the room id.
    pub async fn open_meeting(&self, server: &TestServer, meeting: &str) -> String {
        let (status, t) = server.token(meeting, self.openid().await).await;
        assert_eq!(status, 200, "{t}");
        assert_eq!(t["host"], true, "{t}");
        let room = t["room_id"].as_str().expect("a room id").to_owned();
        self.join(&room).await;
        room
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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
    pub fn enc(id: &str) -> String {
        id.replace('!', "%21")
            .replace('#', "%23")
            .replace('@', "%40")
            .replace('$', "%24")
            .replace(':', "%3A")
    }

    /// The room's messages, oldest first.
    pub async fn messages(&self, room: &str) -> Vec<Value> {
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

    pub async fn join(&self, room: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/join/{}", Self::enc(room)),
            Some(json!({})),
        )
        .await;
    }

    pub async fn say(&self, room: &str, content: Value) -> String {
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
    pub async fn bodies_from(&self, room: &str, sender: &str) -> Vec<String> {
        self.messages(room)
            .await
            .iter()
            .filter(|e| e["type"] == "m.room.message" && e["sender"] == sender)
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    }

    /// (sender, body) of the messages written in the meeting, oldest first.
    pub async fn relayed(&self, room: &str) -> Vec<(String, String)> {
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

    pub async fn state(&self, room: &str, kind: &str, key: &str) -> Value {
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

    pub async fn openid(&self) -> Value {
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

pub struct TestServer(pub Running);

impl std::ops::Deref for TestServer {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl TestServer {
    pub async fn start(syn: &Synapse, store: &Path) -> Self {
        Self::start_with(syn, store, |_| {}).await
    }

    /// With `adjust` applied to the configuration.
    pub async fn start_with(syn: &Synapse, store: &Path, adjust: impl FnOnce(&mut Config)) -> Self {
        // The server's log, when RUST_LOG asks for it.
        if let Ok(filter) = std::env::var("RUST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let mut config = Config {
            matrix_homeserver: syn.url(),
            matrix_user: "meetbot".into(),
            matrix_password: BOT_PASSWORD.into(),
            matrix_store: store.to_owned(),
            public_url: "http://meet.test/".into(),
            admin_key: ADMIN_KEY.into(),
            ..Running::config()
        };
        adjust(&mut config);
        Self(Running::start(&config).await)
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }

    pub async fn token(&self, room: &str, openid: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/token", self.http))
            .json(&json!({"room": room, "openid_token": openid}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Tries to join `room` with `token`; returns the error it gets.
    pub async fn refused_join(&self, room: &str, token: &Value) -> Value {
        let mut ws = self.ws().await;
        send(
            &mut ws,
            json!({"type":"join","v":1,"room":room,"name":"x","token":token}),
        )
        .await;
        next_of(&mut ws, "error").await
    }

    /// An invite link's `invite` for `room`, minted with the admin API.
    pub async fn invite_link(&self, room: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!(
                "http://{}/api/admin/meetings/{room}/invites",
                self.http
            ))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"role": "participant"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let v: Value = r.json().await.unwrap();
        v["invite"].as_str().unwrap().to_owned()
    }

    /// Joins `room` with an invite link; returns the socket and `joined`.
    pub async fn join_invited(&self, room: &str, name: &str) -> (Ws, Value) {
        let invite = self.invite_link(room).await;
        let mut ws = self.ws().await;
        send(
            &mut ws,
            json!({"type":"join","v":1,"room":room,"name":name,"invite":invite}),
        )
        .await;
        let joined = next_of(&mut ws, "joined").await;
        (ws, joined)
    }

    /// Joins `room`; returns the socket and the `joined` message.
    pub async fn join(&self, room: &str, name: &str, token: Option<&str>) -> (Ws, Value) {
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
pub async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    next_where(ws, |m| m["type"] == kind, &format!("a `{kind}` message")).await
}

pub async fn next_where(ws: &mut Ws, pred: impl Fn(&Value) -> bool, what: &str) -> Value {
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

pub async fn chat_event(ws: &mut Ws, kind: &str) -> Value {
    next_where(
        ws,
        |m| m["type"] == "chat_event" && m["event"]["kind"] == kind,
        &format!("a chat `{kind}` event"),
    )
    .await["event"]
        .clone()
}

pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut f: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
