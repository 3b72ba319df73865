//! The Matrix room as a meeting's invitation list, against a real Synapse:
//! rooms the bridge makes are invite-only with history for joined members,
//! no alias and the configured message retention; an invited user gets in, a kicked one is put out within
//! seconds; host rights follow the power levels, and a host whose power
//! is lowered is refused what hosts do; a banned user stays out; an
//! anonymous guest makes no room, a Matrix user so many a day; a
//! homeserver that cannot answer keeps Matrix users out.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
mod synapse;

use common::{send, temp_dir, Ws};
use synapse::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_room_is_its_invitation_list() {
    let syn = Synapse::start(&["alice", "bob"]);
    let store = temp_dir("store");
    let server = TestServer::start_with(&syn, &store, |c| c.matrix_room_retention_days = 30).await;
    let alice = MatrixUser::login(&syn, "alice").await;
    let bob = MatrixUser::login(&syn, "bob").await;
    let room = alice.open_meeting(&server, "board").await;

    // As Synapse has it: invite-only, history for joined members only,
    // no homeserver guests, no alias, not even the one the name suggests.
    let rule = alice.state(&room, "m.room.join_rules", "").await;
    assert_eq!(rule["join_rule"], "invite");
    let history = alice.state(&room, "m.room.history_visibility", "").await;
    assert_eq!(history["history_visibility"], "joined");
    let guests = alice.state(&room, "m.room.guest_access", "").await;
    assert_eq!(guests["guest_access"], "forbidden");
    // Messages kept for the configured 30 days.
    let retention = alice.state(&room, "m.room.retention", "").await;
    assert_eq!(retention["max_lifetime"], 30 * 86_400_000u64);
    let state = |kind: &str| {
        format!(
            "/_matrix/client/v3/rooms/{}/state/{kind}/",
            MatrixUser::enc(&room)
        )
    };
    let (status, _) = alice
        .try_call(reqwest::Method::GET, &state("m.room.canonical_alias"), None)
        .await;
    assert_eq!(status, 404, "the room has an alias");
    let (status, _) = bob
        .try_call(
            reqwest::Method::GET,
            "/_matrix/client/v3/directory/room/%23meet-board%3Alocalhost",
            None,
        )
        .await;
    assert_eq!(status, 404, "the meeting's name leads to its room");
    // Bob, not invited, can neither enter the room nor read it ...
    let join = format!("/_matrix/client/v3/join/{}", MatrixUser::enc(&room));
    let (status, _) = bob
        .try_call(reqwest::Method::POST, &join, Some(json!({})))
        .await;
    assert_eq!(status, 403);
    // ... nor the meeting.
    let (status, e) = server.token("board", bob.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_room_member"))
    );

    let (mut carol, joined) = server.join("board", "Carol", None).await;
    let carol_pid = joined["participant_id"].as_str().unwrap().to_owned();

    // Invited is enough: Bob gets in before he accepts the invitation.
    alice.invite(&room, &bob.user_id).await;
    let (status, t) = server.token("board", bob.openid().await).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["host"], false);
    assert_eq!(t["room_id"].as_str(), Some(room.as_str()));
    let (mut bob_ws, joined) = server.join("board", "x", t["token"].as_str()).await;
    assert_eq!(joined["identity"]["user_id"], "@bob:localhost");
    assert_eq!(joined["role"], "participant");

    // Host rights follow the power levels while he is in the meeting.
    send(
        &mut bob_ws,
        json!({"type":"remove","participant_id":carol_pid}),
    )
    .await;
    assert_eq!(next_of(&mut bob_ws, "error").await["code"], "not_allowed");
    // Moderators may not change power levels (or they could open the
    // room): the room's admin does, here the bot's account.
    let admin = MatrixUser::login_with(&syn, "meetbot", BOT_PASSWORD).await;
    let (status, _) = alice
        .try_call(
            reqwest::Method::PUT,
            &state("m.room.join_rules"),
            Some(json!({"join_rule": "public"})),
        )
        .await;
    assert_eq!(status, 403, "a moderator opened the room");
    admin.set_power(&room, &bob.user_id, 50).await;
    let promoted = Instant::now();
    // He and everyone else are told; the others see him as a host.
    let bob_pid = joined["participant_id"].as_str().unwrap().to_owned();
    let changed = next_of(&mut bob_ws, "role_changed").await;
    assert_eq!(changed["participant_id"], bob_pid.as_str());
    assert_eq!(changed["role"], "host");
    println!(
        "measured: power levels → role_changed {:?}",
        promoted.elapsed()
    );
    let seen = next_of(&mut carol, "role_changed").await;
    assert_eq!(
        (&seen["participant_id"], &seen["role"]),
        (&changed["participant_id"], &changed["role"])
    );
    loop {
        send(
            &mut bob_ws,
            json!({"type":"remove","participant_id":carol_pid}),
        )
        .await;
        let m = next_where(
            &mut bob_ws,
            |m| m["type"] == "error" || m["type"] == "participant_left",
            "the remove's outcome",
        )
        .await;
        if m["type"] == "participant_left" {
            assert_eq!(m["participant_id"], carol_pid.as_str());
            break;
        }
        assert_eq!(m["code"], "not_allowed", "{m}");
        assert!(
            promoted.elapsed() < Duration::from_secs(10),
            "still no host 10 s after the power levels changed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "measured: power levels → host rights in the meeting {:?}",
        promoted.elapsed()
    );
    assert_eq!(next_of(&mut carol, "error").await["code"], "removed");

    // Kicked from the room (by Alice, once he is below her again), out of
    // the meeting within seconds.
    admin.set_power(&room, &bob.user_id, 0).await;
    alice.kick(&room, &bob.user_id).await;
    let kicked = Instant::now();
    let e = next_of(&mut bob_ws, "error").await;
    assert_eq!(e["code"], "removed", "{e}");
    let took = kicked.elapsed();
    println!("measured: kick in the room → removed from the meeting {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // His token is unexpired, but he is off the list now.
    let e = server.refused_join("board", &t["token"]).await;
    assert_eq!(e["code"], "invalid_token", "{e}");
    let (status, e) = server.token("board", bob.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_room_member"))
    );

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

/// The rooms on the homeserver, as its admin (the bot) sees them.
async fn rooms(syn: &Synapse) -> u64 {
    let bot = MatrixUser::login_with(syn, "meetbot", BOT_PASSWORD).await;
    let (status, v) = bot
        .try_call(reqwest::Method::GET, "/_synapse/admin/v1/rooms", None)
        .await;
    assert_eq!(status, 200, "{v}");
    v["total_rooms"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_guest_makes_no_room_and_a_user_so_many_a_day() {
    let syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let server = TestServer::start_with(&syn, &store, |c| c.max_rooms_per_user_per_day = 2).await;
    let alice = MatrixUser::login(&syn, "alice").await;

    // The deployment lets anyone in, but nobody vouched for Dan: his
    // meeting has no chat, and the homeserver no room for it.
    let (_dan, joined) = server.join("lab", "Dan", None).await;
    assert_eq!(joined["chat"], Value::Null, "{joined}");
    assert_eq!(rooms(&syn).await, 0);
    // Nor does a Matrix user take over his meeting by signing in to it.
    let (status, e) = server.token("lab", alice.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (503, Some("chat_unavailable")),
        "{e}"
    );
    assert_eq!(rooms(&syn).await, 0);

    // A guest with an invite link is someone a host vouched for.
    let (_erin, joined) = server.join_invited("lab", "Erin").await;
    assert!(joined["chat"]["room_id"].is_string(), "{joined}");
    assert_eq!(rooms(&syn).await, 1);

    // Alice may have two rooms made today; the third meeting is refused,
    // and the ones she has stay hers to enter.
    alice.open_meeting(&server, "one").await;
    alice.open_meeting(&server, "two").await;
    let (status, e) = server.token("three", alice.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (429, Some("too_many_rooms")),
        "{e}"
    );
    assert_eq!(rooms(&syn).await, 3);
    let (status, e) = server.token("one", alice.openid().await).await;
    assert_eq!(status, 200, "{e}");
    let hit = server
        .metric("meet_limits_hit_total{limit=\"rooms_per_user\"}")
        .await;
    assert_eq!(hit, 1.0);

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_user_is_refused_while_the_homeserver_cannot_answer() {
    let mut syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let server = TestServer::start(&syn, &store).await;
    let alice = MatrixUser::login(&syn, "alice").await;
    alice.open_meeting(&server, "vault").await;
    let (status, t) = server.token("vault", alice.openid().await).await;
    assert_eq!(status, 200, "{t}");

    syn.kill();
    let asked = Instant::now();
    let e = server.refused_join("vault", &t["token"]).await;
    assert_eq!(e["code"], "unavailable", "{e}");
    println!(
        "measured: a join refused for an unanswered membership check in {:?}",
        asked.elapsed()
    );
    // A guest with an invite link still gets in.
    let (_guest, joined) = server.join_invited("vault", "Gus").await;
    assert_eq!(joined["role"], "participant");

    syn.run();
    let (_alice_ws, joined): (Ws, Value) = server.join("vault", "x", t["token"].as_str()).await;
    assert_eq!(joined["identity"]["user_id"], "@alice:localhost");

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

/// What a demoted host sends is refused by the server, and does nothing:
/// the one waiting in the lobby still waits, the meeting stays locked, the
/// others stay in, unmuted. And whom a host bans stays out of the meeting
/// with a fresh token; whom the room bans gets no token at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_host_is_refused_and_a_banned_user_stays_out() {
    let syn = Synapse::start(&["alice", "bob", "carol"]);
    let store = temp_dir("store");
    let server = TestServer::start(&syn, &store).await;
    let alice = MatrixUser::login(&syn, "alice").await;
    let bob = MatrixUser::login(&syn, "bob").await;
    let carol = MatrixUser::login(&syn, "carol").await;
    let admin = MatrixUser::login_with(&syn, "meetbot", BOT_PASSWORD).await;
    let room = alice.open_meeting(&server, "board").await;
    alice.invite(&room, &bob.user_id).await;
    alice.invite(&room, &carol.user_id).await;

    let (_, t) = server.token("board", alice.openid().await).await;
    let (mut alice_ws, joined) = server.join("board", "x", t["token"].as_str()).await;
    assert_eq!(joined["role"], "host", "{joined}");
    let alice_pid = joined["participant_id"].as_str().unwrap().to_owned();
    let (_, t) = server.token("board", bob.openid().await).await;
    let bob_token = t["token"].clone();
    let (mut bob_ws, joined) = server.join("board", "x", bob_token.as_str()).await;
    let bob_pid = joined["participant_id"].as_str().unwrap().to_owned();
    send(&mut alice_ws, json!({"type":"lock_meeting","locked":true})).await;
    assert_eq!(next_of(&mut bob_ws, "meeting_locked").await["locked"], true);
    // Dan knocks on the locked meeting; Alice sees him.
    let mut dan = server.ws().await;
    send(
        &mut dan,
        json!({"type":"join","v":1,"room":"board","name":"Dan"}),
    )
    .await;
    next_of(&mut dan, "lobby_waiting").await;
    let dan_id = next_where(
        &mut alice_ws,
        |m| m["type"] == "lobby" && m["waiting"][0]["name"] == "Dan",
        "Dan in the lobby",
    )
    .await["waiting"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The room's admin lowers Alice's power: she is a participant now.
    admin.set_power(&room, &alice.user_id, 0).await;
    let changed = next_of(&mut alice_ws, "role_changed").await;
    assert_eq!(
        (changed["participant_id"].as_str(), changed["role"].as_str()),
        (Some(alice_pid.as_str()), Some("participant"))
    );
    for action in [
        json!({"type":"admit","lobby_id":dan_id}),
        json!({"type":"lock_meeting","locked":false}),
        json!({"type":"remove","participant_id":bob_pid,"ban":true}),
        json!({"type":"mute_participant","participant_id":bob_pid,"track_id":"t","locked":true}),
        json!({"type":"end_meeting"}),
        json!({"type":"create_invite","role":"participant"}),
    ] {
        send(&mut alice_ws, action.clone()).await;
        let e = next_of(&mut alice_ws, "error").await;
        assert_eq!(e["code"], "not_allowed", "{action}: {e}");
    }
    // Nothing of it happened: given her power back, Alice finds Dan still
    // waiting and turns him away, and what Bob heard in between is only
    // her two changes of role.
    admin.set_power(&room, &alice.user_id, 50).await;
    let lobby = next_of(&mut alice_ws, "lobby").await;
    assert_eq!(lobby["waiting"][0]["id"], dan_id.as_str(), "{lobby}");
    send(&mut alice_ws, json!({"type":"deny","lobby_id":dan_id})).await;
    assert_eq!(next_of(&mut dan, "error").await["code"], "denied");
    let mut heard = Vec::new();
    loop {
        let m = next_where(&mut bob_ws, |_| true, "Bob's news").await;
        let host_again = m["type"] == "role_changed" && m["role"] == "host";
        heard.push(m);
        if host_again {
            break;
        }
    }
    let effects = [
        "meeting_locked",
        "muted_by_host",
        "track_muted",
        "participant_left",
        "error",
    ];
    assert!(
        heard
            .iter()
            .all(|m| !effects.contains(&m["type"].as_str().unwrap())),
        "{heard:?}"
    );

    // A host's ban holds for a Matrix user with a fresh token.
    send(
        &mut alice_ws,
        json!({"type":"remove","participant_id":bob_pid,"ban":true}),
    )
    .await;
    assert_eq!(next_of(&mut bob_ws, "error").await["code"], "removed");
    let (status, t) = server.token("board", bob.openid().await).await;
    assert_eq!(status, 200, "still in the room: {t}");
    let e = server.refused_join("board", &t["token"]).await;
    assert_eq!(e["code"], "banned", "{e}");
    // Banned from the room: no token, and the one Carol had is refused.
    let (_, t) = server.token("board", carol.openid().await).await;
    let carol_token = t["token"].clone();
    alice.ban(&room, &carol.user_id).await;
    let (status, e) = server.token("board", carol.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_room_member")),
        "{e}"
    );
    let e = server.refused_join("board", &carol_token).await;
    assert_eq!(e["code"], "invalid_token", "{e}");

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}
