//! Chat where servers share meetings (a real Synapse, a real Redis and
//! three server processes): a meeting has one Matrix room whichever
//! server carries it, its participants find its history on the next
//! server when its server dies, and `!meet` is answered once, also after
//! the server on duty for the bot died.

mod cluster_support;
mod common;
mod redis_server;
mod synapse;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use cluster_support::{process, until, Entry, Seated, IDS};
use common::{send, temp_dir, Process};
use redis_server::Redis;
use synapse::{chat_event, next_of, MatrixUser, Synapse, ADMIN_KEY, BOT_PASSWORD};

/// A server of the cluster with the chat bridge, its store of its own.
fn chat_server(redis: &Redis, syn: &Synapse, id: &str, store: &Path) -> Process {
    let url = syn.url();
    let store = store.to_str().unwrap().to_owned();
    process(
        redis,
        id,
        &[
            ("MEET_MATRIX_HOMESERVER", url.as_str()),
            ("MEET_MATRIX_USER", "meetbot"),
            ("MEET_MATRIX_PASSWORD", BOT_PASSWORD),
            ("MEET_MATRIX_STORE", store.as_str()),
            ("MEET_PUBLIC_URL", "http://meet.test/"),
            ("MEET_ADMIN_KEY", ADMIN_KEY),
            // The SDK's end-to-end module warns of key backups we do not use.
            ("RUST_LOG", "warn,matrix_sdk_crypto=error"),
        ],
    )
}

