//! What the server's request handlers share.

use std::sync::Arc;

use axum::http::header;

use crate::access::Access;
use crate::shell::headers::{AllowedHosts, SecurityHeaders};
use crate::worker::Workers;

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Who may enter, and everything a join is checked against.
    pub access: Access,
    pub workers: Workers,
    /// The admin API's bearer key; `None`: the API refuses everything.
    pub admin_key: Option<Arc<str>>,
    /// Where users reach this server, when configured.
    pub public_url: Option<url::Url>,
    /// The names the signalling WebSocket may be reached under.
    pub allowed_hosts: AllowedHosts,
    /// `https` when the listener speaks TLS, else `http`.
    pub scheme: &'static str,
    pub headers: SecurityHeaders,
    pub page: Arc<str>,
}

impl AppState {
    /// The base URL for links: `public_url`, or else the address this
    /// request came to.
    pub fn public_url(&self, headers: &axum::http::HeaderMap) -> url::Url {
        if let Some(u) = &self.public_url {
            return u.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        url::Url::parse(&format!("{}://{host}/", self.scheme))
            .unwrap_or_else(|_| url::Url::parse("http://localhost/").expect("a valid URL"))
    }
}
