//! The server shell: binds the HTTP listener and the media sockets, starts
//! one media worker per configured core, and serves the web client, the
//! signalling WebSocket and `/metrics` until shutdown.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State, WebSocketUpgrade};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Json;
use chat::{Chat, OpenIdError, OpenIdToken, RoomUse};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;

use crate::access::admission::validate_name;
use crate::access::drain::Drain;
use crate::access::invite::invite_link;
use crate::access::invite::Invites;
use crate::access::limits::{Bounds, Limit, Limits};
use crate::access::lobby::Lobby;
use crate::access::policy::PolicyError;
use crate::access::resume::Resumes;
use crate::access::revocations::RevocationError;
use crate::access::roster::Roster;
use crate::access::token::TokenKeys;
use crate::access::Access;
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::room::{Role, RouterConfig};
use crate::shell::admin;
use crate::shell::cluster::Meetings;
use crate::shell::config::Config;
use crate::shell::headers::{self, AllowedHosts, SecurityHeaders};
use crate::shell::health;
use crate::shell::state::AppState;
use crate::shell::web;
use crate::turn::{self, Turn};
use crate::worker::udp;
use crate::worker::{self, Intake, WorkerHandle, Workers};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind UDP media port {port}: {source}")]
    MediaPort {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind ICE-TCP port {port}: {source}")]
    IceTcpPort {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("no address to advertise for media: the host has no non-loopback IPv4 address; set `media_ips` or `public_ip`")]
    NoMediaAddress,
    #[error("cannot start media worker: {0}")]
    Worker(#[source] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::shell::config::ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Revocations(#[from] RevocationError),
    #[error("cannot start the chat bridge: {0}")]
    Chat(#[from] chat::ChatError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("HTTP server failed: {0}")]
    Http(#[source] std::io::Error),
}

pub struct Server {
    listener: tokio::net::TcpListener,
    /// HTTPS on `listener`, when a certificate is configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// `/metrics` and the admin API, each on its own listener when
    /// configured (on one when both name the same address).
    internal: Vec<Internal>,
    /// What the public listener serves beside the meetings.
    public: Serves,
    state: AppState,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop_workers: watch::Sender<bool>,
}

impl Server {
    /// Binds every socket; nothing is served until [`Server::run`].
    pub async fn bind(config: &Config) -> Result<Self, ServerError> {
        Self::bind_with(config, None, Intake::default()).await
    }

    /// As [`Server::bind`], but serving on `passed` (the socket systemd
    /// passed, see [`crate::shell::activation`]) instead of binding
    /// `listen`, when there is one, and with each media worker taking
    /// requests as `intake` says (tests hold them back to fill a worker's
    /// queue).
    pub async fn bind_with(
        config: &Config,
        passed: Option<std::net::TcpListener>,
        intake: Intake,
    ) -> Result<Self, ServerError> {
        let ips = config.advertised_ips();
        if ips.is_empty() {
            return Err(ServerError::NoMediaAddress);
        }
        let policies = config.policies()?;
        let revocations = config.revocations()?;
        let tls = config.tls()?;
        let listener = match passed {
            Some(l) => tokio::net::TcpListener::from_std(l),
            None => tokio::net::TcpListener::bind(config.listen).await,
        }
        .map_err(|source| ServerError::Listen {
            addr: config.listen,
            source,
        })?;
        let listen_addr = listener.local_addr().map_err(ServerError::Http)?;
        let (internal, public) = internal_listeners(config, &listener).await?;
        let metrics = Metrics::new();
        // Every limit shown from the start, at 0.
        for limit in Limit::ALL {
            metrics.limits_hit.with_label_values(&[limit.label()]);
        }
        if let Some(expiry) = config.tls_certificate_expiry()? {
            let gauge = metrics.certificate_expiry.with_label_values(&["https"]);
            gauge.set(expiry.unix);
        }
        let (stop_workers, stop_rx) = watch::channel(false);
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        let mut tcp_ports = Vec::new();
        for i in 0..config.worker_count() {
            let port = match config.media_port {
                0 => 0,
                p => p + i as u16,
            };
            let socket =
                udp::bind(port).map_err(|source| ServerError::MediaPort { port, source })?;
            let bound = socket.local_addr().map_err(ServerError::Worker)?.port();
            let tcp = match config.ice_tcp_port {
                None => None,
                Some(first) => {
                    let port = match first {
                        0 => 0,
                        p => p + i as u16,
                    };
                    let listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                        .map_err(|source| ServerError::IceTcpPort { port, source })?;
                    Some(listener)
                }
            };
            let tcp_port = tcp
                .as_ref()
                .map(|l| l.local_addr().map(|a| a.port()))
                .transpose()
                .map_err(ServerError::Worker)?;
            tcp_ports.extend(tcp_port);
            let router_config = RouterConfig {
                candidates: worker::candidates(&ips, bound),
                tcp_candidates: tcp_port.map_or(Vec::new(), |p| worker::candidates(&ips, p)),
                peer_timeout: config.peer_timeout(),
                keyframe_interval: config.keyframe_interval(),
                bandwidth_estimation: config.bandwidth_estimation,
                dynacast: config.dynacast,
                seed: rand::random(),
                srtp_profiles: config.srtp_profiles.clone(),
                max_participants: config.max_participants,
                idle_seat: Duration::from_secs(config.idle_seat_secs),
                wallclock: rtc::shared::time::SystemInstant::now(std::time::Instant::now()),
            };
            let (handle, thread) = worker::spawn(
                i,
                socket,
                tcp,
                router_config,
                Box::new(metrics.worker(i)),
                stop_rx.clone(),
                intake.clone(),
            )
            .map_err(ServerError::Worker)?;
            workers.push(handle);
            threads.push(thread);
        }
        tracing::info!(?ips, "advertising media addresses");
        if !tcp_ports.is_empty() {
            tracing::info!(ports = ?tcp_ports, "ICE over TCP on these ports");
        }
        let turn = Turn::new(
            &config.turn_urls,
            &config.turn_secret,
            Duration::from_secs(config.turn_credential_ttl_secs),
        );
        if let Some(turn) = &turn {
            let metrics = turn::ProbeMetrics {
                reachable: metrics.turn_reachable.clone(),
                certificate_expiry: metrics.certificate_expiry.clone(),
            };
            let trust = Arc::new(config.turn_trust()?);
            tokio::spawn(turn::probe(turn.clone(), trust, metrics, stop_rx.clone()));
        }
        let cluster = match config.cluster()? {
            Some(c) => {
                let cluster = Cluster::new(
                    &c.redis,
                    c.node_id,
                    c.node_url,
                    c.origin,
                    metrics.cluster.clone(),
                )?;
                tracing::info!(
                    node = cluster.id(),
                    "sharing meetings with other servers through Redis"
                );
                Some(cluster)
            }
            None => None,
        };
        // Where servers share meetings, their chat bridges share the
        // meetings' rooms and the bot's duties through the cluster.
        let chat = match config.chat()? {
            Some(c) => {
                let share = cluster
                    .clone()
                    .map(|c| Arc::new(c) as Arc<dyn chat::ChatShare>);
                Some(Chat::start(c, share).await?)
            }
            None => None,
        };
        let tokens = TokenKeys::new(&config.token_secret);
        Ok(Self {
            listener,
            tls: tls.clone(),
            internal,
            public,
            state: AppState {
                workers: Workers::new(workers),
                access: Access {
                    metrics,
                    chat,
                    cluster: cluster.clone(),
                    invites: Invites::new(tokens.clone(), revocations),
                    tokens,
                    policies,
                    roster: Roster::default(),
                    lobby: Lobby::default(),
                    resumes: Resumes::new(Duration::from_secs(config.reconnect_grace_secs)),
                    drain: Drain::default(),
                    turn,
                    limits: Limits::new(
                        Bounds {
                            connections: config.max_connections,
                            connections_per_address: config.max_connections_per_address,
                            joins_per_address_per_minute: config.max_joins_per_address_per_minute,
                            meetings: config.max_meetings,
                            chat_messages_per_minute: config.max_chat_messages_per_minute,
                            knocks_per_address: config.max_knocks_per_address,
                        },
                        &config.trusted_proxies,
                    ),
                },
                admin_key: (!config.admin_key.is_empty()).then(|| config.admin_key.as_str().into()),
                allowed_hosts: AllowedHosts::new(
                    config.public_url()?.as_ref(),
                    &config.allowed_hosts,
                    listen_addr,
                ),
                public_url: config.public_url()?,
                scheme: if tls.is_some() { "https" } else { "http" },
                headers: SecurityHeaders::new(
                    &config.widget_origins,
                    tls.is_some(),
                    cluster.clone(),
                ),
                page: web::meeting_page(&config.widget_origins).into(),
            },
            threads,
            stop_workers,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// `https` when the listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        self.state.scheme
    }

    /// Where `/metrics` is served when not on [`Server::http_addr`].
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.internal_addr(|s| s.metrics)
    }

    /// Where the admin API is served when not on [`Server::http_addr`].
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.internal_addr(|s| s.admin)
    }

    fn internal_addr(&self, serves: impl Fn(Serves) -> bool) -> Option<SocketAddr> {
        let l = self.internal.iter().find(|l| serves(l.serves))?;
        Some(
            l.listener
                .local_addr()
                .expect("a bound listener has an address"),
        )
    }

    /// The chat bridge, if chat is configured (tests apply its retention
    /// at a time of their choosing).
    pub fn chat(&self) -> Option<chat::Chat> {
        self.state.access.chat.clone()
    }

    pub fn media_ports(&self) -> Vec<u16> {
        self.state
            .workers
            .all()
            .iter()
            .map(WorkerHandle::port)
            .collect()
    }

    /// The drain state, for what decides when to stop.
    pub fn drain(&self) -> Drain {
        self.state.access.drain.clone()
    }

    /// A link to a new meeting that admits its holder as host, for a day:
    /// how the first meeting of a closed deployment is opened.
    pub fn host_link(&self) -> String {
        let room = random_room();
        let minted = self
            .state
            .access
            .invites
            .mint(&room, Role::Host, 24 * 3600, None);
        let base = self.state.public_url.clone().unwrap_or_else(|| {
            url::Url::parse(&format!("{}://{}/", self.state.scheme, self.http_addr()))
                .expect("a valid URL")
        });
        invite_link(base, &room, &minted.invite)
    }

    /// The media port of the worker a meeting lives on.
    pub fn media_port_for(&self, room: &str) -> u16 {
        self.state.workers.for_room(room).port()
    }

    /// Serves until `shutdown` completes, then stops the workers.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let chat = self.state.access.chat.clone();
        let cluster = self.state.access.cluster.clone().map(|c| {
            let meetings = Arc::new(Meetings(self.state.access.clone()));
            tokio::spawn(c.run(meetings, self.stop_workers.subscribe()))
        });
        let internal: Vec<_> = self
            .internal
            .into_iter()
            .map(|Internal { listener, serves }| {
                let app = routes(&self.state, serves).with_state(self.state.clone());
                let mut stop = self.stop_workers.subscribe();
                tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop.wait_for(|s| *s).await;
                        })
                        .await
                })
            })
            .collect();
        let app = app(self.state, self.public);
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let result = match self.tls {
            None => axum::serve(self.listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ServerError::Http),
            Some(tls) => serve_tls(self.listener, tls, app, shutdown).await,
        };
        if let Some(chat) = chat {
            chat.shutdown();
        }
        let _ = self.stop_workers.send(true);
        if let Some(cluster) = cluster {
            // Its leases let go and its record taken away, so that clients
            // find another server at once.
            let _ = cluster.await;
        }
        for server in internal {
            let _ = server.await;
        }
        for t in self.threads {
            let _ = t.join();
        }
        result
    }
}

