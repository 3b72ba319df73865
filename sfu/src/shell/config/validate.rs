//! Checking the configuration at start: errors that name the key, and
//! warnings about settings that are valid but likely wrong.

use std::net::IpAddr;

use super::{parse_http_url, Config, ConfigError};
use crate::turn;

/// Longest drain: a day, so that a stop always comes.
const MAX_DRAIN_TIMEOUT_SECS: u64 = 86_400;

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        if self.workers > 256 {
            return invalid("workers", "at most 256");
        }
        if self.media_port != 0 && usize::from(self.media_port) + self.workers.max(1) > 65536 {
            return invalid("media_port", "media_port + workers must stay below 65536");
        }
        if let Some(port @ 1..) = self.ice_tcp_port {
            if usize::from(port) + self.workers.max(1) > 65536 {
                return invalid(
                    "ice_tcp_port",
                    "ice_tcp_port + workers must stay below 65536",
                );
            }
        }
        if !(1..=300).contains(&self.peer_timeout_secs) {
            return invalid("peer_timeout_secs", "must be between 1 and 300");
        }
        if !(50..=10_000).contains(&self.keyframe_interval_ms) {
            return invalid("keyframe_interval_ms", "must be between 50 and 10000");
        }
        if !(1..=10_000).contains(&self.max_participants) {
            return invalid("max_participants", "must be between 1 and 10000");
        }
        if self.reconnect_grace_secs > 300 {
            return invalid("reconnect_grace_secs", "must be at most 300");
        }
        if !(1..=3600).contains(&self.idle_seat_secs) {
            return invalid("idle_seat_secs", "must be between 1 and 3600");
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            (
                "max_joins_per_address_per_minute",
                self.max_joins_per_address_per_minute,
            ),
            ("max_meetings", self.max_meetings),
            (
                "max_chat_messages_per_minute",
                self.max_chat_messages_per_minute,
            ),
            (
                "max_chat_outbox_per_meeting",
                self.max_chat_outbox_per_meeting,
            ),
            (
                "max_rooms_per_user_per_day",
                self.max_rooms_per_user_per_day as usize,
            ),
        ] {
            if !(1..=1_000_000).contains(&value) {
                return invalid(key, "must be between 1 and 1000000");
            }
        }
        if self.matrix_room_retention_days > 36_500 {
            return invalid(
                "matrix_room_retention_days",
                "must be at most 36500 (0 keeps messages as the homeserver does)",
            );
        }
        for (key, days) in [
            (
                "matrix_ghost_retention_days",
                self.matrix_ghost_retention_days,
            ),
            (
                "matrix_meeting_retention_days",
                self.matrix_meeting_retention_days,
            ),
        ] {
            if days > 36_500 {
                return invalid(key, "must be at most 36500 (0 keeps them)");
            }
        }
        if self.matrix_purge_rooms && self.matrix_admin_token.is_empty() {
            return invalid(
                "matrix_purge_rooms",
                "needs matrix_admin_token (a homeserver admin's access token)",
            );
        }
        if self.matrix_purge_rooms && self.matrix_meeting_retention_days == 0 {
            return invalid(
                "matrix_purge_rooms",
                "needs matrix_meeting_retention_days (rooms go with their meetings)",
            );
        }
        if self.srtp_profiles.is_empty() {
            return invalid("srtp_profiles", "name at least one profile");
        }
        let concrete_v4 = |ip: &IpAddr| !ip.is_unspecified() && ip.is_ipv4();
        if !self.media_ips.iter().all(concrete_v4) {
            return invalid(
                "media_ips",
                "addresses must be concrete IPv4 addresses (IPv6 media is not supported yet)",
            );
        }
        if !self.public_ip.iter().all(concrete_v4) {
            return invalid(
                "public_ip",
                "must be a concrete IPv4 address (IPv6 media is not supported yet)",
            );
        }
        if !(1..=crate::access::lobby::MAX_WAITING).contains(&self.max_knocks_per_address) {
            return invalid("max_knocks_per_address", "must be between 1 and 100");
        }
        if !self.public_url.is_empty() {
            parse_http_url("public_url", &self.public_url)?;
        }
        if let Some(bad) = self.allowed_hosts.iter().find(|h| !is_host_name(h)) {
            return invalid(
                "allowed_hosts",
                &format!(
                    "`{bad}` is not a host name (`meet.example.org`: no scheme, port or path)"
                ),
            );
        }
        if !self.matrix_homeserver.is_empty() {
            parse_http_url("matrix_homeserver", &self.matrix_homeserver)?;
            if self.matrix_user.is_empty() {
                return invalid("matrix_user", "required when matrix_homeserver is set");
            }
            if self.matrix_password.is_empty() {
                return invalid("matrix_password", "required when matrix_homeserver is set");
            }
        }
        if self.matrix_as_prefix.is_empty()
            || !self
                .matrix_as_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.=".contains(c))
        {
            return invalid(
                "matrix_as_prefix",
                "a non-empty localpart prefix (a-z, 0-9, _ - . =)",
            );
        }
        for url in self.openid_homeservers.values() {
            parse_http_url("openid_homeservers", url)?;
        }
        if !self.token_secret.is_empty() && self.token_secret.len() < 32 {
            return invalid("token_secret", "use at least 32 characters");
        }
        if self.cluster()?.is_some() && self.token_secret.is_empty() {
            return invalid(
                "token_secret",
                "set it, the same on every server sharing meetings: whichever \
                 holds a meeting checks the invite links and tokens another made",
            );
        }
        if self.drain_timeout_secs > MAX_DRAIN_TIMEOUT_SECS {
            return invalid("drain_timeout_secs", "must be at most 86400 (a day)");
        }
        if !self.admin_key.is_empty() && self.admin_key.len() < 32 {
            return invalid("admin_key", "use at least 32 characters");
        }
        if let Some(origin) = self.widget_origins.iter().find(|o| !is_origin(o)) {
            return invalid(
                "widget_origins",
                &format!(
                    "`{origin}` is not an origin (scheme://host[:port], no path; \
                     `https://element.example.org`, or `vector://vector` for Element Desktop)"
                ),
            );
        }
        if let Some(url) = self.turn_urls.iter().find(|u| !turn::valid_url(u)) {
            return invalid(
                "turn_urls",
                &format!(
                    "`{url}` is not a TURN URI (turn: or turns:, host[:port][?transport=udp|tcp])"
                ),
            );
        }
        if !self.turn_urls.is_empty() && self.turn_secret.len() < 32 {
            return invalid(
                "turn_secret",
                "use at least 32 characters (the TURN server's static-auth-secret) when turn_urls is set",
            );
        }
        if !(60..=7 * 86_400).contains(&self.turn_credential_ttl_secs) {
            return invalid(
                "turn_credential_ttl_secs",
                "must be between 60 and 604800 (a week)",
            );
        }
        Ok(())
    }

    /// Settings that are valid but likely wrong for a server others use:
    /// each a sentence naming the key, for `--check-config` and the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.media_port == 0 {
            w.push(
                "`media_port` is 0: the UDP media ports are picked anew at each start, so no \
                 firewall rule can name them; set a first port (for example 40000)"
                    .to_owned(),
            );
        }
        if self.workers == 0 {
            w.push(format!(
                "`workers` is 0: one media worker, and one UDP port, per core ({} here), so the \
                 port range follows the machine; set `workers` to fix it",
                self.worker_count()
            ));
        }
        if self.ice_tcp_port == Some(0) {
            w.push(
                "`ice_tcp_port` is 0: the ICE-TCP ports are picked anew at each start; set a \
                 first port"
                    .to_owned(),
            );
        }
        let loopback = self.listen.ip().is_loopback();
        if !loopback && self.metrics_listen.is_none() {
            w.push(
                "`listen` is not a loopback address and `metrics_listen` is not set: \
                 `/metrics` is served nowhere"
                    .to_owned(),
            );
        }
        if !loopback && self.admin_listen.is_none() && !self.admin_key.is_empty() {
            w.push(
                "`listen` is not a loopback address and `admin_listen` is not set: the admin \
                 API is served nowhere"
                    .to_owned(),
            );
        }
        w
    }
}

