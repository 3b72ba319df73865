//! A joined participant's session: the client's messages to the core, the
//! core's events and the meeting's chat to the client, until one side
//! ends.

use std::time::{Instant, SystemTime};

use axum::extract::ws::Message;
use chat::{Author, Chat, ChatError, MeetingChat, MeetingEvent, OpenIdError};
use tokio::sync::{broadcast, watch};

use super::guards::{CandidateCount, KindRates};
use super::lobby::next_lobby;
use super::recheck::Recheck;
use super::{parse, rejoin, Incoming, Joined, Outcome, Session, IDLE_TIMEOUT, PING_INTERVAL};
use crate::access::limits::{Limit, PerMinute};
use crate::access::roster::Ended;
use crate::room::api::{Command, Event, LeaveReason, Role};
use crate::signalling::v1::{
    adapter, ChatInfo, ClientMessage, ErrorCode, IdentityInfo, ServerMessage,
};
use crate::worker::{Request, SendError};

/// Relays between a joined participant, its worker and its meeting's chat
/// until one side ends.
pub(super) async fn relay(session: &mut Session, joined: &mut Joined) -> Outcome {
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
                if why == Ended::Moved {
                    // Out of the meeting here, no seat held: its client
                    // reconnects, and lands on the meeting's new server,
                    // which seats it again.
                    if let Some(seat) = joined.shared_seat.take() {
                        seat.keep();
                    }
                    return session.close("moved").await;
                }
                let (code, msg) = match why {
                    Ended::Removed => (ErrorCode::Removed, "an administrator removed you from the meeting"),
                    Ended::MeetingClosed if joined.role.may_moderate() => (ErrorCode::MeetingEnded, "you ended the meeting for everyone"),
                    Ended::MeetingClosed | Ended::Moved => (ErrorCode::MeetingEnded, "the meeting was ended for everyone"),
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
                        if let Some(cluster) = &session.access.cluster {
                            cluster.invite_used(&joined.room, used.id(), used.expires_at());
                        }
                        used.commit();
                    }
                    let ice_servers = session.access.turn.as_ref().map_or_else(Vec::new, |t| t.ice_servers(&participant_id, SystemTime::now()));
                    joined.in_core = true;
                    let held = !session.access.resumes.grace().is_zero();
                    joined.live = held.then(|| session.access.resumes.live(&joined.resume, &joined.room));
                    // Several servers: kept for the meeting's next one too.
                    if let Some(cluster) = session.access.cluster.as_ref().filter(|_| held) {
                        let seated = serde_json::to_string(&rejoin::seated(joined)).expect("a seat serializes");
                        joined.shared_seat = Some(cluster.keep_seat(&joined.room, &joined.resume, seated));
                    }
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
                    // The worker holds the meeting's count: a full one
                    // refuses there, and is counted here.
                    if let Event::Left { reason: LeaveReason::RoomFull { .. } } = event {
                        session.limit_hit(Limit::Participants);
                    }
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
                // The worker stopped: the server is shutting down (its
                // client may find the meeting on another server).
                None => {
                    if let Some(seat) = joined.shared_seat.take() {
                        seat.keep();
                    }
                    return session.close("shutdown").await;
                }
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
                    // Several servers: still locked if the meeting moves.
                    if let Some(cluster) = &session.access.cluster {
                        cluster.set_locked(&joined.room, locked);
                    }
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
                        let banned = session.access.roster.ban(&joined.room, participant_id);
                        // Several servers: out of the meeting wherever it goes.
                        if let (Some(keys), Some(cluster)) = (banned, &session.access.cluster) {
                            cluster.ban(&joined.room, keys);
                        }
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
