//! Server configuration: one TOML file, overridden by `MEET_<KEY>` environment
//! variables, overridden by command-line flags; validated at start with
//! errors that name the offending key. `ops/meet.toml` is the annotated sample.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::access::policy::{Policies, Policy, PolicyError};
use crate::access::revocations::{RevocationError, Revocations};
pub use crate::engine::SrtpProfile;
use crate::shell::tls;
use crate::turn;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Parse(String),
    #[error("config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Environment variables `MEET_<KEY>` override the file's `<key>`.
pub const ENV_PREFIX: &str = "MEET_";

/// Longest drain: a day, so that a stop always comes.
const MAX_DRAIN_TIMEOUT_SECS: u64 = 86_400;

/// Keys whose values are lists: from the environment either TOML
/// (`["a", "b"]`) or separated by commas (`a,b`).
const LIST_KEYS: &[&str] = &[
    "media_ips",
    "srtp_profiles",
    "widget_origins",
    "turn_urls",
    "trusted_proxies",
    "allowed_hosts",
];

/// An environment variable's value as the TOML value of `key`. A value
/// that parses as TOML (a number, a boolean, an array, a table) is taken
/// as such; anything else is a string. Keys that are always strings take
/// the value as it is (a password may look like a number); list keys also
/// take a comma-separated list.
fn env_value(key: &str, value: String) -> toml::Value {
    if STRING_KEYS.contains(&key) {
        return toml::Value::String(value);
    }
    if LIST_KEYS.contains(&key) && !value.trim_start().starts_with('[') {
        let items = value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| toml::Value::String(v.to_owned()));
        return toml::Value::Array(items.collect());
    }
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or(toml::Value::String(value))
}

