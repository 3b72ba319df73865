//! What the other parts are built from: the settings read into the types
//! they take (TLS, TURN trust, policies, the chat bridge's settings), files
//! read where a setting names one.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{parse_http_url, Config, ConfigError};
use crate::access::policy::{Policies, Policy, PolicyError};
use crate::access::revocations::{RevocationError, Revocations};
use crate::shell::tls;
use crate::turn;

/// What [`crate::cluster::Cluster`] is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    pub redis: String,
    pub node_id: String,
    pub node_url: String,
    /// `public_url`'s origin: pages served under it may be sent to any
    /// server of the cluster.
    pub origin: Option<String>,
}

/// The machine's host name, for a server's default `node_id`.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that and NUL-terminates when the name fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

impl Config {
    /// `public_url` parsed; `None` when it is not set.
    pub fn public_url(&self) -> Result<Option<url::Url>, ConfigError> {
        if self.public_url.is_empty() {
            return Ok(None);
        }
        parse_http_url("public_url", &self.public_url).map(Some)
    }

    /// How this server joins others through Redis; `None` when it runs
    /// alone (no `redis`).
    pub fn cluster(&self) -> Result<Option<ClusterSettings>, ConfigError> {
        if self.redis.is_empty() {
            return Ok(None);
        }
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        // Not the URL itself in the message: it may hold a password.
        crate::cluster::Target::parse(&self.redis).map_err(|e| invalid("redis", e))?;
        let node_id = match self.node_id.trim() {
            "" => host_name().ok_or_else(|| {
                invalid(
                    "node_id",
                    "the host name cannot be read; set node_id".into(),
                )
            })?,
            id if id.len() > 64 || id.chars().any(char::is_whitespace) => {
                return Err(invalid(
                    "node_id",
                    "at most 64 characters, none of them spaces".into(),
                ))
            }
            id => id.to_owned(),
        };
        let public = self.public_url()?;
        let node_url = match (self.node_url.trim(), &public) {
            ("", Some(p)) => {
                let mut ws = p.join("ws").expect("`ws` joins any http(s) URL");
                let scheme = if p.scheme() == "https" { "wss" } else { "ws" };
                ws.set_scheme(scheme)
                    .expect("ws and wss replace http and https");
                ws.to_string()
            }
            ("", None) => {
                return Err(invalid(
                    "node_url",
                    "set it (or public_url) when redis is set: clients are sent on to it".into(),
                ))
            }
            (path, _) if path.starts_with('/') && !path.starts_with("//") => path.to_owned(),
            (url, _) => match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "ws" | "wss") => url.to_owned(),
                _ => {
                    return Err(invalid(
                        "node_url",
                        format!("`{url}` is neither a path (/node/a/ws) nor a ws(s):// URL"),
                    ))
                }
            },
        };
        Ok(Some(ClusterSettings {
            redis: self.redis.clone(),
            node_id,
            node_url,
            origin: public.map(|u| u.origin().ascii_serialization()),
        }))
    }

    /// The listener's TLS configuration, its files read; `None` for plain
    /// HTTP.
    pub fn tls(&self) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
        let (cert, key) = (&self.tls_certificate, &self.tls_private_key);
        match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
            (true, true) => Ok(None),
            (false, false) => {
                tls::server_config(cert, key)
                    .map(Some)
                    .map_err(|e| ConfigError::Invalid {
                        key: e.key,
                        message: e.message,
                    })
            }
            (false, true) => Err(ConfigError::Invalid {
                key: "tls_private_key",
                message: "must be set with tls_certificate".into(),
            }),
            (true, false) => Err(ConfigError::Invalid {
                key: "tls_certificate",
                message: "must be set with tls_private_key".into(),
            }),
        }
    }

    /// When the listener's certificate expires; `None` for plain HTTP.
    pub fn tls_certificate_expiry(
        &self,
    ) -> Result<Option<crate::certificate::NotAfter>, ConfigError> {
        if self.tls_certificate.as_os_str().is_empty() {
            return Ok(None);
        }
        let expiry = tls::certificate_not_after(&self.tls_certificate).map_err(|e| {
            ConfigError::Invalid {
                key: e.key,
                message: e.message,
            }
        })?;
        Ok(Some(expiry))
    }

    /// What the TURN probe checks `turns:` servers' certificates against:
    /// the system's trust store (read only when a `turns:` URL is
    /// configured) and `turn_ca_file`.
    pub fn turn_trust(&self) -> Result<turn::tls::Trust, ConfigError> {
        let system = self.turn_urls.iter().any(|u| u.starts_with("turns:"));
        let ca_file =
            (!self.turn_ca_file.as_os_str().is_empty()).then_some(self.turn_ca_file.as_path());
        turn::tls::Trust::load(system, ca_file).map_err(|e| ConfigError::Invalid {
            key: "turn_ca_file",
            message: e.to_string(),
        })
    }

    /// The deployment's policy, with the meetings' own from `policy_store`.
    pub fn policies(&self) -> Result<Policies, PolicyError> {
        let deployment = Policy {
            anonymous_join: self.anonymous_join,
            lobby: self.lobby,
            guests_before_host: self.guests_before_host,
        };
        let store = !self.policy_store.as_os_str().is_empty();
        Policies::load(deployment, store.then(|| self.policy_store.clone()))
    }

    /// The invite links withdrawn through the admin API, kept beside the
    /// meeting policies (`revoked-invites.json` in `policy_store`'s
    /// directory; in memory only where that is empty).
    pub fn revocations(&self) -> Result<Revocations, RevocationError> {
        let store = !self.policy_store.as_os_str().is_empty();
        let file = store.then(|| self.policy_store.with_file_name("revoked-invites.json"));
        Revocations::load(file, crate::access::token::unix_now())
    }

    /// The chat bridge's settings; `None` when no homeserver is configured.
    pub fn chat(&self) -> Result<Option<chat::ChatConfig>, ConfigError> {
        if self.matrix_homeserver.is_empty() {
            return Ok(None);
        }
        let public_url = match self.public_url()? {
            Some(u) => u,
            None => parse_http_url("listen", &format!("http://{}/", self.listen))?,
        };
        let openid_homeservers = self
            .openid_homeservers
            .iter()
            .map(|(name, url)| Ok((name.clone(), parse_http_url("openid_homeservers", url)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Some(chat::ChatConfig {
            homeserver: parse_http_url("matrix_homeserver", &self.matrix_homeserver)?,
            user: self.matrix_user.clone(),
            password: self.matrix_password.clone(),
            store_dir: self.matrix_store.clone(),
            public_url,
            openid_homeservers,
            rooms: self.matrix_rooms.clone(),
            appservice: (!self.matrix_as_token.is_empty()).then(|| chat::AppService {
                as_token: self.matrix_as_token.clone(),
                prefix: self.matrix_as_prefix.clone(),
            }),
            max_outbox_per_meeting: self.max_chat_outbox_per_meeting as u64,
            room_retention: days(self.matrix_room_retention_days),
            max_rooms_per_user_per_day: self.max_rooms_per_user_per_day,
            ghost_retention: days(self.matrix_ghost_retention_days),
            meeting_retention: days(self.matrix_meeting_retention_days),
            purge_rooms: self.matrix_purge_rooms,
            admin_token: (!self.matrix_admin_token.is_empty())
                .then(|| self.matrix_admin_token.clone()),
        }))
    }

    /// The IP addresses advertised in ICE candidates.
    pub fn advertised_ips(&self) -> Vec<IpAddr> {
        let mut ips = if self.media_ips.is_empty() {
            host_ips()
        } else {
            self.media_ips.clone()
        };
        ips.extend(self.public_ip);
        ips.dedup();
        ips
    }
}

/// `n` days; 0: none.
fn days(n: u32) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(u64::from(n) * 86_400))
}

