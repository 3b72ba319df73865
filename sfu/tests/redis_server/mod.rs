//! Debian's `redis-server` as the cluster tests run it: a server of their
//! own on a free loopback port, keeping nothing on disk; a replica of it;
//! a Sentinel watching them. Each in a directory of its own (a replica
//! writes what its master sends to disk; a Sentinel rewrites its file).
#![allow(dead_code)] // not every test crate uses every helper

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use crate::common::{free_port, temp_dir};

/// A `redis-server` of this test's own, on a free loopback port, keeping
/// nothing on disk.
pub struct Redis {
    port: u16,
    child: Option<Child>,
    /// Arguments beyond the port and keeping nothing on disk.
    args: Vec<String>,
    dir: PathBuf,
}

impl Redis {
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// A replica of `master`.
    pub fn replica_of(master: &Redis) -> Self {
        Self::start_with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ])
    }

    fn start_with(args: Vec<String>) -> Self {
        let port = free_port();
        let mut redis = Self {
            port,
            child: None,
            args,
            dir: temp_dir("redis"),
        };
        redis.resume();
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again) on its port, empty; returns once it answers.
    pub fn resume(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs (ops/test.sh installs Debian's redis-server)");
        self.child = Some(child);
        listening(self.port);
    }

    /// Stops it, all it held lost.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn client(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// The server holding `room`'s lease, if any.
    pub async fn owner(&self, room: &str) -> Option<String> {
        let lease: Option<String> = redis::cmd("GET")
            .arg(format!("meet:meeting:{room}"))
            .query_async(&mut self.client().await)
            .await
            .unwrap();
        lease.map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
    }

    /// Commands Redis has processed so far, as it counts them: those a Lua
    /// script calls too (a lease renewal is one round trip and three or
    /// four commands), and the INFO asking.
    pub async fn commands(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut self.client().await)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("INFO stats has total_commands_processed")
    }

    /// The servers whose record is live.
    pub async fn nodes(&self) -> Vec<String> {
        let mut conn = self.client().await;
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg("meet:nodes")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut live = Vec::new();
        for id in ids {
            let exists: bool = redis::cmd("EXISTS")
                .arg(format!("meet:node:{id}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            if exists {
                live.push(id);
            }
        }
        live.sort();
        live
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Returns once something listens on `port`.
fn listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Sentinel (`redis-server --sentinel`) watching one master, named
/// [`Sentinel::MASTER`], and deciding alone (a quorum of one) that it
/// failed after a second.
pub struct Sentinel {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Sentinel {
    pub const MASTER: &str = "meet";

    pub fn start(master: &Redis) -> Self {
        let port = free_port();
        let dir = temp_dir("sentinel");
        let conf = dir.join("sentinel.conf");
        let m = Self::MASTER;
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {m} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {m} 1000\n\
                 sentinel failover-timeout {m} 5000\n",
                dir = dir.display(),
                master = master.port,
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server runs as a Sentinel");
        listening(port);
        Self { port, child, dir }
    }

    /// The `redis` setting that reaches the master through this Sentinel.
    pub fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{}", self.port, Self::MASTER)
    }

    async fn ask<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("SENTINEL")
            .arg(args)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// The port of the server it names master now.
    pub async fn master_port(&self) -> u16 {
        let (_, port): (String, u16) = self.ask(&["get-master-addr-by-name", Self::MASTER]).await;
        port
    }

    /// How many replicas of the master it knows.
    pub async fn replicas(&self) -> usize {
        let replicas: Vec<redis::Value> = self.ask(&["replicas", Self::MASTER]).await;
        replicas.len()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