/// Keys whose environment values are never read as TOML.
const STRING_KEYS: &[&str] = &[
    "public_url",
    "matrix_homeserver",
    "matrix_user",
    "matrix_password",
    "matrix_store",
    "policy_store",
    "tls_certificate",
    "tls_private_key",
    "token_secret",
    "matrix_as_token",
    "matrix_as_prefix",
    "matrix_admin_token",
    "log_format",
    "admin_key",
    "turn_secret",
    "turn_ca_file",
];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP (web client, signalling, metrics) listen address.
    pub listen: SocketAddr,
    /// A separate address for `/metrics` (Prometheus). Without it,
    /// `/metrics` is served on `listen` only when that is a loopback
    /// address.
    pub metrics_listen: Option<SocketAddr>,
    /// A separate address for the admin API (`/api/admin/…`,
    /// `/api/openapi.json`); may be the same as `metrics_listen`. Without
    /// it, the admin API is served on `listen` only when that is a
    /// loopback address.
    pub admin_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key: `listen` then speaks HTTPS
    /// (and tells browsers to keep to it, HSTS). Empty: plain HTTP, for a
    /// reverse proxy in front.
    pub tls_certificate: PathBuf,
    pub tls_private_key: PathBuf,
    /// First UDP media port; worker `i` uses `media_port + i`. 0: any free port.
    pub media_port: u16,
    /// First TCP port for ICE over TCP (passive candidates, for browsers
    /// whose firewall drops UDP); worker `i` uses `ice_tcp_port + i`.
    /// 0: any free port. Absent: no ICE-TCP.
    pub ice_tcp_port: Option<u16>,
    /// Media workers (threads, each with its own port and rooms); 0: one per core.
    pub workers: usize,
    /// Addresses advertised as ICE host candidates. Empty: every
    /// non-loopback IPv4 address of the host.
    pub media_ips: Vec<IpAddr>,
    /// Address advertised in addition, for a server behind 1:1 NAT.
    pub public_ip: Option<IpAddr>,
    /// A participant whose browser sends nothing for this long is removed.
    pub peer_timeout_secs: u64,
    /// A participant whose signalling connection dropped keeps its seat
    /// this long, shown to the others as reconnecting, for its client to
    /// come back to; 0: it leaves at once.
    pub reconnect_grace_secs: u64,
    /// Least time between keyframe requests to one published track.
    pub keyframe_interval_ms: u64,
    /// Participants one meeting may have; further joins are refused,
    /// unless a seat has been idle this long (joined, nothing connected)
    /// and gives way.
    pub max_participants: usize,
    pub idle_seat_secs: u64,
    /// Signalling connections the server holds at once, and from one
    /// source address (behind a reverse proxy: the proxy's).
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Joins one source address may make in a minute.
    pub max_joins_per_address_per_minute: usize,
    /// Meetings the server holds at once.
    pub max_meetings: usize,
    /// Chat messages one participant may send in a minute.
    pub max_chat_messages_per_minute: usize,
    /// Strangers (no invite link, no Matrix identity) one address may have
    /// waiting in one meeting's lobby at once; at most 100, as many as may
    /// wait there at all.
    pub max_knocks_per_address: usize,
    /// Chat messages of one meeting that may wait for an unreachable
    /// homeserver (on disk); more are refused until it is back.
    pub max_chat_outbox_per_meeting: usize,
    /// SRTP protection profiles the DTLS handshake may settle on. The
    /// engine, as DTLS server, takes the first of the browser's list that
    /// is also here, and Chromium lists AES-CM, then AES-256-GCM, then
    /// AES-128-GCM; so by default only AES-128-GCM, the cheapest, is here.
    pub srtp_profiles: Vec<SrtpProfile>,
    /// Base URL users reach this server under, for meeting links in Matrix
    /// rooms. Empty: `http://<listen>`.
    pub public_url: String,
    /// Host names, beside `public_url`'s, that browsers reach this server
    /// under (a second name behind the same proxy). The signalling
    /// WebSocket is refused to any other name (a DNS-rebinding page);
    /// addresses, and `localhost` on a loopback or wildcard `listen`, are
    /// always taken.
    pub allowed_hosts: Vec<String>,
    /// Client-Server API URL of the homeserver that carries meeting chat.
    /// Empty: no chat.
    pub matrix_homeserver: String,
    /// The chat bot's account on that homeserver.
    pub matrix_user: String,
    pub matrix_password: String,
    /// Directory for the bot's login, sync state, room mapping and outbox.
    pub matrix_store: PathBuf,
    /// Homeservers whose users may sign in to meetings: server name to the
    /// base URL of its OpenID userinfo endpoint. Empty: the bot's own.
    pub openid_homeservers: BTreeMap<String, String>,
    /// Meetings bound to existing Matrix rooms: meeting name to room id or
    /// alias. Other meetings get a new room.
    pub matrix_rooms: BTreeMap<String, String>,
    /// `as_token` of meet's application-service registration on the
    /// homeserver: participants then write as ghost users. Empty: the bot
    /// relays ("Name: text").
    pub matrix_as_token: String,
    /// The registration's exclusive user namespace: localparts starting so.
    pub matrix_as_prefix: String,
    /// Days the messages in the rooms meet creates are kept (the room's
    /// `m.room.retention` policy, which the homeserver enforces where its
    /// own retention support is on). 0: as long as the homeserver keeps them.
    pub matrix_room_retention_days: u32,
    /// Meetings with new Matrix rooms one Matrix user may open in a day
    /// (each is a room on the homeserver that stays).
    pub max_rooms_per_user_per_day: u32,
    /// Days a ghost user may go unused before it is deactivated and erased
    /// on the homeserver and forgotten here. 0: kept.
    pub matrix_ghost_retention_days: u32,
    /// Days a meeting may go unused before meet forgets its room (the next
    /// use gets a new one). 0: kept.
    pub matrix_meeting_retention_days: u32,
    /// Also delete and purge, on the homeserver, the rooms meet created for
    /// the meetings it forgets (needs `matrix_admin_token`).
    pub matrix_purge_rooms: bool,
    /// A homeserver admin's access token, for its admin API: room purges,
    /// and erasing ghost users without `matrix_as_token`. Empty: none.
    pub matrix_admin_token: String,
    /// Secret that signs meeting access tokens and invite links. Empty: a
    /// random one per start (tokens and links then die with a restart).
    pub token_secret: String,
    /// Anyone who reaches the server may open and enter meetings with just
    /// a name. Otherwise only Matrix users (see `openid_homeservers`) and
    /// holders of an invite link get in.
    pub anonymous_join: bool,
    /// Whoever may not come in directly (no invite link, no Matrix
    /// membership, or a locked meeting) waits in the lobby for a host;
    /// false: they are turned away.
    pub lobby: bool,
    /// Guests (no Matrix identity, not a host) may enter a meeting no host
    /// is in yet; false: they wait until a host comes.
    pub guests_before_host: bool,
    /// File keeping the policies the admin API set for single meetings
    /// (created when the first is set). Empty: kept in memory only, and
    /// lost with a restart.
    pub policy_store: PathBuf,
    /// Bearer key of the admin API (`/api/admin/…`, at least 32
    /// characters). Empty: the admin API refuses every request.
    pub admin_key: String,
    /// Origins of the Matrix clients (`https://element.example.org`) that
    /// may show meetings as widgets: the only pages, beside our own, that
    /// may frame a meeting.
    pub widget_origins: Vec<String>,
    /// On SIGTERM, meetings in progress go on (new joins are refused) for
    /// at most this long before the server stops. 0: stop at once.
    pub drain_timeout_secs: u64,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// TURN servers handed to clients with short-lived credentials, for
    /// firewalls that block the media path (`turn:host:3478?transport=udp`,
    /// `turns:host:443?transport=tcp`). Empty: none.
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub turn_secret: String,
    /// How long a client's TURN credentials stay valid: longer than a
    /// meeting, as they are checked again whenever the relay is refreshed.
    pub turn_credential_ttl_secs: u64,
    /// PEM CA certificates the probe trusts for `turns:` servers besides
    /// the system's trust store (a private CA). Empty: the system's only.
    pub turn_ca_file: PathBuf,
    /// Reverse proxies (their addresses as meet sees them) whose
    /// `X-Forwarded-For` names the client, for the per-address limits.
    pub trusted_proxies: Vec<IpAddr>,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, colours on a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: None,
            admin_listen: None,
            tls_certificate: PathBuf::new(),
            tls_private_key: PathBuf::new(),
            media_port: 0,
            ice_tcp_port: None,
            workers: 0,
            media_ips: Vec::new(),
            public_ip: None,
            peer_timeout_secs: 8,
            reconnect_grace_secs: 20,
            keyframe_interval_ms: 300,
            max_participants: 50,
            idle_seat_secs: 30,
            max_connections: 5000,
            max_connections_per_address: 500,
            max_joins_per_address_per_minute: 600,
            max_meetings: 1000,
            max_chat_messages_per_minute: 60,
            max_knocks_per_address: 10,
            max_chat_outbox_per_meeting: 1000,
            srtp_profiles: vec![SrtpProfile::AeadAes128Gcm],
            public_url: String::new(),
            allowed_hosts: Vec::new(),
            matrix_homeserver: String::new(),
            matrix_user: String::new(),
            matrix_password: String::new(),
            matrix_store: PathBuf::from("meet-data/matrix"),
            openid_homeservers: BTreeMap::new(),
            matrix_rooms: BTreeMap::new(),
            matrix_as_token: String::new(),
            matrix_as_prefix: "meet_".into(),
            matrix_room_retention_days: 0,
            max_rooms_per_user_per_day: 50,
            matrix_ghost_retention_days: 30,
            matrix_meeting_retention_days: 90,
            matrix_purge_rooms: false,
            matrix_admin_token: String::new(),
            token_secret: String::new(),
            drain_timeout_secs: 600,
            log_format: LogFormat::Text,
            turn_urls: Vec::new(),
            turn_secret: String::new(),
            turn_credential_ttl_secs: 86_400,
            turn_ca_file: PathBuf::new(),
            // nginx on the same host, as the guide and its sample have it.
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            anonymous_join: false,
            lobby: true,
            guests_before_host: true,
            policy_store: PathBuf::from("meet-data/meeting-policies.json"),
            admin_key: String::new(),
            widget_origins: Vec::new(),
        }
    }
}

