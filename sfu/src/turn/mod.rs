//! TURN credentials for clients whose firewall blocks the media path:
//! short-lived ones of the TURN REST API's shared-secret scheme (coturn's
//! `use-auth-secret`), so that the TURN server and meet share one secret
//! and no account per user exists anywhere.
//!
//! The username is `<expiry as Unix seconds>:<participant id>`, the
//! password the base64 of HMAC-SHA1(secret, username); the TURN server
//! recomputes it and refuses it after the expiry. Each server is probed
//! with a real allocation for `meet_turn_reachable` ([`probe`]).

mod allocate;
mod probe;
pub mod tls;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

pub use allocate::ProbeError;
pub use probe::{probe, probe_once, ProbeMetrics, Probed};

/// One entry of `RTCConfiguration.iceServers`, as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The configured TURN servers and the secret they share with us.
#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    secret: String,
    ttl: Duration,
}

impl Turn {
    /// `None` when no TURN server is configured.
    pub fn new(urls: &[String], secret: &str, ttl: Duration) -> Option<Self> {
        (!urls.is_empty()).then(|| Self {
            urls: urls.to_vec(),
            secret: secret.to_owned(),
            ttl,
        })
    }

    /// Credentials for `participant`, valid from `now` for the configured
    /// time: long enough for a meeting, as the TURN server checks them
    /// again on every refresh of an allocation.
    pub fn ice_servers(&self, participant: &str, now: SystemTime) -> Vec<IceServer> {
        let (username, credential) = self.credentials(participant, now);
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }

    /// The username and password `participant` gets: the probe takes its
    /// own from here too, so that it tests what clients are handed.
    pub fn credentials(&self, participant: &str, now: SystemTime) -> (String, String) {
        let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
        let username = format!("{}:{participant}", expiry.as_secs());
        let credential = credential(&self.secret, &username);
        (username, credential)
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

fn credential(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A TURN URI (RFC 7065) taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TurnUri {
    host: String,
    port: u16,
    /// `turns:`: TLS over TCP.
    secure: bool,
    tcp: bool,
}

/// Parses `turn:` or `turns:`, a host, an optional port and
/// `?transport=udp|tcp`, as browsers take them.
fn parse(url: &str) -> Option<TurnUri> {
    let (secure, rest) = match url.strip_prefix("turns:") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("turn:")?),
    };
    let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 address: `[addr]` or `[addr]:port`.
        Some(v6) => match v6.split_once(']')? {
            (addr, "") => (addr, None),
            (addr, tail) => (addr, Some(tail.strip_prefix(':')?)),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None if secure => 5349,
        None => 3478,
    };
    let tcp = match query {
        "" => secure,
        "transport=udp" if !secure => false,
        "transport=tcp" => true,
        _ => return None,
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    host_ok.then(|| TurnUri {
        host: host.to_owned(),
        port,
        secure,
        tcp,
    })
}

/// Whether `url` is a TURN URI a browser takes.
pub fn valid_url(url: &str) -> bool {
    parse(url).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_the_rest_api_hmac_of_an_expiring_username() {
        let turn = Turn::new(
            &["turn:turn.example.org:3478?transport=udp".into()],
            "a shared secret",
            Duration::from_secs(3600),
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = turn.ice_servers("p1", now);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].username, "1700003600:p1");
        // printf %s 1700003600:p1 | openssl dgst -sha1 -hmac 'a shared secret' -binary | base64
        assert_eq!(servers[0].credential, "sM1xL7GkOQ6RDXdU1dCZX2RDtlY=");
        assert_eq!(
            servers[0].urls,
            ["turn:turn.example.org:3478?transport=udp"]
        );
    }

    #[test]
    fn uris_are_taken_apart_with_their_defaults() {
        let p = parse("turn:turn.example.org").unwrap();
        assert_eq!((p.port, p.tcp, p.secure), (3478, false, false));
        let p = parse("turns:turn.example.org").unwrap();
        assert_eq!((p.port, p.tcp, p.secure), (5349, true, true));
        let p = parse("turn:[2001:db8::1]:3479?transport=tcp").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.tcp),
            ("2001:db8::1", 3479, true)
        );
        assert_eq!(parse("turns:h?transport=udp"), None, "no TLS over UDP");
    }

    #[test]
    fn nothing_configured_means_no_turn() {
        assert!(Turn::new(&[], "secret", Duration::from_secs(60)).is_none());
    }

    #[test]
    fn only_turn_uris_pass() {
        for good in [
            "turn:turn.example.org",
            "turn:10.0.0.1:3478?transport=udp",
            "turn:turn.example.org:3478?transport=tcp",
            "turns:turn.example.org:443?transport=tcp",
            "turn:[2001:db8::1]:3478",
            "turn:[2001:db8::1]",
        ] {
            assert!(valid_url(good), "{good}");
        }
        for bad in [
            "stun:stun.example.org",
            "https://turn.example.org",
            "turn:",
            "turn:host:port",
            "turn:host:3478?transport=sctp",
            "turn:ho st",
            "turn:[2001:db8::1]x",
            "turn:host:0",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
    }
}
