//! The signalling protocol: JSON messages over one WebSocket per participant.
//!
//! Versioned by [`PROTOCOL_VERSION`]; the client states the version it speaks in
//! `join` and the server refuses others with `unsupported_version`. Documented in
//! `docs/signalling.md`; the fixtures at the bottom pin the wire format.
//!
//! Each participant has two peer connections, as LiveKit does: the *publisher*
//! (the client offers, the server answers) and the *subscriber* (the server
//! offers, the client answers). One offerer per connection means no glare.
//!
//! The messages are this protocol's; what they ask of the room core and
//! what its events look like here is `adapter.rs`, and `session.rs` runs
//! one client's WebSocket.

pub mod adapter;
pub mod session;

use serde::{Deserialize, Serialize};

pub use crate::access::lobby::Knock;
pub use crate::turn::IceServer;

pub use crate::room::api::{
    Kind, ParticipantInfo, Quality, Reaction, Role, Source, Target, TrackAnnouncement, TrackInfo,
};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest signalling message accepted, in bytes. An SDP offer with a handful of
/// tracks is a few KiB; anything far bigger is a mistake or an attack.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// An ICE candidate as the browser's `RTCIceCandidate.toJSON()` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        default,
        rename = "sdpMLineIndex",
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Messages from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message on a connection. `token`, from `/api/token`, signs
    /// the participant in with a Matrix identity (its name then wins);
    /// `invite`, the `invite` parameter of an invite link, admits a guest
    /// with the link's role.
    Join {
        v: u32,
        room: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invite: Option<String>,
        /// `joined.resume` of the connection that dropped: back to the
        /// seat it held, if the server still holds it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// Offer for the publisher connection, with the tracks it carries.
    PublisherOffer {
        sdp: String,
        tracks: Vec<TrackAnnouncement>,
    },
    /// Answer to a `subscriber_offer`.
    SubscriberAnswer { sdp: String },
    /// The client's network changed or its media path failed: restart ICE
    /// on the subscriber connection (a `subscriber_offer` with new
    /// credentials follows). The publisher connection restarts with a
    /// `publisher_offer` made after `restartIce()`.
    RestartIce {},
    /// A trickled ICE candidate of the client (`null` candidate ends trickling).
    Candidate {
        target: Target,
        candidate: Option<Candidate>,
    },
    /// Mute or unmute one of the client's published tracks.
    Mute { mid: String, muted: bool },
    /// How much of a received video track the client wants (for instance
    /// after its tile was resized). Unknown track ids are ignored: the track
    /// may have just gone.
    TrackSettings { track_id: String, quality: Quality },
    /// A chat message for the meeting's room.
    Chat { text: String },
    /// A host removes another participant from the meeting; with `ban`,
    /// their Matrix identity or invite link stays out while it lasts.
    Remove {
        participant_id: String,
        #[serde(default)]
        ban: bool,
    },
    /// A host mutes another participant's track (its source: also ones
    /// published later); `locked`: the participant may not unmute it.
    /// Again with `locked: false`, it lifts the lock.
    MuteParticipant {
        participant_id: String,
        track_id: String,
        #[serde(default)]
        locked: bool,
    },
    /// A host locks the meeting (nobody but hosts joins) or unlocks it.
    LockMeeting { locked: bool },
    /// A host ends the meeting for everyone.
    EndMeeting {},
    /// A host lets someone waiting in the lobby in.
    Admit { lobby_id: String },
    /// A host turns someone waiting in the lobby away.
    Deny { lobby_id: String },
    /// A host mints an invite link to this meeting, as a participant or a
    /// viewer, for `lifetime_secs` (default a day) and, if given, `uses`
    /// joins. (Host links come from the admin API only.)
    CreateInvite {
        role: Role,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime_secs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uses: Option<u64>,
    },
    /// Raise or lower one's hand.
    RaiseHand { raised: bool },
    /// A host lowers someone else's hand.
    LowerHand { participant_id: String },
    /// A reaction for everyone to see, from a fixed set.
    React { reaction: Reaction },
    /// The client leaves; the server closes the socket.
    Leave {},
}

