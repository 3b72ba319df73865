//! Protocol v1 onto the room core and back: what a client message asks of
//! the core, and how each core event reads on the wire. The session adds
//! what the core does not know (chat, identity) to `joined`.

use rtc::peer_connection::transport::RTCIceCandidateInit;

use super::{ClientMessage, ErrorCode, PauseReason, ServerMessage, PROTOCOL_VERSION};
use crate::room::api::{Command, Event, LeaveReason, Refusal};

/// The core command a client message stands for; `None` for the messages
/// the session answers itself (`join`, `chat`, the lobby, the meeting's
/// lock and end) and for the end of a candidate trickle, which the core
/// does not need.
pub fn command(msg: ClientMessage) -> Option<Command> {
    Some(match msg {
        ClientMessage::PublisherOffer { sdp, tracks } => Command::Publish { sdp, tracks },
        ClientMessage::SubscriberAnswer { sdp } => Command::SubscriberAnswer { sdp },
        ClientMessage::RestartIce {} => Command::RestartSubscriberIce,
        ClientMessage::Candidate { target, candidate } => {
            let c = candidate?;
            Command::Candidate {
                target,
                candidate: RTCIceCandidateInit {
                    candidate: c.candidate,
                    sdp_mid: c.sdp_mid,
                    sdp_mline_index: c.sdp_mline_index,
                    username_fragment: c.username_fragment,
                    ..Default::default()
                },
            }
        }
        ClientMessage::Mute { mid, muted } => Command::Mute { mid, muted },
        ClientMessage::TrackSettings { track_id, quality } => {
            Command::SetQuality { track_id, quality }
        }
        ClientMessage::Remove { participant_id, .. } => Command::Remove { participant_id },
        ClientMessage::MuteParticipant {
            participant_id,
            track_id,
            locked,
        } => Command::HostMute {
            participant_id,
            track_id,
            locked,
        },
        ClientMessage::RaiseHand { raised } => Command::RaiseHand { raised },
        ClientMessage::LowerHand { participant_id } => Command::LowerHand { participant_id },
        ClientMessage::React { reaction } => Command::React { reaction },
        ClientMessage::Leave {} => Command::Leave,
        ClientMessage::Join { .. }
        | ClientMessage::Chat { .. }
        | ClientMessage::LockMeeting { .. }
        | ClientMessage::EndMeeting {}
        | ClientMessage::Admit { .. }
        | ClientMessage::Deny { .. }
        | ClientMessage::CreateInvite { .. } => return None,
    })
}

