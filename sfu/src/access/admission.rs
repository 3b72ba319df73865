//! Who may enter a meeting, and as what, checked before a participant
//! reaches a media worker, whatever protocol it speaks: room and display
//! names; the meeting token of a Matrix sign-in (and the room membership
//! behind it, asked again), an invite link, or the deployment's openness
//! to anonymous guests; the lock and the bans of the meeting's hosts; and
//! the meeting's chat room, opened for a join that is otherwise valid (and
//! made only for an identified one).

use std::net::IpAddr;
use std::time::Duration;

use chat::{MeetingChat, RoomUse};

use super::invite::{InviteError, Use};
use super::resume::Seated;
use super::roster::{self, Shut};
use super::token::Claims;
use super::Access;
use crate::room::api::Role;

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
    /// Neither a Matrix sign-in nor an invite, and the deployment admits
    /// no anonymous guests.
    #[error("this meeting admits Matrix users and holders of an invite link only")]
    InviteRequired,
    #[error("{0}")]
    InvalidInvite(String),
    /// An administrator withdrew the invite link.
    #[error("{0}")]
    RevokedInvite(String),
    /// A Matrix user's room membership cannot be checked (the homeserver
    /// does not answer); the join fails closed.
    #[error("{0}")]
    Unverifiable(String),
    /// A host locked the meeting, or banned this participant.
    #[error(transparent)]
    Shut(Shut),
}

/// Why an admitted join waits before it reaches the meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// In the lobby, until a host lets it in (or not).
    Lobby,
    /// Until a host is in the meeting (or one lets it in earlier): a guest
    /// where guests may not enter before a host.
    Host,
}

/// A join that passed every check.
pub struct Admitted {
    pub room: String,
    pub name: String,
    /// Set for a participant signed in with a Matrix identity.
    pub identity: Option<Claims>,
    pub role: Role,
    /// Not identified by Matrix: shown as a guest to everyone.
    pub guest: bool,
    /// Let in by the deployment's openness alone (no Matrix identity, no
    /// invite link): makes the server create no room and no ghost user.
    pub anonymous: bool,
    pub chat: Option<MeetingChat>,
    /// What a host's ban of this participant keeps out
    /// ([`roster::ban_keys`]).
    pub ban_keys: Vec<String>,
    pub wait: Option<Wait>,
    /// The use this join makes of a counted invite link, to be counted
    /// once it is seated (see [`Use`]).
    pub invite_use: Option<Use>,
}

/// Checks a join from `ip`, cheap checks first: the meeting's chat room
/// (which may have to be created) is opened only for a join that is
/// otherwise valid. `locked_elsewhere`: a host locked the meeting while
/// another server held it (several servers), as if locked here.
pub async fn admit(
    access: &Access,
    room: &str,
    name: &str,
    token: Option<&str>,
    invite: Option<&str>,
    ip: IpAddr,
    locked_elsewhere: bool,
) -> Result<Admitted, Refused> {
    let room = validate_name("room", room)
        .map_err(Refused::InvalidName)?
        .to_owned();
    let mut identity = token
        .map(|t| access.tokens.check(t, &room))
        .transpose()
        .map_err(|e| Refused::InvalidToken(e.to_string()))?;
    let name = identity.as_ref().map_or(name, |c| c.name.as_str());
    let name = validate_name("name", name)
        .map_err(Refused::InvalidName)?
        .to_owned();
    let policy = access.policies.for_meeting(&room);
    // A Matrix identity wins over an invite; an invite over the policy.
    let (guest_role, invite_id, invite_use) = match (&identity, invite) {
        (Some(_), _) => (None, None, None),
        (None, Some(invite)) => {
            let (invite, invite_use) =
                access.invites.admit(invite, &room).map_err(|e| match e {
                    InviteError::Revoked => Refused::RevokedInvite(e.to_string()),
                    e => Refused::InvalidInvite(e.to_string()),
                })?;
            (Some(invite.role), Some(invite.jti), invite_use)
        }
        (None, None) if policy.anonymous_join => (Some(Role::Participant), None, None),
        (None, None) if policy.lobby => (Some(Role::Participant), None, None),
        (None, None) => return Err(Refused::InviteRequired),
    };
    let anonymous = identity.is_none() && invite.is_none();
    // Knocking: an anonymous guest on a deployment not open to them.
    let mut wait = (anonymous && !policy.anonymous_join).then_some(Wait::Lobby);
    let room_use = if anonymous {
        RoomUse::ExistingOnly
    } else {
        RoomUse::MayCreate
    };
    // Opened before the membership check: the subscription it holds hears
    // a kick from then on, so none falls between check and join.
    let chat = open_chat(access, &room, room_use).await;
    let role = match (identity.as_mut(), guest_role) {
        (Some(claims), _) => matrix_role(access, &room, chat.as_ref(), claims).await?,
        (None, Some(role)) => role,
        (None, None) => return Err(Refused::InviteRequired),
    };
    let user = identity.as_ref().map(|c| c.sub.as_str());
    let session_key = format!("{:032x}", rand::random::<u128>());
    let ban_keys = roster::ban_keys(user, invite_id.as_deref(), &session_key, ip);
    let entry_keys = roster::entry_keys(user, invite_id.as_deref(), ip);
    let shut = access
        .roster
        .admits(&room, role, &entry_keys)
        .and_then(|()| match locked_elsewhere && !role.may_moderate() {
            true => Err(Shut::Locked),
            false => Ok(()),
        });
    match shut {
        Ok(()) => {}
        // A locked meeting: hosts may still let them in.
        Err(Shut::Locked) if policy.lobby => wait = Some(Wait::Lobby),
        Err(shut) => return Err(Refused::Shut(shut)),
    }
    if wait.is_none()
        && identity.is_none()
        && !role.may_moderate()
        && !policy.guests_before_host
        && !access.roster.has_host(&room)
    {
        wait = Some(Wait::Host);
    }
    Ok(Admitted {
        room,
        name,
        guest: identity.is_none(),
        anonymous,
        identity,
        role,
        chat,
        ban_keys,
        wait,
        invite_use,
    })
}

