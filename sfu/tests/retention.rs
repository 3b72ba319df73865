//! Personal data against a real Synapse: ghost users unused past their
//! retention are deactivated and erased on the homeserver while recent
//! ones stay; the rooms of forgotten meetings are purged when the operator
//! asks for it (never a user's own room); and `meet erase`, run beside the
//! running server, erases one person's ghosts. Retention is applied at a
//! chosen time instead of waiting days.

use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sfu::shell::config::Config;

mod common;
mod synapse;

use common::{send, temp_dir, Ws};
use synapse::*;

const DAY: Duration = Duration::from_secs(86_400);

/// Writes `text` in the meeting and waits until the room has it; returns
/// the Matrix user that sent it.
async fn writes(ws: &mut Ws, text: &str, reader: &MatrixUser, room: &str) -> String {
    send(ws, json!({"type":"chat","text":text})).await;
    let pending = next_where(
        ws,
        |m| m["type"] == "chat_event" && m["event"]["body"] == text,
        "the message, pending",
    )
    .await;
    let delivered = next_where(
        ws,
        |m| {
            m["type"] == "chat_event"
                && m["event"]["kind"] == "delivered"
                && m["event"]["local_id"] == pending["event"]["id"]
        },
        "the message delivered",
    )
    .await;
    let messages = reader.messages(room).await;
    let event = messages
        .iter()
        .find(|e| e["event_id"] == delivered["event"]["id"])
        .unwrap_or_else(|| panic!("no delivered event in {messages:?}"));
    event["sender"].as_str().unwrap().to_owned()
}