/// How a core event reads on the wire; `None` for a departure the client
/// needs no words for (it left, or its media connection failed: the
/// socket closing says enough).
pub fn message(event: Event) -> Option<ServerMessage> {
    Some(match event {
        Event::Joined {
            room,
            participant_id,
            participants,
        } => ServerMessage::Joined {
            v: PROTOCOL_VERSION,
            room,
            participant_id,
            participants,
            chat: None,
            identity: None,
            role: Default::default(),
            guest: false,
            ice_servers: Vec::new(),
            resume: String::new(),
        },
        Event::PublisherAnswer { sdp } => ServerMessage::PublisherAnswer { sdp },
        Event::SubscriberOffer { sdp } => ServerMessage::SubscriberOffer { sdp },
        Event::ParticipantJoined {
            participant,
            replaces,
        } => ServerMessage::ParticipantJoined {
            participant,
            replaces,
        },
        Event::ParticipantReconnecting { participant_id } => {
            ServerMessage::ParticipantReconnecting { participant_id }
        }
        Event::ParticipantLeft { participant_id } => {
            ServerMessage::ParticipantLeft { participant_id }
        }
        Event::TrackPublished {
            participant_id,
            track,
        } => ServerMessage::TrackPublished {
            participant_id,
            track,
        },
        Event::TrackUnpublished {
            participant_id,
            track_id,
        } => ServerMessage::TrackUnpublished {
            participant_id,
            track_id,
        },
        Event::TrackMuted {
            participant_id,
            track_id,
            muted,
        } => ServerMessage::TrackMuted {
            participant_id,
            track_id,
            muted,
        },
        Event::MutedByHost {
            track_id,
            source,
            locked,
        } => ServerMessage::MutedByHost {
            track_id,
            source,
            locked,
        },
        Event::RoleChanged {
            participant_id,
            role,
        } => ServerMessage::RoleChanged {
            participant_id,
            role,
        },
        Event::HandRaised {
            participant_id,
            raised,
        } => ServerMessage::HandRaised {
            participant_id,
            raised,
        },
        Event::Reacted {
            participant_id,
            reaction,
        } => ServerMessage::Reacted {
            participant_id,
            reaction,
        },
        Event::Speakers { active, speaking } => ServerMessage::Speakers { active, speaking },
        Event::LayersWanted {
            track_id,
            mid,
            rids,
        } => ServerMessage::LayersWanted {
            track_id,
            mid,
            rids,
        },
        Event::TrackPaused {
            participant_id,
            track_id,
            paused,
        } => ServerMessage::TrackPaused {
            participant_id,
            track_id,
            paused,
            reason: paused.then_some(PauseReason::Bandwidth),
        },
        Event::Refused { reason, message } => {
            let code = match reason {
                Refusal::BadSdp => ErrorCode::BadSdp,
                Refusal::NoSuchParticipant => ErrorCode::BadMessage,
                Refusal::Unavailable => ErrorCode::Unavailable,
                Refusal::NotAllowed => ErrorCode::NotAllowed,
            };
            ServerMessage::Error { code, message }
        }
        Event::Left { reason } => {
            let (code, message) = match reason {
                LeaveReason::Left | LeaveReason::MediaFailed | LeaveReason::Replaced => {
                    return None
                }
                LeaveReason::RoomFull { max } => (
                    ErrorCode::RoomFull,
                    format!("the meeting is full ({max} participants)"),
                ),
                LeaveReason::Timeout => (
                    ErrorCode::Timeout,
                    "no media from your browser for too long; you were removed".to_owned(),
                ),
                LeaveReason::Idle => (
                    ErrorCode::Timeout,
                    "nothing from your browser connected since you joined, and someone else \
                     needed your seat in this full meeting"
                        .to_owned(),
                ),
                LeaveReason::NoAnswer => (
                    ErrorCode::Timeout,
                    "your browser did not answer the server's offers; you were removed".to_owned(),
                ),
                LeaveReason::Removed => (
                    ErrorCode::Removed,
                    "a host removed you from the meeting".to_owned(),
                ),
                LeaveReason::Unavailable => (
                    ErrorCode::Unavailable,
                    "the media engine could not create a connection".to_owned(),
                ),
            };
            ServerMessage::Error { code, message }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signalling::v1::Candidate;

    #[test]
    fn client_messages_become_commands() {
        let c = command(ClientMessage::Candidate {
            target: crate::room::api::Target::Publisher,
            candidate: Some(Candidate {
                candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: Some(0),
                username_fragment: None,
            }),
        });
        let Some(Command::Candidate { candidate, .. }) = c else {
            panic!("{c:?}")
        };
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
        assert_eq!(
            command(ClientMessage::Candidate {
                target: crate::room::api::Target::Subscriber,
                candidate: None
            }),
            None
        );
        assert_eq!(command(ClientMessage::Leave {}), Some(Command::Leave));
        assert_eq!(
            command(ClientMessage::Chat { text: "hi".into() }),
            None,
            "the session's own"
        );
    }

    #[test]
    fn departures_read_as_the_errors_clients_know() {
        let code = |reason| match message(Event::Left { reason }) {
            Some(ServerMessage::Error { code, .. }) => Some(code),
            _ => None,
        };
        assert_eq!(
            code(LeaveReason::RoomFull { max: 4 }),
            Some(ErrorCode::RoomFull)
        );
        assert_eq!(code(LeaveReason::Timeout), Some(ErrorCode::Timeout));
        assert_eq!(code(LeaveReason::NoAnswer), Some(ErrorCode::Timeout));
        assert_eq!(code(LeaveReason::Idle), Some(ErrorCode::Timeout));
        assert_eq!(code(LeaveReason::Removed), Some(ErrorCode::Removed));
        assert_eq!(code(LeaveReason::Unavailable), Some(ErrorCode::Unavailable));
        assert_eq!(code(LeaveReason::Left), None);
        assert_eq!(code(LeaveReason::MediaFailed), None);
        let refused = message(Event::Refused {
            reason: Refusal::NoSuchParticipant,
            message: "x".into(),
        });
        assert!(matches!(
            refused,
            Some(ServerMessage::Error {
                code: ErrorCode::BadMessage,
                ..
            })
        ));
    }
}
