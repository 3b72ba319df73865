//! The server shell: binds sockets, serves HTTP (the web client, the
//! signalling WebSocket, the token exchange, the admin API, metrics,
//! health), and starts and stops the media workers. Everything with a
//! socket, a signal or a task outside the media workers lives here; who
//! may enter is decided in `access`.

pub mod activation;
pub mod admin;
pub mod cluster;
pub mod config;
pub mod headers;
pub mod health;
pub mod server;
pub mod signals;
pub mod state;
pub mod tls;
pub mod web;
