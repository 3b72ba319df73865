//! Invite links under attack, against a real server: one expires to the
//! second, an administrator withdraws a leaked one (and it stays withdrawn
//! over a restart until it would have expired), and a link's uses are
//! spent only by joins that get a seat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use sfu::shell::config::Config;

mod common;

use common::{closed, join_with, next_of, send, Admin, Running, Ws};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Joins `room` from `client` (a trusted proxy's `X-Forwarded-For`).
async fn join_from(
    server: &Running,
    client: &str,
    room: &str,
    name: &str,
    invite: Option<&str>,
) -> (Ws, Value) {
    let mut ws = server.ws_from(client).await;
    let reply = join_with(&mut ws, room, name, invite).await;
    (ws, reply)
}

fn proxied(config: Config) -> Config {
    Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..config
    }
}

#[tokio::test]
async fn an_invite_admits_nobody_from_the_second_it_expires() {
    let server = Running::start(&closed()).await;
    let admin = Admin::new(&server);
    let minted = admin
        .mint("board", json!({"role": "participant", "lifetime_secs": 1}))
        .await;
    let expires_at = minted["expires_at"].as_u64().unwrap();
    // Its second has come: no leeway lets it in a few seconds more.
    while unix_now() < expires_at {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut ws = server.ws().await;
    let m = join_with(&mut ws, "board", "Late", minted["invite"].as_str()).await;
    assert_eq!(m["code"], "invalid_invite", "{m}");
    assert!(
        m["message"].as_str().unwrap().contains("Expired"),
        "refused as expired: {m}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_withdrawn_invite_admits_nobody_also_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("meet-revoked-{:016x}", rand::random::<u64>()));
    let config = Config {
        lobby: false,
        policy_store: dir.join("policies.json"),
        // Links outlive a restart only with a secret that does.
        token_secret: "a-token-secret-of-at-least-32-chars".into(),
        ..closed()
    };
    let server = Running::start(&config).await;
    let admin = Admin::new(&server);
    let leaked = admin.mint("board", json!({"role": "participant"})).await;
    let kept = admin.mint("board", json!({"role": "host"})).await;
    let id = leaked["id"].as_str().unwrap();
    assert!(
        id.ends_with(&format!("-{}", leaked["expires_at"])),
        "the id names the expiry: {leaked}"
    );
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            &format!("/api/admin/invites/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let mut ws = server.ws().await;
    let m = join_with(&mut ws, "board", "Eve", leaked["invite"].as_str()).await;
    assert_eq!(m["code"], "invite_revoked", "{m}");
    // Other links of the meeting still admit.
    let mut host = server.ws().await;
    let m = join_with(&mut host, "board", "Hana", kept["invite"].as_str()).await;
    assert_eq!(m["type"], "joined", "{m}");
    // A host's own link is withdrawn by the id it was minted with.
    send(
        &mut host,
        json!({"type": "create_invite", "role": "participant", "lifetime_secs": 2}),
    )
    .await;
    let short = next_of(&mut host, "invite_created").await;
    let short_id = short["id"].as_str().unwrap().to_owned();
    let (status, _) = admin
        .call(
            reqwest::Method::DELETE,
            &format!("/api/admin/invites/{short_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let mut ws = server.ws().await;
    let m = join_with(&mut ws, "board", "Ed", short["invite"].as_str()).await;
    assert_eq!(m["code"], "invite_revoked", "{m}");
    for bad in ["not-an-id", "0123456789ABCDEF0123456789ABCDEF"] {
        let (status, v) = admin
            .call(
                reqwest::Method::DELETE,
                &format!("/api/admin/invites/{bad}"),
                None,
            )
            .await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    drop((ws, host));
    server.stop().await;

    let file = dir.join("revoked-invites.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(saved[id].is_u64() && saved[&short_id].is_u64(), "{saved}");
    // Once the host's short link has expired, a restart forgets it; the
    // leaked one (a day) is still refused.
    let short_expiry = short["expires_at"].as_u64().unwrap();
    while unix_now() < short_expiry {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = Running::start(&config).await;
    let mut ws = server.ws().await;
    let m = join_with(&mut ws, "board", "Eve", leaked["invite"].as_str()).await;
    assert_eq!(m["code"], "invite_revoked", "after a restart: {m}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(saved.as_object().unwrap().len(), 1, "{saved}");
    assert!(saved[id].is_u64(), "{saved}");
    drop(ws);
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Each way a join with a counted link can fail after the link checked out
/// (the meeting locked, too many joins from the address, the meeting full,
/// a ban) leaves the link's use for a join that gets in.
#[tokio::test]
async fn a_counted_invite_is_spent_only_by_joins_that_get_a_seat() {
    let server = Running::start(&proxied(Config {
        lobby: false,
        max_participants: 3,
        max_joins_per_address_per_minute: 2,
        ..closed()
    }))
    .await;
    let admin = Admin::new(&server);
    let host_link = admin.invite("board", json!({"role": "host"})).await;
    let open_link = admin.invite("board", json!({"role": "participant"})).await;
    let counted = admin
        .invite("board", json!({"role": "participant", "uses": 2}))
        .await;
    let counted = Some(counted.as_str());
    let (mut hana, m) = join_from(&server, "198.51.100.1", "board", "Hana", Some(&host_link)).await;
    assert_eq!(m["role"], "host", "{m}");

    // Locked.
    send(&mut hana, json!({"type": "lock_meeting", "locked": true})).await;
    assert_eq!(next_of(&mut hana, "meeting_locked").await["locked"], true);
    let (_ws, m) = join_from(&server, "198.51.100.2", "board", "Gus", counted).await;
    assert_eq!(m["code"], "meeting_locked", "{m}");
    send(&mut hana, json!({"type": "lock_meeting", "locked": false})).await;
    assert_eq!(next_of(&mut hana, "meeting_locked").await["locked"], false);

    // Too many joins from one address: two with the open link fill its
    // minute (and, with Hana, the meeting).
    let (mut zed, m) = join_from(&server, "198.51.100.3", "board", "Zed", Some(&open_link)).await;
    assert_eq!(m["type"], "joined", "{m}");
    let (mut zoe, m) = join_from(&server, "198.51.100.3", "board", "Zoe", Some(&open_link)).await;
    assert_eq!(m["type"], "joined", "{m}");
    let (_ws, m) = join_from(&server, "198.51.100.3", "board", "Gus", counted).await;
    assert_eq!(m["code"], "too_many_joins", "{m}");

    // Full: refused by the media worker, after the join was handed to it.
    let (_ws, m) = join_from(&server, "198.51.100.4", "board", "Gus", counted).await;
    assert_eq!(m["code"], "room_full", "{m}");
    send(&mut zed, json!({"type": "leave"})).await;
    next_of(&mut hana, "participant_left").await;

    // In: the first use. Banned, then back with the same link: refused,
    // which spends nothing either.
    let (_xia, m) = join_from(&server, "198.51.100.5", "board", "Xia", counted).await;
    assert_eq!(m["type"], "joined", "{m}");
    let xia = m["participant_id"].as_str().unwrap().to_owned();
    send(
        &mut hana,
        json!({"type": "remove", "participant_id": xia, "ban": true}),
    )
    .await;
    loop {
        let m = next_of(&mut hana, "participant_left").await;
        if m["participant_id"] == xia.as_str() {
            break;
        }
    }
    let (_ws, m) = join_from(&server, "198.51.100.6", "board", "Yan", counted).await;
    assert_eq!(m["code"], "banned", "{m}");

    // Everyone leaves: the meeting, and its bans, are gone; the link has
    // one use left, and only one.
    for ws in [&mut zoe, &mut hana] {
        send(ws, json!({"type": "leave"})).await;
    }
    admin.until_no_meetings().await;
    let (_yan, m) = join_from(&server, "198.51.100.6", "board", "Yan", counted).await;
    assert_eq!(m["type"], "joined", "the second use: {m}");
    let (_ws, m) = join_from(&server, "198.51.100.7", "board", "Wes", counted).await;
    assert_eq!(m["code"], "invalid_invite", "used up: {m}");
    assert!(m["message"].as_str().unwrap().contains("used"), "{m}");
    server.stop().await;
}
