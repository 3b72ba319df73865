//! The server shell: binds sockets, serves HTTP (the web client, the
//! signalling WebSocket, the token exchange, metrics, health), checks who may join,
//! and starts and stops the media workers. Everything with a clock, a
//! socket or a task outside the media workers lives here.

pub mod activation;
pub mod admin;
pub mod admission;
pub mod config;
pub mod drain;
pub mod headers;
pub mod health;
pub mod invite;
pub mod limits;
pub mod lobby;
pub mod metrics;
pub mod policy;
pub mod resume;
pub mod roster;
pub mod server;
pub mod tls;
pub mod token;
pub mod turn;
pub mod web;