/// Whether `value` is a web origin as a browser writes it: an http(s)
/// origin, or that of a desktop client's own scheme (Element Desktop
/// serves itself from `vector://vector`), which the URL standard leaves
/// opaque but the client registers as a standard scheme.
fn is_origin(value: &str) -> bool {
    let Ok(url) = url::Url::parse(value) else {
        return false;
    };
    if matches!(url.scheme(), "http" | "https") {
        return url.origin().ascii_serialization() == value;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}", url.scheme()) == value
}

/// Whether `value` is a bare host name as a browser sends it in `Host`
/// (without the port): a DNS name or an address, no scheme, port or path.
fn is_host_name(value: &str) -> bool {
    !value.is_empty()
        && url::Url::parse(&format!("http://{value}/"))
            .is_ok_and(|u| u.port().is_none() && u.host_str() == Some(&value.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::super::env;
    use super::*;

    #[test]
    fn widget_origins_are_web_or_desktop_client_origins() {
        for good in [
            "https://element.example.org",
            "http://127.0.0.1:8081",
            "vector://vector",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "https://element.example.org/",
            "https://element.example.org/app",
            "vector://vector/webapp/",
            "vector:vector",
            "element.example.org",
            "javascript:alert(1)",
            "https://a b",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
        let c = Config::load(None, env(&[("MEET_WIDGET_ORIGINS", "vector://vector")])).unwrap();
        assert_eq!(c.widget_origins, ["vector://vector"]);
        let e =
            Config::load(None, env(&[("MEET_WIDGET_ORIGINS", "vector://vector/x")])).unwrap_err();
        assert!(e.to_string().contains("widget_origins"), "{e}");
    }

    #[test]
    fn allowed_hosts_are_bare_host_names() {
        for good in [
            "meet.example.org",
            "MEET.example.org",
            "10.0.0.5",
            "[::1]",
            "localhost",
        ] {
            assert!(is_host_name(good), "{good}");
        }
        for bad in [
            "",
            "https://meet.example.org",
            "meet.example.org:443",
            "meet.example.org/x",
            "a b",
            "user@meet.example.org",
        ] {
            assert!(!is_host_name(bad), "{bad}");
        }
        let c = Config::load(None, env(&[("MEET_ALLOWED_HOSTS", "a.example, b.example")])).unwrap();
        assert_eq!(c.allowed_hosts, ["a.example", "b.example"]);
        let e = Config::load(None, env(&[("MEET_ALLOWED_HOSTS", "a.example:80")])).unwrap_err();
        assert!(e.to_string().contains("allowed_hosts"), "{e}");
        let e = Config::load(None, env(&[("MEET_MAX_KNOCKS_PER_ADDRESS", "101")])).unwrap_err();
        assert!(e.to_string().contains("max_knocks_per_address"), "{e}");
    }

    #[test]
    fn a_server_sharing_meetings_says_where_clients_reach_it() {
        let redis = ("MEET_REDIS", "redis://127.0.0.1:6379/0");
        let e = Config::load(None, env(&[redis])).unwrap_err();
        assert!(e.to_string().contains("`node_url`"), "{e}");
        let e = Config::load(None, env(&[redis, ("MEET_NODE_URL", "http://x/ws")])).unwrap_err();
        assert!(e.to_string().contains("`node_url`"), "{e}");
        let e = Config::load(
            None,
            env(&[("MEET_REDIS", "http://x"), ("MEET_NODE_URL", "/ws")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`redis`"), "{e}");
        let e = Config::load(
            None,
            env(&[redis, ("MEET_NODE_URL", "/ws"), ("MEET_NODE_ID", "a b")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("`node_id`"), "{e}");
        let secret = ("MEET_TOKEN_SECRET", "a-secret-of-at-least-thirty-two-chars");
        let e = Config::load(None, env(&[redis, ("MEET_NODE_URL", "/ws")])).unwrap_err();
        assert!(e.to_string().contains("`token_secret`"), "{e}");
        let c = Config::load(
            None,
            env(&[
                redis,
                secret,
                ("MEET_PUBLIC_URL", "https://meet.example.org/"),
                ("MEET_NODE_ID", "a"),
            ]),
        )
        .unwrap();
        let cluster = c.cluster().unwrap().unwrap();
        assert_eq!(cluster.node_url, "wss://meet.example.org/ws");
        assert_eq!(cluster.origin.as_deref(), Some("https://meet.example.org"));
        let c = Config::load(None, env(&[redis, secret, ("MEET_NODE_URL", "/node/b/ws")])).unwrap();
        let cluster = c.cluster().unwrap().unwrap();
        assert_eq!(cluster.node_url, "/node/b/ws");
        assert!(!cluster.node_id.is_empty(), "the host name by default");
        assert_eq!(
            Config::default().cluster().unwrap(),
            None,
            "alone by default"
        );
        let chat = [
            redis,
            secret,
            ("MEET_NODE_URL", "/ws"),
            ("MEET_MATRIX_HOMESERVER", "http://127.0.0.1:8008"),
            ("MEET_MATRIX_USER", "meet"),
            ("MEET_MATRIX_PASSWORD", "secret"),
        ];
        let c = Config::load(None, env(&chat)).unwrap();
        assert!(
            c.chat().unwrap().is_some(),
            "chat is shared between servers"
        );
    }

    #[test]
    fn public_ip_is_named_for_itself() {
        let e = Config::load(None, env(&[("MEET_PUBLIC_IP", "::1")])).unwrap_err();
        assert!(e.to_string().contains("`public_ip`"), "{e}");
        let e = Config::load(None, env(&[("MEET_MEDIA_IPS", "0.0.0.0")])).unwrap_err();
        assert!(e.to_string().contains("`media_ips`"), "{e}");
    }

    #[test]
    fn warnings_name_what_makes_the_firewall_guesswork() {
        let w = Config::default().warnings();
        assert!(w.iter().any(|w| w.contains("`media_port`")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("`workers`")), "{w:?}");
        let fixed = Config {
            media_port: 40000,
            workers: 4,
            ..Config::default()
        };
        assert_eq!(fixed.warnings(), Vec::<String>::new());
        let public = Config {
            listen: "192.0.2.1:443".parse().unwrap(),
            admin_key: "k".repeat(32),
            ..fixed.clone()
        };
        let w = public.warnings();
        assert!(w.iter().any(|w| w.contains("`metrics_listen`")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("`admin_listen`")), "{w:?}");
        let internal = Config {
            metrics_listen: Some("10.0.0.5:9464".parse().unwrap()),
            admin_listen: Some("10.0.0.5:9464".parse().unwrap()),
            ..public
        };
        assert_eq!(internal.warnings(), Vec::<String>::new());
    }

    #[test]
    fn turn_settings() {
        let url = ("MEET_TURN_URLS", r#"["turn:10.0.0.1:3478?transport=udp"]"#);
        let e = Config::load(None, env(&[url])).unwrap_err();
        assert!(e.to_string().contains("turn_secret"), "{e}");
        let secret = ("MEET_TURN_SECRET", "0123456789abcdef0123456789abcdef");
        let c = Config::load(None, env(&[url, secret])).unwrap();
        assert_eq!(c.turn_urls, ["turn:10.0.0.1:3478?transport=udp"]);
        let bad = ("MEET_TURN_URLS", r#"["stun:10.0.0.1"]"#);
        let e = Config::load(None, env(&[bad, secret])).unwrap_err();
        assert!(e.to_string().contains("turn_urls"), "{e}");
        let ttl = ("MEET_TURN_CREDENTIAL_TTL_SECS", "10");
        let e = Config::load(None, env(&[ttl])).unwrap_err();
        assert!(e.to_string().contains("turn_credential_ttl_secs"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::load(None, env(&[("MEET_PEER_TIMEOUT_SECS", "0")])).unwrap_err();
        assert!(e.to_string().contains("peer_timeout_secs"), "{e}");
        let e = Config::load(None, env(&[("MEET_MEDIA_PORT", "\"x\"")])).unwrap_err();
        assert!(e.to_string().contains("media_port"), "{e}");
        let e = Config::load(None, env(&[("MEET_DRAIN_TIMEOUT_SECS", "86401")])).unwrap_err();
        assert!(e.to_string().contains("drain_timeout_secs"), "{e}");
        let e = Config::load(None, env(&[("MEET_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(e.to_string().contains("log_format"), "{e}");
        let e =
            Config::load(None, env(&[("MEET_MATRIX_ROOM_RETENTION_DAYS", "36501")])).unwrap_err();
        assert!(e.to_string().contains("matrix_room_retention_days"), "{e}");
        for key in [
            "MEET_MATRIX_GHOST_RETENTION_DAYS",
            "MEET_MATRIX_MEETING_RETENTION_DAYS",
        ] {
            let e = Config::load(None, env(&[(key, "36501")])).unwrap_err();
            let name = key.trim_start_matches("MEET_").to_lowercase();
            assert!(e.to_string().contains(&name), "{e}");
        }
        let purge = ("MEET_MATRIX_PURGE_ROOMS", "true");
        let e = Config::load(None, env(&[purge])).unwrap_err();
        assert!(
            e.to_string().contains("`matrix_purge_rooms`")
                && e.to_string().contains("matrix_admin_token"),
            "{e}"
        );
        let token = ("MEET_MATRIX_ADMIN_TOKEN", "syt_admin");
        let keep = ("MEET_MATRIX_MEETING_RETENTION_DAYS", "0");
        let e = Config::load(None, env(&[purge, token, keep])).unwrap_err();
        assert!(e.to_string().contains("`matrix_purge_rooms`"), "{e}");
        let c = Config::load(None, env(&[purge, token])).unwrap();
        assert!(c.matrix_purge_rooms);
        assert_eq!(c.matrix_admin_token, "syt_admin", "read as a string");
        let e = Config::load(None, env(&[("MEET_NO_SUCH_KEY", "1")])).unwrap_err();
        assert!(e.to_string().contains("no_such_key"), "{e}");
    }
}
