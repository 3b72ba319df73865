//! One participant's signalling session over protocol v1: a WebSocket
//! between the browser and the media worker that owns the participant's
//! room. Parses and checks what the browser sends, so that nothing malformed
//! reaches a worker, hands what it asks of the room core over as commands
//! (`adapter.rs`), and relays the core's events and the meeting's chat
//! back.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use chat::{Author, Chat, ChatError, MeetingChat, MeetingEvent, OpenIdError};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

mod guards;
mod lobby;
mod recheck;
mod rejoin;

use guards::{admission_limits, CandidateCount, KindRates, RateLimit, MAX_MESSAGES_PER_SECOND};
use lobby::{next_lobby, wait_in_lobby};
use recheck::Recheck;
use rejoin::Vacate;

use super::adapter;
use super::{
    ChatInfo, ClientMessage, ErrorCode, IdentityInfo, ServerMessage, MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
};
use crate::access::admission::{self, Admitted, Refused};
use crate::access::drain::InMeeting;
use crate::access::invite;
use crate::access::limits::{Connection, Limit, PerMinute};
use crate::access::resume::Live;
use crate::access::roster::{Ended, Member, Seat, Shut};
use crate::access::token::Claims;
use crate::access::Access;
use crate::room::api::{Command, Event, Role};
use crate::worker::{Request, SendError, WorkerHandle, Workers};

/// Longest a message to the client may wait for the socket to take it.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that has not joined by then is closed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a closing session waits for its client's answer to the close
/// frame (see [`Session::close_with`]).
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Pings keep idle sockets open through proxies and reveal dead peers whose
/// TCP connection never closed (network gone): nothing heard for
/// [`IDLE_TIMEOUT`] ends the session.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// What one incoming WebSocket frame amounts to.
enum Incoming {
    Message(ClientMessage),
    /// Answer with this error and carry on.
    Bad(ErrorCode, String),
    /// Control frames: nothing to do.
    Skip,
    /// The page went away (closed, or navigated elsewhere): it left.
    GoingAway,
    /// The connection ended otherwise: the client may come back.
    Closed,
}

/// How a joined session's relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The socket dropped: the client may come back to its seat.
    Dropped,
    /// It left, or the server ended its session.
    Over,
}

fn parse(frame: Option<Result<Message, axum::Error>>) -> Incoming {
    let text = match frame {
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(Message::Binary(_))) => {
            return Incoming::Bad(
                ErrorCode::BadMessage,
                "binary frames are not part of the protocol".into(),
            )
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => return Incoming::Skip,
        Some(Ok(Message::Close(Some(frame)))) if frame.code == close_code::AWAY => {
            return Incoming::GoingAway
        }
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Incoming::Closed,
    };
    if text.len() > MAX_MESSAGE_BYTES {
        return Incoming::Bad(
            ErrorCode::TooLarge,
            format!(
                "message of {} bytes exceeds the limit of {MAX_MESSAGE_BYTES}",
                text.len()
            ),
        );
    }
    match serde_json::from_str(text.as_str()) {
        Ok(m) => Incoming::Message(m),
        Err(e) => Incoming::Bad(ErrorCode::BadMessage, format!("not a valid message: {e}")),
    }
}

struct Session {
    ws: WebSocket,
    access: Access,
    workers: Workers,
    limit: RateLimit,
    /// The client's source address, for the per-address limits.
    ip: IpAddr,
    /// Cut off for sending too much: it does not come back to its seat.
    cut_off: bool,
    /// A close frame went out: the socket is closing (see `linger`).
    closing: bool,
}

impl Session {
    async fn send(&mut self, msg: &ServerMessage) -> bool {
        if let ServerMessage::Error {
            code: ErrorCode::RoomFull,
            ..
        } = msg
        {
            // Refused by the worker, which holds the meeting and its count.
            let limit = Limit::Participants.label();
            let hit = self.access.metrics.limits_hit.with_label_values(&[limit]);
            hit.inc();
        }
        if let ServerMessage::Error { code, .. } = msg {
            let code = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            self.access
                .metrics
                .signalling_errors
                .with_label_values(&[&code])
                .inc();
        }
        let text = serde_json::to_string(msg).expect("server messages always serialise");
        self.write(Message::Text(text.into())).await
    }

