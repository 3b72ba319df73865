//! Ghost users: when the homeserver has our application-service
//! registration, each meeting participant writes in the room as a Matrix
//! user of their own (`@meet_…`) instead of through the bot's "Name: text".
//!
//! The registration needs no URL (the homeserver pushes us nothing: the bot
//! already syncs), so the homeserver never has to reach the meeting server.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use url::Url;

use crate::lock;
use crate::store::Store;

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
    format!("ghost_token:{user_id}")
}

/// Why a ghost could not send.
#[derive(Debug)]
pub enum GhostError {
    /// Worth retrying (unreachable, rate limited, server error).
    Transient(String),
    /// The homeserver refuses (no registration, namespace mismatch).
    Refused(String),
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

    /// The ghost's localpart for an author: readable, and stable for the
    /// same Matrix user or guest name.
    pub fn localpart(&self, name: &str, user_id: Option<&str>) -> String {
        let key = match user_id {
            Some(u) => format!("user:{u}"),
            None => format!("guest:{name}"),
        };
        let slug: String = name
            .chars()
            .filter_map(|c| {
                let c = c.to_ascii_lowercase();
                (c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(c)
            })
            .take(20)
            .collect();
        format!("{}{slug}_{:08x}", self.prefix, fnv1a(key.as_bytes()) as u32)
    }

    /// Sends `content` into `room_id` as the ghost, registering it and
    /// joining it to the room first if needed. Returns the event id.
    pub async fn send(
        &self,
        store: &Store,
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
        let token = self.device_token(store, &user_id).await?;
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
                let _ = store.remove_setting(&token_key(&user_id));
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
}

/// FNV-1a: a hash that stays the same across builds, so a ghost's name
/// does too.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_names_are_readable_stable_and_distinct() {
        let g = Ghosts::new(
            "http://127.0.0.1:1".parse().unwrap(),
            "t".into(),
            "meet_".into(),
        );
        let carol = g.localpart("Carol Smith!", None);
        assert!(carol.starts_with("meet_carolsmith_"), "{carol}");
        assert_eq!(carol, g.localpart("Carol Smith!", None));
        assert_ne!(carol, g.localpart("Carol Smith!", Some("@carol:hs")));
        assert_ne!(carol, g.localpart("Carol Smith?", None));
        assert!(g.owns(&format!("@{carol}:hs")));
        assert!(!g.owns("@carol:hs"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