/// What a listener serves beside (or instead of) the meetings.
#[derive(Debug, Clone, Copy, Default)]
struct Serves {
    metrics: bool,
    /// The admin API and its OpenAPI document.
    admin: bool,
}

/// A listener for `/metrics` or the admin API, apart from the public one.
struct Internal {
    listener: tokio::net::TcpListener,
    serves: Serves,
}

/// Binds `metrics_listen` and `admin_listen` (one listener when they name
/// the same address), and says what the public listener serves of them:
/// each only when it has no address of its own and the public listener
/// is on loopback, so that a server facing users itself (built-in HTTPS,
/// or `listen` on a public address) publishes neither. Behind a reverse
/// proxy on the same host, the proxy keeps them in (the nginx sample
/// denies both).
async fn internal_listeners(
    config: &Config,
    public: &tokio::net::TcpListener,
) -> Result<(Vec<Internal>, Serves), ServerError> {
    let mut internal: Vec<Internal> = Vec::new();
    // One listener for both when they name one address (port 0 never
    // names one).
    let together = config.metrics_listen == config.admin_listen
        && config.admin_listen.is_some_and(|a| a.port() != 0);
    let wanted = [
        (
            config.metrics_listen,
            Serves {
                metrics: true,
                admin: together,
            },
        ),
        (
            config.admin_listen.filter(|_| !together),
            Serves {
                metrics: false,
                admin: true,
            },
        ),
    ];
    for (addr, serves) in wanted {
        let Some(addr) = addr else { continue };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        internal.push(Internal { listener, serves });
    }
    let loopback = public.local_addr().is_ok_and(|a| a.ip().is_loopback());
    let public = Serves {
        metrics: loopback && config.metrics_listen.is_none(),
        admin: loopback && config.admin_listen.is_none(),
    };
    // `Config::warnings` (logged at start) judged `listen`; a socket
    // systemd passed instead may face users where `listen` did not.
    if !loopback && config.listen.ip().is_loopback() {
        if config.metrics_listen.is_none() {
            tracing::warn!("`/metrics` is served nowhere: the passed socket is not a loopback address and `metrics_listen` is not set");
        }
        if config.admin_listen.is_none() && !config.admin_key.is_empty() {
            tracing::warn!("the admin API is served nowhere: the passed socket is not a loopback address and `admin_listen` is not set");
        }
    }
    Ok((internal, public))
}

