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
    #[error("{0}")]
    TooManyRooms(String),
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
            Self::TooManyRooms(_) => 429,
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
            Self::TooManyRooms(_) => "too_many_rooms",
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
        if server_of(&info.sub) != Some(server.as_str()) {
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

/// The server part of a user id (which may carry a port).
pub(crate) fn server_of(user_id: &str) -> Option<&str> {
    user_id.strip_prefix('@')?.split_once(':').map(|(_, s)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_of_a_user_id() {
        assert_eq!(server_of("@a:example.org:8448"), Some("example.org:8448"));
        assert_eq!(server_of("nobody"), None);
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A homeserver on 127.0.0.1 whose userinfo answers every request with
    /// `status` and `body`.
    async fn homeserver(status: &'static str, body: &'static str) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0; 4096];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        url
    }

    fn token(server: &str) -> OpenIdToken {
        OpenIdToken {
            access_token: "t".into(),
            matrix_server_name: server.into(),
            expires_in: Some(60),
        }
    }

    #[tokio::test]
    async fn a_homeserver_vouches_for_its_own_users_only() {
        let honest = homeserver("200 OK", r#"{"sub":"@alice:good.example"}"#).await;
        let lying = homeserver("200 OK", r#"{"sub":"@admin:other.example"}"#).await;
        let v = Verifier::new(BTreeMap::from([
            ("good.example".to_owned(), honest),
            ("bad.example".to_owned(), lying),
        ]));
        assert_eq!(
            v.user_of(&token("good.example")).await.unwrap(),
            "@alice:good.example"
        );
        // An allowed homeserver naming another server's user.
        let e = v.user_of(&token("bad.example")).await.unwrap_err();
        assert!(
            matches!(&e, OpenIdError::WrongServer(u) if u == "@admin:other.example"),
            "{e}"
        );
        assert_eq!((e.status(), e.code()), (401, "invalid_openid_token"));
    }

    #[tokio::test]
    async fn refusals_and_outages_are_told_apart() {
        let refusing = homeserver("401 Unauthorized", r#"{"errcode":"M_UNKNOWN_TOKEN"}"#).await;
        let broken = homeserver("500 Internal Server Error", "{}").await;
        let v = Verifier::new(BTreeMap::from([
            ("refusing.example".to_owned(), refusing),
            ("broken.example".to_owned(), broken),
        ]));
        let e = v.user_of(&token("refusing.example")).await.unwrap_err();
        assert!(matches!(e, OpenIdError::InvalidToken), "{e}");
        let e = v.user_of(&token("broken.example")).await.unwrap_err();
        assert!(matches!(e, OpenIdError::Unreachable(_)), "{e}");
        let e = v.user_of(&token("elsewhere.example")).await.unwrap_err();
        assert!(matches!(e, OpenIdError::HomeserverNotAllowed(_)), "{e}");
    }
}
