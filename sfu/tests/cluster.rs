//! Several servers sharing meetings through a real `redis-server` that the
//! test starts on loopback: placement, clients sent on to a meeting's
//! server, a server killed, stopped or drained, and what moves with a
//! meeting (seats, bans, locks, invite links' uses). Servers run in this
//! process where nothing kills them, as processes of the binary where
//! something does. Redis itself failing: `cluster_redis.rs`.

use std::time::{Duration, Instant};

use serde_json::json;
use sfu::shell::config::Config;

mod cluster_support;
mod common;
mod redis_server;

use cluster_support::*;
use common::send;
use redis_server::Redis;

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
    let joined = common::next_of(&mut guest.ws, "joined").await;
    let resume = joined["resume"].as_str().unwrap().to_owned();
    assert!(!resume.is_empty());
    // The host locks the meeting, then its server dies.
    send(
        &mut host.ws,
        json!({"type": "lock_meeting", "locked": true}),
    )
    .await;
    common::next_of(&mut host.ws, "meeting_locked").await;
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
    let locked = common::next_of(&mut second.ws, "meeting_locked").await;
    assert_eq!(locked["locked"], true);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_ends_with_its_meeting_as_on_one_server() {
    let redis = Redis::start();
    let (servers, entry) = three_servers_with(&redis, |c| Config {
        admin_key: common::KEY.into(),
        ..c
    })
    .await;
    let within = Duration::from_secs(10);
    let invite = common::Admin::new(&servers["a"])
        .invite("standup", json!({"role": "host"}))
        .await;
    let join =
        json!({"type": "join", "v": 1, "room": "standup", "name": "Hanna", "invite": invite});
    let mut host = entry.enter_with("a", join, within).await;
    send(
        &mut host.ws,
        json!({"type": "lock_meeting", "locked": true}),
    )
    .await;
    common::next_of(&mut host.ws, "meeting_locked").await;
    host.leave().await;
    // Nobody in it: its server lets the lease go after a while, and the
    // lock with it (a server that stops keeps it: the meeting moves).
    until(Duration::from_secs(30), || async {
        redis.owner("standup").await.is_none()
    })
    .await;
    let mut later = entry.enter("b", "standup", "Gustav", within).await;
    // Nothing says it is locked (or ends the session) for a second.
    let told = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let m = next(&mut later.ws, within).await;
            if m.as_ref().is_none_or(|m| m["type"] == "meeting_locked") {
                return m;
            }
        }
    })
    .await;
    assert!(
        told.is_err(),
        "a meeting that ended starts open again: {told:?}"
    );
    later.leave().await;
    for (_, s) in servers {
        s.stop().await;
    }
}