/// A meeting token for `user`, from `server`'s OpenID sign-in (which
/// opens the meeting's room there, inviting the user as its moderator).
async fn token(server: &Process, meeting: &str, user: &MatrixUser) -> Value {
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/token", server.http))
        .json(&json!({"room": meeting, "openid_token": user.openid().await}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// Writes `text` in the meeting and waits until the room has it.
async fn say(seated: &mut Seated, text: &str) {
    send(&mut seated.ws, json!({"type": "chat", "text": text})).await;
    chat_event(&mut seated.ws, "delivered").await;
}

/// How many times each meeting message is in the room.
async fn counts(user: &MatrixUser, room: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in user.messages(room).await {
        if let Some(text) = e["content"]["meet.author"]["text"].as_str() {
            *counts.entry(text.to_owned()).or_default() += 1;
        }
    }
    counts
}

/// The bot's answers to `!meet` in `room`.
async fn answers(user: &MatrixUser, room: &str) -> usize {
    user.bodies_from(room, "@meetbot:localhost")
        .await
        .iter()
        .filter(|b| b.starts_with("Meeting: "))
        .count()
}

/// A Synapse with Alice signed in, a Redis, and three servers with chat
/// sharing meetings through it, each with a store of its own.
async fn chat_cluster() -> (Synapse, Redis, HashMap<String, Process>, Entry, MatrixUser) {
    let syn = Synapse::start(&["alice"]);
    let redis = Redis::start();
    let procs: HashMap<String, Process> = IDS
        .iter()
        .map(|id| {
            let store = temp_dir(&format!("chat-{id}"));
            (id.to_string(), chat_server(&redis, &syn, id, &store))
        })
        .collect();
    let entry = Entry {
        addrs: procs.iter().map(|(id, p)| (id.clone(), p.http)).collect(),
    };
    until(Duration::from_secs(5), || async {
        redis.nodes().await.len() == 3
    })
    .await;
    let alice = MatrixUser::login(&syn, "alice").await;
    (syn, redis, procs, entry, alice)
}

/// Alice's sign-in on server a, which makes the meeting's room (she
/// joins it); her join, which goes to whichever server the meeting is
/// placed on. Returns the room, the join, and her seat.
async fn alice_opens(
    procs: &HashMap<String, Process>,
    entry: &Entry,
    alice: &MatrixUser,
    meeting: &str,
) -> (String, Value, Seated) {
    let t = token(&procs["a"], meeting, alice).await;
    let room = t["room_id"].as_str().unwrap().to_owned();
    alice.join(&room).await;
    let join =
        json!({"type": "join", "v": 1, "room": meeting, "name": "Alice", "token": t["token"]});
    let mut seated = entry
        .enter_with("a", join.clone(), Duration::from_secs(10))
        .await;
    assert_eq!(seated.joined["type"], "joined", "{}", seated.joined);
    assert_eq!(
        seated.joined["chat"]["room_id"].as_str(),
        Some(room.as_str())
    );
    assert_eq!(
        next_of(&mut seated.ws, "chat_history").await["events"],
        json!([])
    );
    (room, join, seated)
}

/// The bodies of the messages in a `chat_history`, and which are pending.
fn bodies(history: &Value) -> Vec<(String, bool)> {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| (e["body"].as_str().unwrap().to_owned(), e["pending"] == true))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_keeps_one_room_and_its_history_when_its_server_dies() {
    let (syn, redis, mut procs, entry, alice) = chat_cluster().await;
    let (room, join, mut seated) = alice_opens(&procs, &entry, &alice, "standup").await;
    say(&mut seated, "one").await;
    say(&mut seated, "two").await;
    // A Matrix user's message in the room during the meeting is its too.
    alice
        .say(&room, json!({"msgtype": "m.text", "body": "from Element"}))
        .await;
    chat_event(&mut seated.ws, "message").await;

    // What three servers with chat and this meeting ask of Redis.
    let window = Duration::from_secs(6);
    let before = redis.commands().await;
    tokio::time::sleep(window).await;
    let rate = (redis.commands().await - before - 1) as f64 / window.as_secs_f64();
    println!("# measured: {rate:.1} Redis commands/s, three servers with chat, a meeting of one");

    // The meeting's server dies, and so does the one on duty for the bot.
    let owner = seated.node.clone();
    assert_eq!(
        redis.owner("standup").await.as_deref(),
        Some(owner.as_str())
    );
    let duty: Option<String> =
        redis::AsyncCommands::get(&mut redis.client().await, "meet:chat:duty")
            .await
            .unwrap();
    let killed = Instant::now();
    procs.remove(&owner).unwrap().signal(libc::SIGKILL);
    if let Some(d) = duty.filter(|d| *d != owner) {
        procs.remove(&d).unwrap().signal(libc::SIGKILL);
    }
    let survivor = procs.keys().next().unwrap().clone();
    let mut again = entry
        .enter_with(&survivor, join, Duration::from_secs(15))
        .await;
    assert_eq!(again.joined["type"], "joined", "{}", again.joined);
    assert_ne!(again.node, owner);
    println!(
        "# measured: the meeting's chat back on server {} {} ms after its server was killed",
        again.node,
        killed.elapsed().as_millis()
    );
    assert_eq!(
        again.joined["chat"]["room_id"].as_str(),
        Some(room.as_str()),
        "the meeting kept its room"
    );
    let history = next_of(&mut again.ws, "chat_history").await;
    let sent = |b: &str| (b.to_owned(), false);
    assert_eq!(
        bodies(&history),
        [sent("one"), sent("two"), sent("from Element")],
        "{history}"
    );
    // Her messages are shown as hers, as before the move.
    let first = &history["events"][0];
    assert_eq!(first["sender"], "@alice:localhost", "{first}");
    say(&mut again, "three").await;
    let counts = counts(&alice, &room).await;
    for text in ["one", "two", "three"] {
        assert_eq!(
            counts.get(text),
            Some(&1),
            "{text} once in the room: {counts:?}"
        );
    }

    // One room for the meeting, as Synapse sees it.
    let bot = MatrixUser::login_with(&syn, "meetbot", BOT_PASSWORD).await;
    let joined = bot.call(reqwest::Method::GET, "/joined_rooms", None).await;
    assert_eq!(joined["joined_rooms"], json!([room]), "{joined}");

    // `!meet` in a room of Alice's: answered once, by the server that
    // took the bot's duty over (a `!meet` in the seconds before it did
    // would go unanswered).
    until(Duration::from_secs(10), || async {
        let duty: Option<String> =
            redis::AsyncCommands::get(&mut redis.client().await, "meet:chat:duty")
                .await
                .unwrap();
        duty.is_some_and(|d| procs.contains_key(&d))
    })
    .await;
    let own = alice.create_room(json!({"preset": "private_chat"})).await;
    alice.invite_and_await(&own, "@meetbot:localhost").await;
    alice
        .say(&own, json!({"msgtype": "m.text", "body": "!meet"}))
        .await;
    let asked = Instant::now();
    until(Duration::from_secs(15), || async {
        answers(&alice, &own).await >= 1
    })
    .await;
    println!(
        "# measured: !meet answered after {} ms",
        asked.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(answers(&alice, &own).await, 1, "answered once");
    drop(again);
    drop(seated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_for_an_away_homeserver_outlives_its_server() {
    let (mut syn, redis, mut procs, entry, alice) = chat_cluster().await;
    let (room, join, mut seated) = alice_opens(&procs, &entry, &alice, "away").await;
    say(&mut seated, "before").await;

    // The homeserver goes away; what Alice writes waits (in Redis), and
    // then her server dies too.
    syn.kill();
    for text in ["while away", "and more"] {
        send(&mut seated.ws, json!({"type": "chat", "text": text})).await;
        let m = chat_event(&mut seated.ws, "message").await;
        assert_eq!(m["pending"], true, "{m}");
    }
    procs.remove(&seated.node).unwrap().signal(libc::SIGKILL);
    syn.run();
    // As if it had sent "before" and died before taking it off the
    // outbox, where it waits behind the other two.
    let events = alice.messages(&room).await;
    let before = events
        .iter()
        .find(|e| e["content"]["meet.author"]["text"] == "before")
        .unwrap();
    let item = json!({
        "seq": 1_000_000, "room_id": room, "content": before["content"].to_string(),
        "txn_id": before["content"]["meet.author"]["txn"], "person": null,
    });
    let mut r = redis.client().await;
    let key = "meet:chat:outbox:away";
    let _: () = redis::AsyncCommands::rpush(&mut r, key, item.to_string())
        .await
        .unwrap();

    // Alice is back on another server: what waited is shown pending (or
    // was sent already, if that server got to it first), and reaches the
    // room once; "before", in the room already, is neither shown twice
    // nor sent again.
    let survivor = procs.keys().next().unwrap().clone();
    let mut again = entry
        .enter_with(&survivor, join, Duration::from_secs(20))
        .await;
    assert_eq!(again.joined["type"], "joined", "{}", again.joined);
    let history = next_of(&mut again.ws, "chat_history").await;
    let shown: Vec<String> = bodies(&history).into_iter().map(|(b, _)| b).collect();
    assert_eq!(shown, ["before", "while away", "and more"], "{history}");
    // Shown pending and not delivered yet as of the history: their
    // deliveries are still to come.
    let events = history["events"].as_array().unwrap();
    let delivered = |id: &Value| {
        events
            .iter()
            .any(|e| e["kind"] == "delivered" && e["local_id"] == *id)
    };
    let pending = events
        .iter()
        .filter(|e| e["kind"] == "message" && e["pending"] == true && !delivered(&e["id"]))
        .count();
    println!("# measured: {pending} of the 2 waiting messages still pending on the next server");
    for _ in 0..pending {
        chat_event(&mut again.ws, "delivered").await;
    }
    until(Duration::from_secs(10), || async {
        let left: usize = redis::AsyncCommands::llen(&mut redis.client().await, key)
            .await
            .unwrap();
        left == 0
    })
    .await;
    let seen = counts(&alice, &room).await;
    for text in ["before", "while away", "and more"] {
        assert_eq!(
            seen.get(text),
            Some(&1),
            "{text} once in the room: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_is_sent_even_if_the_meeting_goes_on_nowhere() {
    let (mut syn, _redis, mut procs, entry, alice) = chat_cluster().await;
    let (room, _, mut seated) = alice_opens(&procs, &entry, &alice, "left").await;

    // The homeserver goes away, Alice writes, her server dies, and nobody
    // comes back to the meeting: the server on duty sends what waited.
    syn.kill();
    send(
        &mut seated.ws,
        json!({"type": "chat", "text": "last words"}),
    )
    .await;
    assert_eq!(chat_event(&mut seated.ws, "message").await["pending"], true);
    procs.remove(&seated.node).unwrap().signal(libc::SIGKILL);
    let killed = Instant::now();
    syn.run();
    until(Duration::from_secs(45), || async {
        counts(&alice, &room).await.get("last words") == Some(&1)
    })
    .await;
    println!(
        "# measured: a meeting nobody came back to had its waiting message sent {} ms after its server died",
        killed.elapsed().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counts(&alice, &room).await.get("last words"), Some(&1));
}