impl ClientMessage {
    /// What only hosts may do: let people in or not, invite, mute or
    /// remove others, lower their hands, lock or end the meeting.
    pub fn is_host_action(&self) -> bool {
        matches!(
            self,
            ClientMessage::Remove { .. }
                | ClientMessage::MuteParticipant { .. }
                | ClientMessage::LockMeeting { .. }
                | ClientMessage::EndMeeting {}
                | ClientMessage::Admit { .. }
                | ClientMessage::Deny { .. }
                | ClientMessage::CreateInvite { .. }
                | ClientMessage::LowerHand { .. }
        )
    }
}

/// Why a received track is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// The client's link cannot carry even the track's lowest layer now.
    Bandwidth,
}

/// Messages from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Reply to `join`: who you are and who is already here.
    Joined {
        v: u32,
        room: String,
        participant_id: String,
        participants: Vec<ParticipantInfo>,
        /// The meeting's chat; `None` when there is none.
        #[serde(default)]
        chat: Option<ChatInfo>,
        /// Set when the participant signed in with a Matrix identity.
        #[serde(default)]
        identity: Option<IdentityInfo>,
        /// What the participant may do.
        #[serde(default)]
        role: Role,
        /// Admitted without a Matrix identity.
        #[serde(default)]
        guest: bool,
        /// TURN servers with credentials for this participant, for
        /// `RTCConfiguration.iceServers`; absent when none is configured.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// For `join.resume` after a dropped connection: this
        /// participant's secret; empty when the server holds no seats.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        resume: String,
    },
    /// Chat since the meeting started, right after `joined`.
    ChatHistory {
        events: Vec<chat::ChatEvent>,
    },
    ChatEvent {
        event: chat::ChatEvent,
    },
    /// Whether chat messages are waiting for an unreachable homeserver.
    ChatStatus {
        delayed: bool,
    },
    PublisherAnswer {
        sdp: String,
    },
    SubscriberOffer {
        sdp: String,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
        /// The participant this one is, back on a new connection: its
        /// old self (reconnecting) leaves next.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replaces: Option<String>,
    },
    /// Someone's connection dropped; their seat is held for them to come
    /// back to (`participant_joined` with `replaces`) or `participant_left`.
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
    /// A host muted the client's tracks of `source` (`track_id` one of
    /// them); `locked`: unmuting them is refused until a host allows it.
    MutedByHost {
        track_id: String,
        source: Source,
        locked: bool,
    },
    /// A participant's role changed in the meeting (a Matrix user
    /// promoted to host or demoted in the meeting's room); also sent to
    /// the participant itself, whose host controls follow it.
    RoleChanged {
        participant_id: String,
        role: Role,
    },
    /// A participant raised or lowered its hand, or a host lowered it.
    HandRaised {
        participant_id: String,
        raised: bool,
    },
    /// A participant reacted (the client that did too).
    Reacted {
        participant_id: String,
        reaction: Reaction,
    },
    /// A video track the client receives is paused (`reason`: why) or
    /// resumed; it resumes by itself.
    TrackPaused {
        participant_id: String,
        track_id: String,
        paused: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<PauseReason>,
    },
    /// Which simulcast layers of the client's own track (`mid`) anyone
    /// receives: send `rids`, pause the others.
    LayersWanted {
        track_id: String,
        mid: String,
        rids: Vec<String>,
    },
    /// Who speaks now, strongest first, and the active speaker (the last
    /// to speak clearly, `null` when nobody has yet or they left); sent to
    /// everyone when either changes, and to a newcomer.
    Speakers {
        active: Option<String>,
        speaking: Vec<String>,
    },
    /// A host locked or unlocked the meeting (also right after `joined`
    /// when it is locked).
    MeetingLocked {
        locked: bool,
    },
    /// Reply to `join` for someone who must wait for a host to let them
    /// in; `joined` or an error follows.
    LobbyWaiting {
        /// Waiting for a host to come, not for one's decision: guests may
        /// not enter this meeting before a host (absent when false).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        for_host: bool,
    },
    /// To hosts: who waits in the lobby now (also right after `joined`
    /// when someone does).
    Lobby {
        waiting: Vec<Knock>,
    },
    /// Reply to `create_invite`: the invite for `/m/ROOM?invite=INVITE`.
    InviteCreated {
        role: Role,
        invite: String,
        /// Unix seconds.
        expires_at: u64,
        /// (added) The invite's id, for an administrator to withdraw it.
        id: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// The server is shutting down: it takes no new participants, and this
    /// meeting goes on for at most `seconds_left` seconds more.
    Draining {
        seconds_left: u64,
    },
    /// (added) Reply to `join` on a server that does not hold the meeting,
    /// when several servers share them: send the same `join` to `url` (a
    /// WebSocket URL, or a path on this page's origin). The server closes
    /// the connection after it.
    Moved {
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatInfo {
    pub room_id: String,
    pub room_alias: Option<String>,
    pub delayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityInfo {
    pub user_id: String,
    pub host: bool,
}

/// Stable error codes; clients may branch on them, so never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a message this protocol knows.
    BadMessage,
    /// Larger than [`MAX_MESSAGE_BYTES`].
    TooLarge,
    UnsupportedVersion,
    /// A message that needs `join` came first, or `join` came twice.
    NotJoined,
    AlreadyJoined,
    /// A room or display name that is empty or too long.
    InvalidName,
    /// An SDP the media engine refused.
    BadSdp,
    /// The participant's media connection went silent and was dropped.
    Timeout,
    /// The server is shutting down or lost the room's worker.
    Unavailable,
    /// More messages than any client needs; the session is closed.
    RateLimited,
    /// The meeting has no chat, or it could not take the message.
    ChatUnavailable,
    /// The access token in `join` is invalid, expired or for another room.
    InvalidToken,
    /// The participant left or was removed from the meeting's Matrix room,
    /// or a host removed them; the session is closed.
    Removed,
    /// Only hosts may do that.
    NotAllowed,
    /// The meeting has `max_participants` already; the session is closed.
    RoomFull,
    /// The server is shutting down and takes no new participants; the
    /// session is closed. Another server (or this one, restarted) will.
    Draining,
    /// The meeting admits only Matrix users and holders of an invite link,
    /// and `join` carried neither.
    InviteRequired,
    /// The invite link is invalid, expired, used up or for another meeting.
    InvalidInvite,
    /// The meeting was ended for everyone; the session is closed.
    MeetingEnded,
    /// `join` while a host has locked the meeting (hosts still get in),
    /// on a server without a lobby.
    MeetingLocked,
    /// A host did not let the client in from the lobby.
    Denied,
    /// Nobody let the client in from the lobby in time.
    LobbyTimeout,
    /// Too many wait in the meeting's lobby already.
    LobbyFull,
    /// `join` from someone a host removed and banned.
    Banned,
    /// Too many joins from the client's address in the last minute.
    TooManyJoins,
    /// The server holds `max_meetings` meetings; a new one cannot start.
    TooManyMeetings,
    /// The media worker's queue is full; the request was not taken.
    Overloaded,
    /// More ICE candidates for one connection than any browser gathers;
    /// the extra ones are ignored.
    TooManyCandidates,
    /// More messages of one kind in a second than a browser sends (an
    /// SDP loop, a host's button held down); the extra ones are ignored.
    TooManyMessages,
    /// More than `max_chat_messages_per_minute` chat messages in the last
    /// minute; this one was not sent.
    TooManyChatMessages,
    /// The homeserver is away and `max_chat_outbox_per_meeting` messages
    /// of this meeting already wait for it; this one was not sent.
    ChatBacklog,
    /// An administrator withdrew the invite link in `join`.
    InviteRevoked,
    /// `max_knocks_per_address` strangers from the client's address wait
    /// in this meeting's lobby already.
    TooManyKnocks,
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_fixture() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"join","v":1,"room":"standup","name":"Alice"}"#)
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::Join {
                v: 1,
                room: "standup".into(),
                name: "Alice".into(),
                token: None,
                invite: None,
                resume: None,
            }
        );
    }

    #[test]
    fn publisher_offer_fixture() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"publisher_offer","sdp":"v=0","tracks":[{"mid":"0","source":"microphone"},{"mid":"1","source":"camera","muted":true}]}"#,
        )
        .unwrap();
        let ClientMessage::PublisherOffer { tracks, .. } = m else {
            panic!("wrong variant")
        };
        assert_eq!(tracks[0].source, Source::Microphone);
        assert!(!tracks[0].muted);
        assert!(tracks[1].muted);
    }

    #[test]
    fn restart_ice_fixture() {
        let m: ClientMessage = serde_json::from_str(r#"{"type":"restart_ice"}"#).unwrap();
        assert_eq!(m, ClientMessage::RestartIce {});
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"restart_ice"}"#
        );
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"restart_ice","target":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn candidate_fixture_uses_browser_field_names() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
        )
        .unwrap();
        let ClientMessage::Candidate {
            target,
            candidate: Some(c),
        } = m
        else {
            panic!("wrong variant")
        };
        assert_eq!(target, Target::Publisher);
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_mline_index, Some(0));
        let end: ClientMessage =
            serde_json::from_str(r#"{"type":"candidate","target":"subscriber","candidate":null}"#)
                .unwrap();
        assert!(matches!(
            end,
            ClientMessage::Candidate {
                candidate: None,
                ..
            }
        ));
    }

    #[test]
    fn track_settings_fixture() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"track_settings","track_id":"p1-1","quality":"low"}"#)
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::TrackSettings {
                track_id: "p1-1".into(),
                quality: Quality::Low
            }
        );
        assert!(serde_json::from_str::<ClientMessage>(
            r#"{"type":"track_settings","track_id":"p1-1","quality":"ultra"}"#
        )
        .is_err());
    }

    #[test]
    fn unknown_type_and_fields_are_refused() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"leave","extra":1}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>("not json").is_err());
    }

    #[test]
    fn server_fixtures() {
        let s = serde_json::to_string(&ServerMessage::TrackPublished {
            participant_id: "p1".into(),
            track: TrackInfo {
                id: "t1".into(),
                kind: Kind::Video,
                source: Source::Camera,
                muted: false,
            },
        })
        .unwrap();
        assert_eq!(
            s,
            r#"{"type":"track_published","participant_id":"p1","track":{"id":"t1","kind":"video","source":"camera","muted":false}}"#
        );
        let p = serde_json::to_string(&ServerMessage::ParticipantJoined {
            participant: ParticipantInfo {
                id: "p2".into(),
                name: "Bob".into(),
                tracks: Vec::new(),
                role: Role::Viewer,
                guest: true,
                hand_raised: false,
                reconnecting: false,
            },
            replaces: None,
        })
        .unwrap();
        assert_eq!(
            p,
            r#"{"type":"participant_joined","participant":{"id":"p2","name":"Bob","tracks":[],"role":"viewer","guest":true}}"#
        );
        let e =
            serde_json::to_string(&ServerMessage::error(ErrorCode::TooLarge, "too big")).unwrap();
        assert_eq!(
            e,
            r#"{"type":"error","code":"too_large","message":"too big"}"#
        );
        let d = serde_json::to_string(&ServerMessage::Draining { seconds_left: 600 }).unwrap();
        assert_eq!(d, r#"{"type":"draining","seconds_left":600}"#);
        let moved = serde_json::to_string(&ServerMessage::Moved {
            url: "/node/b/ws".into(),
        })
        .unwrap();
        assert_eq!(moved, r#"{"type":"moved","url":"/node/b/ws"}"#);
        let e = serde_json::to_string(&ServerMessage::error(ErrorCode::Draining, "x")).unwrap();
        assert_eq!(e, r#"{"type":"error","code":"draining","message":"x"}"#);
        let m = serde_json::to_string(&ServerMessage::MutedByHost {
            track_id: "p1-0".into(),
            source: Source::Microphone,
            locked: true,
        })
        .unwrap();
        assert_eq!(
            m,
            r#"{"type":"muted_by_host","track_id":"p1-0","source":"microphone","locked":true}"#
        );
        let l = serde_json::to_string(&ServerMessage::MeetingLocked { locked: true }).unwrap();
        assert_eq!(l, r#"{"type":"meeting_locked","locked":true}"#);
        let r = serde_json::to_string(&ServerMessage::RoleChanged {
            participant_id: "p1".into(),
            role: Role::Host,
        })
        .unwrap();
        assert_eq!(
            r,
            r#"{"type":"role_changed","participant_id":"p1","role":"host"}"#
        );
    }

    #[test]
    fn hand_and_reaction_fixtures() {
        let parse = |s: &str| serde_json::from_str::<ClientMessage>(s).unwrap();
        assert_eq!(
            parse(r#"{"type":"raise_hand","raised":true}"#),
            ClientMessage::RaiseHand { raised: true }
        );
        assert_eq!(
            parse(r#"{"type":"lower_hand","participant_id":"p2"}"#),
            ClientMessage::LowerHand {
                participant_id: "p2".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"react","reaction":"👏"}"#),
            ClientMessage::React {
                reaction: Reaction::Clap
            }
        );
        // Only the fixed set: no text rides along.
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"react","reaction":"hi"}"#).is_err()
        );
        let wire = |m: ServerMessage| serde_json::to_string(&m).unwrap();
        assert_eq!(
            wire(ServerMessage::HandRaised {
                participant_id: "p1".into(),
                raised: true
            }),
            r#"{"type":"hand_raised","participant_id":"p1","raised":true}"#
        );
        assert_eq!(
            wire(ServerMessage::Reacted {
                participant_id: "p1".into(),
                reaction: Reaction::Heart
            }),
            r#"{"type":"reacted","participant_id":"p1","reaction":"❤️"}"#
        );
        assert_eq!(
            wire(ServerMessage::Speakers {
                active: Some("p1".into()),
                speaking: vec!["p1".into(), "p3".into()]
            }),
            r#"{"type":"speakers","active":"p1","speaking":["p1","p3"]}"#
        );
        assert_eq!(
            wire(ServerMessage::TrackPaused {
                participant_id: "p1".into(),
                track_id: "p1-1".into(),
                paused: true,
                reason: Some(PauseReason::Bandwidth)
            }),
            r#"{"type":"track_paused","participant_id":"p1","track_id":"p1-1","paused":true,"reason":"bandwidth"}"#
        );
        assert_eq!(
            wire(ServerMessage::TrackPaused {
                participant_id: "p1".into(),
                track_id: "p1-1".into(),
                paused: false,
                reason: None
            }),
            r#"{"type":"track_paused","participant_id":"p1","track_id":"p1-1","paused":false}"#
        );
        assert_eq!(
            wire(ServerMessage::LayersWanted {
                track_id: "p1-1".into(),
                mid: "1".into(),
                rids: vec!["q".into(), "h".into()]
            }),
            r#"{"type":"layers_wanted","track_id":"p1-1","mid":"1","rids":["q","h"]}"#
        );
        assert_eq!(
            wire(ServerMessage::Speakers {
                active: None,
                speaking: vec![]
            }),
            r#"{"type":"speakers","active":null,"speaking":[]}"#
        );
        let raised = ParticipantInfo {
            id: "p2".into(),
            name: "Bob".into(),
            tracks: Vec::new(),
            role: Role::Participant,
            guest: false,
            hand_raised: true,
            reconnecting: false,
        };
        assert_eq!(
            serde_json::to_string(&raised).unwrap(),
            r#"{"id":"p2","name":"Bob","tracks":[],"role":"participant","guest":false,"hand_raised":true}"#
        );
    }

    #[test]
    fn host_control_fixtures() {
        let parse = |s: &str| serde_json::from_str::<ClientMessage>(s).unwrap();
        assert_eq!(
            parse(r#"{"type":"mute_participant","participant_id":"p2","track_id":"p2-0"}"#),
            ClientMessage::MuteParticipant {
                participant_id: "p2".into(),
                track_id: "p2-0".into(),
                locked: false
            }
        );
        assert_eq!(
            parse(r#"{"type":"remove","participant_id":"p2"}"#),
            ClientMessage::Remove {
                participant_id: "p2".into(),
                ban: false
            },
            "remove without ban, as before"
        );
        assert_eq!(
            parse(r#"{"type":"lock_meeting","locked":true}"#),
            ClientMessage::LockMeeting { locked: true }
        );
        assert_eq!(
            parse(r#"{"type":"end_meeting"}"#),
            ClientMessage::EndMeeting {}
        );
        assert_eq!(
            parse(r#"{"type":"create_invite","role":"viewer","uses":30}"#),
            ClientMessage::CreateInvite {
                role: Role::Viewer,
                lifetime_secs: None,
                uses: Some(30)
            }
        );
        let wire = |m: ServerMessage| serde_json::to_string(&m).unwrap();
        assert_eq!(
            wire(ServerMessage::InviteCreated {
                role: Role::Participant,
                invite: "eyJ".into(),
                expires_at: 1_800_000_000,
                id: "0123456789abcdef0123456789abcdef-1800000000".into(),
            }),
            r#"{"type":"invite_created","role":"participant","invite":"eyJ","expires_at":1800000000,"id":"0123456789abcdef0123456789abcdef-1800000000"}"#
        );
        assert_eq!(
            wire(ServerMessage::LobbyWaiting { for_host: false }),
            r#"{"type":"lobby_waiting"}"#,
            "as before"
        );
        assert_eq!(
            wire(ServerMessage::LobbyWaiting { for_host: true }),
            r#"{"type":"lobby_waiting","for_host":true}"#
        );
    }
}