/// `/metrics` and the admin API, as far as `serves` says.
fn routes(state: &AppState, serves: Serves) -> axum::Router<AppState> {
    let mut router = axum::Router::new();
    if serves.metrics {
        router = router.route("/metrics", get(metrics));
    }
    if serves.admin {
        let (admin, openapi) = admin::router(state.clone());
        let openapi = Arc::new(openapi);
        router = router.merge(admin).route(
            "/api/openapi.json",
            get(move || async move { Json(openapi.as_ref().clone()) }),
        );
    }
    router
}

/// The public listener's routes: the meetings, and `/metrics` and the
/// admin API where [`internal_listeners`] puts them here.
fn app(state: AppState, serves: Serves) -> axum::Router {
    axum::Router::new()
        .merge(routes(&state, serves))
        .route(
            "/",
            get(|| async { Redirect::to(&format!("/m/{}", random_room())) }),
        )
        .route("/m/{room}", get(meeting_page))
        .route("/static/{file}", get(static_file))
        .route("/ws", get(websocket))
        .route(
            "/api/token",
            post(token).layer(DefaultBodyLimit::max(TOKEN_REQUEST_BYTES)),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/healthz/chat", get(health::chat))
        .layer(axum::middleware::from_fn_with_state(
            state.headers.clone(),
            headers::add,
        ))
        .with_state(state)
}

/// [`axum::serve`] over TLS: each handshake in a task of its own, so a
/// slow one holds up nobody else. Upgraded connections (the signalling
/// WebSockets) are not waited for, as with plain HTTP; other requests
/// still open get a few seconds.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: axum::extract::connect_info::IntoMakeServiceWithConnectInfo<axum::Router, SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let listener = listener.into_std().map_err(ServerError::Http)?;
    let handle = axum_server::Handle::new();
    let stop = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    axum_server::tls_rustls::from_tcp_rustls(listener, config)
        .map_err(ServerError::Http)?
        .handle(handle)
        .serve(app)
        .await
        .map_err(ServerError::Http)
}