    /// Writes a frame; `false` if the socket is gone or the client has not
    /// taken it within [`SEND_TIMEOUT`] (a client that stops reading would
    /// otherwise have its messages pile up here).
    async fn write(&mut self, frame: Message) -> bool {
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, self.ws.send(frame)).await,
            Ok(Ok(()))
        )
    }

    /// The next frame, or `None` when the socket is done or the client
    /// exceeded the rate limit (it is told so, and the socket closed).
    async fn next(&mut self) -> Option<Result<Message, axum::Error>> {
        let frame = self.ws.next().await;
        if frame.is_some() && !self.limit.allow(Instant::now()) {
            let msg = format!("more than {MAX_MESSAGES_PER_SECOND} messages in a second");
            self.send(&ServerMessage::error(ErrorCode::RateLimited, msg))
                .await;
            self.cut_off = true;
            self.close_with(close_code::POLICY, "rate_limited").await;
            return None;
        }
        frame
    }

    /// A host's invite link to `room`: for participants and viewers only,
    /// so that a host cannot hand out what only the operator may.
    async fn create_invite(
        &mut self,
        room: &str,
        role: Role,
        lifetime: Option<u64>,
        uses: Option<u64>,
    ) {
        let reply = if role == Role::Host {
            let msg = "host links come from the server's administrator";
            ServerMessage::error(ErrorCode::NotAllowed, msg)
        } else {
            match invite::terms(lifetime, uses) {
                Ok((lifetime, uses)) => {
                    let minted = self.access.invites.mint(room, role, lifetime, uses);
                    ServerMessage::InviteCreated {
                        role,
                        invite: minted.invite,
                        expires_at: minted.expires_at,
                        id: minted.id,
                    }
                }
                Err(msg) => ServerMessage::error(ErrorCode::BadMessage, msg),
            }
        };
        self.send(&reply).await;
    }

    /// Refuses a request for `limit`: counted, and told with `code`.
    async fn refuse_for(&mut self, limit: Limit, code: ErrorCode) {
        self.access
            .metrics
            .limits_hit
            .with_label_values(&[limit.label()])
            .inc();
        self.send(&ServerMessage::error(code, limit.to_string()))
            .await;
    }

    async fn close(&mut self, reason: &'static str) -> Outcome {
        self.close_with(close_code::NORMAL, reason).await;
        Outcome::Over
    }

    /// Sends a close frame, after what was sent before it; [`Session::linger`]
    /// ends the closing handshake once the session is out of its meeting.
    async fn close_with(&mut self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        self.closing = self.write(frame).await;
    }

    /// After a close frame went out: a socket closed while the client's
    /// messages still sit unread in it is reset by the kernel, and a reset
    /// can cost the client what it had not read yet (the error that says
    /// why, the close frame itself). So what the client sends is read and
    /// dropped until it answers the close frame, for at most
    /// [`CLOSE_LINGER`].
    async fn linger(&mut self) {
        if !self.closing {
            return;
        }
        let answered = async {
            while let Some(Ok(frame)) = self.ws.next().await {
                if matches!(frame, Message::Close(_)) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(CLOSE_LINGER, answered).await;
    }
}

/// Runs one client's session; `connection` holds its place under the
/// connection limits until its socket is gone.
pub async fn run(
    ws: WebSocket,
    access: Access,
    workers: Workers,
    connection: Connection,
    ip: IpAddr,
) {
    access.metrics.signalling_connections.inc();
    let metrics = access.metrics.clone();
    let mut session = Session {
        ws,
        access,
        workers,
        limit: RateLimit::new(Instant::now()),
        ip,
        cut_off: false,
        closing: false,
    };
    let Some((mut joined, in_meeting)) = join(&mut session).await else {
        session.linger().await;
        metrics.signalling_connections.dec();
        return;
    };
    let access = session.access.clone();
    let outcome = relay(&mut session, &mut joined).await;
    let closing = match outcome {
        // The socket is gone: it no longer counts as a connection, though
        // its seat may be held.
        Outcome::Dropped => {
            drop(session);
            drop(connection);
            metrics.signalling_connections.dec();
            None
        }
        // Out of the meeting first; the socket's close after.
        Outcome::Over => Some((session, connection)),
    };
    // A client that comes back takes its seat over; the seat (in the
    // roster, and for a drain) is held meanwhile.
    let back = outcome == Outcome::Dropped && rejoin::hold(&access, &mut joined).await;
    if !back {
        // A full queue drops this; the peer timeout removes the
        // participant then.
        let _ = joined.worker.send(Request::Command {
            participant_id: joined.participant_id.clone(),
            command: Command::Leave,
        });
    }
    if let (Some(chat), Some(id)) = (&access.chat, &joined.identity) {
        chat.call_left(&joined.room, &id.sub, &joined.participant_id);
    }
    drop((joined, in_meeting));
    if let Some((mut session, connection)) = closing {
        session.linger().await;
        drop(connection);
        metrics.signalling_connections.dec();
    }
}

/// A participant handed to its room's worker.
struct Joined {
    /// Listed in the roster while the session lasts.
    _seat: Seat,
    /// Fires when an administrator or a host ends the session.
    ended: oneshot::Receiver<Ended>,
    /// Whether a host locked the meeting.
    locked: watch::Receiver<bool>,
    participant_id: String,
    worker: WorkerHandle,
    events: mpsc::UnboundedReceiver<Event>,
    room: String,
    name: String,
    /// Set for a participant signed in with a Matrix identity.
    identity: Option<Claims>,
    role: Role,
    guest: bool,
    /// Neither a Matrix identity nor an invite link.
    anonymous: bool,
    /// What keeps it out if a host bans it (`roster::ban_keys`).
    ban_keys: Vec<String>,
    /// Its use of a counted invite link, counted once the core seats it.
    invite_use: Option<invite::Use>,
    chat: Option<MeetingChat>,
    /// The secret its client comes back to its seat with (`rejoin.rs`).
    resume: String,
    /// Its seat under that secret while the session is up.
    live: Option<Live>,
    /// The core has it in the room (`joined` went out).
    in_core: bool,
}

/// Waits for a valid `join` and hands the participant to its room's worker;
/// the participant counts as in a meeting (for a drain to wait for) until
/// the returned guard is dropped.
async fn join(session: &mut Session) -> Option<(Joined, InMeeting)> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, session.next())
            .await
            .ok()?;
        let (v, room, name, token, invite, resume) = match parse(frame) {
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
        // While draining, meetings under way still take joins and rejoins.
        let running = session.access.roster.is_running(room.trim());
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
            Some(secret) => session.access.resumes.claim(secret, room.trim()).await,
            None => None,
        };
        let (admitted, vacate) = match seated {
            Some(seated) => {
                let worker = session.workers.for_room(&seated.room).clone();
                let vacate = Vacate::new(seated.participant_id.clone(), worker);
                (
                    admission::readmit(&session.access, seated).await,
                    Some(vacate),
                )
            }
            None => {
                let admitted = admission::admit(
                    &session.access,
                    &room,
                    &name,
                    token.as_deref(),
                    invite.as_deref(),
                    session.ip,
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
        let (seat, ended, locked) = session.access.roster.seat(&room, &participant_id, member);
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
            in_core: false,
        };
        return Some((joined, in_meeting));
    }
}

