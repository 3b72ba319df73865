//! Checks Matrix OpenID tokens, as Element Call's token service does: ask the
//! token's homeserver who it belongs to (`/openid/userinfo`), but only
//! homeservers the operator allowed, and remember the answer while the token
//! is valid.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

/// What a client hands over: the response of its homeserver's
/// `/openid/request_token`, as the widget API passes it on.
#[derive(Debug, Clone, Deserialize)]
pub struct OpenIdToken {
    pub access_token: String,
    pub matrix_server_name: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenIdError {
    #[error("homeserver `{0}` is not allowed to sign in to meetings here")]
    HomeserverNotAllowed(String),
    #[error("the homeserver does not know this OpenID token (expired or forged)")]
    InvalidToken,
    #[error("the homeserver answered for `{0}`, a user of another server")]
    WrongServer(String),
    #[error("cannot reach the homeserver to check the token: {0}")]
    Unreachable(String),
    #[error("`{0}` is not a member of this meeting's Matrix room")]
    NotMember(String),
    #[error("this meeting has no Matrix room")]
    NoRoom,
    #[error("the chat service is not ready: {0}")]
    Unavailable(String),
}

impl OpenIdError {
    /// HTTP status for API replies.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidToken | Self::WrongServer(_) => 401,
            Self::HomeserverNotAllowed(_) | Self::NotMember(_) => 403,
            Self::Unreachable(_) => 502,
            Self::NoRoom | Self::Unavailable(_) => 503,
        }
    }

    /// Stable code for API replies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::HomeserverNotAllowed(_) => "homeserver_not_allowed",
            Self::InvalidToken | Self::WrongServer(_) => "invalid_openid_token",
            Self::Unreachable(_) => "homeserver_unreachable",
            Self::NotMember(_) => "not_room_member",
            Self::NoRoom | Self::Unavailable(_) => "chat_unavailable",
        }
    }
}

/// Longest we trust a userinfo answer, whatever the token claims.
const MAX_CACHE: Duration = Duration::from_secs(3600);
/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;

pub struct Verifier {
    homeservers: RwLock<BTreeMap<String, Url>>,
    http: reqwest::Client,
    cache: Mutex<HashMap<(String, String), (String, Instant)>>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
}

impl Verifier {
    /// `homeservers` maps each allowed server name to the base URL its
    /// OpenID userinfo endpoint is served under.
    pub fn new(homeservers: BTreeMap<String, Url>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client without custom TLS roots always builds");
        Self {
            homeservers: RwLock::new(homeservers),
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The Matrix user id the token belongs to.
    pub async fn user_of(&self, token: &OpenIdToken) -> Result<String, OpenIdError> {
        let server = &token.matrix_server_name;
        let base = self
            .homeservers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .cloned()
            .ok_or_else(|| OpenIdError::HomeserverNotAllowed(server.clone()))?;
        let key = (server.clone(), token.access_token.clone());
        let now = Instant::now();
        if let Some((user, until)) = self.lock().get(&key) {
            if *until > now {
                return Ok(user.clone());
            }
        }
        let mut url = base
            .join("_matrix/federation/v1/openid/userinfo")
            .map_err(|e| OpenIdError::Unreachable(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("access_token", &token.access_token);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| OpenIdError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(OpenIdError::InvalidToken);
        }
        if !status.is_success() {
            return Err(OpenIdError::Unreachable(format!(
                "userinfo answered {status}"
            )));
        }
        let info: UserInfo = response
            .json()
            .await
            .map_err(|e| OpenIdError::Unreachable(format!("userinfo answer: {e}")))?;
        // A homeserver vouches only for its own users.
        if crate::bridge::server_of(&info.sub) != Some(server.as_str()) {
            return Err(OpenIdError::WrongServer(info.sub));
        }
        let ttl = token
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(MAX_CACHE)
            .min(MAX_CACHE);
        let mut cache = self.lock();
        if cache.len() >= SWEEP_AT {
            cache.retain(|_, (_, until)| *until > now);
        }
        cache.insert(key, (info.sub.clone(), now + ttl));
        Ok(info.sub)
    }

    /// Allows one more homeserver (the bot's own, learnt at sign-in).
    pub fn allow(&self, server: &str, base: Url) {
        self.homeservers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(server.to_owned(), base);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, Instant)>> {
        crate::lock(&self.cache)
    }
}
