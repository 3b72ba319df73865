//! Who gets into a meeting, and the admin API, against a real server: a
//! closed deployment refuses anonymous joins, invite links minted over the
//! admin API or by a host admit with their role and their use count, and an
//! administrator lists, removes and ends.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use sfu::shell::config::Config;

mod common;

use common::{closed, expect_error, join_with, next_of, recv, send, Admin, Running, Ws, KEY};

async fn try_join(server: &Running, room: &str, name: &str, invite: Option<&str>) -> (Ws, Value) {
    let mut ws = server.ws().await;
    let mut m = json!({"type": "join", "v": 1, "room": room, "name": name});
    if let Some(i) = invite {
        m["invite"] = json!(i);
    }
    send(&mut ws, m).await;
    let reply = recv(&mut ws).await;
    (ws, reply)
}

/// The socket closes (after any messages still on their way).
async fn closes(ws: &mut Ws) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(
                None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))),
            ) => return,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the socket stayed open"),
        }
    }
}

#[tokio::test]
async fn a_closed_server_admits_holders_of_an_invite_with_its_role() {
    // Without a lobby, a stranger is turned away at once.
    let server = Running::start(&Config {
        lobby: false,
        ..closed()
    })
    .await;
    let admin = Admin::new(&server);

    let (_ws, m) = try_join(&server, "board", "Mallory", None).await;
    assert_eq!(
        (m["type"].as_str(), m["code"].as_str()),
        (Some("error"), Some("invite_required")),
        "{m}"
    );

    let host = admin.invite("board", json!({"role": "host"})).await;
    let (mut alice, m) = try_join(&server, "board", "Alice", Some(&host)).await;
    assert_eq!(m["type"], "joined", "{m}");
    assert_eq!(
        (m["role"].as_str(), m["guest"].as_bool()),
        (Some("host"), Some(true))
    );

    // A viewer's link: in, seen by the others as a viewer and a guest, and
    // its offers to publish refused.
    let viewer = admin
        .invite("board", json!({"role": "viewer", "uses": 1}))
        .await;
    let (mut bob, m) = try_join(&server, "board", "Bob", Some(&viewer)).await;
    assert_eq!(m["role"], "viewer", "{m}");
    let seen = recv(&mut alice).await;
    assert_eq!(seen["type"], "participant_joined", "{seen}");
    assert_eq!(seen["participant"]["role"], "viewer");
    assert_eq!(seen["participant"]["guest"], true);
    send(
        &mut bob,
        json!({"type": "publisher_offer", "sdp": "v=0", "tracks": []}),
    )
    .await;
    expect_error(&mut bob, "not_allowed").await;

    // Used up; for another meeting; not an invite at all.
    let (_ws, m) = try_join(&server, "board", "Eve", Some(&viewer)).await;
    assert_eq!(m["code"], "invalid_invite", "{m}");
    let (_ws, m) = try_join(&server, "other", "Eve", Some(&host)).await;
    assert_eq!(m["code"], "invalid_invite", "{m}");
    let (_ws, m) = try_join(&server, "board", "Eve", Some("not.a.token")).await;
    assert_eq!(m["code"], "invalid_invite", "{m}");
    server.stop().await;
}

#[tokio::test]
async fn a_host_hands_out_invite_links_for_participants_and_viewers() {
    let server = Running::start(&Config {
        lobby: false,
        ..closed()
    })
    .await;
    let host = Admin::new(&server)
        .invite("board", json!({"role": "host"}))
        .await;
    let (mut alice, m) = try_join(&server, "board", "Alice", Some(&host)).await;
    assert_eq!(m["role"], "host", "{m}");

    send(
        &mut alice,
        json!({"type": "create_invite", "role": "viewer", "uses": 1}),
    )
    .await;
    let created = recv(&mut alice).await;
    assert_eq!(
        (created["type"].as_str(), created["role"].as_str()),
        (Some("invite_created"), Some("viewer")),
        "{created}"
    );
    let invite = created["invite"].as_str().unwrap().to_owned();
    // No host links from a host, and the admin API's bounds hold.
    send(&mut alice, json!({"type": "create_invite", "role": "host"})).await;
    expect_error(&mut alice, "not_allowed").await;
    send(
        &mut alice,
        json!({"type": "create_invite", "role": "participant", "uses": 0}),
    )
    .await;
    expect_error(&mut alice, "bad_message").await;

    // The link admits once, as a viewer and a guest, to this meeting only.
    let (_ws, m) = try_join(&server, "other", "Bob", Some(&invite)).await;
    assert_eq!(m["code"], "invalid_invite", "{m}");
    let (mut bob, m) = try_join(&server, "board", "Bob", Some(&invite)).await;
    assert_eq!(
        (m["type"].as_str(), m["role"].as_str(), m["guest"].as_bool()),
        (Some("joined"), Some("viewer"), Some(true)),
        "{m}"
    );
    let (_ws, m) = try_join(&server, "board", "Eve", Some(&invite)).await;
    assert_eq!(m["code"], "invalid_invite", "used up: {m}");
    // Only hosts mint.
    send(
        &mut bob,
        json!({"type": "create_invite", "role": "participant"}),
    )
    .await;
    expect_error(&mut bob, "not_allowed").await;
    server.stop().await;
}