/// Relays between a joined participant, its worker and its meeting's chat
/// until one side ends.
async fn relay(session: &mut Session, joined: &mut Joined) -> Outcome {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut candidates = CandidateCount::default();
    let mut chat_sent = PerMinute::default();
    let mut last_heard = tokio::time::Instant::now();
    let chat = session
        .access
        .chat
        .clone()
        .filter(|_| joined.chat.is_some());
    let mut delayed = chat.as_ref().map(Chat::delayed);
    // Chat flows once `joined` (with the history) has gone out.
    let mut chat_live = false;
    let mut drain = Some(session.access.drain.watch());
    // Hosts see who waits in the lobby.
    let mut lobby = joined
        .role
        .may_moderate()
        .then(|| session.access.lobby.watch(&joined.room));
    // In `meet_participants` from the core's `joined` until the relay ends.
    let mut _counted = None;
    let author = match (&joined.identity, joined.anonymous) {
        (Some(claims), _) => Author::matrix(&joined.name, &claims.sub),
        (None, false) => Author::invited(&joined.name, &joined.participant_id),
        (None, true) => Author::anonymous(&joined.name),
    };
    // A Matrix user's membership asked again, while it is being asked.
    let mut recheck = Recheck::default();
    let mut kinds = KindRates::new(Instant::now());
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return Outcome::Dropped;
                }
                if !session.write(Message::Ping(Default::default())).await {
                    return Outcome::Dropped;
                }
            }
            // Its client came back on a new connection while this one
            // still looked up (it went quiet after a change of network).
            () = rejoin::let_go(&mut joined.live) => {
                session.close("replaced").await;
                return Outcome::Dropped;
            }
            Ok(why) = &mut joined.ended => {
                let (code, msg) = match why {
                    Ended::Removed => (ErrorCode::Removed, "an administrator removed you from the meeting"),
                    Ended::MeetingClosed if joined.role.may_moderate() => (ErrorCode::MeetingEnded, "you ended the meeting for everyone"),
                    Ended::MeetingClosed => (ErrorCode::MeetingEnded, "the meeting was ended for everyone"),
                };
                session.send(&ServerMessage::error(code, msg)).await;
                return session.close("removed").await;
            }
            Some(waiting) = next_lobby(&mut lobby) => {
                if !session.send(&ServerMessage::Lobby { waiting }).await {
                    return Outcome::Dropped;
                }
            }
            Ok(()) = joined.locked.changed() => {
                let locked = *joined.locked.borrow_and_update();
                if !session.send(&ServerMessage::MeetingLocked { locked }).await {
                    return Outcome::Dropped;
                }
            }
            event = joined.events.recv() => match event {
                Some(event @ Event::Joined { .. }) => {
                    let Some(ServerMessage::Joined { v, room, participant_id, participants, .. }) = adapter::message(event) else {
                        return Outcome::Dropped;
                    };
                    let info = joined.chat.as_ref().map(|c| ChatInfo {
                        room_id: c.room_id.clone(),
                        room_alias: c.room_alias.clone(),
                        delayed: delayed.as_ref().is_some_and(|d| *d.borrow()),
                    });
                    let identity = joined.identity.as_ref().map(|c| IdentityInfo {
                        user_id: c.sub.clone(),
                        host: c.host,
                    });
                    _counted = Some(session.access.metrics.joined(joined.role));
                    // Seated: the invite link's use counts now.
                    if let Some(used) = joined.invite_use.take() {
                        used.commit();
                    }
                    let ice_servers = session.access.turn.as_ref().map_or_else(Vec::new, |t| t.ice_servers(&participant_id, SystemTime::now()));
                    joined.in_core = true;
                    let held = !session.access.resumes.grace().is_zero();
                    joined.live = held.then(|| session.access.resumes.live(&joined.resume, &joined.room));
                    let resume = if held { joined.resume.clone() } else { String::new() };
                    let msg = ServerMessage::Joined { v, room, participant_id, participants, chat: info, identity, role: joined.role, guest: joined.guest, ice_servers, resume };
                    if !session.send(&msg).await {
                        return Outcome::Dropped;
                    }
                    if *joined.locked.borrow_and_update() && !session.send(&ServerMessage::MeetingLocked { locked: true }).await {
                        return Outcome::Dropped;
                    }
                    if let Some(waiting) = lobby.as_mut().map(|l| l.borrow_and_update().clone()) {
                        if !waiting.is_empty() && !session.send(&ServerMessage::Lobby { waiting }).await {
                            return Outcome::Dropped;
                        }
                    }
                    if let Some(c) = joined.chat.as_mut() {
                        let events = std::mem::take(&mut c.history);
                        if !session.send(&ServerMessage::ChatHistory { events }).await {
                            return Outcome::Dropped;
                        }
                        chat_live = true;
                    }
                    if let (Some(chat), Some(id)) = (&chat, &joined.identity) {
                        chat.call_joined(&joined.room, &id.sub, &joined.participant_id);
                    }
                }
                // The core removed the participant (timeout, failure, a host).
                Some(event @ Event::Left { .. }) => {
                    if let Some(msg) = adapter::message(event) {
                        session.send(&msg).await;
                    }
                    return session.close("removed").await;
                }
                Some(event) => {
                    if let Some(msg) = adapter::message(event) {
                        if !session.send(&msg).await {
                            return Outcome::Dropped;
                        }
                    }
                }
                // The worker stopped: the server is shutting down.
                None => return session.close("shutdown").await,
            },
            event = next_chat_event(&mut joined.chat), if chat_live => match event {
                Some(ChatRecv::Lagged) => {
                    // A kick may be among what was missed.
                    recheck.start(chat.as_ref(), joined);
                    // Fell behind: start over from the full history.
                    let events = chat.as_ref().and_then(|c| c.history(&joined.room)).unwrap_or_default();
                    if !session.send(&ServerMessage::ChatHistory { events }).await {
                        return Outcome::Dropped;
                    }
                }
                Some(ChatRecv::Event(MeetingEvent::Chat(event))) => {
                    if !session.send(&ServerMessage::ChatEvent { event }).await {
                        return Outcome::Dropped;
                    }
                }
                Some(ChatRecv::Event(MeetingEvent::MemberGone(user))) => {
                    if joined.identity.as_ref().is_some_and(|c| c.sub == user) {
                        return removed_from_room(session).await;
                    }
                }
                Some(ChatRecv::Event(MeetingEvent::Recheck)) => {
                    recheck.start(chat.as_ref(), joined);
                }
                None => chat_live = false,
            },
            // Told once it is in: `joined` first, then the news.
            deadline = next_drain(&mut drain), if joined.in_core => {
                // Told once; the meeting goes on until it empties or the
                // server stops at the deadline.
                drain = None;
                if let Some(deadline) = deadline {
                    let seconds_left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs();
                    if !session.send(&ServerMessage::Draining { seconds_left }).await {
                        return Outcome::Dropped;
                    }
                }
            }
            checked = recheck.done(), if recheck.running() => {
                match checked {
                    Ok(Ok(identity)) => {
                        // Host rights follow the room's power levels.
                        if let Some(claims) = joined.identity.as_mut() {
                            claims.host = identity.host;
                        }
                        let role = if identity.host { Role::Host } else { Role::Participant };
                        if role != joined.role {
                            joined.role = role;
                            // A new host is shown who waits now.
                            lobby = role.may_moderate().then(|| {
                                let mut waiting = session.access.lobby.watch(&joined.room);
                                waiting.mark_changed();
                                waiting
                            });
                            let command = Command::SetRole { role };
                            if joined.worker.send(Request::Command { participant_id: joined.participant_id.clone(), command }).is_err() {
                                tracing::warn!("cannot tell the media worker of a role change");
                            }
                        }
                    }
                    Ok(Err(OpenIdError::NotMember(_))) => return removed_from_room(session).await,
                    // The homeserver cannot say now: a participant is not
                    // put out for its outage; the next change asks again.
                    Ok(Err(e)) => tracing::warn!(error = %e, "cannot recheck room membership"),
                    Err(e) => tracing::warn!(error = %e, "room membership recheck failed"),
                }
                if recheck.take_again() {
                    recheck.start(chat.as_ref(), joined);
                }
            },
            changed = next_delay(&mut delayed) => match changed {
                Some(delayed) => {
                    if !session.send(&ServerMessage::ChatStatus { delayed }).await {
                        return Outcome::Dropped;
                    }
                }
                None => delayed = None,
            },
            frame = session.next() => match parse(frame.inspect(|_| last_heard = tokio::time::Instant::now())) {
                Incoming::Message(ClientMessage::Join { .. }) => {
                    session.send(&ServerMessage::error(ErrorCode::AlreadyJoined, "already joined")).await;
                }
                Incoming::Message(ClientMessage::Leave {}) => {
                    return session.close("left").await;
                }
                Incoming::Message(msg) if !kinds.allow(&msg, Instant::now()) => {
                    session.refuse_for(Limit::MessagesOfKind, ErrorCode::TooManyMessages).await;
                }
                Incoming::Message(ClientMessage::Chat { .. }) if !chat_sent.take(Instant::now(), session.access.limits.bounds().chat_messages_per_minute) => {
                    session.refuse_for(Limit::ChatMessages, ErrorCode::TooManyChatMessages).await;
                }
                Incoming::Message(ClientMessage::Chat { text }) => {
                    let result = match &chat {
                        Some(chat) => chat.post(&joined.room, &author, &text).await,
                        None => Err(ChatError::NoMeeting(joined.room.clone())),
                    };
                    match result {
                        Ok(()) => {}
                        Err(ChatError::Backlog(_)) => {
                            session.refuse_for(Limit::ChatOutbox, ErrorCode::ChatBacklog).await;
                        }
                        Err(e) => {
                            let code = match e {
                                ChatError::Invalid(_) => ErrorCode::BadMessage,
                                _ => ErrorCode::ChatUnavailable,
                            };
                            session.send(&ServerMessage::error(code, e.to_string())).await;
                        }
                    }
                }
                Incoming::Message(msg) if msg.is_host_action() && !joined.role.may_moderate() => {
                    let msg = "only hosts may let people in, invite, mute or remove others, lower their hands, lock or end the meeting";
                    session.send(&ServerMessage::error(ErrorCode::NotAllowed, msg)).await;
                }
                Incoming::Message(ClientMessage::Admit { lobby_id }) => {
                    session.access.lobby.decide(&joined.room, &lobby_id, true);
                }
                Incoming::Message(ClientMessage::Deny { lobby_id }) => {
                    session.access.lobby.decide(&joined.room, &lobby_id, false);
                }
                Incoming::Message(ClientMessage::LockMeeting { locked }) => {
                    session.access.roster.set_locked(&joined.room, locked);
                }
                Incoming::Message(ClientMessage::EndMeeting {}) => {
                    session.access.roster.end_all(&joined.room, Ended::MeetingClosed);
                }
                Incoming::Message(ClientMessage::CreateInvite { role, lifetime_secs, uses }) => {
                    session.create_invite(&joined.room, role, lifetime_secs, uses).await;
                }
                Incoming::Message(ClientMessage::Candidate { target, .. }) if !candidates.count(target) => {
                    session.refuse_for(Limit::Candidates, ErrorCode::TooManyCandidates).await;
                }
                Incoming::Message(msg) => {
                    // Banned first: the removal ends the session, whose seat
                    // carries the identity to keep out.
                    if let ClientMessage::Remove { participant_id, ban: true } = &msg {
                        session.access.roster.ban(&joined.room, participant_id);
                    }
                    let Some(command) = adapter::command(msg) else {
                        continue;
                    };
                    match joined.worker.send(Request::Command { participant_id: joined.participant_id.clone(), command }) {
                        Ok(()) => {}
                        Err(SendError::Full) => session.refuse_for(Limit::WorkerQueue, ErrorCode::Overloaded).await,
                        Err(e @ SendError::Stopped) => {
                            session.send(&ServerMessage::error(ErrorCode::Unavailable, e.to_string())).await;
                            return Outcome::Over;
                        }
                    }
                }
                Incoming::Bad(code, message) => {
                    session.send(&ServerMessage::error(code, message)).await;
                }
                Incoming::Skip => {}
                Incoming::GoingAway => return Outcome::Over,
                // Cut off for flooding: no seat is held for it.
                Incoming::Closed if session.cut_off => return Outcome::Over,
                Incoming::Closed => return Outcome::Dropped,
            },
        }
    }
}

