//! One participant's signalling session over protocol v1: a WebSocket
//! between the browser and the media worker that owns the participant's
//! room. Parses and checks what the browser sends, so that nothing malformed
//! reaches a worker, hands what it asks of the room core over as commands
//! (`adapter.rs`), and relays the core's events and the meeting's chat
//! back.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::StreamExt;

mod guards;
mod join;
mod lobby;
mod recheck;
mod rejoin;
mod relay;

use guards::{RateLimit, MAX_MESSAGES_PER_SECOND};
use join::{join, Joined};
use relay::relay;

use super::{ClientMessage, ErrorCode, ServerMessage, MAX_MESSAGE_BYTES};
use crate::access::invite;
use crate::access::limits::{Connection, Limit};
use crate::access::Access;
use crate::room::api::{Command, Role};
use crate::worker::{Request, Workers};

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
    /// Counts a refusal under `limit` in `meet_limits_hit_total`.
    fn limit_hit(&self, limit: Limit) {
        self.access
            .metrics
            .limits_hit
            .with_label_values(&[limit.label()])
            .inc();
    }

    async fn refuse_for(&mut self, limit: Limit, code: ErrorCode) {
        self.limit_hit(limit);
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
