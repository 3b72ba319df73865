//! Redis itself failing under several servers: away for a while (the
//! meetings carry on), failing over to its replica under a Sentinel (the
//! servers follow); and what the servers ask of it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::shell::config::Config;

mod cluster_support;
mod common;
mod redis_server;

use cluster_support::*;
use common::send;
use redis_server::{Redis, Sentinel};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_cluster_asks_of_redis_idle_per_join_and_per_running_meeting() {
    let redis = Redis::start();
    let (servers, entry) = three_servers(&redis).await;
    let window = Duration::from_secs(6);
    let per_second = |n: u64| n as f64 / window.as_secs_f64();
    // Idle: three servers, no meeting.
    let before = redis.commands().await;
    tokio::time::sleep(window).await;
    let idle = per_second(redis.commands().await - before - 1);
    // Joins, each straight to the server that holds (or takes) the
    // meeting: the first takes the lease, the others find it held here.
    let before = redis.commands().await;
    let mut seated = Vec::new();
    for name in ["Alice", "Bob", "Carol", "Dave"] {
        seated.push(
            entry
                .enter("a", "sizing", name, Duration::from_secs(10))
                .await,
        );
    }
    let joins = redis.commands().await - before - 1;
    // A running meeting of four, beside the idle cost.
    let before = redis.commands().await;
    tokio::time::sleep(window).await;
    let running = per_second(redis.commands().await - before - 1) - idle;
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