async fn removed_from_room(session: &mut Session) -> Outcome {
    let msg = "you left or were removed from the meeting's Matrix room";
    session
        .send(&ServerMessage::error(ErrorCode::Removed, msg))
        .await;
    session.close("removed").await
}

enum ChatRecv {
    Event(MeetingEvent),
    /// Events were missed.
    Lagged,
}

/// The next room event for this participant; `None` once there are none.
async fn next_chat_event(chat: &mut Option<MeetingChat>) -> Option<ChatRecv> {
    match chat.as_mut()?.events.recv().await {
        Ok(event) => Some(ChatRecv::Event(event)),
        Err(broadcast::error::RecvError::Lagged(n)) => {
            tracing::warn!(missed = n, "a participant fell behind the chat");
            Some(ChatRecv::Lagged)
        }
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

/// The deadline of a drain once one starts; pends forever without one.
async fn next_drain(
    drain: &mut Option<watch::Receiver<Option<tokio::time::Instant>>>,
) -> Option<tokio::time::Instant> {
    let Some(rx) = drain.as_mut() else {
        return std::future::pending().await;
    };
    let deadline = rx.wait_for(Option::is_some).await.map(|d| *d);
    match deadline {
        Ok(deadline) => deadline,
        // The server is gone; the worker's channel says so too.
        Err(_) => std::future::pending().await,
    }
}

/// The next change of the chat's delayed flag; pends forever without chat.
async fn next_delay(delayed: &mut Option<watch::Receiver<bool>>) -> Option<bool> {
    match delayed {
        Some(d) => match d.changed().await {
            Ok(()) => Some(*d.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}
