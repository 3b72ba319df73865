//! Getting in: a valid `join`, admitted (or back to a held seat), past
//! the limits and the lobby, handed to its room's worker and seated.

use tokio::sync::{mpsc, oneshot, watch};

use super::guards::admission_limits;
use super::lobby::wait_in_lobby;
use super::rejoin::Vacate;
use super::{Incoming, Session, JOIN_TIMEOUT};
use crate::access::admission::{self, Admitted, Refused};
use crate::access::drain::InMeeting;
use crate::access::invite;
use crate::access::limits::Limit;
use crate::access::resume::Live;
use crate::access::resume::Seated;
use crate::access::roster::{self, Ended, Member, Seat, Shut};
use crate::access::token::Claims;
use crate::access::Access;
use crate::cluster::{Cluster, Route, SharedSeat};
use crate::room::api::{Event, Role};
use crate::signalling::v1::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use crate::worker::{Request, SendError, WorkerHandle};
use chat::MeetingChat;

/// A participant handed to its room's worker.
pub(super) struct Joined {
    /// Listed in the roster while the session lasts.
    pub(super) _seat: Seat,
    /// Fires when an administrator or a host ends the session.
    pub(super) ended: oneshot::Receiver<Ended>,
    /// Whether a host locked the meeting.
    pub(super) locked: watch::Receiver<bool>,
    pub(super) participant_id: String,
    pub(super) worker: WorkerHandle,
    pub(super) events: mpsc::UnboundedReceiver<Event>,
    pub(super) room: String,
    pub(super) name: String,
    /// Set for a participant signed in with a Matrix identity.
    pub(super) identity: Option<Claims>,
    pub(super) role: Role,
    pub(super) guest: bool,
    /// Neither a Matrix identity nor an invite link.
    pub(super) anonymous: bool,
    /// What keeps it out if a host bans it (`roster::ban_keys`).
    pub(super) ban_keys: Vec<String>,
    /// Its use of a counted invite link, counted once the core seats it.
    pub(super) invite_use: Option<invite::Use>,
    pub(super) chat: Option<MeetingChat>,
    /// The secret its client comes back to its seat with (`rejoin.rs`).
    pub(super) resume: String,
    /// Its seat under that secret while the session is up.
    pub(super) live: Option<Live>,
    /// The same seat kept in Redis for the meeting's next server, where
    /// several servers share meetings.
    pub(super) shared_seat: Option<SharedSeat>,
    /// The core has it in the room (`joined` went out).
    pub(super) in_core: bool,
}