/// A token says who someone was when it was issued; membership and host
/// rights are asked of the room again, so that leaving or a ban keeps
/// someone out. When the homeserver cannot be asked, the join is refused:
/// a token minted before a ban must not outlive it (guests with an invite
/// link still get in).
/// Lets a participant whose connection dropped back into the seat held
/// for it (`resume.rs`), as it was let in: no lobby, no second use of its
/// invite link, no fresh token. A Matrix user's room membership and host
/// rights are asked again, and a ban holds; a lock does not keep out
/// someone who was in the meeting before it.
pub async fn readmit(access: &Access, seated: Seated) -> Result<Admitted, Refused> {
    let Seated {
        room,
        name,
        mut identity,
        mut role,
        guest,
        anonymous,
        ban_keys,
        ..
    } = seated;
    let room_use = if anonymous {
        RoomUse::ExistingOnly
    } else {
        RoomUse::MayCreate
    };
    let chat = open_chat(access, &room, room_use).await;
    if let Some(claims) = identity.as_mut() {
        role = matrix_role(access, &room, chat.as_ref(), claims).await?;
    }
    match access
        .roster
        .admits(&room, role, &roster::seat_keys(&ban_keys))
    {
        Ok(()) | Err(Shut::Locked) => {}
        Err(shut) => return Err(Refused::Shut(shut)),
    }
    Ok(Admitted {
        room,
        name,
        identity,
        role,
        guest,
        anonymous,
        chat,
        ban_keys,
        wait: None,
        invite_use: None,
    })
}

/// A Matrix user's role in the meeting, from the room as the homeserver
/// says it now; fails closed when it cannot be asked.
async fn matrix_role(
    access: &Access,
    room: &str,
    chat: Option<&MeetingChat>,
    claims: &mut Claims,
) -> Result<Role, Refused> {
    if access.chat.is_some() && chat.is_none() {
        // Without the room's events a kick would go unnoticed.
        return Err(Refused::Unverifiable(
            "the meeting's Matrix room cannot be followed now; try again shortly".into(),
        ));
    }
    recheck_member(access, room, claims).await?;
    Ok(if claims.host {
        Role::Host
    } else {
        Role::Participant
    })
}

async fn recheck_member(access: &Access, room: &str, claims: &mut Claims) -> Result<(), Refused> {
    let Some(chat) = &access.chat else {
        return Ok(());
    };
    match chat.member(room, &claims.sub).await {
        Ok(identity) => {
            claims.host = identity.host;
            Ok(())
        }
        Err(e @ chat::OpenIdError::NotMember(_)) => Err(Refused::InvalidToken(e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "cannot recheck room membership; refusing the join");
            Err(Refused::Unverifiable(format!(
                "your membership of the meeting's Matrix room cannot be checked now ({e}); \
                 try again shortly"
            )))
        }
    }
}

/// The meeting's chat, if the server has chat and the room can be had now;
/// a meeting goes ahead without chat rather than wait for a homeserver.
/// An anonymous guest gets the meeting's room only if it has one already.
async fn open_chat(access: &Access, room: &str, room_use: RoomUse) -> Option<MeetingChat> {
    let chat = access.chat.as_ref()?;
    match tokio::time::timeout(CHAT_OPEN_TIMEOUT, chat.open_meeting(room, room_use)).await {
        Ok(Ok(c)) => Some(c),
        Ok(Err(chat::ChatError::NoRoom(_))) => {
            tracing::debug!("an anonymous guest in a meeting without a room: no chat");
            None
        }
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
