//! What the room core takes and gives: [`Command`]s from a participant's
//! session in, [`Event`]s for it out, and the vocabulary both use. No wire
//! protocol appears here; each protocol's adapter (`crate::signalling`)
//! maps its own messages onto these.
//!
//! The plain data types derive serde because protocol v1 carries them as
//! they are (its fixture tests pin the names); another protocol maps them
//! to its own shapes instead.

use rtc::peer_connection::transport::RTCIceCandidateInit;
use serde::{Deserialize, Serialize};

pub use crate::media::{Kind, Quality, Source};

/// Which of a participant's two peer connections something is about: the
/// *publisher* carries its own tracks (the client offers), the
/// *subscriber* everyone else's (the server offers). One offerer per
/// connection means no glare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Publisher,
    Subscriber,
}

/// A track a client announces with its publisher offer, keyed by the
/// transceiver's `mid` in that offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackAnnouncement {
    pub mid: String,
    pub source: Source,
    #[serde(default)]
    pub muted: bool,
}

/// A published track as other participants see it. `id` is the id of the
/// `MediaStreamTrack` the subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub id: String,
    pub kind: Kind,
    pub source: Source,
    pub muted: bool,
}

/// What a participant may do in its room. The shell decides it at the
/// door (from a Matrix identity, an invite link or the deployment's
/// policy); the core enforces what concerns media.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Moderates: mutes and removes others, locks and ends the meeting.
    Host,
    /// Publishes and receives.
    #[default]
    Participant,
    /// Receives only; its publisher offers are refused.
    Viewer,
}

impl Role {
    pub fn may_publish(self) -> bool {
        self != Role::Viewer
    }

    pub fn may_moderate(self) -> bool {
        self == Role::Host
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub id: String,
    pub name: String,
    pub tracks: Vec<TrackInfo>,
    #[serde(default)]
    pub role: Role,
    /// Not identified by a Matrix sign-in: the name is the participant's
    /// own word, and everyone is shown so.
    #[serde(default)]
    pub guest: bool,
    /// Raised a hand that nobody has lowered yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hand_raised: bool,
    /// Its connection dropped; its seat is held for it to come back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconnecting: bool,
}

/// The reactions a participant may send to the meeting: a fixed set, as in
/// Teams and Jitsi, so that no text slips past the chat's moderation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reaction {
    #[serde(rename = "👍")]
    ThumbsUp,
    #[serde(rename = "👏")]
    Clap,
    #[serde(rename = "❤️")]
    Heart,
    #[serde(rename = "😂")]
    Laugh,
    #[serde(rename = "😮")]
    Surprised,
    #[serde(rename = "🎉")]
    Celebrate,
}

/// What a participant's session asks of the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Enter `room`; answered by [`Event::Joined`] or [`Event::Left`].
    /// `replaces`: the participant this one is, come back after its
    /// connection dropped; its old self leaves as this one joins.
    Join {
        room: String,
        name: String,
        role: Role,
        guest: bool,
        replaces: Option<String>,
    },
    /// An offer for the publisher connection, with the tracks it carries;
    /// tracks no longer announced are unpublished.
    Publish {
        sdp: String,
        tracks: Vec<TrackAnnouncement>,
    },
    /// The answer to the last [`Event::SubscriberOffer`].
    SubscriberAnswer { sdp: String },
    /// Restart ICE on the subscriber connection (the client's network
    /// changed or its media path failed): the next
    /// [`Event::SubscriberOffer`] carries new credentials. The publisher
    /// connection restarts with the client's own offer.
    RestartSubscriberIce,
    /// A trickled ICE candidate of the client.
    Candidate {
        target: Target,
        candidate: RTCIceCandidateInit,
    },
    /// Mute state of one of the participant's own tracks.
    Mute { mid: String, muted: bool },
    /// Which simulcast layer the participant wants of a track it receives.
    SetQuality { track_id: String, quality: Quality },
    /// Remove another participant of the same room (the session checked
    /// that this one may).
    Remove { participant_id: String },
    /// A host mutes another participant's track: the core stops
    /// forwarding that participant's tracks of its source (also ones it
    /// publishes later) until the participant unmutes, which `locked`
    /// forbids. Sent again with `locked: false`, it lifts the lock.
    HostMute {
        participant_id: String,
        track_id: String,
        locked: bool,
    },
    /// Raise or lower one's own hand.
    RaiseHand { raised: bool },
    /// A host lowers someone else's raised hand (the session checked that
    /// this one may).
    LowerHand { participant_id: String },
    /// A reaction, shown to everyone for a moment; nothing is kept.
    React { reaction: Reaction },
    /// The participant's rights changed while it is in the room (a Matrix
    /// user promoted or demoted in the meeting's room). Between hosts and
    /// participants only: a viewer has no publisher to grow into.
    SetRole { role: Role },
    /// The participant's connection to its client dropped; the shell
    /// holds its seat for a while. The others are told, and its media
    /// going silent does not remove it meanwhile.
    Reconnecting,
    /// The participant leaves, or its session ended.
    Leave,
}