/// Waits for a valid `join` and hands the participant to its room's worker;
/// the participant counts as in a meeting (for a drain to wait for) until
/// the returned guard is dropped.
pub(super) async fn join(session: &mut Session) -> Option<(Joined, InMeeting)> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, session.next())
            .await
            .ok()?;
        let (v, room, name, token, invite, resume) = match super::parse(frame) {
            Incoming::Message(ClientMessage::Join {
                v,
                room,
                name,
                token,
                invite,
                resume,
            }) => (v, room, name, token, invite, resume),
            Incoming::Message(_) => {
                session
                    .send(&ServerMessage::error(
                        ErrorCode::NotJoined,
                        "send join first",
                    ))
                    .await;
                continue;
            }
            Incoming::Bad(code, message) => {
                session.send(&ServerMessage::error(code, message)).await;
                continue;
            }
            Incoming::Skip => continue,
            Incoming::Closed | Incoming::GoingAway => return None,
        };
        if v != PROTOCOL_VERSION {
            let msg = format!("this server speaks protocol version {PROTOCOL_VERSION}, not {v}");
            session
                .send(&ServerMessage::error(ErrorCode::UnsupportedVersion, msg))
                .await;
            continue;
        }
        // Several servers: a meeting lives on one of them. (A name that is
        // no room's is refused by the admission below.)
        let valid = admission::validate_name("room", &room);
        let running = session.access.roster.is_running(room.trim());
        let mut locked_elsewhere = false;
        if let (Some(cluster), Ok(room)) = (&session.access.cluster, valid) {
            let draining = session.access.drain.is_draining();
            match cluster.route(room, draining, running).await {
                Ok(Route::Here { locked }) => locked_elsewhere = locked,
                Ok(Route::There { url, .. }) => {
                    session.send(&ServerMessage::Moved { url }).await;
                    session.close("moved").await;
                    return None;
                }
                Err(unavailable) => {
                    let msg = unavailable.to_string();
                    session
                        .send(&ServerMessage::error(ErrorCode::Unavailable, msg))
                        .await;
                    continue;
                }
            }
        }
        // While draining, meetings under way still take joins and rejoins.
        let in_meeting = match session.access.drain.enter(running) {
            Ok(guard) => guard,
            Err(refused) => {
                session
                    .send(&ServerMessage::error(
                        ErrorCode::Draining,
                        refused.to_string(),
                    ))
                    .await;
                session.close("draining").await;
                return None;
            }
        };
        // Back after a dropped connection, to the seat held for it; else
        // let in as anyone is.
        let seated = match resume.as_deref() {
            Some(secret) => claim(&session.access, secret, room.trim()).await,
            None => None,
        };
        let readmitted = seated.is_some();
        let (admitted, vacate) = match seated {
            Some((seated, here)) => {
                let worker = session.workers.for_room(&seated.room).clone();
                let vacate = here.then(|| Vacate::new(seated.participant_id.clone(), worker));
                (admission::readmit(&session.access, seated).await, vacate)
            }
            None => {
                let admitted = admission::admit(
                    &session.access,
                    &room,
                    &name,
                    token.as_deref(),
                    invite.as_deref(),
                    session.ip,
                    locked_elsewhere,
                )
                .await;
                (admitted, None)
            }
        };
        let Admitted {
            room,
            name,
            identity,
            role,
            guest,
            anonymous,
            chat,
            ban_keys,
            wait,
            invite_use,
        } = match admitted {
            Ok(a) => a,
            Err(refused) => {
                let code = match refused {
                    Refused::InvalidName(_) => ErrorCode::InvalidName,
                    Refused::InvalidToken(_) => ErrorCode::InvalidToken,
                    Refused::InviteRequired => ErrorCode::InviteRequired,
                    Refused::InvalidInvite(_) => ErrorCode::InvalidInvite,
                    Refused::RevokedInvite(_) => ErrorCode::InviteRevoked,
                    Refused::Unverifiable(_) => ErrorCode::Unavailable,
                    Refused::Shut(Shut::Locked) => ErrorCode::MeetingLocked,
                    Refused::Shut(Shut::Banned) => ErrorCode::Banned,
                };
                session
                    .send(&ServerMessage::error(code, refused.to_string()))
                    .await;
                continue;
            }
        };
        let refused = match &session.access.cluster {
            Some(cluster) => {
                refused_elsewhere(cluster, &room, &ban_keys, readmitted, invite_use.as_ref()).await
            }
            None => None,
        };
        if let Some((code, message)) = refused {
            session.send(&ServerMessage::error(code, message)).await;
            continue;
        }
        if let Err(limit) = admission_limits(&session.access, session.ip, &room) {
            let code = match limit {
                Limit::Meetings => ErrorCode::TooManyMeetings,
                _ => ErrorCode::TooManyJoins,
            };
            session.refuse_for(limit, code).await;
            continue;
        }
        if let Some(wait) = wait {
            if !wait_in_lobby(session, &room, &name, wait, anonymous).await? {
                continue;
            }
        }
        let participant_id = format!("{:016x}", rand::random::<u64>());
        let worker = session.workers.for_room(&room).clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let sent = worker.send(Request::Join {
            participant_id: participant_id.clone(),
            room: room.clone(),
            name: name.clone(),
            role,
            guest,
            replaces: vacate
                .as_ref()
                .and_then(|v| v.participant_id().map(str::to_owned)),
            events: tx,
        });
        match sent {
            Ok(()) => {
                if let Some(vacate) = vacate {
                    vacate.done();
                }
            }
            Err(SendError::Full) => {
                session
                    .refuse_for(Limit::WorkerQueue, ErrorCode::Overloaded)
                    .await;
                continue;
            }
            Err(e @ SendError::Stopped) => {
                session
                    .send(&ServerMessage::error(ErrorCode::Unavailable, e.to_string()))
                    .await;
                return None;
            }
        }
        let member = Member {
            name: name.clone(),
            role,
            guest,
            user_id: identity.as_ref().map(|c| c.sub.clone()),
            ban_keys: ban_keys.clone(),
        };
        let (seat, ended, mut locked) = session.access.roster.seat(&room, &participant_id, member);
        if locked_elsewhere {
            // Locked here too from now on. Its first participant hears so
            // right after `joined`, as anyone joining a locked meeting.
            session.access.roster.set_locked(&room, true);
            locked.borrow_and_update();
        }
        if role.may_moderate() {
            // Seated first: a guest who knocks from now on sees the host.
            session.access.lobby.host_arrived(&room);
        }
        let joined = Joined {
            _seat: seat,
            ended,
            locked,
            participant_id,
            worker,
            events: rx,
            room,
            name,
            identity,
            role,
            guest,
            anonymous,
            ban_keys,
            invite_use,
            chat,
            resume: format!("{:032x}", rand::random::<u128>()),
            live: None,
            shared_seat: None,
            in_core: false,
        };
        return Some((joined, in_meeting));
    }
}

/// The seat held under `secret` in `room`: on this server (`true`: its old
/// self is still in this server's core), or kept in Redis by the server
/// that held the meeting before this one.
/// Several servers: what holds here of what was decided while the
/// meeting was on another server. A host's ban (a seat taken back is
/// checked by its own keys, not its address, as on one server), and a
/// counted invite link's joins there. The refusal to send, if any.
async fn refused_elsewhere(
    cluster: &Cluster,
    room: &str,
    ban_keys: &[String],
    readmitted: bool,
    invite_use: Option<&invite::Use>,
) -> Option<(ErrorCode, String)> {
    let keys = match readmitted {
        true => roster::seat_keys(ban_keys),
        false => ban_keys.to_vec(),
    };
    match cluster.banned(room, &keys).await {
        Ok(false) => {}
        Ok(true) => return Some((ErrorCode::Banned, Shut::Banned.to_string())),
        Err(e) => return Some((ErrorCode::Unavailable, e.to_string())),
    }
    let used = invite_use?;
    match cluster.invite_uses(room, used.id()).await {
        Ok(shared) => used
            .take_on(shared)
            .err()
            .map(|e| (ErrorCode::InvalidInvite, e.to_string())),
        Err(e) => Some((ErrorCode::Unavailable, e.to_string())),
    }
}

async fn claim(access: &Access, secret: &str, room: &str) -> Option<(Seated, bool)> {
    if let Some(seated) = access.resumes.claim(secret, room).await {
        return Some((seated, true));
    }
    let kept = access.cluster.as_ref()?.take_seat(room, secret).await?;
    let seated: Seated = serde_json::from_str(&kept).ok()?;
    (seated.room == room).then_some((seated, false))
}