/// The homeserver's admin view of a user (the bot is a server admin in
/// these tests; meet itself does not need to be).
async fn account(admin: &MatrixUser, user_id: &str) -> Value {
    let (status, v) = admin
        .try_call(
            reqwest::Method::GET,
            &format!("/_synapse/admin/v2/users/{}", MatrixUser::enc(user_id)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{user_id}: {v}");
    v
}

async fn display_name(reader: &MatrixUser, user_id: &str) -> Option<String> {
    let (status, v) = reader
        .try_call(
            reqwest::Method::GET,
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                MatrixUser::enc(user_id)
            ),
            None,
        )
        .await;
    (status == 200).then(|| v["displayname"].as_str().unwrap_or_default().to_owned())
}

/// Erased: deactivated, marked erased, its name gone.
async fn assert_erased(admin: &MatrixUser, user_id: &str) {
    let a = account(admin, user_id).await;
    assert_eq!(a["deactivated"], true, "{user_id}: {a}");
    assert_eq!(a["erased"], true, "{user_id}: {a}");
    assert_eq!(display_name(admin, user_id).await, None, "{user_id}");
}

async fn assert_active(admin: &MatrixUser, user_id: &str, name: &str) {
    let a = account(admin, user_id).await;
    assert_eq!(a["deactivated"], false, "{user_id}: {a}");
    assert_eq!(
        display_name(admin, user_id).await.as_deref(),
        Some(name),
        "{user_id}"
    );
}

/// The admin API's answer about a room: 200 while it exists, 404 once
/// purged.
async fn room_status(admin: &MatrixUser, room: &str) -> u16 {
    admin
        .try_call(
            reqwest::Method::GET,
            &format!("/_synapse/admin/v1/rooms/{}", MatrixUser::enc(room)),
            None,
        )
        .await
        .0
}

/// A moment that is strictly after everything before it and at or before
/// everything after it, at the store's millisecond resolution.
async fn a_moment() -> SystemTime {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghosts_unused_past_their_retention_are_erased_and_recent_ones_stay() {
    let syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let as_token = syn.as_token();
    let server = TestServer::start_with(&syn, &store, |c| {
        c.matrix_as_token = as_token;
        c.matrix_ghost_retention_days = 30;
    })
    .await;
    let chat = server.chat.clone().expect("chat is configured");
    let alice = MatrixUser::login(&syn, "alice").await;
    let admin = MatrixUser::login_with(&syn, "meetbot", BOT_PASSWORD).await;
    let room = alice.open_meeting(&server, "weekly").await;
    let (mut carol, _) = server.join_invited("weekly", "Carol").await;
    let (mut dave, _) = server.join_invited("weekly", "Dave").await;

    let carol_ghost = writes(&mut carol, "hello from Carol", &alice, &room).await;
    let between = a_moment().await;
    let dave_ghost = writes(&mut dave, "hello from Dave", &alice, &room).await;
    assert!(carol_ghost.starts_with("@meet_carol_"), "{carol_ghost}");
    assert!(dave_ghost.starts_with("@meet_dave_"), "{dave_ghost}");

    // Thirty days after the moment between them: Carol's ghost was last
    // used more than 30 days before, Dave's not.
    let report = chat.apply_retention(between + 30 * DAY).await.unwrap();
    assert_eq!(report.ghosts_erased, 1, "{report:?}");
    assert_eq!(report.pending, 0, "{report:?}");
    assert_eq!(report.meetings_forgotten, 0, "meetings are kept 90 days");
    assert_erased(&admin, &carol_ghost).await;
    assert_active(&admin, &dave_ghost, "Dave (guest)").await;
    // A second pass finds nothing more.
    let again = chat.apply_retention(between + 30 * DAY).await.unwrap();
    assert_eq!(again, Default::default());

    // Carol's row went with it: writing again, she gets a new ghost; Dave
    // keeps his.
    let carol_now = writes(&mut carol, "still here", &alice, &room).await;
    assert!(carol_now.starts_with("@meet_carol_"), "{carol_now}");
    assert_ne!(carol_now, carol_ghost, "an erased ghost came back");
    assert_active(&admin, &carol_now, "Carol (guest)").await;
    assert_eq!(writes(&mut dave, "me too", &alice, &room).await, dave_ghost);

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_of_forgotten_meetings_are_purged_when_asked_for() {
    let syn = Synapse::start(&["alice"]);
    synapse_sh(&[
        "register",
        syn.dir.to_str().unwrap(),
        "root",
        "root-pw",
        "--admin",
    ]);
    let root = MatrixUser::login(&syn, "root").await;
    let store = temp_dir("store");
    let token = root.token.clone();
    let server = TestServer::start_with(&syn, &store, |c| {
        c.matrix_admin_token = token;
        c.matrix_purge_rooms = true;
        c.matrix_meeting_retention_days = 90;
    })
    .await;
    let chat = server.chat.clone().expect("chat is configured");
    let alice = MatrixUser::login(&syn, "alice").await;

    let old = alice.open_meeting(&server, "old").await;
    // Alice's own room, bound to a meeting with `!meet`: never purged.
    let own = alice
        .create_room(json!({"preset": "private_chat", "name": "Alice's room"}))
        .await;
    alice.invite_and_await(&own, "@meetbot:localhost").await;
    alice
        .say(&own, json!({"msgtype": "m.text", "body": "!meet"}))
        .await;
    eventually("the bot's answer", || async {
        alice
            .bodies_from(&own, "@meetbot:localhost")
            .await
            .iter()
            .any(|b| b.starts_with("Meeting: "))
    })
    .await;
    let between = a_moment().await;
    let recent = alice.open_meeting(&server, "recent").await;

    let report = chat.apply_retention(between + 90 * DAY).await.unwrap();
    assert_eq!(report.meetings_forgotten, 2, "{report:?}");
    assert_eq!(report.rooms_purged, 1, "{report:?}");
    assert_eq!(report.pending, 0, "{report:?}");
    // Synapse purges in the background.
    eventually("the old meeting's room to be purged", || async {
        room_status(&root, &old).await == 404
    })
    .await;
    assert_eq!(room_status(&root, &recent).await, 200);
    assert_eq!(
        room_status(&root, &own).await,
        200,
        "a user's own room was purged"
    );
    assert_eq!(
        alice.state(&own, "m.room.member", &alice.user_id).await["membership"],
        "join"
    );

    // The old meeting gets a new room when it is used again; the recent
    // one keeps its own.
    let (status, t) = server.token("old", alice.openid().await).await;
    assert_eq!(status, 200, "{t}");
    assert_ne!(t["room_id"].as_str(), Some(old.as_str()));
    let (status, t) = server.token("recent", alice.openid().await).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["room_id"].as_str(), Some(recent.as_str()));

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

/// `meet erase` as an operator runs it, beside the running server.
fn meet_erase(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sfu"))
        .args(["erase", "--config", config.to_str().unwrap()])
        .args(args)
        .env("NO_PROXY", "*")
        .output()
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meet_erase_erases_a_matrix_users_ghost_and_a_guests() {
    let syn = Synapse::start(&["alice", "bob"]);
    let store = temp_dir("store");
    let as_token = syn.as_token();
    let config_file = store.join("meet.toml");
    std::fs::write(
        &config_file,
        format!(
            "matrix_homeserver = \"{}\"\nmatrix_user = \"meetbot\"\nmatrix_password = \"{BOT_PASSWORD}\"\n\
             matrix_store = \"{}\"\nmatrix_as_token = \"{as_token}\"\n",
            syn.url(),
            store.join("matrix").display()
        ),
    )
    .unwrap();
    let server = TestServer::start_with(&syn, &store.join("matrix"), |c: &mut Config| {
        c.matrix_as_token = as_token.clone();
    })
    .await;
    let alice = MatrixUser::login(&syn, "alice").await;
    let bob = MatrixUser::login(&syn, "bob").await;
    let admin = MatrixUser::login_with(&syn, "meetbot", BOT_PASSWORD).await;
    let room = alice.open_meeting(&server, "erase").await;
    alice.invite(&room, &bob.user_id).await;
    bob.join(&room).await;

    // Bob signs in with his Matrix identity; Carol and Dave are guests.
    let (status, t) = server.token("erase", bob.openid().await).await;
    assert_eq!(status, 200, "{t}");
    let (mut bob_ws, _) = server.join("erase", "x", t["token"].as_str()).await;
    let (mut carol, _) = server.join_invited("erase", "Carol").await;
    let (mut dave, _) = server.join_invited("erase", "Dave").await;
    let bob_ghost = writes(&mut bob_ws, "hello from Bob", &alice, &room).await;
    let carol_ghost = writes(&mut carol, "hello from Carol", &alice, &room).await;
    let dave_ghost = writes(&mut dave, "hello from Dave", &alice, &room).await;
    assert!(bob_ghost.starts_with("@meet_bob_"), "{bob_ghost}");

    // A dry run shows and changes nothing.
    let (ok, out) = meet_erase(
        &config_file,
        &["--matrix-user", "@bob:localhost", "--dry-run"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&bob_ghost) && out.contains("would be erased"),
        "{out}"
    );
    assert_active(&admin, &bob_ghost, "bob (@bob:localhost, in the meeting)").await;

    let (ok, out) = meet_erase(&config_file, &["--matrix-user", "@bob:localhost"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("ghost user {bob_ghost} \"bob (@bob:localhost, in the meeting)\": deactivated and erased on the homeserver")),
        "{out}"
    );
    assert_erased(&admin, &bob_ghost).await;

    let (ok, out) = meet_erase(&config_file, &["--guest-name", "Carol"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "ghost user {carol_ghost} \"Carol (guest)\": deactivated and erased on the homeserver"
        )),
        "{out}"
    );
    assert_erased(&admin, &carol_ghost).await;
    assert_active(&admin, &dave_ghost, "Dave (guest)").await;
    // Nothing left of them to find.
    for who in [
        ["--guest-name", "Carol"],
        ["--matrix-user", "@bob:localhost"],
    ] {
        let (ok, out) = meet_erase(&config_file, &who);
        assert!(ok && out.contains("no ghost user"), "{who:?}: {out}");
    }
    // The running server copes: Bob writing again gets a new ghost.
    let bob_now = writes(&mut bob_ws, "still here", &alice, &room).await;
    assert!(
        bob_now.starts_with("@meet_bob_") && bob_now != bob_ghost,
        "{bob_now}"
    );

    // A bad id is refused by name.
    let (ok, out) = meet_erase(&config_file, &["--matrix-user", "bob"]);
    assert!(!ok && out.contains("Matrix user id `bob`"), "{out}");

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}
