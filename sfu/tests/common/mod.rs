//! What the integration tests against a real server share: starting it on
//! ephemeral ports, stopping it, and WebSocket basics.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use sfu::shell::config::Config;
use sfu::shell::server::Server;
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
        let server = Server::bind(config).await.expect("server binds");
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
