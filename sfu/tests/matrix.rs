//! The server with meeting chat against a real Synapse: rooms per meeting,
//! chat both ways, OpenID sign-in, leaving the room, and a homeserver
//! outage.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu::shell::config::Config;

mod common;
mod synapse;

use common::{send, temp_dir};
use synapse::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meeting_chat_and_matrix_sign_in() {
    let syn = Synapse::start(&["alice", "bob"]);
    let store = temp_dir("store");
    let server = TestServer::start(&syn, &store).await;

    let alice = MatrixUser::login(&syn, "alice").await;
    let bob = MatrixUser::login(&syn, "bob").await;
    // Alice opens the meeting with her Matrix identity: the bot creates its
    // room, invites her and makes her its moderator.
    let room = alice.open_meeting(&server, "standup").await;
    // A guest who comes later has the room's chat.
    let (mut carol, joined) = server.join("standup", "Carol", None).await;
    assert_eq!(joined["chat"]["room_id"].as_str(), Some(room.as_str()));
    // No alias that anyone could guess from the meeting's name.
    assert_eq!(joined["chat"]["room_alias"], Value::Null);
    assert_eq!(
        next_of(&mut carol, "chat_history").await["events"],
        json!([])
    );

    // Element finds the meeting as a room widget.
    let widget = alice
        .state(&room, "im.vector.modular.widgets", "meet")
        .await;
    assert!(
        widget["url"]
            .as_str()
            .unwrap()
            .starts_with("http://meet.test/m/standup?widgetId="),
        "{widget}"
    );

    // OpenID sign-in: a member is admitted with her Matrix identity ...
    let (status, t) = server.token("standup", alice.openid().await).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["user_id"], "@alice:localhost");
    assert_eq!(t["host"], true, "she may kick in the room");
    let (mut alice_ws, joined) = server.join("standup", "ignored", t["token"].as_str()).await;
    assert_eq!(joined["identity"]["user_id"], "@alice:localhost");
    let alice_pid = joined["participant_id"].as_str().unwrap().to_owned();
    let who = next_where(
        &mut carol,
        |m| m["type"] == "participant_joined",
        "alice joining",
    )
    .await;
    assert_eq!(who["participant"]["name"], "alice");
    // ... and announced as a MatrixRTC call member.
    let key = format!("_@alice:localhost_MEET{}_m.call", alice_pid.to_uppercase());
    let url = format!(
        "{}/_matrix/client/v3/rooms/{}/state/org.matrix.msc3401.call.member/{}",
        alice.base,
        MatrixUser::enc(&room),
        MatrixUser::enc(&key)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let member = loop {
        let r = alice
            .http
            .get(&url)
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if v["application"] == "m.call" {
            break v;
        }
        assert!(Instant::now() < deadline, "no call-member state event: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(member["scope"], "m.room");

    // A token for another meeting does not open this one.
    let (status, _) = server.token("standup", alice.openid().await).await;
    assert_eq!(status, 200);
    let e = server.refused_join("elsewhere", &t["token"]).await;
    assert_eq!(e["code"], "invalid_token", "{e}");

    // Refused: a non-member, a forged token, a homeserver not allowed, junk.
    let (status, e) = server.token("standup", bob.openid().await).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("not_room_member")),
        "{e}"
    );
    let forged = json!({"access_token":"forged","matrix_server_name":"localhost","expires_in":3600,"token_type":"Bearer"});
    let (status, e) = server.token("standup", forged).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (401, Some("invalid_openid_token")),
        "{e}"
    );
    let mut foreign = alice.openid().await;
    foreign["matrix_server_name"] = json!("matrix.example.org");
    let (status, e) = server.token("standup", foreign).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (403, Some("homeserver_not_allowed")),
        "{e}"
    );
    assert!(e["message"]
        .as_str()
        .unwrap()
        .contains("matrix.example.org"));
    let (status, e) = server.token("standup", json!("nonsense")).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("bad_request")),
        "{e}"
    );

    // Matrix → meeting: text, reply, edit, reaction, redaction.
    let t0 = Instant::now();
    let first = alice
        .say(
            &room,
            json!({"msgtype":"m.text","body":"hello from Matrix"}),
        )
        .await;
    let m = chat_event(&mut carol, "message").await;
    println!("measured: Matrix → meeting {:?}", t0.elapsed());
    assert_eq!(
        (m["id"].as_str(), m["sender"].as_str(), m["body"].as_str()),
        (
            Some(first.as_str()),
            Some("@alice:localhost"),
            Some("hello from Matrix")
        )
    );
    assert_eq!(m["name"], "alice");
    alice
        .say(&room, json!({"msgtype":"m.text","body":"> <@alice:localhost> hello from Matrix\n\nand a reply",
            "m.relates_to":{"m.in_reply_to":{"event_id":first}}}))
        .await;
    let reply = chat_event(&mut carol, "message").await;
    assert_eq!(
        (reply["body"].as_str(), reply["reply_to"].as_str()),
        (Some("and a reply"), Some(first.as_str()))
    );
    alice
        .say(&room, json!({"msgtype":"m.text","body":"* hello, edited","m.new_content":{"msgtype":"m.text","body":"hello, edited"},
            "m.relates_to":{"rel_type":"m.replace","event_id":first}}))
        .await;
    let edit = chat_event(&mut carol, "edit").await;
    assert_eq!(
        (edit["id"].as_str(), edit["body"].as_str()),
        (Some(first.as_str()), Some("hello, edited"))
    );
    // Nobody else edits Alice's words in the meeting.
    alice.invite(&room, &bob.user_id).await;
    bob.join(&room).await;
    bob.say(&room, json!({"msgtype":"m.text","body":"* forged","m.new_content":{"msgtype":"m.text","body":"forged"},
        "m.relates_to":{"rel_type":"m.replace","event_id":first}}))
        .await;
    bob.say(&room, json!({"msgtype":"m.text","body":"bob was here"}))
        .await;
    let next = next_where(&mut carol, |m| m["type"] == "chat_event", "a chat event").await;
    assert_eq!(next["event"]["body"], "bob was here", "{next}");
    let reaction = alice
        .call(
            reqwest::Method::PUT,
            &format!("/rooms/{}/send/m.reaction/r1", MatrixUser::enc(&room)),
            Some(json!({"m.relates_to":{"rel_type":"m.annotation","event_id":first,"key":"👍"}})),
        )
        .await["event_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = chat_event(&mut carol, "reaction").await;
    assert_eq!(
        (r["target"].as_str(), r["key"].as_str()),
        (Some(first.as_str()), Some("👍"))
    );
    alice
        .call(
            reqwest::Method::PUT,
            &format!(
                "/rooms/{}/redact/{}/x1",
                MatrixUser::enc(&room),
                MatrixUser::enc(&reaction)
            ),
            Some(json!({})),
        )
        .await;
    let redact = chat_event(&mut carol, "redact").await;
    assert_eq!(redact["id"].as_str(), Some(reaction.as_str()));

    // Meeting → Matrix, relayed by the bot in Carol's name.
    let t0 = Instant::now();
    send(&mut carol, json!({"type":"chat","text":"hi Alice"})).await;
    let pending = chat_event(&mut carol, "message").await;
    assert_eq!(
        (pending["pending"].as_bool(), pending["body"].as_str()),
        (Some(true), Some("hi Alice"))
    );
    let delivered = chat_event(&mut carol, "delivered").await;
    assert_eq!(delivered["local_id"], pending["id"]);
    println!("measured: meeting → Matrix (delivered) {:?}", t0.elapsed());
    let bodies = alice.bodies_from(&room, "@meetbot:localhost").await;
    assert!(bodies.contains(&"Carol: hi Alice".to_owned()), "{bodies:?}");
    let to_matrix = r#"meet_chat_messages_total{direction="to_matrix"}"#;
    assert_eq!(server.metric(to_matrix).await, 1.0);
    let from_matrix = r#"meet_chat_messages_total{direction="from_matrix"}"#;
    assert_eq!(
        server.metric(from_matrix).await,
        3.0,
        "message, reply, bob's"
    );
    // Too long a message is refused, the session goes on.
    send(&mut carol, json!({"type":"chat","text":"x".repeat(4001)})).await;
    assert_eq!(next_of(&mut carol, "error").await["code"], "bad_message");

    // A late joiner gets the history since the meeting started.
    let (mut dave, _) = server.join("standup", "Dave", None).await;
    let history = next_of(&mut dave, "chat_history").await;
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "edit",
            "message",
            "reaction",
            "redact",
            "message",
            "delivered"
        ]
    );

    // `!meet` answers with the meeting's link.
    alice
        .say(&room, json!({"msgtype":"m.text","body":"!meet"}))
        .await;
    eventually("the bot's answer to !meet", || {
        let (alice, room) = (&alice, &room);
        async move {
            alice
                .bodies_from(room, "@meetbot:localhost")
                .await
                .iter()
                .any(|b| b == "Meeting: http://meet.test/m/standup")
        }
    })
    .await;

    // Leaving the room ends Alice's meeting session; the others stay.
    alice
        .call(
            reqwest::Method::POST,
            &format!("/rooms/{}/leave", MatrixUser::enc(&room)),
            Some(json!({})),
        )
        .await;
    let e = next_of(&mut alice_ws, "error").await;
    assert_eq!(e["code"], "removed", "{e}");
    let left = next_of(&mut carol, "participant_left").await;
    assert_eq!(left["participant_id"], alice_pid.as_str());
    // Her call membership is withdrawn (empty content), as MatrixRTC has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = bob
            .http
            .get(&url)
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        if r.json::<Value>().await.unwrap_or(Value::Null) == json!({}) {
            break;
        }
        assert!(Instant::now() < deadline, "call membership not withdrawn");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Her token is still unexpired, but she is out of the room: refused.
    let e = server.refused_join("standup", &t["token"]).await;
    assert_eq!(e["code"], "invalid_token", "{e}");

    // `!meet` in a room of her own gives a new meeting, never a name she
    // picks (which could take over someone else's meeting).
    let own = alice.create_room(json!({"preset":"private_chat"})).await;
    alice.invite_and_await(&own, "@meetbot:localhost").await;
    alice
        .say(&own, json!({"msgtype":"m.text","body":"!meet standup"}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let bodies = alice.bodies_from(&own, "@meetbot:localhost").await;
        if let Some(b) = bodies.into_iter().next() {
            break b;
        }
        assert!(Instant::now() < deadline, "no answer to !meet in her room");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        answer.starts_with("Meeting: http://meet.test/m/"),
        "{answer}"
    );
    assert_ne!(answer, "Meeting: http://meet.test/m/standup");

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_waits_out_a_homeserver_outage_and_loses_nothing() {
    outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghost_users_wait_out_a_homeserver_outage_too() {
    outage(true).await;
}

/// The HTTP status of `path` on the server's listener.
async fn status_of(server: &TestServer, path: &str) -> u16 {
    reqwest::get(format!("http://{}{path}", server.http))
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Carol joins the outage meeting, with an invite link if `invited`.
async fn carol_joins(server: &TestServer, invited: bool) -> (common::Ws, Value) {
    if invited {
        server.join_invited("outage", "Carol").await
    } else {
        server.join("outage", "Carol", None).await
    }
}

/// Synapse dies during a meeting, the meeting server restarts meanwhile,
/// and all that was written arrives once, in order, when Synapse is back
/// (what would overfill the meeting's outbox is refused, and said so);
/// relayed by the bot for Carol, an anonymous guest, or, with `ghosts`,
/// sent by the ghost users of Carol, a guest with an invite link (one
/// ghost per visit: she comes back after the restart).
async fn outage(ghosts: bool) {
    let mut syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let as_token = if ghosts {
        syn.as_token()
    } else {
        String::new()
    };
    // Room for exactly what Carol writes during the outage.
    let config = |c: &mut Config| {
        c.matrix_as_token = as_token.clone();
        c.max_chat_outbox_per_meeting = 20;
    };
    let server = TestServer::start_with(&syn, &store, config).await;
    let alice = MatrixUser::login(&syn, "alice").await;
    let room = alice.open_meeting(&server, "outage").await;
    let (mut carol, joined) = carol_joins(&server, ghosts).await;
    assert_eq!(joined["chat"]["room_id"].as_str(), Some(room.as_str()));
    // The room's widget is in before the outage.
    eventually("an empty outbox", || async {
        server.metric("meet_chat_outbox_events").await == 0.0
    })
    .await;

    syn.kill();
    let status = next_of(&mut carol, "chat_status").await;
    assert_eq!(status["delayed"], true);
    for i in 0..10 {
        send(&mut carol, json!({"type":"chat","text":format!("m{i}")})).await;
        let m = chat_event(&mut carol, "message").await;
        assert_eq!(m["pending"], true);
    }
    assert_eq!(server.metric("meet_chat_outbox_events").await, 10.0);
    assert_eq!(server.metric("meet_chat_delayed").await, 1.0);
    // Meetings go on without their homeserver: the server stays ready,
    // and chat's own check says what is wrong.
    assert_eq!(status_of(&server, "/readyz").await, 200);
    assert_eq!(status_of(&server, "/healthz/chat").await, 503);
    // The meeting server restarts too: the outbox is on disk.
    server.stop().await;
    let server = TestServer::start_with(&syn, &store, config).await;
    let (mut carol, joined) = carol_joins(&server, ghosts).await;
    assert_eq!(joined["chat"]["room_id"].as_str(), Some(room.as_str()));
    // What waits from before the restart is shown, still pending.
    let history = next_of(&mut carol, "chat_history").await;
    let waiting: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pending"] == true)
        .map(|e| e["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        waiting,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    for i in 10..20 {
        send(&mut carol, json!({"type":"chat","text":format!("m{i}")})).await;
        chat_event(&mut carol, "message").await;
    }
    // The meeting's outbox is full: a 21st is refused, not queued.
    send(&mut carol, json!({"type":"chat","text":"one too many"})).await;
    let refused = next_of(&mut carol, "error").await;
    assert_eq!(refused["code"], "chat_backlog", "{refused}");
    assert_eq!(server.metric("meet_chat_outbox_events").await, 20.0);
    let hit = "meet_limits_hit_total{limit=\"chat_outbox\"}";
    assert_eq!(server.metric(hit).await, 1.0, "counted as a limit");

    syn.run();
    let prefix = if ghosts { "" } else { "Carol: " };
    let expected: Vec<String> = (0..20).map(|i| format!("{prefix}m{i}")).collect();
    eventually("all 20 messages in the room", || {
        let (alice, room, expected) = (&alice, &room, &expected);
        async move { alice.relayed(room).await.len() >= expected.len() }
    })
    .await;
    eventually("chat's check to pass again", || async {
        status_of(&server, "/healthz/chat").await == 200
    })
    .await;
    // Give a duplicate the chance to show up before judging.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let relayed = alice.relayed(&room).await;
    assert_eq!(
        relayed.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>(),
        expected
    );
    let senders: Vec<&str> = relayed.iter().map(|(s, _)| s.as_str()).collect();
    if ghosts {
        // A ghost per visit, the same for all of one visit's messages.
        let (before, after) = senders.split_at(10);
        assert!(before.iter().all(|s| *s == before[0]), "{senders:?}");
        assert!(after.iter().all(|s| *s == after[0]), "{senders:?}");
        assert_ne!(before[0], after[0]);
        for s in [before[0], after[0]] {
            assert!(s.starts_with("@meet_carol_"), "{s}");
        }
    } else {
        assert!(
            senders.iter().all(|s| *s == "@meetbot:localhost"),
            "{senders:?}"
        );
    }
    let status = next_where(
        &mut carol,
        |m| m["type"] == "chat_status" && m["delayed"] == false,
        "chat no longer delayed",
    )
    .await;
    assert_eq!(status["delayed"], false);

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_power_levels_give_host_rights_in_a_bound_room() {
    let syn = Synapse::start(&["alice"]);
    let alice = MatrixUser::login(&syn, "alice").await;
    // Alice's own room, bound to a meeting by configuration: she created
    // it, so she may kick there, so she is a host in the meeting.
    let room = alice
        .create_room(json!({"preset":"public_chat","name":"Town hall"}))
        .await;
    let store = temp_dir("store");
    let rooms: std::collections::BTreeMap<_, _> = [("town-hall".to_owned(), room.clone())].into();
    let server = TestServer::start_with(&syn, &store, |c| c.matrix_rooms = rooms).await;
    let (mut carol, joined) = server.join("town-hall", "Carol", None).await;
    assert_eq!(joined["chat"]["room_id"].as_str(), Some(room.as_str()));
    let carol_pid = joined["participant_id"].as_str().unwrap().to_owned();

    let (status, t) = server.token("town-hall", alice.openid().await).await;
    assert_eq!((status, t["host"].as_bool()), (200, Some(true)), "{t}");
    let (mut alice_ws, joined) = server.join("town-hall", "x", t["token"].as_str()).await;
    assert_eq!(joined["identity"]["host"], true);
    let alice_pid = joined["participant_id"].as_str().unwrap().to_owned();

    // A guest may not remove anyone; a host may.
    send(
        &mut carol,
        json!({"type":"remove","participant_id":alice_pid}),
    )
    .await;
    assert_eq!(next_of(&mut carol, "error").await["code"], "not_allowed");
    send(
        &mut alice_ws,
        json!({"type":"remove","participant_id":carol_pid}),
    )
    .await;
    let e = next_of(&mut carol, "error").await;
    assert_eq!(e["code"], "removed", "{e}");
    let left = next_of(&mut alice_ws, "participant_left").await;
    assert_eq!(left["participant_id"], carol_pid.as_str());

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

/// One ghost per person: two invited guests who both call themselves
/// Carol write as two Matrix users; an anonymous guest gets none (the bot
/// relays her).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_write_as_ghost_users_of_their_own() {
    let syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let as_token = syn.as_token();
    let server = TestServer::start_with(&syn, &store, |c| c.matrix_as_token = as_token).await;
    let alice = MatrixUser::login(&syn, "alice").await;
    let room = alice.open_meeting(&server, "ghosts").await;
    let (mut carol, _) = server.join_invited("ghosts", "Carol").await;
    let (mut other_carol, _) = server.join_invited("ghosts", "Carol").await;
    let (mut anonymous_carol, _) = server.join("ghosts", "Carol", None).await;

    let mut senders = Vec::new();
    for (ws, text) in [
        (&mut carol, "hello as myself"),
        (&mut other_carol, "hello as another Carol"),
        (&mut anonymous_carol, "hello as nobody in particular"),
    ] {
        send(ws, json!({"type":"chat","text":text})).await;
        let pending = next_where(
            ws,
            |m| m["type"] == "chat_event" && m["event"]["body"] == text,
            "her own message, pending",
        )
        .await;
        let delivered = next_where(
            ws,
            |m| m["type"] == "chat_event" && m["event"]["local_id"] == pending["event"]["id"],
            "her message delivered",
        )
        .await;
        let messages = alice.messages(&room).await;
        let event = messages
            .iter()
            .find(|e| e["event_id"] == delivered["event"]["id"])
            .unwrap_or_else(|| panic!("no delivered event in {messages:?}"))
            .clone();
        senders.push((
            event["sender"].as_str().unwrap().to_owned(),
            event["content"]["body"].as_str().unwrap().to_owned(),
        ));
    }
    let (first, second) = (&senders[0].0, &senders[1].0);
    assert!(first.starts_with("@meet_carol_"), "{first}");
    assert!(second.starts_with("@meet_carol_"), "{second}");
    assert_ne!(first, second, "two people share a ghost");
    assert_eq!(senders[0].1, "hello as myself");
    assert_eq!(
        senders[2],
        (
            "@meetbot:localhost".to_owned(),
            "Carol: hello as nobody in particular".to_owned()
        )
    );
    let profile = alice
        .call(
            reqwest::Method::GET,
            &format!("/profile/{}/displayname", MatrixUser::enc(first)),
            None,
        )
        .await;
    assert_eq!(profile["displayname"], "Carol (guest)");
    // The homeserver has exactly the two ghosts: none for the anonymous one.
    let bot = MatrixUser::login_with(&syn, "meetbot", BOT_PASSWORD).await;
    let (status, users) = bot
        .try_call(
            reqwest::Method::GET,
            "/_synapse/admin/v2/users?name=meet_&limit=100",
            None,
        )
        .await;
    assert_eq!(status, 200, "{users}");
    let mut ghosts: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["name"].as_str())
        .filter(|n| n.starts_with("@meet_"))
        .collect();
    ghosts.sort();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(ghosts, expected);
    // The meeting shows each message once: the ghosts' echoes are ours.
    alice
        .say(&room, json!({"msgtype":"m.text","body":"marker"}))
        .await;
    loop {
        let m = chat_event(&mut carol, "message").await;
        if m["body"] == "marker" {
            break;
        }
        assert_eq!(m["pending"], true, "an echo shown: {m}");
    }

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}

/// `!meet` in Alice's own room, where the bot is an ordinary member: the
/// bot answers with the link and says what it cannot do there and why;
/// the link works all the same; once Alice makes it a moderator, the
/// meeting's widget appears by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meet_in_a_room_where_the_bot_has_no_power() {
    let syn = Synapse::start(&["alice"]);
    let store = temp_dir("store");
    let server = TestServer::start(&syn, &store).await;
    let alice = MatrixUser::login(&syn, "alice").await;
    let bot = "@meetbot:localhost";
    // As Element makes a private room: power 0 for everyone but Alice.
    let room = alice
        .create_room(json!({"preset": "private_chat", "name": "Alice's room"}))
        .await;
    alice.invite_and_await(&room, bot).await;
    alice
        .say(&room, json!({"msgtype": "m.text", "body": "!meet"}))
        .await;
    eventually("the bot's answer", || async {
        !alice.bodies_from(&room, bot).await.is_empty()
    })
    .await;
    let answer = alice.bodies_from(&room, bot).await.remove(0);
    let link = answer
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Meeting: "))
        .unwrap_or_else(|| panic!("no link in {answer:?}"))
        .to_owned();
    let meeting = link
        .strip_prefix("http://meet.test/m/")
        .unwrap_or_else(|| panic!("{link}"))
        .to_owned();
    for needed in [
        "I cannot add this meeting to the room's widgets or show who is in the call",
        "needs power level 50 (Moderator) in this room, and I have 0",
        "Make me a moderator",
        "the widget appears by itself",
        "the link works: members of this room join with their Matrix account",
    ] {
        assert!(answer.contains(needed), "{needed:?} not in {answer:?}");
    }
    let widget_url = format!(
        "/_matrix/client/v3/rooms/{}/state/im.vector.modular.widgets/meet",
        MatrixUser::enc(&room)
    );
    let (status, _) = alice
        .try_call(reqwest::Method::GET, &widget_url, None)
        .await;
    assert_eq!(status, 404, "no widget without the power for it");

    // What it says holds: Alice, a member, signs in to the meeting as its
    // host (she may kick in her room).
    let (status, t) = server.token(&meeting, alice.openid().await).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["room_id"].as_str(), Some(room.as_str()));
    assert_eq!(t["host"], true, "{t}");

    // Made a moderator, the bot adds the widget and says so.
    alice.set_power(&room, bot, 50).await;
    eventually("the widget", || async {
        alice
            .try_call(reqwest::Method::GET, &widget_url, None)
            .await
            .0
            == 200
    })
    .await;
    let widget = alice
        .state(&room, "im.vector.modular.widgets", "meet")
        .await;
    assert!(
        widget["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{link}?widgetId=")),
        "{widget}"
    );
    eventually("the bot's thanks", || async {
        alice
            .bodies_from(&room, bot)
            .await
            .iter()
            .any(|b| b.contains("the meeting is now among this room's widgets"))
    })
    .await;
    // `!meet` again: the link, with nothing more to ask for.
    alice
        .say(&room, json!({"msgtype": "m.text", "body": "!meet"}))
        .await;
    eventually("the second answer", || async {
        alice
            .bodies_from(&room, bot)
            .await
            .iter()
            .filter(|b| b.starts_with("Meeting: "))
            .count()
            == 2
    })
    .await;
    let answers = alice.bodies_from(&room, bot).await;
    assert_eq!(answers.last().unwrap(), &format!("Meeting: {link}"));

    server.stop().await;
    let _ = std::fs::remove_dir_all(store);
}