impl Config {
    /// Loads the file (if any), applies the environment, and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let mut from_env = Vec::new();
        for (name, value) in env {
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            table.insert(key.clone(), env_value(&key, value));
            from_env.push(key);
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let inner = e.inner().to_string();
                // An unknown key is named at the top (".") by serde.
                let key = match e.path().to_string() {
                    p if p == "." => from_env
                        .iter()
                        .find(|k| inner.contains(&format!("`{k}`")))
                        .cloned(),
                    p => Some(p),
                };
                match key {
                    Some(k) if from_env.contains(&k) => ConfigError::Parse(format!(
                        "key `{k}` (from the environment, {ENV_PREFIX}{}): {inner}",
                        k.to_ascii_uppercase()
                    )),
                    Some(k) => ConfigError::Parse(format!("key `{k}`: {inner}")),
                    None => ConfigError::Parse(inner),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

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

    /// `public_url` parsed; `None` when it is not set.
    pub fn public_url(&self) -> Result<Option<url::Url>, ConfigError> {
        if self.public_url.is_empty() {
            return Ok(None);
        }
        parse_http_url("public_url", &self.public_url).map(Some)
    }

    /// The deployment's policy, with the meetings' own from `policy_store`.
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

    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn peer_timeout(&self) -> Duration {
        Duration::from_secs(self.peer_timeout_secs)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    pub fn keyframe_interval(&self) -> Duration {
        Duration::from_millis(self.keyframe_interval_ms)
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

/// `n` days; 0: none.
fn days(n: u32) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(u64::from(n) * 86_400))
}

/// Whether `value` is a bare host name as a browser sends it in `Host`
/// (without the port): a DNS name or an address, no scheme, port or path.
fn is_host_name(value: &str) -> bool {
    !value.is_empty()
        && url::Url::parse(&format!("http://{value}/"))
            .is_ok_and(|u| u.port().is_none() && u.host_str() == Some(&value.to_ascii_lowercase()))
}

fn parse_http_url(key: &'static str, value: &str) -> Result<url::Url, ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
        Ok(_) => Err(ConfigError::Invalid {
            key,
            message: format!("`{value}` is not an http(s) URL"),
        }),
        Err(e) => Err(ConfigError::Invalid {
            key,
            message: format!("`{value}`: {e}"),
        }),
    }
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
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file_or_env() {
        assert_eq!(Config::load(None, env(&[])).unwrap(), Config::default());
    }

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
    fn the_default_is_closed() {
        let c = Config::default();
        assert!(!c.anonymous_join, "anonymous joining is opt-in");
        assert!(c.lobby, "whoever is not let in waits for a host");
        assert!(c.guests_before_host);
        assert!(c.admin_key.is_empty(), "no admin API without a key");
        let p = c.policies().unwrap().for_meeting("any");
        assert!(!p.anonymous_join && p.lobby, "{p:?}");
    }

    #[test]
    fn lists_from_the_environment_take_commas_or_toml() {
        let c = Config::load(
            None,
            env(&[
                ("MEET_MEDIA_IPS", "10.0.0.1, 10.0.0.2"),
                ("MEET_TRUSTED_PROXIES", r#"["10.0.0.9"]"#),
                ("MEET_TURN_URLS", "turn:10.0.0.1:3478?transport=udp"),
                ("MEET_TURN_SECRET", "0123456789abcdef0123456789abcdef"),
            ]),
        )
        .unwrap();
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(c.media_ips, ips);
        assert_eq!(
            c.trusted_proxies,
            vec!["10.0.0.9".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(c.turn_urls, ["turn:10.0.0.1:3478?transport=udp"]);
        let e = Config::load(None, env(&[("MEET_MEDIA_IPS", "10.0.0.1,nonsense")])).unwrap_err();
        assert!(e.to_string().contains("media_ips"), "{e}");
    }

    #[test]
    fn an_unknown_environment_variable_is_named() {
        let e = Config::load(None, env(&[("MEET_MEDIA_PROT", "40000")])).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("MEET_MEDIA_PROT") && e.contains("media_prot"),
            "{e}"
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
    fn sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/meet.toml");
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.listen, Config::default().listen);
    }

    #[test]
    fn env_overrides_file() {
        let dir = std::env::temp_dir().join(format!("meet-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "media_port = 40000\nworkers = 2\n").unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("MEET_WORKERS", "3"),
                ("MEET_PUBLIC_IP", "203.0.113.7"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.media_port, 40000);
        assert_eq!(c.workers, 3);
        assert_eq!(c.public_ip, Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn srtp_profiles_parse() {
        let c = Config::load(
            None,
            env(&[("MEET_SRTP_PROFILES", r#"["aes128_cm_hmac_sha1_80"]"#)]),
        )
        .unwrap();
        assert_eq!(c.srtp_profiles, vec![SrtpProfile::Aes128CmHmacSha1_80]);
        let e = Config::load(None, env(&[("MEET_SRTP_PROFILES", "[]")])).unwrap_err();
        assert!(e.to_string().contains("srtp_profiles"), "{e}");
        let e = Config::load(None, env(&[("MEET_SRTP_PROFILES", r#"["rot13"]"#)])).unwrap_err();
        assert!(e.to_string().contains("srtp_profiles"), "{e}");
    }

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
