//! Several servers sharing meetings through a real `redis-server` that the
//! test starts on loopback: placement, clients sent on to a meeting's
//! server, a server killed, stopped or drained, Redis gone for a while,
//! Redis failing over to its replica under a Sentinel.
//! Servers run in this process where nothing kills them, as processes of
//! the binary where something does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::shell::config::Config;

mod common;
mod redis_server;

use common::{send, server, Process, Running, Ws};
use redis_server::{Redis, Sentinel};

/// The node ids of a three-server cluster.
const IDS: [&str; 3] = ["a", "b", "c"];

/// A server's settings in the cluster: clients are sent on to it by the
/// path `/node/<id>/ws`, which [`Entry::enter`] resolves (a proxy would).
fn node_config(redis: &Redis, id: &str) -> Config {
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
const TOKEN_SECRET: &str = "a-token-secret-that-all-servers-share";

/// Where a client gets in, and who it is.
struct Entry {
    addrs: HashMap<String, SocketAddr>,
}

/// A client seated in a meeting.
struct Seated {
    ws: Ws,
    /// The server that seated it.
    node: String,
    joined: Value,
}

impl Seated {
    /// Leaves the meeting (no seat held for it), as a page that closes.
    async fn leave(mut self) {
        send(&mut self.ws, json!({"type": "leave"})).await;
        closed(&mut self.ws, Duration::from_secs(5)).await;
    }
}

impl Entry {
    /// Joins `room` through `first`, following `moved` as the page does:
    /// the same join at the server named; a server that cannot be reached
    /// (its meeting's lease has not lapsed yet) is tried again from
    /// `first` after a moment. Gives up after `within`.
    async fn enter(&self, first: &str, room: &str, name: &str, within: Duration) -> Seated {
        let join = json!({"type": "join", "v": 1, "room": room, "name": name});
        let seated = self.enter_with(first, join, within).await;
        assert_eq!(seated.joined["type"], "joined", "{}", seated.joined);
        seated
    }

    /// As [`Entry::enter`], with this `join`; `joined` holds the first
    /// answer that sends it nowhere else (`joined`, `lobby_waiting`, an
    /// error other than `unavailable`).
    async fn enter_with(&self, first: &str, join: Value, within: Duration) -> Seated {
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
async fn next(ws: &mut Ws, within: Duration) -> Option<Value> {
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
async fn closed(ws: &mut Ws, within: Duration) -> Option<String> {
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

fn participant_names(joined: &Value) -> Vec<String> {
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
async fn three_servers(redis: &Redis) -> (HashMap<String, Running>, Entry) {
    three_servers_with(redis, |c| c).await
}

/// Three servers of this process, each configured as `config` makes of
/// its node's settings.
async fn three_servers_with(
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
async fn until<F, Fut>(within: Duration, check: F)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_entering_through_different_servers_meet_on_one_and_a_new_meeting_goes_elsewhere() {
    let redis = Redis::start();
    let (servers, entry) = three_servers(&redis).await;
    let within = Duration::from_secs(10);
    let alice = entry.enter("a", "planning", "Alice", within).await;
    let bob = entry.enter("b", "planning", "Bob", within).await;
    let carol = entry.enter("c", "planning", "Carol", within).await;
    let owner = redis.owner("planning").await.expect("a lease");
    for seated in [&alice, &bob, &carol] {
        assert_eq!(seated.node, owner, "everyone on the meeting's server");
    }
    assert_eq!(participant_names(&carol.joined), ["Alice", "Bob"]);
    let redirects: f64 = {
        let mut sum = 0.0;
        for s in servers.values() {
            sum += s.metric("meet_cluster_redirects_total").await;
        }
        sum
    };
    assert_eq!(redirects, 2.0, "two of the three were sent on");
    assert_eq!(servers[&owner].metric("meet_cluster_leases").await, 1.0);
    // The owner's load reaches the registry at its next heartbeat; a new
    // meeting then goes to a server with nobody in it, whichever it
    // enters through.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let dave = entry.enter(&owner, "review", "Dave", within).await;
    assert_ne!(dave.node, owner, "the second meeting on another server");
    assert_eq!(
        redis.owner("review").await.as_deref(),
        Some(dave.node.as_str())
    );
    // Once everyone left, the leases go.
    for seated in [alice, bob, carol, dave] {
        seated.leave().await;
    }
    until(Duration::from_secs(60), || async {
        redis.owner("planning").await.is_none() && redis.owner("review").await.is_none()
    })
    .await;
    for (_, s) in servers {
        s.stop().await;
    }
    assert!(
        redis.nodes().await.is_empty(),
        "each stopped server left the registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_goes_on_while_redis_is_away_and_every_server_is_back_within_two_heartbeats() {
    let mut redis = Redis::start();
    let (servers, entry) = three_servers(&redis).await;
    let within = Duration::from_secs(10);
    let mut alice = entry.enter("a", "standup", "Alice", within).await;
    let mut bob = entry.enter("b", "standup", "Bob", within).await;
    let owner = alice.node.clone();
    redis.stop();
    let away = Instant::now();
    // The meeting goes on: what one does, the other hears.
    while away.elapsed() < Duration::from_secs(10) {
        send(&mut alice.ws, json!({"type": "raise_hand", "raised": true})).await;
        loop {
            let m = next(&mut bob.ws, Duration::from_secs(3))
                .await
                .expect("bob stays in");
            if m["type"] == "hand_raised" && m["raised"] == true {
                break;
            }
        }
        send(
            &mut alice.ws,
            json!({"type": "raise_hand", "raised": false}),
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Every server says so, those that hold no meeting too (they once read
    // their empty renewal round as Redis answering), and keeps saying so.
    for _ in 0..5 {
        for (id, s) in &servers {
            assert_eq!(s.metric("meet_cluster_redis_up").await, 0.0, "{id}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A meeting that nobody holds cannot start meanwhile: said so, not
    // placed twice.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", entry.addrs["c"]))
        .await
        .unwrap();
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "room": "elsewhere", "name": "Eve"}),
    )
    .await;
    let m = next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("unavailable")),
        "{m}"
    );
    redis.resume();
    let back = Instant::now();
    until(Duration::from_secs(5), || async {
        redis.nodes().await.len() == 3
    })
    .await;
    println!(
        "every server registered again {:?} after Redis came back",
        back.elapsed()
    );
    assert!(back.elapsed() < Duration::from_secs(4) + Duration::from_millis(500));
    // The owner took its meeting's lease again, and still seats joins.
    until(Duration::from_secs(3), || async {
        redis.owner("standup").await.as_deref() == Some(owner.as_str())
    })
    .await;
    let carol = entry.enter("c", "standup", "Carol", within).await;
    assert_eq!(carol.node, owner);
    assert_eq!(participant_names(&carol.joined), ["Alice", "Bob"]);
    assert_eq!(servers[&owner].metric("meet_cluster_redis_up").await, 1.0);
    for seated in [alice, bob, carol] {
        seated.leave().await;
    }
    for (_, s) in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_sentinel_the_servers_follow_the_master_when_it_fails_over() {
    let mut master = Redis::start();
    let replica = Redis::replica_of(&master);
    let sentinel = Sentinel::start(&master);
    until(Duration::from_secs(20), || async {
        sentinel.replicas().await == 1
    })
    .await;
    let url = sentinel.url();
    let (servers, entry) = three_servers_with(&master, |c| Config {
        redis: url.clone(),
        ..c
    })
    .await;
    let within = Duration::from_secs(10);
    let alice = entry.enter("a", "standup", "Alice", within).await;
    let bob = entry.enter("b", "standup", "Bob", within).await;
    let owner = alice.node.clone();
    // On the replica before the master goes (Redis replicates after it
    // answers: what it had not sent on yet is lost in a failover).
    until(Duration::from_secs(5), || async {
        replica.owner("standup").await.as_deref() == Some(owner.as_str())
    })
    .await;
    master.stop();
    let failed = Instant::now();
    until(Duration::from_secs(20), || async {
        sentinel.master_port().await == replica.port()
    })
    .await;
    let promoted = failed.elapsed();
    let since = unix_ms();
    // Every server writes its record to the new master.
    until(Duration::from_secs(10), || async {
        let mut conn = replica.client().await;
        let mut fresh = 0;
        for id in IDS {
            let record: Option<String> = redis::cmd("GET")
                .arg(format!("meet:node:{id}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            let written = record
                .and_then(|r| serde_json::from_str::<Value>(&r).ok())
                .and_then(|n| n["written_ms"].as_u64());
            fresh += usize::from(written.is_some_and(|w| w >= since));
        }
        fresh == IDS.len()
    })
    .await;
    println!(
        "the master killed: its replica promoted after {promoted:?}, \
         every server registered on it after {:?}",
        failed.elapsed()
    );
    for (id, s) in &servers {
        assert_eq!(s.metric("meet_cluster_redis_up").await, 1.0, "{id}");
    }
    // The meeting's server holds it still, and seats a latecomer who
    // enters elsewhere; a new meeting is placed on the new master.
    let carol = entry
        .enter(another(&owner), "standup", "Carol", within)
        .await;
    assert_eq!(carol.node, owner);
    assert_eq!(participant_names(&carol.joined), ["Alice", "Bob"]);
    let dave = entry.enter(&owner, "retro", "Dave", within).await;
    assert_eq!(replica.owner("retro").await, Some(dave.node.clone()));
    for seated in [alice, bob, carol, dave] {
        seated.leave().await;
    }
    for (_, s) in servers {
        s.stop().await;
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The server binary as its own process, in the cluster; `env` beside.
fn process(redis: &Redis, id: &str, env: &[(&str, &str)]) -> Process {
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
async fn three_processes(redis: &Redis, env: &[(&str, &str)]) -> (HashMap<String, Process>, Entry) {
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
fn another(node: &str) -> &'static str {
    IDS.into_iter().find(|id| *id != node).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_meeting_is_back_on_another_within_seconds() {
    let redis = Redis::start();
    let (mut procs, entry) = three_processes(&redis, &[]).await;
    let within = Duration::from_secs(10);
    let mut alice = entry.enter("a", "board", "Alice", within).await;
    let mut bob = entry.enter("b", "board", "Bob", within).await;
    let owner = alice.node.clone();
    procs.get(&owner).unwrap().signal(libc::SIGKILL);
    let killed = Instant::now();
    assert_eq!(closed(&mut alice.ws, Duration::from_secs(2)).await, None);
    assert_eq!(closed(&mut bob.ws, Duration::from_secs(2)).await, None);
    let closed_after = killed.elapsed();
    let alice = entry.enter(another(&owner), "board", "Alice", within).await;
    let bob = entry.enter(another(&owner), "board", "Bob", within).await;
    let back_after = killed.elapsed();
    println!("killed owner {owner}: sockets closed after {closed_after:?}, both seated on {} after {back_after:?}", alice.node);
    assert_ne!(alice.node, owner);
    assert_eq!(bob.node, alice.node);
    assert_eq!(participant_names(&bob.joined), ["Alice"]);
    assert!(back_after < Duration::from_secs(10));
    procs.remove(&owner);
    drop((alice, bob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_does_not_take_its_meeting_back_when_it_wakes() {
    let redis = Redis::start();
    let (procs, entry) = three_processes(&redis, &[]).await;
    let within = Duration::from_secs(15);
    let mut alice = entry.enter("a", "council", "Alice", within).await;
    let owner = alice.node.clone();
    procs[&owner].signal(libc::SIGSTOP);
    let stopped = Instant::now();
    // Its client gives up on it (the page does so when its media goes
    // silent) and comes back through another server.
    let bob = entry.enter(another(&owner), "council", "Bob", within).await;
    let moved_after = stopped.elapsed();
    println!(
        "stopped owner {owner}: the meeting seated again on {} after {moved_after:?}",
        bob.node
    );
    assert_ne!(bob.node, owner);
    assert!(moved_after < cluster_lease() + Duration::from_secs(5));
    procs[&owner].signal(libc::SIGCONT);
    // Awake, it finds a higher fence on the meeting: it closes it there,
    // and sends joins on to the new server.
    assert_eq!(
        closed(&mut alice.ws, Duration::from_secs(5))
            .await
            .as_deref(),
        Some("moved")
    );
    assert_eq!(
        procs[&owner].metric("meet_cluster_leases_lost_total").await,
        1.0
    );
    let alice = entry.enter(&owner, "council", "Alice", within).await;
    assert_eq!(alice.node, bob.node);
    assert_eq!(
        redis.owner("council").await.as_deref(),
        Some(bob.node.as_str())
    );
    drop((alice, bob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_server_keeps_its_meeting_joinable_and_sends_new_ones_elsewhere() {
    let redis = Redis::start();
    let (procs, entry) = three_processes(&redis, &[]).await;
    let within = Duration::from_secs(10);
    let alice = entry.enter("a", "audit", "Alice", within).await;
    let owner = alice.node.clone();
    procs[&owner].signal(libc::SIGTERM);
    // The others read that it drains at their next heartbeat.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late = entry.enter(another(&owner), "audit", "Bob", within).await;
    assert_eq!(
        late.node, owner,
        "a latecomer still gets into the meeting under way"
    );
    assert_eq!(participant_names(&late.joined), ["Alice"]);
    let new = entry.enter(&owner, "fresh", "Carol", within).await;
    assert_ne!(
        new.node, owner,
        "a new meeting goes to a server that serves"
    );
    drop((alice, late, new));
}

fn cluster_lease() -> Duration {
    sfu::cluster::LEASE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_let_in_by_a_host_is_back_in_the_closed_meeting_on_another_server_locked_and_with_its_invite_uses_counted(
) {
    let redis = Redis::start();
    let closed = [
        ("MEET_ANONYMOUS_JOIN", "false"),
        ("MEET_ADMIN_KEY", common::KEY),
    ];
    let (mut procs, entry) = three_processes(&redis, &closed).await;
    let within = Duration::from_secs(10);
    // A link for two hosts.
    let invite = common::Admin::at(procs["b"].http)
        .invite("closed", json!({"role": "host", "uses": 2}))
        .await;
    let host_join =
        json!({"type": "join", "v": 1, "room": "closed", "name": "Hanna", "invite": invite});
    let mut host = entry.enter_with("a", host_join, within).await;
    assert_eq!(host.joined["type"], "joined", "{}", host.joined);
    let owner = host.node.clone();
    // A guest knocks through another server, and the host lets them in.
    let guest_join = json!({"type": "join", "v": 1, "room": "closed", "name": "Gustav"});
    let mut guest = entry
        .enter_with(another(&owner), guest_join.clone(), within)
        .await;
    assert_eq!(guest.joined["type"], "lobby_waiting", "{}", guest.joined);
    let lobby = loop {
        let m = next(&mut host.ws, within).await.expect("the host stays in");
        if m["type"] == "lobby" && !m["waiting"].as_array().unwrap().is_empty() {
            break m;
        }
    };
    let lobby_id = lobby["waiting"][0]["id"].clone();
    send(&mut host.ws, json!({"type": "admit", "lobby_id": lobby_id})).await;
    let joined = loop {
        let m = next(&mut guest.ws, within).await.expect("the guest stays");
        if m["type"] == "joined" {
            break m;
        }
    };
    let resume = joined["resume"].as_str().unwrap().to_owned();
    assert!(!resume.is_empty());
    // The host locks the meeting, then its server dies.
    send(
        &mut host.ws,
        json!({"type": "lock_meeting", "locked": true}),
    )
    .await;
    loop {
        let m = next(&mut host.ws, within).await.expect("the host stays in");
        if m["type"] == "meeting_locked" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    procs.get(&owner).unwrap().signal(libc::SIGKILL);
    let killed = Instant::now();
    // Back with its seat's secret through another server: seated again at
    // once, as let in before; no lobby, no host needed to let it in again.
    let mut back_join = guest_join;
    back_join["resume"] = json!(resume);
    let back = entry
        .enter_with(another(&owner), back_join.clone(), within)
        .await;
    assert_eq!(back.joined["type"], "joined", "{}", back.joined);
    assert_ne!(back.node, owner);
    println!(
        "the guest was seated again on {} {:?} after the kill",
        back.node,
        killed.elapsed()
    );
    // The seat is taken once.
    let again = entry.enter_with(another(&owner), back_join, within).await;
    assert_eq!(again.joined["type"], "lobby_waiting", "{}", again.joined);
    // The host's link had one of its two uses on the killed server: one
    // more host gets in, a third does not.
    let host_join = |name: &str| json!({"type": "join", "v": 1, "room": "closed", "name": name, "invite": invite});
    let mut second = entry
        .enter_with(another(&owner), host_join("Ivar"), within)
        .await;
    assert_eq!(second.joined["type"], "joined", "{}", second.joined);
    // Still locked on the new server, and its hosts are told so.
    loop {
        let m = next(&mut second.ws, Duration::from_secs(2))
            .await
            .expect("the meeting is still locked");
        if m["type"] == "meeting_locked" {
            assert_eq!(m["locked"], true);
            break;
        }
    }
    let third = entry
        .enter_with(another(&owner), host_join("Julia"), within)
        .await;
    assert_eq!(
        (third.joined["type"].as_str(), third.joined["code"].as_str()),
        (Some("error"), Some("invalid_invite")),
        "{}",
        third.joined
    );
    procs.remove(&owner);
}

/// Commands Redis has processed so far, as it counts them: those a Lua
/// script calls too (a lease renewal is one round trip and three or four
/// commands), and the INFO asking.
async fn commands(redis: &Redis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut redis.client().await)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats has total_commands_processed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_cluster_asks_of_redis_idle_per_join_and_per_running_meeting() {
    let redis = Redis::start();
    let (servers, entry) = three_servers(&redis).await;
    let window = Duration::from_secs(6);
    let per_second = |n: u64| n as f64 / window.as_secs_f64();
    // Idle: three servers, no meeting.
    let before = commands(&redis).await;
    tokio::time::sleep(window).await;
    let idle = per_second(commands(&redis).await - before - 1);
    // Joins, each straight to the server that holds (or takes) the
    // meeting: the first takes the lease, the others find it held here.
    let before = commands(&redis).await;
    let mut seated = Vec::new();
    for name in ["Alice", "Bob", "Carol", "Dave"] {
        seated.push(
            entry
                .enter("a", "sizing", name, Duration::from_secs(10))
                .await,
        );
    }
    let joins = commands(&redis).await - before - 1;
    // A running meeting of four, beside the idle cost.
    let before = commands(&redis).await;
    tokio::time::sleep(window).await;
    let running = per_second(commands(&redis).await - before - 1) - idle;
    println!(
        "Redis commands (scripts' own included): {idle:.1}/s for three idle servers; \
         {joins} for four joins (the first taking the lease); {running:.1}/s more \
         while a meeting of four runs"
    );
    // Bounds that catch a command per participant and second, or a
    // heartbeat gone wild; wide enough for a window that catches one
    // heartbeat more or less (three servers' six commands each 2 s).
    assert!(idle < 15.0, "{idle}/s idle");
    assert!(joins <= 4 * 6, "{joins} commands for four joins");
    assert!(running < 12.0, "{running}/s for a running meeting");
    for s in seated {
        s.leave().await;
    }
    for (_, s) in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_administrator_changes_on_one_server_holds_on_all() {
    let redis = Redis::start();
    let closed = |c| Config {
        anonymous_join: false,
        admin_key: common::KEY.into(),
        ..c
    };
    let (servers, entry) = three_servers_with(&redis, closed).await;
    let admin = |id: &str| common::Admin::new(&servers[id]);
    // A link minted on a, withdrawn on b: refused on c, which holds the
    // meeting (entered through it, with nobody anywhere: c takes it).
    let minted = admin("a")
        .mint("vault", json!({"role": "participant"}))
        .await;
    let (invite, id) = (
        minted["invite"].clone(),
        minted["id"].as_str().unwrap().to_owned(),
    );
    let (status, body) = admin("b")
        .call(
            reqwest::Method::DELETE,
            &format!("/api/admin/invites/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let withdrawn = Instant::now();
    let join =
        json!({"type": "join", "v": 1, "room": "vault", "name": "Mallory", "invite": invite});
    loop {
        let tried = entry
            .enter_with("c", join.clone(), Duration::from_secs(10))
            .await;
        assert_eq!(tried.node, "c");
        if tried.joined["code"] == "invite_revoked" {
            break;
        }
        assert_eq!(tried.joined["type"], "joined", "{}", tried.joined);
        tried.leave().await;
        assert!(
            withdrawn.elapsed() < Duration::from_secs(5),
            "c still takes the link"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "a link withdrawn on b was refused on c {:?} later",
        withdrawn.elapsed()
    );
    // A meeting opened to anyone on c: a and b say so within two
    // heartbeats, and an anonymous guest gets in wherever it is placed.
    let (status, body) = admin("c")
        .call(
            reqwest::Method::PUT,
            "/api/admin/meetings/open-day/policy",
            Some(json!({"anonymous_join": true, "lobby": false})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for id in ["a", "b"] {
        until(Duration::from_secs(5), || async {
            let (_, p) = admin(id)
                .call(
                    reqwest::Method::GET,
                    "/api/admin/meetings/open-day/policy",
                    None,
                )
                .await;
            p["effective"]["anonymous_join"] == true
        })
        .await;
    }
    let guest = entry
        .enter("a", "open-day", "Guest", Duration::from_secs(10))
        .await;
    guest.leave().await;
    for (_, s) in servers {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_a_host_banned_stays_out_after_the_meeting_moves() {
    let redis = Redis::start();
    let (mut procs, entry) = three_processes(&redis, &[("MEET_ADMIN_KEY", common::KEY)]).await;
    let within = Duration::from_secs(10);
    let invite = common::Admin::at(procs["a"].http)
        .invite("townhall", json!({"role": "host"}))
        .await;
    let host_join =
        json!({"type": "join", "v": 1, "room": "townhall", "name": "Hanna", "invite": invite});
    let mut host = entry.enter_with("a", host_join.clone(), within).await;
    let owner = host.node.clone();
    let troll = entry.enter("b", "townhall", "Troll", within).await;
    let troll_id = troll.joined["participant_id"].clone();
    send(
        &mut host.ws,
        json!({"type": "remove", "participant_id": troll_id, "ban": true}),
    )
    .await;
    let mut troll_ws = troll.ws;
    closed(&mut troll_ws, within).await;
    // The ban reaches Redis a moment later (it is sent beside the removal).
    until(Duration::from_secs(2), || async {
        let mut conn = redis.client().await;
        let n: usize = redis::cmd("SCARD")
            .arg("meet:bans:townhall")
            .query_async(&mut conn)
            .await
            .unwrap();
        n > 0
    })
    .await;
    procs.get(&owner).unwrap().signal(libc::SIGKILL);
    // The host comes back with her link and keeps the meeting going
    // elsewhere.
    let back = entry.enter_with(another(&owner), host_join, within).await;
    assert_eq!(back.joined["type"], "joined", "{}", back.joined);
    assert_ne!(back.node, owner);
    // The troll, from the same address, is kept out there too.
    let again = entry
        .enter_with(
            another(&owner),
            json!({"type": "join", "v": 1, "room": "townhall", "name": "Troll"}),
            within,
        )
        .await;
    assert_eq!(
        (again.joined["type"].as_str(), again.joined["code"].as_str()),
        (Some("error"), Some("banned")),
        "{}",
        again.joined
    );
    procs.remove(&owner);
    drop(back);
}
