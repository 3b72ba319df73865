//! What the integration tests against a real server share: starting it on
//! ephemeral ports, stopping it, and WebSocket basics.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sfu::shell::config::Config;
use sfu::shell::server::Server;
use sfu::worker::Intake;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A server running on this test's runtime.
// Each test file compiles this module on its own; drain.rs runs the binary.
#[allow(dead_code)]
pub struct Running {
    pub http: SocketAddr,
    /// `/metrics` when it has a listener of its own (`metrics_listen`).
    pub metrics: Option<SocketAddr>,
    /// The admin API when it has a listener of its own (`admin_listen`).
    pub admin: Option<SocketAddr>,
    pub media_port: u16,
    /// The chat bridge, with chat configured.
    pub chat: Option<chat::Chat>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

#[allow(dead_code)]
impl Running {
    /// Loopback only, ephemeral ports, one worker; open to anonymous
    /// guests (`access.rs` tests the closed default).
    pub fn config() -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: 1,
            media_ips: vec!["127.0.0.1".parse().unwrap()],
            anonymous_join: true,
            ..Config::default()
        }
    }

    pub async fn start(config: &Config) -> Self {
        Self::start_with(config, Intake::default()).await
    }

    /// With the media workers taking requests as `intake` says.
    pub async fn start_with(config: &Config, intake: Intake) -> Self {
        let server = Server::bind_with(config, None, intake)
            .await
            .expect("server binds");
        let http = server.http_addr();
        let metrics = server.metrics_addr();
        let admin = server.admin_addr();
        let media_port = server.media_ports()[0];
        let chat = server.chat();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            http,
            metrics,
            admin,
            media_port,
            chat,
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server shuts down")
            .unwrap();
    }

    pub async fn ws(&self) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", self.http))
            .await
            .expect("websocket connects");
        ws
    }

    /// A WebSocket as if from `client`, through a proxy the server trusts
    /// (`trusted_proxies` holding 127.0.0.1): how tests come from many
    /// addresses.
    pub async fn ws_from(&self, client: &str) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/ws", self.http)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("x-forwarded-for", client.parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        ws
    }

    /// `meet_limits_hit_total{limit="<limit>"}` from `/metrics`.
    pub async fn limits_hit(&self, limit: &str) -> f64 {
        self.metric(&format!("meet_limits_hit_total{{limit=\"{limit}\"}}"))
            .await
    }

    /// A metric's value as `/metrics` has it, `name` with its labels
    /// exactly; 0 if absent.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_at(self.http, name).await
    }
}

/// A metric's value as the `/metrics` of the server at `http` has it,
/// `name` with its labels exactly; 0 if absent.
pub async fn metric_at(http: SocketAddr, name: &str) -> f64 {
    let body = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The server binary on loopback, ephemeral ports, one worker, open to
/// anonymous guests (these tests are about the process, not about who
/// gets in), with the given drain timeout; its stdout piped for
/// [`Process::spawn`].
#[allow(dead_code)]
pub fn server(drain_timeout_secs: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sfu"));
    command
        .args(["--listen", "127.0.0.1:0", "--media-port", "0"])
        .env("MEET_WORKERS", "1")
        .env("MEET_MEDIA_IPS", r#"["127.0.0.1"]"#)
        .env("MEET_ANONYMOUS_JOIN", "true")
        .env("MEET_DRAIN_TIMEOUT_SECS", drain_timeout_secs.to_string())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped());
    command
}

/// The server binary running as its own process (what kills or signals
/// it is about the process, not the library).
#[allow(dead_code)]
pub struct Process {
    pub child: Child,
    pub http: SocketAddr,
}

#[allow(dead_code)]
impl Process {
    /// Starts `command` (the binary, its stdout piped); returns once the
    /// server says where it listens.
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("the server binary starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let http = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, http }
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) with our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub async fn metric(&self, name: &str) -> f64 {
        metric_at(self.http, name).await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failed test leaves no server behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin key of [`closed`] servers.
#[allow(dead_code)]
pub const KEY: &str = "an-admin-key-of-at-least-32-characters";

/// A closed server (no anonymous joins) with the admin API on.
#[allow(dead_code)]
pub fn closed() -> Config {
    Config {
        anonymous_join: false,
        admin_key: KEY.into(),
        ..Running::config()
    }
}

/// The admin API of a running server.
#[allow(dead_code)]
pub struct Admin {
    pub base: String,
    http: reqwest::Client,
}

#[allow(dead_code)]
impl Admin {
    pub fn new(server: &Running) -> Self {
        Self::at(server.http)
    }

    /// The admin API on the listener at `http`.
    pub fn at(http: SocketAddr) -> Self {
        Self {
            base: format!("http://{http}"),
            http: reqwest::Client::new(),
        }
    }

    /// An admin request with the key; status and JSON body (null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Mints an invite to `room` with `body`'s terms: the whole answer.
    pub async fn mint(&self, room: &str, body: Value) -> Value {
        let (status, v) = self
            .call(
                reqwest::Method::POST,
                &format!("/api/admin/meetings/{room}/invites"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{v}");
        let url = v["url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/m/{room}?invite=", self.base)),
            "{url}"
        );
        v
    }

    /// Waits (at most 5 s) until the admin API lists no meeting.
    pub async fn until_no_meetings(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, list) = self
                .call(reqwest::Method::GET, "/api/admin/meetings", None)
                .await;
            if list == serde_json::json!({"meetings": []}) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{list}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Mints an invite to `room`: the invite alone.
    pub async fn invite(&self, room: &str, body: Value) -> String {
        self.mint(room, body).await["invite"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Sends `join` (with `invite`, if given) on `ws`: the answer.
#[allow(dead_code)]
pub async fn join_with(ws: &mut Ws, room: &str, name: &str, invite: Option<&str>) -> Value {
    let mut m = serde_json::json!({"type": "join", "v": 1, "room": room, "name": name});
    if let Some(i) = invite {
        m["invite"] = serde_json::json!(i);
    }
    send(ws, m).await;
    recv(ws).await
}

/// The next message of `kind`, skipping others.
#[allow(dead_code)]
pub async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = recv(ws).await;
        if m["type"] == kind {
            return m;
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Sends `join` for `room` as `name`; the answer.
#[allow(dead_code)]
pub async fn join(ws: &mut Ws, room: &str, name: &str) -> Value {
    send(
        ws,
        serde_json::json!({"type": "join", "v": 1, "room": room, "name": name}),
    )
    .await;
    recv(ws).await
}

/// The next JSON message, skipping pings.
#[allow(dead_code)] // not every test file reads messages this way
pub async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message within 5 s")
            .expect("socket open")
            .expect("valid frame");
        if let Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next message is an error with `code` and some words.
#[allow(dead_code)]
pub async fn expect_error(ws: &mut Ws, code: &str) {
    let m = recv(ws).await;
    assert_eq!(m["type"], "error", "{m}");
    assert_eq!(m["code"], code, "{m}");
    assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
}

/// A loopback port free now, for a server a test starts.
#[allow(dead_code)]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory of its own under the system's temporary one, for what a
/// test's server writes.
#[allow(dead_code)]
pub fn temp_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("meet-{what}-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
