//! Waiting in a meeting's lobby: the knocker's side (told to wait, then
//! let in or not) and the hosts' (who waits, as it changes).

use std::time::Duration;

use axum::extract::ws::Message;
use tokio::sync::watch;

use super::super::{ClientMessage, ErrorCode, ServerMessage};
use super::{parse, Incoming, Session, PING_INTERVAL};
use crate::access::admission::Wait;
use crate::access::limits::Limit;
use crate::access::lobby::{Knock, Knocker, LobbyFull};

/// Longest anyone waits in a lobby for a host's decision.
const LOBBY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Waits in `room`'s lobby for a host to let the client in (or, for
/// [`Wait::Host`], to come): `Some(true)` in, `Some(false)` not (told
/// why; it may knock again), `None` the client went away. `anonymous`:
/// nobody vouched for it (no link, no Matrix identity).
pub(super) async fn wait_in_lobby(
    session: &mut Session,
    room: &str,
    name: &str,
    wait: Wait,
    anonymous: bool,
) -> Option<bool> {
    let for_host = wait == Wait::Host;
    // A stranger waits for a host's decision; one that only waits for a
    // host to come was let in by an open deployment.
    let who = if anonymous && !for_host {
        Knocker::Stranger {
            ip: session.ip,
            per_address: session.access.limits.bounds().knocks_per_address,
        }
    } else {
        Knocker::Vouched
    };
    let (_ticket, decision) = match session.access.lobby.knock(room, name, for_host, who) {
        Ok(t) => t,
        Err(full @ LobbyFull::Full) => {
            let msg = ServerMessage::error(ErrorCode::LobbyFull, full.to_string());
            session.send(&msg).await;
            return Some(false);
        }
        Err(LobbyFull::Address) => {
            let (limit, code) = (Limit::KnocksPerAddress, ErrorCode::TooManyKnocks);
            session.refuse_for(limit, code).await;
            return Some(false);
        }
    };
    // A host who sat down between the admission and the knock has
    // already looked for those waiting for one.
    if for_host && session.access.roster.has_host(room) {
        return Some(true);
    }
    if !session
        .send(&ServerMessage::LobbyWaiting { for_host })
        .await
    {
        return None;
    }
    let timeout = tokio::time::sleep(LOBBY_TIMEOUT);
    tokio::pin!(timeout, decision);
    let mut ping = tokio::time::interval(PING_INTERVAL);
    loop {
        tokio::select! {
            admitted = &mut decision => {
                if admitted == Ok(true) {
                    return Some(true);
                }
                let msg = "a host did not let you into the meeting";
                session.send(&ServerMessage::error(ErrorCode::Denied, msg)).await;
                return Some(false);
            }
            () = &mut timeout => {
                let msg = if for_host {
                    "no host came in time; try again later"
                } else {
                    "no host let you in in time; knock again later"
                };
                session.send(&ServerMessage::error(ErrorCode::LobbyTimeout, msg)).await;
                return Some(false);
            }
            _ = ping.tick() => {
                if !session.write(Message::Ping(Default::default())).await {
                    return None;
                }
            }
            frame = session.next() => match parse(frame) {
                Incoming::Closed | Incoming::GoingAway | Incoming::Message(ClientMessage::Leave {}) => {
                    return None
                }
                Incoming::Skip => {}
                Incoming::Bad(code, message) => {
                    session.send(&ServerMessage::error(code, message)).await;
                }
                Incoming::Message(_) => {
                    let msg = "waiting in the lobby: nothing to do until a host lets you in";
                    session.send(&ServerMessage::error(ErrorCode::NotJoined, msg)).await;
                }
            },
        }
    }
}

/// The lobby's next list of who waits; pends forever for a non-host.
pub(super) async fn next_lobby(
    lobby: &mut Option<watch::Receiver<Vec<Knock>>>,
) -> Option<Vec<Knock>> {
    let Some(rx) = lobby.as_mut() else {
        return std::future::pending().await;
    };
    rx.changed().await.ok()?;
    Some(rx.borrow_and_update().clone())
}
