//! A load generator of real WebRTC peers for the SFU: publishers send Opus
//! and VP8 through the SFU's own signalling and media path, subscribers
//! measure latency, loss, jitter, freezes and join time.

pub mod janus;
pub mod media;
pub mod peer;
pub mod plot;
pub mod progress;
pub mod scenario;
pub mod server;
pub mod shaper;
pub mod signal;
pub mod stats;