/// Every non-loopback IPv4 address of the host's interfaces.
fn host_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| ip.is_ipv4() && !ip.is_loopback())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::env;
    use super::*;

    #[test]
    fn chat_settings() {
        assert!(Config::default().chat().unwrap().is_none());
        let e = Config::load(
            None,
            env(&[("MEET_MATRIX_HOMESERVER", "http://127.0.0.1:8008")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("matrix_user"), "{e}");
        let e = Config::load(None, env(&[("MEET_MATRIX_HOMESERVER", "ftp://x")])).unwrap_err();
        assert!(e.to_string().contains("matrix_homeserver"), "{e}");
        let c = Config::load(
            None,
            env(&[
                ("MEET_MATRIX_HOMESERVER", "http://127.0.0.1:8008"),
                ("MEET_MATRIX_USER", "meetbot"),
                ("MEET_MATRIX_PASSWORD", "123456"),
                (
                    "MEET_OPENID_HOMESERVERS",
                    r#"{ "example.org" = "https://matrix.example.org" }"#,
                ),
                ("MEET_MATRIX_ROOM_RETENTION_DAYS", "30"),
            ]),
        )
        .unwrap();
        let chat = c.chat().unwrap().unwrap();
        assert_eq!(chat.room_retention, Some(Duration::from_secs(30 * 86_400)));
        // Retention of what meet keeps about people is on by default.
        assert_eq!(chat.ghost_retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(
            chat.meeting_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert!(!chat.purge_rooms);
        assert_eq!(chat.admin_token, None);
        assert_eq!(
            chat.password, "123456",
            "a password that looks like a number"
        );
        assert_eq!(chat.public_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            chat.openid_homeservers["example.org"].as_str(),
            "https://matrix.example.org/"
        );
        let e = Config::load(None, env(&[("MEET_TOKEN_SECRET", "short")])).unwrap_err();
        assert!(e.to_string().contains("token_secret"), "{e}");
    }

    #[test]
    fn a_turn_ca_file_must_hold_certificates() {
        let dir = std::env::temp_dir().join(format!("meet-turn-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(&good, ca.cert.pem()).unwrap();
        let not_pem = dir.join("key.pem");
        std::fs::write(&not_pem, ca.signing_key.serialize_pem()).unwrap();
        // A plain path in the environment, not TOML.
        let set = |p: &Path| ("MEET_TURN_CA_FILE", p.to_str().unwrap().to_owned());
        let (k, v) = set(&good);
        let c = Config::load(None, env(&[(k, v.as_str())])).unwrap();
        assert!(c.turn_trust().unwrap().has_roots());
        for bad in [not_pem, dir.join("missing.pem")] {
            let (k, v) = set(&bad);
            let e = Config::load(None, env(&[(k, v.as_str())]))
                .unwrap()
                .turn_trust()
                .err()
                .unwrap();
            assert!(e.to_string().contains("turn_ca_file"), "{e}");
        }
        assert!(
            !Config::default().turn_trust().unwrap().has_roots(),
            "no turns:, no CA read"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
