//! What the cluster tests share: three servers of one cluster (in this
//! process, or as processes of the binary), and a client that enters a
//! meeting through any of them and follows `moved` as a page does.
#![allow(dead_code)] // not every test crate uses every helper

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::shell::config::Config;

use crate::common::{send, server, Process, Running, Ws};
use crate::redis_server::Redis;

/// The node ids of a three-server cluster.
pub const IDS: [&str; 3] = ["a", "b", "c"];

/// A server's settings in the cluster: clients are sent on to it by the
/// path `/node/<id>/ws`, which [`Entry::enter`] resolves (a proxy would).
pub fn node_config(redis: &Redis, id: &str) -> Config {
    Config {
        redis: redis.url(),
        node_id: id.into(),
        node_url: format!("/node/{id}/ws"),
        token_secret: TOKEN_SECRET.into(),
        ..Running::config()
    }
}

/// The one every server of a cluster shares: whichever holds a meeting
/// checks the invite links and tokens another minted.
pub const TOKEN_SECRET: &str = "a-token-secret-that-all-servers-share";

/// Where a client gets in, and who it is.
pub struct Entry {
    pub addrs: HashMap<String, SocketAddr>,
}

/// A client seated in a meeting.
pub struct Seated {
    pub ws: Ws,
    /// The server that seated it.
    pub node: String,
    pub joined: Value,
}

impl Seated {
    /// Leaves the meeting (no seat held for it), as a page that closes.
    pub async fn leave(mut self) {
        send(&mut self.ws, json!({"type": "leave"})).await;
        closed(&mut self.ws, Duration::from_secs(5)).await;
    }
}

impl Entry {
    /// Joins `room` through `first`, following `moved` as the page does:
    /// the same join at the server named; a server that cannot be reached
    /// (its meeting's lease has not lapsed yet) is tried again from
    /// `first` after a moment. Gives up after `within`.
    pub async fn enter(&self, first: &str, room: &str, name: &str, within: Duration) -> Seated {
        let join = json!({"type": "join", "v": 1, "room": room, "name": name});
        let seated = self.enter_with(first, join, within).await;
        assert_eq!(seated.joined["type"], "joined", "{}", seated.joined);
        seated
    }

    /// As [`Entry::enter`], with this `join`; `joined` holds the first
    /// answer that sends it nowhere else (`joined`, `lobby_waiting`, an
    /// error other than `unavailable`).
    pub async fn enter_with(&self, first: &str, join: Value, within: Duration) -> Seated {
        let deadline = Instant::now() + within;
        let mut node = first.to_owned();
        loop {
            assert!(
                Instant::now() < deadline,
                "{join} got nowhere within {within:?}"
            );
            let url = format!("ws://{}/ws", self.addrs[&node]);
            // A stopped server takes the connection but never answers it.
            let connect = tokio_tungstenite::connect_async(url);
            let Ok(Ok((mut ws, _))) = tokio::time::timeout(Duration::from_secs(2), connect).await
            else {
                node = first.to_owned();
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            };
            send(&mut ws, join.clone()).await;
            let Some(m) = next(&mut ws, Duration::from_secs(10)).await else {
                node = first.to_owned();
                continue;
            };
            if m["type"] == "moved" {
                let url = m["url"].as_str().unwrap();
                node = url
                    .strip_prefix("/node/")
                    .and_then(|r| r.strip_suffix("/ws"))
                    .unwrap_or_else(|| panic!("moved to {url}"))
                    .to_owned();
            } else if m["type"] == "error" && m["code"] == "unavailable" {
                tokio::time::sleep(Duration::from_millis(250)).await;
                node = first.to_owned();
            } else {
                return Seated {
                    ws,
                    node,
                    joined: m,
                };
            }
        }
    }
}

/// The next JSON message within `within`; `None` when the socket closes
/// first.
pub async fn next(ws: &mut Ws, within: Duration) -> Option<Value> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no message within {within:?}"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Reads until the socket closes; the close frame's reason, if any.
pub async fn closed(ws: &mut Ws, within: Duration) -> Option<String> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the socket stayed open for {within:?}"),
            Ok(None | Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.reason.to_string()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

pub fn participant_names(joined: &Value) -> Vec<String> {
    let mut names: Vec<String> = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Three servers of this process.
pub async fn three_servers(redis: &Redis) -> (HashMap<String, Running>, Entry) {
    three_servers_with(redis, |c| c).await
}

/// Three servers of this process, each configured as `config` makes of
/// its node's settings.
pub async fn three_servers_with(
    redis: &Redis,
    config: impl Fn(Config) -> Config,
) -> (HashMap<String, Running>, Entry) {
    let mut servers = HashMap::new();
    let mut addrs = HashMap::new();
    for id in IDS {
        let server = Running::start(&config(node_config(redis, id))).await;
        addrs.insert(id.to_owned(), server.http);
        servers.insert(id.to_owned(), server);
    }
    // Everyone registered and read the others.
    until(Duration::from_secs(5), || async {
        redis.nodes().await.len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    (servers, Entry { addrs })
}

/// Polls `check` every 100 ms until it holds; fails after `within`.
pub async fn until<F, Fut>(within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not so within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server binary as its own process, in the cluster; `env` beside.
pub fn process(redis: &Redis, id: &str, env: &[(&str, &str)]) -> Process {
    let mut command = server(60);
    command
        .env("MEET_REDIS", redis.url())
        .env("MEET_NODE_ID", id)
        .env("MEET_NODE_URL", format!("/node/{id}/ws"))
        .env("MEET_TOKEN_SECRET", TOKEN_SECRET)
        .envs(env.iter().copied());
    Process::spawn(command)
}

/// Three server processes, with `env`.
pub async fn three_processes(
    redis: &Redis,
    env: &[(&str, &str)],
) -> (HashMap<String, Process>, Entry) {
    let procs: HashMap<String, Process> = IDS
        .iter()
        .map(|id| (id.to_string(), process(redis, id, env)))
        .collect();
    let addrs = procs.iter().map(|(id, p)| (id.clone(), p.http)).collect();
    until(Duration::from_secs(5), || async {
        redis.nodes().await.len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    (procs, Entry { addrs })
}

/// Where a client whose server went away gets back in through: any other.
pub fn another(node: &str) -> &'static str {
    IDS.into_iter().find(|id| *id != node).unwrap()
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