#[tokio::test]
async fn an_open_server_admits_anyone_as_a_guest_participant() {
    let server = Running::start(&Config {
        anonymous_join: true,
        ..Running::config()
    })
    .await;
    let (_ws, m) = try_join(&server, "lab", "Anyone", None).await;
    assert_eq!(m["type"], "joined", "{m}");
    assert_eq!(
        (m["role"].as_str(), m["guest"].as_bool()),
        (Some("participant"), Some(true))
    );
    server.stop().await;
}

#[tokio::test]
async fn an_administrator_lists_removes_and_ends() {
    let server = Running::start(&closed()).await;
    let admin = Admin::new(&server);
    let invite = admin
        .invite(
            "weekly",
            json!({"role": "participant", "lifetime_secs": 600}),
        )
        .await;
    let (mut a, _) = try_join(&server, "weekly", "Ann", Some(&invite)).await;
    let (mut b, joined) = try_join(&server, "weekly", "Ben", Some(&invite)).await;
    let ben = joined["participant_id"].as_str().unwrap().to_owned();
    let (mut c, _) = try_join(&server, "weekly", "Cat", Some(&invite)).await;

    let (status, list) = admin
        .call(reqwest::Method::GET, "/api/admin/meetings", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!({"meetings": [{"room": "weekly", "participants": 3}]})
    );
    let (status, meeting) = admin
        .call(reqwest::Method::GET, "/api/admin/meetings/weekly", None)
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = meeting["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    for n in ["Ann", "Ben", "Cat"] {
        assert!(names.contains(&n), "{meeting}");
    }

    let path = format!("/api/admin/meetings/weekly/participants/{ben}");
    assert_eq!(
        admin.call(reqwest::Method::DELETE, &path, None).await.0,
        204
    );
    let told = loop {
        let m = recv(&mut b).await;
        if m["type"] == "error" {
            break m;
        }
    };
    assert_eq!(told["code"], "removed", "{told}");
    closes(&mut b).await;
    assert_eq!(
        admin.call(reqwest::Method::DELETE, &path, None).await.0,
        404
    );

    assert_eq!(
        admin
            .call(reqwest::Method::DELETE, "/api/admin/meetings/weekly", None)
            .await
            .0,
        204
    );
    for ws in [&mut a, &mut c] {
        let told = loop {
            let m = recv(ws).await;
            if m["type"] == "error" {
                break m;
            }
        };
        assert_eq!(told["code"], "meeting_ended", "{told}");
        closes(ws).await;
    }
    // Everyone gone: no meeting left to list.
    admin.until_no_meetings().await;
    assert_eq!(
        admin
            .call(reqwest::Method::GET, "/api/admin/meetings/weekly", None)
            .await
            .0,
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn the_admin_api_wants_its_key_and_describes_itself() {
    let server = Running::start(&closed()).await;
    let base = format!("http://{}", server.http);
    let http = reqwest::Client::new();
    for auth in [None, Some("Bearer wrong"), Some(KEY)] {
        let mut r = http.get(format!("{base}/api/admin/meetings"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
    }
    let admin = Admin::new(&server);
    let (status, v) = admin
        .call(
            reqwest::Method::POST,
            "/api/admin/meetings/x/invites",
            Some(json!({"role": "host", "lifetime_secs": 0})),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    let (status, v) = admin
        .call(
            reqwest::Method::POST,
            "/api/admin/meetings/x/invites",
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );

    let doc: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/admin/meetings",
        "/api/admin/meetings/{room}",
        "/api/admin/meetings/{room}/participants/{id}",
        "/api/admin/meetings/{room}/invites",
        "/api/admin/invites/{id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} undocumented");
    }
    server.stop().await;
}

#[tokio::test]
async fn without_an_admin_key_the_admin_api_is_off() {
    let server = Running::start(&Running::config()).await;
    let r = reqwest::Client::new()
        .get(format!("http://{}/api/admin/meetings", server.http))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_only_our_pages_open_the_websocket() {
    let server = Running::start(&Config {
        widget_origins: vec!["https://element.example".into()],
        ..Running::config()
    })
    .await;
    let r = reqwest::get(format!("http://{}/m/board", server.http))
        .await
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        csp.contains("frame-ancestors 'self' https://element.example"),
        "{csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert!(header("permissions-policy").contains("camera=(self)"));
    let page = r.text().await.unwrap();
    assert!(page.contains(r#"content="https://element.example""#));

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{}/ws", server.http);
    let mut foreign = url.clone().into_client_request().unwrap();
    foreign
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(foreign).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("a foreign page opened the websocket");
    };
    assert_eq!(response.status(), 403);
    let mut ours = url.into_client_request().unwrap();
    let origin = format!("http://{}", server.http);
    ours.headers_mut().insert("origin", origin.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(ours).await.unwrap();
    send(
        &mut ws,
        json!({"type": "join", "v": 1, "room": "board", "name": "A"}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["type"], "joined");
    server.stop().await;
}

/// A stranger on a closed server knocks: the host sees them waiting and
/// lets them in, or turns them away; nobody else may decide.
#[tokio::test]
async fn strangers_wait_in_the_lobby_for_a_host() {
    let server = Running::start(&closed()).await;
    let admin = Admin::new(&server);
    let host = admin.invite("board", json!({"role": "host"})).await;
    let guest = admin.invite("board", json!({"role": "participant"})).await;
    let (mut hana, m) = try_join(&server, "board", "Hana", Some(&host)).await;
    assert_eq!(m["type"], "joined", "{m}");
    let (mut gus, m) = try_join(&server, "board", "Gus", Some(&guest)).await;
    assert_eq!(m["type"], "joined", "{m}");
    assert_eq!(recv(&mut hana).await["type"], "participant_joined");

    let (mut sam, m) = try_join(&server, "board", "Sam", None).await;
    assert_eq!(m["type"], "lobby_waiting", "{m}");
    let lobby = recv(&mut hana).await;
    assert_eq!(lobby["type"], "lobby", "{lobby}");
    assert_eq!(lobby["waiting"][0]["name"], "Sam", "{lobby}");
    let id = lobby["waiting"][0]["id"].as_str().unwrap().to_owned();
    // Only a host decides.
    send(&mut gus, json!({"type": "admit", "lobby_id": id})).await;
    expect_error(&mut gus, "not_allowed").await;
    send(&mut hana, json!({"type": "admit", "lobby_id": id})).await;
    assert_eq!(recv(&mut hana).await["waiting"], json!([]));
    let m = recv(&mut sam).await;
    assert_eq!(
        (m["type"].as_str(), m["role"].as_str(), m["guest"].as_bool()),
        (Some("joined"), Some("participant"), Some(true)),
        "{m}"
    );

    let (mut tom, m) = try_join(&server, "board", "Tom", None).await;
    assert_eq!(m["type"], "lobby_waiting", "{m}");
    // Hana sees Sam join, then Tom waiting.
    let mut waiting = recv(&mut hana).await;
    while waiting["type"] != "lobby" {
        waiting = recv(&mut hana).await;
    }
    let id = waiting["waiting"][0]["id"].as_str().unwrap().to_owned();
    send(&mut hana, json!({"type": "deny", "lobby_id": id})).await;
    expect_error(&mut tom, "denied").await;
    drop((hana, gus, sam, tom));
    server.stop().await;
}

/// A stranger a host let in from the lobby, then banned, stays out: they
/// cannot knock again from where they are; others from elsewhere, or with
/// a link from the same address, still can.
#[tokio::test]
async fn a_stranger_let_in_from_the_lobby_can_be_banned() {
    let server = Running::start(&Config {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..closed()
    })
    .await;
    let admin = Admin::new(&server);
    let host = admin.invite("board", json!({"role": "host"})).await;
    let guest = admin.invite("board", json!({"role": "participant"})).await;
    let (mut hana, m) = try_join(&server, "board", "Hana", Some(&host)).await;
    assert_eq!(m["type"], "joined", "{m}");

    let mut sam = server.ws_from("198.51.100.7").await;
    let m = join_with(&mut sam, "board", "Sam", None).await;
    assert_eq!(m["type"], "lobby_waiting", "{m}");
    let lobby = next_of(&mut hana, "lobby").await;
    let id = lobby["waiting"][0]["id"].as_str().unwrap().to_owned();
    send(&mut hana, json!({"type": "admit", "lobby_id": id})).await;
    let m = next_of(&mut sam, "joined").await;
    let sam_id = m["participant_id"].as_str().unwrap().to_owned();
    send(
        &mut hana,
        json!({"type": "remove", "participant_id": sam_id, "ban": true}),
    )
    .await;
    expect_error(&mut sam, "removed").await;

    // Sam knocks again from where he was: banned, before any host is
    // asked.
    let mut again = server.ws_from("198.51.100.7").await;
    let m = join_with(&mut again, "board", "Sam", None).await;
    assert_eq!(m["code"], "banned", "{m}");
    // Someone else from elsewhere knocks; someone with a link gets in
    // from Sam's address.
    let mut tom = server.ws_from("198.51.100.9").await;
    let m = join_with(&mut tom, "board", "Tom", None).await;
    assert_eq!(m["type"], "lobby_waiting", "{m}");
    let mut gus = server.ws_from("198.51.100.7").await;
    let m = join_with(&mut gus, "board", "Gus", Some(&guest)).await;
    assert_eq!(m["type"], "joined", "{m}");
    let mut waiting = next_of(&mut hana, "lobby").await;
    while waiting["waiting"] == json!([]) {
        waiting = next_of(&mut hana, "lobby").await;
    }
    assert_eq!(waiting["waiting"][0]["name"], "Tom", "{waiting}");
    drop((hana, sam, again, tom, gus));
    server.stop().await;
}

#[tokio::test]
async fn a_meeting_keeps_its_own_policy_over_a_restart() {
    let dir = std::env::temp_dir().join(format!("meet-access-policy-{}", std::process::id()));
    let config = Config {
        policy_store: dir.join("policies.json"),
        ..closed()
    };
    let server = Running::start(&config).await;
    let admin = Admin::new(&server);
    let put = |room: &str, body: Value| {
        let path = format!("/api/admin/meetings/{room}/policy");
        let admin = &admin;
        async move { admin.call(reqwest::Method::PUT, &path, Some(body)).await }
    };
    let (status, v) = put("class", json!({"anonymous_join": true})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["overrides"], json!({"anonymous_join": true}), "{v}");
    assert_eq!(
        v["effective"],
        json!({"anonymous_join": true, "lobby": true, "guests_before_host": true})
    );
    for bad in [
        json!({"lobbby": false}),
        json!([null, null]),
        json!({"lobby": 1}),
    ] {
        let (status, v) = put("class", bad.clone()).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {v}"
        );
    }
    let (status, v) = put("board", json!({"lobby": false})).await;
    assert_eq!(status, 200, "{v}");

    let (_ann, m) = try_join(&server, "class", "Ann", None).await;
    assert_eq!(m["type"], "joined", "the open meeting: {m}");
    let (_bo, m) = try_join(&server, "other", "Bo", None).await;
    assert_eq!(m["type"], "lobby_waiting", "the deployment's lobby: {m}");
    let (_cy, m) = try_join(&server, "board", "Cy", None).await;
    assert_eq!(m["code"], "invite_required", "no lobby for this one: {m}");
    drop((_ann, _bo, _cy));
    server.stop().await;

    let server = Running::start(&config).await;
    let admin = Admin::new(&server);
    let (status, v) = admin
        .call(
            reqwest::Method::GET,
            "/api/admin/meetings/class/policy",
            None,
        )
        .await;
    assert_eq!(
        (status, &v["overrides"]),
        (200, &json!({"anonymous_join": true}))
    );
    let (_ann, m) = try_join(&server, "class", "Ann", None).await;
    assert_eq!(m["type"], "joined", "still open after a restart: {m}");
    let (status, v) = admin
        .call(
            reqwest::Method::PUT,
            "/api/admin/meetings/class/policy",
            Some(json!({})),
        )
        .await;
    assert_eq!((status, &v["overrides"]), (200, &json!({})));
    let (_dee, m) = try_join(&server, "class", "Dee", None).await;
    assert_eq!(m["type"], "lobby_waiting", "the deployment's again: {m}");
    drop((_ann, _dee));
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn guests_wait_for_a_host_where_the_policy_says_so() {
    let server = Running::start(&Config {
        guests_before_host: false,
        ..closed()
    })
    .await;
    let admin = Admin::new(&server);
    let host = admin.invite("board", json!({"role": "host"})).await;
    let guest = admin.invite("board", json!({"role": "participant"})).await;
    let (mut gus, m) = try_join(&server, "board", "Gus", Some(&guest)).await;
    assert_eq!(m, json!({"type": "lobby_waiting", "for_host": true}));
    let (_hana, m) = try_join(&server, "board", "Hana", Some(&host)).await;
    assert_eq!(m["type"], "joined", "{m}");
    let m = recv(&mut gus).await;
    assert_eq!(
        (m["type"].as_str(), m["role"].as_str()),
        (Some("joined"), Some("participant")),
        "the host's coming let Gus in: {m}"
    );
    let (_ida, m) = try_join(&server, "board", "Ida", Some(&guest)).await;
    assert_eq!(m["type"], "joined", "a host is in: {m}");
    server.stop().await;
}
