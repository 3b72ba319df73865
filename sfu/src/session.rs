//! One participant's signalling session: a WebSocket between the browser and
//! the media worker that owns the participant's room. Parses and checks what
//! the browser sends, so that nothing malformed reaches a worker, and relays
//! the worker's messages back.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::server::AppState;
use crate::signalling::{
    validate_name, ClientMessage, ErrorCode, ServerMessage, MAX_MESSAGE_BYTES, PROTOCOL_VERSION,
};
use crate::worker::Command;

/// A connection that has not joined by then is closed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings keep idle sockets open through proxies and reveal dead peers whose
/// TCP connection never closed (network gone): nothing heard for
/// [`IDLE_TIMEOUT`] ends the session.
const PING_INTERVAL: Duration = Duration::from_secs(5);
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// A browser sends a few messages per negotiation (offer, answer, a dozen
/// trickled candidates); a flood beyond this ends the session, so one client
/// cannot queue unbounded work for a media worker.
const MAX_MESSAGES_PER_SECOND: u32 = 50;

/// Counts messages in one-second windows.
struct RateLimit {
    window_start: Instant,
    count: u32,
}

impl RateLimit {
    fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            count: 0,
        }
    }

    /// Whether one more message at `now` is within the limit.
    fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count <= MAX_MESSAGES_PER_SECOND
    }
}

/// What one incoming WebSocket frame amounts to.
enum Incoming {
    Message(ClientMessage),
    /// Answer with this error and carry on.
    Bad(ErrorCode, String),
    /// Control frames: nothing to do.
    Skip,
    Closed,
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
    state: AppState,
    limit: RateLimit,
}

impl Session {
    async fn send(&mut self, msg: &ServerMessage) -> bool {
        if let ServerMessage::Error { code, .. } = msg {
            let code = serde_json::to_value(code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            self.state
                .metrics
                .signalling_errors
                .with_label_values(&[&code])
                .inc();
        }
        let text = serde_json::to_string(msg).expect("server messages always serialise");
        self.ws.send(Message::Text(text.into())).await.is_ok()
    }

    /// The next frame, or `None` when the socket is done or the client
    /// exceeded the rate limit (it is told so first).
    async fn next(&mut self) -> Option<Result<Message, axum::Error>> {
        let frame = self.ws.next().await;
        if frame.is_some() && !self.limit.allow(Instant::now()) {
            let msg = format!("more than {MAX_MESSAGES_PER_SECOND} messages in a second");
            self.send(&ServerMessage::error(ErrorCode::RateLimited, msg))
                .await;
            return None;
        }
        frame
    }

    async fn close(mut self, reason: &'static str) {
        let _ = self
            .ws
            .send(Message::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::NORMAL,
                reason: Utf8Bytes::from_static(reason),
            })))
            .await;
    }
}

pub async fn run(ws: WebSocket, state: AppState) {
    state.metrics.signalling_connections.inc();
    let metrics = state.metrics.clone();
    let mut session = Session {
        ws,
        state,
        limit: RateLimit::new(Instant::now()),
    };
    if let Some((participant_id, worker, events)) = join(&mut session).await {
        relay(session, &participant_id, &worker, events).await;
        worker.send(Command::Disconnect { participant_id });
    }
    metrics.signalling_connections.dec();
}

/// Waits for a valid `join` and hands the participant to its room's worker.
async fn join(
    session: &mut Session,
) -> Option<(
    String,
    crate::worker::WorkerHandle,
    mpsc::UnboundedReceiver<ServerMessage>,
)> {
    let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, session.next())
            .await
            .ok()?;
        let (v, room, name) = match parse(frame) {
            Incoming::Message(ClientMessage::Join { v, room, name }) => (v, room, name),
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
            Incoming::Closed => return None,
        };
        if v != PROTOCOL_VERSION {
            let msg = format!("this server speaks protocol version {PROTOCOL_VERSION}, not {v}");
            session
                .send(&ServerMessage::error(ErrorCode::UnsupportedVersion, msg))
                .await;
            continue;
        }
        let checked =
            validate_name("room", &room).and_then(|r| Ok((r, validate_name("name", &name)?)));
        let (room, name) = match checked {
            Ok(ok) => ok,
            Err(message) => {
                session
                    .send(&ServerMessage::error(ErrorCode::InvalidName, message))
                    .await;
                continue;
            }
        };
        let participant_id = format!("{:016x}", rand::random::<u64>());
        let worker = session.state.worker_for(room).clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let sent = worker.send(Command::Join {
            participant_id: participant_id.clone(),
            room: room.to_owned(),
            name: name.to_owned(),
            events: tx,
        });
        if !sent {
            session
                .send(&ServerMessage::error(
                    ErrorCode::Unavailable,
                    "the media worker is not running",
                ))
                .await;
            return None;
        }
        return Some((participant_id, worker, rx));
    }
}

/// Relays between a joined participant and its worker until either side ends.
async fn relay(
    mut session: Session,
    participant_id: &str,
    worker: &crate::worker::WorkerHandle,
    mut events: mpsc::UnboundedReceiver<ServerMessage>,
) {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if last_heard.elapsed() > IDLE_TIMEOUT {
                    return;
                }
                if session.ws.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            event = events.recv() => match event {
                Some(msg) => {
                    if !session.send(&msg).await {
                        return;
                    }
                }
                // The worker removed the participant (timeout, failure).
                None => return session.close("removed").await,
            },
            frame = session.next() => match parse(frame.inspect(|_| last_heard = tokio::time::Instant::now())) {
                Incoming::Message(ClientMessage::Join { .. }) => {
                    session.send(&ServerMessage::error(ErrorCode::AlreadyJoined, "already joined")).await;
                }
                Incoming::Message(ClientMessage::Leave {}) => {
                    return session.close("left").await;
                }
                Incoming::Message(msg) => {
                    if !worker.send(Command::Signal { participant_id: participant_id.to_owned(), msg }) {
                        session.send(&ServerMessage::error(ErrorCode::Unavailable, "the media worker stopped")).await;
                        return;
                    }
                }
                Incoming::Bad(code, message) => {
                    session.send(&ServerMessage::error(code, message)).await;
                }
                Incoming::Skip => {}
                Incoming::Closed => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_resets_every_second() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(t0);
        for _ in 0..MAX_MESSAGES_PER_SECOND {
            assert!(limit.allow(t0 + Duration::from_millis(500)));
        }
        assert!(!limit.allow(t0 + Duration::from_millis(999)));
        assert!(limit.allow(t0 + Duration::from_millis(1000)));
    }
}
