//! Ghost users: when the homeserver has our application-service
//! registration, each identified meeting participant (a Matrix user, or a
//! guest with an invite link) writes in the room as a Matrix user of their
//! own (`@meet_…`) instead of through the bot's "Name: text". Anonymous
//! guests get no account: nobody vouched for them, and the homeserver
//! should not fill with users anyone can make by opening a page.
//!
//! The registration needs no URL (the homeserver pushes us nothing: the bot
//! already syncs), so the homeserver never has to reach the meeting server.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use matrix_sdk::ruma::{RoomId, UserId};
use serde_json::{json, Value};
use url::Url;

use crate::store::Store;
use crate::{lock, ChatError};

/// What sending as a ghost needs of the bot: its client, which lets the
/// ghost into a room, and its store, which keeps the ghost's device.
#[derive(Clone, Copy)]
pub struct Bot<'a> {
    pub client: &'a matrix_sdk::Client,
    pub store: &'a Store,
}

/// Sends as ghost users with the application service's token.
pub struct Ghosts {
    http: reqwest::Client,
    homeserver: Url,
    as_token: String,
    prefix: String,
    /// Ghosts known to exist, and (ghost, room) pairs known joined: checked
    /// once per process, then trusted (a failed send re-checks).
    registered: Mutex<HashSet<String>>,
    joined: Mutex<HashSet<(String, String)>>,
    /// Each ghost's device access token (also kept in the store).
    tokens: Mutex<HashMap<String, String>>,
}

fn token_key(user_id: &str) -> String {
    format!("{}{user_id}", crate::store::GHOST_TOKEN_KEY)
}

/// Why a call about a ghost (or to the admin API) failed.
#[derive(Debug)]
pub enum GhostError {
    /// Worth retrying (unreachable, rate limited, server error).
    Transient(String),
    /// The homeserver refuses (no registration, namespace mismatch).
    Refused(String),
}

impl GhostError {
    /// The HTTP status or the transport's error, without the homeserver's
    /// words, which may name the user: fit for logs.
    pub fn brief(&self) -> &str {
        let (GhostError::Transient(e) | GhostError::Refused(e)) = self;
        e.split(':').next().unwrap_or_default()
    }
}

impl std::fmt::Display for GhostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (GhostError::Transient(e) | GhostError::Refused(e)) = self;
        f.write_str(e)
    }
}

/// The server name in a `whoami` answer's user id.
pub(crate) fn server_of_whoami(answer: &Value) -> Result<String, GhostError> {
    answer
        .get("user_id")
        .and_then(Value::as_str)
        .and_then(crate::openid::server_of)
        .map(str::to_owned)
        .ok_or_else(|| GhostError::Transient("no user id in the answer".into()))
}

/// Sends; a refusal (4xx other than 429) is [`GhostError::Refused`] with
/// the status first, anything else that fails is worth retrying.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<Value, GhostError> {
    let response = request
        .send()
        .await
        .map_err(|e| GhostError::Transient(e.without_url().to_string()))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    let what = format!("{status}: {text}");
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(GhostError::Refused(what))
    } else {
        Err(GhostError::Transient(what))
    }
}

