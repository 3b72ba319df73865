//! A WebRTC selective forwarding unit: the media routing core, its I/O shell
//! and the HTTP server around them. See ARCHITECTURE.md for the path of a
//! packet through these modules.

pub mod config;
pub mod demux;
pub mod feedback;
pub mod forwarder;
pub mod keyframe;
pub mod metrics;
pub mod peer;
pub mod router;
pub mod server;
pub mod session;
pub mod signalling;
pub mod simulcast;
pub mod token;
pub mod udp;
pub mod web;
pub mod worker;