/// A room name nobody will guess, for "start a meeting".
fn random_room() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    (0..10)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn meeting_page(State(state): State<AppState>, Path(_room): Path<String>) -> Response {
    // The page reads the room from its own URL; one document serves all.
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        state.page.to_string(),
    )
        .into_response()
}

async fn static_file(Path(file): Path<String>) -> Response {
    match web::asset(&file) {
        Some((body, content_type)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request_headers: axum::http::HeaderMap,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> Response {
    let host = headers::request_host(&request_headers, &uri);
    if !host.is_some_and(|h| state.allowed_hosts.allows(h)) {
        let m = "this server is not reached under that name; set `public_url` or `allowed_hosts`";
        return refuse_websocket(&state, "host", m);
    }
    let public_origin = state
        .public_url
        .as_ref()
        .map(|u| u.origin().ascii_serialization());
    // A page of another server of the cluster, whose client was sent here.
    let cluster_page = || {
        let origin = request_headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        let cluster = state.access.cluster.as_ref();
        origin.zip(cluster).is_some_and(|(o, c)| c.knows_origin(o))
    };
    if !headers::same_origin(&request_headers, host, public_origin.as_deref()) && !cluster_page() {
        let m = "this page's origin may not open meetings here";
        return refuse_websocket(&state, "origin", m);
    }
    let forwarded_for = request_headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let ip = state.access.limits.client(peer.ip(), forwarded_for);
    let connection = match state.access.limits.connect(ip) {
        Ok(c) => c,
        Err(limit) => {
            state
                .access
                .metrics
                .limits_hit
                .with_label_values(&[limit.label()])
                .inc();
            let body = json!({ "error": limit.label(), "message": limit.to_string() });
            return (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
        }
    };
    // Frames past this are cut off by the WebSocket layer (the connection
    // closes); messages between the protocol limit and this get an error
    // reply and the session goes on.
    ws.max_message_size(16 * crate::signalling::v1::MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            crate::signalling::v1::session::run(socket, state.access, state.workers, connection, ip)
        })
}

/// A WebSocket upgrade refused before it reached a session (403, counted
/// by `reason`): `{error: "<reason>_not_allowed", message}`.
fn refuse_websocket(state: &AppState, reason: &str, message: &str) -> Response {
    state
        .access
        .metrics
        .websocket_refused
        .with_label_values(&[reason])
        .inc();
    let body = json!({ "error": format!("{reason}_not_allowed"), "message": message });
    (StatusCode::FORBIDDEN, Json(body)).into_response()
}

/// An OpenID token and a room name fit in far less.
const TOKEN_REQUEST_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    room: String,
    openid_token: OpenIdToken,
}

/// Exchanges a Matrix OpenID token for a meeting access token, as Element
/// Call's token service does, but only for members of the meeting's room.
async fn token(
    State(state): State<AppState>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Response {
    let error = |status: StatusCode, code: &str, message: String| {
        (status, Json(json!({ "error": code, "message": message }))).into_response()
    };
    let request = match body {
        Ok(Json(r)) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    };
    let room = match validate_name("room", &request.room) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, "bad_request", m),
    };
    let Some(chat) = &state.access.chat else {
        let m = "this server has no Matrix homeserver configured".to_owned();
        return error(StatusCode::SERVICE_UNAVAILABLE, "chat_unavailable", m);
    };
    // A Matrix user may open a meeting (its room is made with them as
    // its moderator), but not claim one that is under way here without a
    // room: that one's people came in some other way.
    let running = state.access.roster.members(room).is_some();
    let room_use = if running {
        RoomUse::ExistingOnly
    } else {
        RoomUse::MayCreate
    };
    match chat.verify(room, &request.openid_token, room_use).await {
        Ok(id) => {
            let token = state
                .access
                .tokens
                .issue(&id.user_id, &id.name, room, id.host);
            Json(json!({
                "token": token, "user_id": id.user_id, "name": id.name, "host": id.host,
                "room_id": id.room_id,
            }))
            .into_response()
        }
        Err(e) => {
            if let OpenIdError::TooManyRooms(_) = e {
                let limit = Limit::RoomsPerUser.label();
                state
                    .access
                    .metrics
                    .limits_hit
                    .with_label_values(&[limit])
                    .inc();
            }
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, e.code(), e.to_string())
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.access.metrics;
    if let Some(chat) = &state.access.chat {
        metrics.chat(chat.stats());
    }
    metrics.workers_up(state.workers.all().iter().map(WorkerHandle::is_running));
    metrics.drain(state.access.drain.deadline());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.encode(),
    )
        .into_response()
}
