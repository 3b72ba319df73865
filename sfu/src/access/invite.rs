//! Invite links: a signed grant to enter one meeting with one role, until
//! it expires and, optionally, for a number of joins. Minted by the admin
//! API and by hosts in their meeting; presented in `join`. Signed like access
//! tokens, so any node with the secret can check one; the use count is
//! kept by the node that admits (a link with `uses` is per node).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::token::{unix_now, TokenKeys};
use crate::room::api::Role;

/// The audience of invite links.
const INVITE_AUDIENCE: &str = "meet-invite";

/// Longest an invite may be valid for: a month of meetings, no more.
pub const MAX_LIFETIME_SECS: u64 = 31 * 24 * 3600;

/// How long an invite is valid for unless its minter says otherwise.
pub const DEFAULT_LIFETIME_SECS: u64 = 24 * 3600;

/// Most joins one link may admit.
pub const MAX_USES: u32 = 100_000;

/// What an invite link grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub room: String,
    pub role: Role,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Joins it admits; `None`: any number until it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// Identifies the link for its use count.
    pub jti: String,
    aud: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("invalid invite link: {0}")]
    Invalid(String),
    #[error("the invite link is for another meeting")]
    WrongRoom,
    #[error("the invite link has been used as often as it may be")]
    UsedUp,
}

/// Checks the terms asked of a new invite: `lifetime_secs` (default a day)
/// from 1 to [`MAX_LIFETIME_SECS`], `uses` from 1 to [`MAX_USES`]. The
/// error says which, for the one who asked.
pub fn terms(lifetime_secs: Option<u64>, uses: Option<u64>) -> Result<(u64, Option<u32>), String> {
    let lifetime = lifetime_secs.unwrap_or(DEFAULT_LIFETIME_SECS);
    if !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(format!(
            "lifetime_secs must be between 1 and {MAX_LIFETIME_SECS}"
        ));
    }
    match uses {
        Some(n) if !(1..=u64::from(MAX_USES)).contains(&n) => {
            Err(format!("uses must be between 1 and {MAX_USES}"))
        }
        _ => Ok((lifetime, uses.map(|n| n as u32))),
    }
}

/// Mints and admits invite links.
#[derive(Clone)]
pub struct Invites {
    keys: TokenKeys,
    /// Joins admitted so far per link with a use count, and its expiry.
    used: Arc<Mutex<HashMap<String, (u32, u64)>>>,
}

impl Invites {
    pub fn new(keys: TokenKeys) -> Self {
        Self {
            keys,
            used: Default::default(),
        }
    }

    /// A signed invite to `room` as `role` for `lifetime_secs` (capped at
    /// [`MAX_LIFETIME_SECS`]) and, if given, `uses` joins; and its expiry.
    pub fn mint(
        &self,
        room: &str,
        role: Role,
        lifetime_secs: u64,
        uses: Option<u32>,
    ) -> (String, u64) {
        let exp = unix_now() + lifetime_secs.min(MAX_LIFETIME_SECS);
        let invite = self.keys.sign(&Invite {
            room: room.to_owned(),
            role,
            exp,
            uses,
            jti: format!("{:032x}", rand::random::<u128>()),
            aud: INVITE_AUDIENCE.to_owned(),
        });
        (invite, exp)
    }

    /// Checks an invite for `room` and counts the join it admits.
    pub fn admit(&self, token: &str, room: &str) -> Result<Invite, InviteError> {
        let invite: Invite = self
            .keys
            .verify(token, INVITE_AUDIENCE)
            .map_err(|e| InviteError::Invalid(e.to_string()))?;
        if invite.room != room {
            return Err(InviteError::WrongRoom);
        }
        if let Some(uses) = invite.uses {
            let now = unix_now();
            let mut used = self.used.lock().expect("invite counts are never poisoned");
            // Expired links can be used no more; their counts can go.
            used.retain(|_, &mut (_, exp)| exp + 60 > now);
            let (count, _) = used.entry(invite.jti.clone()).or_insert((0, invite.exp));
            if *count >= uses {
                return Err(InviteError::UsedUp);
            }
            *count += 1;
        }
        Ok(invite)
    }
}

/// `base`/m/`room`?invite=`invite`, each part encoded as it must be.
pub fn invite_link(mut base: url::Url, room: &str, invite: &str) -> String {
    base.path_segments_mut()
        .expect("an http URL has a path")
        .pop_if_empty()
        .extend(["m", room]);
    base.query_pairs_mut().append_pair("invite", invite);
    base.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_default_to_a_day_and_keep_their_bounds() {
        assert_eq!(terms(None, None), Ok((DEFAULT_LIFETIME_SECS, None)));
        assert_eq!(terms(Some(60), Some(3)), Ok((60, Some(3))));
        for (lifetime, uses, key) in [
            (Some(0), None, "lifetime_secs"),
            (Some(MAX_LIFETIME_SECS + 1), None, "lifetime_secs"),
            (None, Some(0), "uses"),
            (None, Some(u64::from(MAX_USES) + 1), "uses"),
        ] {
            let e = terms(lifetime, uses).unwrap_err();
            assert!(e.starts_with(key), "{e}");
        }
    }

    #[test]
    fn an_invite_admits_to_its_room_with_its_role() {
        let invites = Invites::new(TokenKeys::new(""));
        let (t, _) = invites.mint("standup", Role::Viewer, 3600, None);
        let i = invites.admit(&t, "standup").unwrap();
        assert_eq!((i.room.as_str(), i.role), ("standup", Role::Viewer));
        assert!(invites.admit(&t, "standup").is_ok(), "no use count");
        assert_eq!(invites.admit(&t, "other"), Err(InviteError::WrongRoom));
        let elsewhere = Invites::new(TokenKeys::new(""));
        assert!(matches!(
            elsewhere.admit(&t, "standup"),
            Err(InviteError::Invalid(_))
        ));
    }

    #[test]
    fn a_counted_invite_is_used_up() {
        let invites = Invites::new(TokenKeys::new(""));
        let (t, _) = invites.mint("r", Role::Participant, 60, Some(2));
        assert!(invites.admit(&t, "r").is_ok());
        assert!(invites.admit(&t, "r").is_ok());
        assert_eq!(invites.admit(&t, "r"), Err(InviteError::UsedUp));
        // Another link of the same room has its own count.
        let (other, _) = invites.mint("r", Role::Participant, 60, Some(1));
        assert!(invites.admit(&other, "r").is_ok());
    }

    #[test]
    fn an_access_token_is_no_invite_and_an_invite_no_access_token() {
        let keys = TokenKeys::new("");
        let invites = Invites::new(keys.clone());
        let access = keys.issue("@a:hs", "A", "r", true);
        assert!(matches!(
            invites.admit(&access, "r"),
            Err(InviteError::Invalid(_))
        ));
        let (invite, _) = invites.mint("r", Role::Host, 60, None);
        assert!(keys.check(&invite, "r").is_err());
    }

    #[test]
    fn an_expired_invite_is_refused() {
        let keys = TokenKeys::new("");
        let invites = Invites::new(keys.clone());
        let t = keys.sign(&Invite {
            room: "r".into(),
            role: Role::Host,
            exp: unix_now() - 60,
            uses: None,
            jti: "x".into(),
            aud: INVITE_AUDIENCE.into(),
        });
        let Err(InviteError::Invalid(m)) = invites.admit(&t, "r") else {
            panic!("an expired invite admitted");
        };
        assert!(m.contains("Expired"), "{m}");
    }
}