impl Ghosts {
    pub fn new(homeserver: Url, as_token: String, prefix: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client without custom TLS roots always builds");
        Self {
            http,
            homeserver,
            as_token,
            prefix,
            registered: Mutex::new(HashSet::new()),
            joined: Mutex::new(HashSet::new()),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `user_id` is one of ours.
    pub fn owns(&self, user_id: &str) -> bool {
        user_id
            .strip_prefix('@')
            .is_some_and(|u| u.starts_with(&self.prefix))
    }

    /// The ghost of `person` (see [`crate::Author`]) for a participant
    /// called `name`, shown as `display`, used at `now_ms`: readable, and
    /// never another person's. Its localpart is drawn at random once and
    /// kept in the store, so no name, however chosen, leads to someone
    /// else's.
    pub fn localpart(
        &self,
        store: &Store,
        person: &str,
        name: &str,
        display: &str,
        now_ms: i64,
    ) -> Result<String, ChatError> {
        let slug = slug(name);
        let draw = || format!("{}{slug}_{:016x}", self.prefix, rand::random::<u64>());
        store.ghost_of(person, display, now_ms, draw)
    }

    /// The start of the localparts drawn for a participant called `name`.
    pub fn localpart_prefix(&self, name: &str) -> String {
        format!("{}{}_", self.prefix, slug(name))
    }

    /// Deactivates the ghost `user_id` and has the homeserver erase it
    /// (Synapse: its profile goes, and its messages are shown redacted to
    /// whoever joins a room later). An application service may do this for
    /// the users of its namespace with its own token, no admin rights
    /// needed. A ghost that was never registered is erased already.
    pub async fn deactivate(&self, user_id: &str) -> Result<(), GhostError> {
        let body = json!({ "erase": true });
        let done = self
            .request(
                reqwest::Method::POST,
                &["account", "deactivate"],
                Some(user_id),
                &body,
            )
            .await;
        self.forget(user_id);
        match done {
            Ok(_) => Ok(()),
            Err(GhostError::Refused(e)) if e.contains("has not registered this user") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The display name the homeserver shows for `user_id`, if any.
    pub async fn display_name(&self, user_id: &str) -> Result<Option<String>, GhostError> {
        let answer = self
            .request(
                reqwest::Method::GET,
                &["profile", user_id, "displayname"],
                None,
                &Value::Null,
            )
            .await;
        match answer {
            Ok(v) => Ok(v
                .get("displayname")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            Err(GhostError::Refused(e)) if e.starts_with("404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The server name of the ghosts' homeserver, from the application
    /// service's own user.
    pub async fn server_name(&self) -> Result<String, GhostError> {
        let v = self
            .request(
                reqwest::Method::GET,
                &["account", "whoami"],
                None,
                &Value::Null,
            )
            .await?;
        server_of_whoami(&v)
    }

    /// Drops what this process remembers of `user_id` (erased).
    pub fn forget(&self, user_id: &str) {
        lock(&self.registered).remove(user_id);
        lock(&self.tokens).remove(user_id);
        lock(&self.joined).retain(|(u, _)| u != user_id);
    }

    /// Sends `content` into `room_id` as the ghost, registering it and
    /// joining it to the room first if needed. Returns the event id.
    pub async fn send(
        &self,
        bot: Bot<'_>,
        user_id: &str,
        display_name: &str,
        room_id: &str,
        txn_id: &str,
        content: &Value,
    ) -> Result<String, GhostError> {
        self.ensure_registered(user_id, display_name).await?;
        let user_id = user_id.to_owned();
        let key = (user_id.clone(), room_id.to_owned());
        if !lock(&self.joined).contains(&key) {
            // The room is an invitation list: the bot lets the ghost in.
            // Already invited or joined is fine; the join tells the rest.
            let ids = (RoomId::parse(room_id), UserId::parse(&user_id));
            if let (Ok(room), Ok(ghost)) = ids {
                if let Some(room) = bot.client.get_room(&room) {
                    if let Err(e) = room.invite_user_by_id(&ghost).await {
                        tracing::debug!(error = %e, "inviting a ghost user");
                    }
                }
            }
            self.request(
                reqwest::Method::POST,
                &["join", room_id],
                Some(&user_id),
                &json!({}),
            )
            .await?;
            lock(&self.joined).insert(key.clone());
        }
        // Sent with the ghost's own device: Synapse keeps the transaction
        // ids of a device's requests on disk, so a resend after a crash
        // that lost the reply lands once (those of the application
        // service's token acting as a user are kept in memory only).
        let token = self.device_token(bot.store, &user_id).await?;
        let sent = self
            .request_with(
                reqwest::Method::PUT,
                &["rooms", room_id, "send", "m.room.message", txn_id],
                None,
                &token,
                content,
            )
            .await;
        match &sent {
            Err(GhostError::Refused(e)) if e.contains("M_UNKNOWN_TOKEN") => {
                // Logged out meanwhile: a new device next time.
                lock(&self.tokens).remove(&user_id);
                let _ = bot.store.remove_setting(&token_key(&user_id));
                return Err(GhostError::Transient(e.clone()));
            }
            // Perhaps kicked since: join again next time.
            Err(_) => {
                lock(&self.joined).remove(&key);
            }
            Ok(_) => {}
        }
        sent?
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| GhostError::Transient("no event id in the answer".into()))
    }

    /// The access token of the ghost's device, logged in once and kept.
    async fn device_token(&self, store: &Store, user_id: &str) -> Result<String, GhostError> {
        if let Some(t) = lock(&self.tokens).get(user_id) {
            return Ok(t.clone());
        }
        let saved = store
            .get(&token_key(user_id))
            .map_err(|e| GhostError::Transient(e.to_string()))?;
        let token = match saved {
            Some(t) => t,
            None => {
                let body = json!({
                    "type": "m.login.application_service",
                    "identifier": { "type": "m.id.user", "user": user_id },
                    "initial_device_display_name": "meet",
                });
                let v = self
                    .request(reqwest::Method::POST, &["login"], None, &body)
                    .await?;
                let t = v
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| GhostError::Transient("no access token in the answer".into()))?
                    .to_owned();
                store
                    .set(&token_key(user_id), &t)
                    .map_err(|e| GhostError::Transient(e.to_string()))?;
                t
            }
        };
        lock(&self.tokens).insert(user_id.to_owned(), token.clone());
        Ok(token)
    }

    /// Registers the ghost (harmless if it exists) and sets its name.
    async fn ensure_registered(&self, user_id: &str, display_name: &str) -> Result<(), GhostError> {
        if lock(&self.registered).contains(user_id) {
            return Ok(());
        }
        let localpart = user_id[1..].split(':').next().unwrap_or_default();
        let body = json!({ "type": "m.login.application_service", "username": localpart, "inhibit_login": true });
        match self
            .request(reqwest::Method::POST, &["register"], None, &body)
            .await
        {
            Ok(_) => {}
            Err(GhostError::Refused(e)) if e.contains("M_USER_IN_USE") => {}
            Err(e) => return Err(e),
        }
        self.request(
            reqwest::Method::PUT,
            &["profile", user_id, "displayname"],
            Some(user_id),
            &json!({ "displayname": display_name }),
        )
        .await?;
        lock(&self.registered).insert(user_id.to_owned());
        Ok(())
    }

    /// A call with the application service's token, as `user_id` if set.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &[&str],
        user_id: Option<&str>,
        body: &Value,
    ) -> Result<Value, GhostError> {
        self.request_with(method, path, user_id, &self.as_token, body)
            .await
    }

    /// A call with `token`: the application service's (acting as
    /// `user_id`) or a ghost's own.
    async fn request_with(
        &self,
        method: reqwest::Method,
        path: &[&str],
        user_id: Option<&str>,
        token: &str,
        body: &Value,
    ) -> Result<Value, GhostError> {
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|_| GhostError::Refused("the homeserver URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["_matrix", "client", "v3"])
            .extend(path);
        if let Some(u) = user_id {
            url.query_pairs_mut().append_pair("user_id", u);
        }
        let mut request = self.http.request(method.clone(), url).bearer_auth(token);
        if method != reqwest::Method::GET {
            request = request.json(body);
        }
        send(request).await
    }
}

/// What of a participant's name goes into their ghost's localpart.
fn slug(name: &str) -> String {
    name.chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(c)
        })
        .take(20)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_names_are_readable_kept_and_never_shared() {
        let g = Ghosts::new(
            "http://127.0.0.1:1".parse().unwrap(),
            "t".into(),
            "meet_".into(),
        );
        let dir = std::env::temp_dir().join(format!("chat-ghosts-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("chat.db")).unwrap();
        let ghost = |person: &str| {
            g.localpart(&store, person, "Carol Smith!", "Carol Smith! (guest)", 1)
                .unwrap()
        };
        let carol = ghost("guest:a");
        assert!(
            carol.starts_with(&g.localpart_prefix("Carol Smith!")),
            "{carol}"
        );
        assert!(carol.starts_with("meet_carolsmith_"), "{carol}");
        assert_eq!(carol, ghost("guest:a"));
        // Two people of the same name: two ghosts.
        assert_ne!(carol, ghost("guest:b"));
        assert!(g.owns(&format!("@{carol}:hs")));
        assert!(!g.owns("@carol:hs"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