/// Why the core refused a command; the participant stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The media engine refused an offer or answer, or an offer publishes
    /// more than the core allows.
    BadSdp,
    /// The command names a participant that is not in this room.
    NoSuchParticipant,
    /// The media engine could not make a connection for it.
    Unavailable,
    /// The participant's role does not allow it (a viewer publishing, a
    /// participant muting others), or a host locked what it asks to change.
    NotAllowed,
}

/// Why a participant is no longer in its room. [`Event::Left`] is the last
/// event a participant gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// It asked to (or its session ended).
    Left,
    /// The room has `max` participants already.
    RoomFull { max: usize },
    /// Nothing of its connected in its first minutes, and someone else
    /// needed its seat in a full room.
    Idle,
    /// Its media connection went silent.
    Timeout,
    /// Its browser answered none of the offers for its subscriber
    /// connection.
    NoAnswer,
    /// ICE or DTLS failed.
    MediaFailed,
    /// A host removed it.
    Removed,
    /// It came back on a new connection, which took its place.
    Replaced,
    /// The core could not serve it (the engine failed to build a
    /// connection).
    Unavailable,
}

/// What the core tells a participant's session.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// In the room; who else is.
    Joined {
        room: String,
        participant_id: String,
        participants: Vec<ParticipantInfo>,
    },
    PublisherAnswer {
        sdp: String,
    },
    SubscriberOffer {
        sdp: String,
    },
    /// Someone joined; `replaces`: the participant it took the place of,
    /// come back after its connection dropped (which leaves next).
    ParticipantJoined {
        participant: ParticipantInfo,
        replaces: Option<String>,
    },
    /// Someone's connection dropped; their seat is held for them.
    ParticipantReconnecting {
        participant_id: String,
    },
    ParticipantLeft {
        participant_id: String,
    },
    TrackPublished {
        participant_id: String,
        track: TrackInfo,
    },
    TrackUnpublished {
        participant_id: String,
        track_id: String,
    },
    TrackMuted {
        participant_id: String,
        track_id: String,
        muted: bool,
    },
    /// A host muted this participant's tracks of `source` (the one named
    /// `track_id` among them); `locked`: it may not unmute them now.
    MutedByHost {
        track_id: String,
        source: Source,
        locked: bool,
    },
    /// A participant's role changed; everyone in the room is told, the
    /// participant too.
    RoleChanged {
        participant_id: String,
        role: Role,
    },
    /// A participant raised or lowered its hand (or a host lowered it).
    HandRaised {
        participant_id: String,
        raised: bool,
    },
    /// A participant reacted; everyone is told, the participant too.
    Reacted {
        participant_id: String,
        reaction: Reaction,
    },
    /// A video track this participant receives was paused (its link
    /// cannot carry even the lowest layer now) or resumed.
    TrackPaused {
        participant_id: String,
        track_id: String,
        paused: bool,
    },
    /// Which simulcast layers of this participant's track (`mid` on its
    /// publisher connection) anyone receives: it should send `rids` and
    /// pause its other layers (dynacast).
    LayersWanted {
        track_id: String,
        mid: String,
        rids: Vec<String>,
    },
    /// Who speaks in the room now (strongest first), and the active
    /// speaker: the last one to speak clearly, while still here.
    Speakers {
        active: Option<String>,
        speaking: Vec<String>,
    },
    Refused {
        reason: Refusal,
        message: String,
    },
    /// Out of the room: the last event.
    Left {
        reason: LeaveReason,
    },
}
