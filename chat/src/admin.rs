//! Synapse's admin API, with a server admin's access token: deleting and
//! purging the rooms of ended meetings, and deactivating ghost users when
//! meet has no application-service token to do it with.

use std::time::Duration;

use serde_json::{json, Value};
use url::Url;

use crate::ghosts::{send, server_of_whoami, GhostError, Ghosts};

pub struct Admin {
    http: reqwest::Client,
    homeserver: Url,
    token: String,
}

impl Admin {
    pub fn new(homeserver: Url, token: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a client without custom TLS roots always builds");
        Self {
            http,
            homeserver,
            token,
        }
    }

    /// Deletes the room with everything in it from the homeserver: its
    /// members are made to leave and its events and state are purged
    /// (`DELETE /_synapse/admin/v2/rooms/{room_id}`, `purge: true`). The
    /// homeserver does it in the background; a room it does not know is
    /// gone already.
    pub async fn purge_room(&self, room_id: &str) -> Result<(), GhostError> {
        let body = json!({ "block": false, "purge": true });
        match self
            .request(reqwest::Method::DELETE, &["v2", "rooms", room_id], &body)
            .await
        {
            Err(GhostError::Refused(e)) if e.starts_with("404") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Deactivates `user_id` and erases it
    /// (`POST /_synapse/admin/v1/deactivate/{user_id}`, `erase: true`).
    pub async fn deactivate(&self, user_id: &str) -> Result<(), GhostError> {
        let body = json!({ "erase": true });
        match self
            .request(reqwest::Method::POST, &["v1", "deactivate", user_id], &body)
            .await
        {
            Err(GhostError::Refused(e)) if e.starts_with("404") => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The homeserver's name, from the admin's own user id.
    pub async fn server_name(&self) -> Result<String, GhostError> {
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|_| GhostError::Refused("the homeserver URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["_matrix", "client", "v3", "account", "whoami"]);
        server_of_whoami(&send(self.http.get(url).bearer_auth(&self.token)).await?)
    }

    async fn request(
        &self,
        method: reqwest::Method,
        path: &[&str],
        body: &Value,
    ) -> Result<Value, GhostError> {
        let mut url = self.homeserver.clone();
        url.path_segments_mut()
            .map_err(|_| GhostError::Refused("the homeserver URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["_synapse", "admin"])
            .extend(path);
        send(
            self.http
                .request(method, url)
                .bearer_auth(&self.token)
                .json(body),
        )
        .await
    }
}

/// Deactivates and erases the ghost `user_id` with what meet has: the
/// application service's token, else a server admin's.
pub async fn erase_ghost(
    ghosts: Option<&Ghosts>,
    admin: Option<&Admin>,
    user_id: &str,
) -> Result<(), GhostError> {
    match (ghosts, admin) {
        (Some(ghosts), _) => ghosts.deactivate(user_id).await,
        (None, Some(admin)) => admin.deactivate(user_id).await,
        (None, None) => Err(GhostError::Refused(
            "erasing ghost users needs matrix_as_token or matrix_admin_token".into(),
        )),
    }
}
