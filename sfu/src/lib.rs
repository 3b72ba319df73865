//! A WebRTC selective forwarding unit. The tree follows a packet and a
//! signalling message from the edge inwards (ARCHITECTURE.md tells both
//! paths):
//!
//! - [`shell`]: the server shell: sockets, HTTP, TLS, config, signals,
//!   health and the admin API;
//! - [`signalling`]: wire protocols at the edge, each an adapter to the
//!   room core's commands and events (v1: JSON over a WebSocket);
//! - [`access`]: who may enter a meeting: tokens, invites, policies, the
//!   roster, the lobby, held seats, limits, the drain;
//! - [`cluster`]: where a meeting lives when several servers share them
//!   through Redis: the registry, meeting leases, placement;
//! - [`metrics`]: the Prometheus registry, and what each worker publishes;
//! - [`turn`]: TURN credentials for clients, and the TURN servers' probe;
//! - [`certificate`]: when a certificate ends;
//! - [`worker`]: a media worker's I/O: its thread, UDP socket, clock and
//!   channels, driving one [`room::Router`];
//! - [`room`]: the room core (sans-IO): rooms, participants, their peer
//!   connections and negotiation;
//! - [`media`]: the media path (sans-IO): up-tracks, down-tracks and the
//!   per-packet decisions between them;
//! - [`engine`]: the webrtc-rs `rtc` engine configured for an SFU, and the
//!   interceptors we add to it.

pub mod access;
pub mod certificate;
pub mod cluster;
pub mod engine;
pub mod media;
pub mod metrics;
pub mod room;
pub mod shell;
pub mod signalling;
pub mod turn;
pub mod worker;
