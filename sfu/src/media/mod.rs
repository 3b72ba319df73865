//! The media path (sans-IO): what happens to an RTP packet between the
//! publisher's engine and each subscriber's. A published track is an
//! [`up_track::UpTrack`] (its simulcast layers, each with a buffer of what
//! arrived); each subscription to it is a [`down_track::DownTrack`] (which
//! layer it forwards, the rewriting that keeps its stream continuous, and
//! what it sent, for retransmissions). Decisions and rewriting only: the
//! room core owns the connections the packets go through.

pub mod allocator;
pub mod audio_level;
pub mod bitrate;
pub mod buffer;
pub mod clock;
pub mod down_track;
pub mod dynacast;
pub mod estimator;
pub mod forwarder;
pub mod keyframe;
pub mod link;
pub mod pacer;
pub mod sent;
pub mod sequencer;
pub mod simulcast;
pub mod temporal;
pub mod up_track;
pub mod vp8;

use serde::{Deserialize, Serialize};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Audio,
    Video,
}

/// What a published track carries, as its publisher declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Camera,
    Microphone,
    ScreenShare,
    ScreenShareAudio,
}

/// A simulcast layer a subscriber asks for. It is sent the best layer at
/// or below it that the publisher is sending at the moment.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Low,
    Medium,
    #[default]
    High,
}

/// Counters of the media path. Plain integers: a worker is single
/// threaded, and its shell publishes them a few times a second.
#[derive(Debug, Default, Clone)]
pub struct MediaStats {
    pub rtp_packets_in: u64,
    pub rtp_bytes_in: u64,
    pub rtp_packets_out: u64,
    pub rtp_bytes_out: u64,
    /// Packets that arrived a second time and were not forwarded again.
    pub duplicates: u64,
    /// Subscriptions moved from one simulcast layer to another.
    pub layer_switches: u64,
    /// Packets sent again for subscribers' NACKs, and NACKed packets that
    /// could not be (no longer kept, never sent, asked for again too soon).
    pub retransmissions: u64,
    pub nacks_unanswered: u64,
    /// Subscriptions paused because the subscriber's link could not carry
    /// even their lowest layer.
    pub pauses: u64,
    /// Publishers told to send other simulcast layers (dynacast).
    pub layer_updates: u64,
}
