//! Server configuration: one TOML file, overridden by `MEET_<KEY>` environment
//! variables, overridden by command-line flags; validated at start with
//! errors that name the offending key. `ops/meet.toml` is the annotated sample.

mod derived;
mod load;
mod validate;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::engine::SrtpProfile;
pub use derived::ClusterSettings;

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
    /// Fit what each subscriber receives to a bandwidth estimate of its
    /// own link (transport-wide congestion control, probes, the stream
    /// allocator; `track_paused`). Off until its browser tests hold on
    /// every run: see issue [quality].
    pub bandwidth_estimation: bool,
    /// Publishers encode only the simulcast layers someone receives.
    pub dynacast: bool,
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
    /// Redis (or Valkey) shared by several servers of one deployment
    /// (`redis://host:6379/0`, `redis://:password@host/0`,
    /// `unix:///run/redis/redis.sock`, or the master its Sentinels name:
    /// `redis+sentinel://[:password@]host[:port],host[:port]/mymaster`):
    /// each meeting then lives on one of
    /// them, and a server sends clients on to it. Empty: this server
    /// runs alone.
    pub redis: String,
    /// This server's name among them; unique. Empty: the host name.
    pub node_id: String,
    /// Where clients reach this server's signalling, to be sent on to it:
    /// a path under the one public name that the proxy routes to this
    /// server (`/node/a/ws`), or a `ws://`/`wss://` URL. Empty:
    /// `public_url`'s `/ws`.
    pub node_url: String,
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
            bandwidth_estimation: false,
            dynacast: true,
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
            redis: String::new(),
            node_id: String::new(),
            node_url: String::new(),
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

/// `MEET_<KEY>` pairs as the environment gives them, for tests.
#[cfg(test)]
fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn defaults_without_file_or_env() {
        assert_eq!(Config::load(None, env(&[])).unwrap(), Config::default());
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
    fn sample_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/meet.toml");
        let c = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(c.listen, Config::default().listen);
    }
}
