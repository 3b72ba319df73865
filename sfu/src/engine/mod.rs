//! The webrtc-rs `rtc` engine as this SFU uses it: peer connections built
//! for an ICE-lite server (`peer.rs`) and browser-like ones for tests and
//! the load generator (`client.rs`), and the interceptors we add to the
//! engine's packet path: retransmissions on RTX streams turned back into
//! the packets they carry (`rtx.rs`), our NACK generator (`nack.rs`) and
//! the relay of subscribers' feedback to the room core (`feedback.rs`).

pub mod client;
pub mod feedback;
pub mod nack;
pub mod peer;
pub mod rtx;
