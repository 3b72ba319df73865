//! Who may enter a meeting, checked before a participant reaches a media
//! worker, whatever protocol it speaks: room and display names, the meeting
//! token of a Matrix sign-in (and the room membership behind it, asked
//! again), and the meeting's chat room, opened for a join that is
//! otherwise valid.

use std::time::Duration;

use chat::MeetingChat;

use super::server::AppState;
use super::token::Claims;

/// Longest a join waits for the meeting's chat room (created on first use).
const CHAT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest room or display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Checks a room or display name: non-empty after trimming, bounded, no
/// control characters. Returns the trimmed name.
pub fn validate_name<'a>(what: &str, name: &'a str) -> Result<&'a str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("{what} is longer than {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} contains control characters"));
    }
    Ok(name)
}

/// Why a join is refused; the participant may try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    InvalidName(String),
    /// The meeting token is invalid, expired, for another meeting, or its
    /// holder is no longer in the meeting's Matrix room.
    #[error("{0}")]
    InvalidToken(String),
}

/// A join that passed every check.
pub struct Admitted {
    pub room: String,
    pub name: String,
    /// Set for a participant signed in with a Matrix identity.
    pub identity: Option<Claims>,
    pub chat: Option<MeetingChat>,
}

/// Checks a join, cheap checks first: the meeting's chat room (which may
/// have to be created) is opened only for a join that is otherwise valid.
pub async fn admit(
    state: &AppState,
    room: &str,
    name: &str,
    token: Option<&str>,
) -> Result<Admitted, Refused> {
    let room = validate_name("room", room)
        .map_err(Refused::InvalidName)?
        .to_owned();
    let mut identity = token
        .map(|t| state.tokens.check(t, &room))
        .transpose()
        .map_err(|e| Refused::InvalidToken(e.to_string()))?;
    let name = identity.as_ref().map_or(name, |c| c.name.as_str());
    let name = validate_name("name", name)
        .map_err(Refused::InvalidName)?
        .to_owned();
    let chat = open_chat(state, &room).await;
    if let Some(claims) = identity.as_mut() {
        recheck_member(state, &room, claims)
            .await
            .map_err(Refused::InvalidToken)?;
    }
    Ok(Admitted {
        room,
        name,
        identity,
        chat,
    })
}

/// A token says who someone was when it was issued; membership and host
/// rights are asked of the room again, so that leaving or a ban keeps
/// someone out. A homeserver that cannot be asked does not stop a meeting:
/// the token's word stands then.
async fn recheck_member(state: &AppState, room: &str, claims: &mut Claims) -> Result<(), String> {
    let Some(chat) = &state.chat else {
        return Ok(());
    };
    match chat.member(room, &claims.sub).await {
        Ok(identity) => {
            claims.host = identity.host;
            Ok(())
        }
        Err(e @ chat::OpenIdError::NotMember(_)) => Err(e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot recheck room membership; trusting the token");
            Ok(())
        }
    }
}

/// The meeting's chat, if the server has chat and the room can be had now;
/// a meeting goes ahead without chat rather than wait for a homeserver.
async fn open_chat(state: &AppState, room: &str) -> Option<MeetingChat> {
    let chat = state.chat.as_ref()?;
    match tokio::time::timeout(CHAT_OPEN_TIMEOUT, chat.open_meeting(room)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "meeting goes ahead without chat");
            None
        }
        Err(_) => {
            tracing::warn!("meeting goes ahead without chat: the homeserver is too slow");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_name("name", "  Alice "), Ok("Alice"));
        assert!(validate_name("name", "   ").is_err());
        assert!(validate_name("name", &"x".repeat(65)).is_err());
        assert!(validate_name("name", "a\u{7}b").is_err());
    }
}
