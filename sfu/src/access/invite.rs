//! Invite links: a signed grant to enter one meeting with one role, until
//! it expires and, optionally, for a number of joins. Minted by the admin
//! API and by hosts in their meeting; presented in `join`. Signed like access
//! tokens, so any node with the secret can check one; the use count is
//! kept by the node that admits (all joins of a meeting go to the server
//! holding it; with several servers, its next server takes the count on
//! from Redis, see [`Use::take_on`]), and so are the links an
//! administrator withdrew (`revocations.rs`).
//!
//! A use is counted only once its join has a seat in the meeting: a join
//! holds a [`Use`] while it is checked, waits and goes to the media worker,
//! which may still find the meeting full; the use counts when the worker
//! seats it ([`Use::commit`]), and is given back if it never does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::revocations::Revocations;
pub use super::revocations::MAX_LIFETIME_SECS;
use super::token::{unix_now, TokenKeys};
use crate::room::api::Role;

/// The audience of invite links.
const INVITE_AUDIENCE: &str = "meet-invite";

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
    /// Identifies the link: for its use count, and for withdrawing it
    /// (the admin API's invite id). 32 hex digits, `-`, the expiry.
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
    #[error(
        "the invite link is being used as often as it may be by joins under way; try again shortly"
    )]
    InUse,
    #[error("an administrator withdrew this invite link")]
    Revoked,
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
    /// The joins of each link with a use count, by id.
    used: Arc<Mutex<HashMap<String, Count>>>,
    revoked: Revocations,
}

/// A counted link's joins.
#[derive(Debug, Clone, Copy)]
struct Count {
    /// Seated.
    used: u32,
    /// Under way: checked, not seated yet.
    reserved: u32,
    /// The link's expiry, after which the count can go.
    exp: u64,
}

/// A freshly minted invite.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The signed invite, for a link's `invite` parameter.
    pub invite: String,
    /// Its id, for withdrawing it.
    pub id: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// One join's use of a counted link, reserved while the join is under way:
/// counted by [`Use::commit`] once it is seated, given back when dropped
/// uncommitted (the join was refused, or gave up).
pub struct Use {
    invites: Invites,
    jti: String,
    /// The link's use count and expiry.
    uses: u32,
    exp: u64,
    committed: bool,
}

impl Use {
    /// The link's id.
    pub fn id(&self) -> &str {
        &self.jti
    }

    /// The link's expiry, in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.exp
    }

    /// Takes on `shared`, the joins the link admitted on the servers that
    /// held the meeting before this one: refused if, with them, it has
    /// none left for this join.
    pub fn take_on(&self, shared: u32) -> Result<(), InviteError> {
        let mut used = self.invites.lock();
        let Some(c) = used.get_mut(&self.jti) else {
            return Ok(());
        };
        c.used = c.used.max(shared);
        // This join's own reservation is among `reserved`.
        if c.used >= self.uses {
            return Err(InviteError::UsedUp);
        }
        if c.used + c.reserved > self.uses {
            return Err(InviteError::InUse);
        }
        Ok(())
    }

    /// The join took its seat: the use counts.
    pub fn commit(mut self) {
        self.committed = true;
        if let Some(c) = self.invites.lock().get_mut(&self.jti) {
            c.reserved -= 1;
            c.used += 1;
        }
    }
}

impl Drop for Use {
    fn drop(&mut self) {
        if !self.committed {
            if let Some(c) = self.invites.lock().get_mut(&self.jti) {
                c.reserved -= 1;
            }
        }
    }
}

impl Invites {
    pub fn new(keys: TokenKeys, revoked: Revocations) -> Self {
        Self {
            keys,
            used: Default::default(),
            revoked,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
        // Nothing panics while holding it; poisoned counts are still whole.
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The links withdrawn by the administrator.
    pub fn revocations(&self) -> &Revocations {
        &self.revoked
    }

    /// A signed invite to `room` as `role` for `lifetime_secs` (capped at
    /// [`MAX_LIFETIME_SECS`]) and, if given, `uses` joins.
    pub fn mint(&self, room: &str, role: Role, lifetime_secs: u64, uses: Option<u32>) -> Minted {
        let exp = unix_now() + lifetime_secs.min(MAX_LIFETIME_SECS);
        // The expiry in the id lets a withdrawal be forgotten once it is
        // past (`revocations.rs`).
        let id = format!("{:032x}-{exp}", rand::random::<u128>());
        let invite = self.keys.sign(&Invite {
            room: room.to_owned(),
            role,
            exp,
            uses,
            jti: id.clone(),
            aud: INVITE_AUDIENCE.to_owned(),
        });
        Minted {
            invite,
            id,
            expires_at: exp,
        }
    }

    /// Checks an invite for `room`; for a link with a use count, reserves
    /// the use the join makes of it (see [`Use`]).
    pub fn admit(&self, token: &str, room: &str) -> Result<(Invite, Option<Use>), InviteError> {
        let invite: Invite = self
            .keys
            .verify(token, INVITE_AUDIENCE)
            .map_err(|e| InviteError::Invalid(e.to_string()))?;
        if invite.room != room {
            return Err(InviteError::WrongRoom);
        }
        if self.revoked.is_revoked(&invite.jti) {
            return Err(InviteError::Revoked);
        }
        let Some(uses) = invite.uses else {
            return Ok((invite, None));
        };
        let now = unix_now();
        let mut used = self.lock();
        // Expired links can be used no more; their counts can go, unless a
        // join still holds a use of one.
        used.retain(|_, c| c.exp + 60 > now || c.reserved > 0);
        let c = used.entry(invite.jti.clone()).or_insert(Count {
            used: 0,
            reserved: 0,
            exp: invite.exp,
        });
        if c.used >= uses {
            return Err(InviteError::UsedUp);
        }
        if c.used + c.reserved >= uses {
            return Err(InviteError::InUse);
        }
        c.reserved += 1;
        let reserved = Use {
            invites: self.clone(),
            jti: invite.jti.clone(),
            uses,
            exp: invite.exp,
            committed: false,
        };
        drop(used);
        Ok((invite, Some(reserved)))
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

    fn new_invites(keys: TokenKeys) -> Invites {
        Invites::new(keys, Revocations::default())
    }

    /// Admits `t` to `r` and, as a seated join does, counts its use.
    fn seat(invites: &Invites, t: &str, r: &str) -> Result<Invite, InviteError> {
        let (invite, reserved) = invites.admit(t, r)?;
        if let Some(u) = reserved {
            u.commit();
        }
        Ok(invite)
    }

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
        let invites = new_invites(TokenKeys::new(""));
        let m = invites.mint("standup", Role::Viewer, 3600, None);
        assert!(m.id.ends_with(&format!("-{}", m.expires_at)), "{}", m.id);
        assert!(super::super::revocations::is_invite_id(&m.id), "{}", m.id);
        let i = seat(&invites, &m.invite, "standup").unwrap();
        assert_eq!((i.room.as_str(), i.role), ("standup", Role::Viewer));
        assert_eq!(i.jti, m.id);
        assert!(seat(&invites, &m.invite, "standup").is_ok(), "no use count");
        assert_eq!(
            seat(&invites, &m.invite, "other").err(),
            Some(InviteError::WrongRoom)
        );
        let elsewhere = new_invites(TokenKeys::new(""));
        assert!(matches!(
            elsewhere.admit(&m.invite, "standup"),
            Err(InviteError::Invalid(_))
        ));
    }

    #[test]
    fn a_counted_invite_is_used_up() {
        let invites = new_invites(TokenKeys::new(""));
        let t = invites.mint("r", Role::Participant, 60, Some(2)).invite;
        assert!(seat(&invites, &t, "r").is_ok());
        assert!(seat(&invites, &t, "r").is_ok());
        assert_eq!(seat(&invites, &t, "r").err(), Some(InviteError::UsedUp));
        // Another link of the same room has its own count.
        let other = invites.mint("r", Role::Participant, 60, Some(1)).invite;
        assert!(seat(&invites, &other, "r").is_ok());
    }

    #[test]
    fn a_use_counts_only_once_its_join_is_seated() {
        let invites = new_invites(TokenKeys::new(""));
        let t = invites.mint("r", Role::Participant, 60, Some(1)).invite;
        // A join refused after the check (locked, full, banned, too many
        // joins) gives its use back.
        let (_, refused) = invites.admit(&t, "r").unwrap();
        drop(refused);
        // While one is under way the link's one use is taken.
        let (_, under_way) = invites.admit(&t, "r").unwrap();
        assert_eq!(invites.admit(&t, "r").err(), Some(InviteError::InUse));
        under_way.unwrap().commit();
        assert_eq!(invites.admit(&t, "r").err(), Some(InviteError::UsedUp));
    }

    #[test]
    fn uses_counted_on_another_server_are_taken_on() {
        let invites = new_invites(TokenKeys::new(""));
        let t = invites.mint("r", Role::Participant, 60, Some(3)).invite;
        // Two were seated where the meeting was before.
        let (_, first) = invites.admit(&t, "r").unwrap();
        let (_, second) = invites.admit(&t, "r").unwrap();
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.expires_at(), second.expires_at());
        // One of the two under way here gets the last use, the other not.
        assert_eq!(first.take_on(2), Err(InviteError::InUse));
        drop(first);
        assert_eq!(second.take_on(2), Ok(()));
        second.commit();
        assert_eq!(seat(&invites, &t, "r").err(), Some(InviteError::UsedUp));
        // A count lower than this server's own changes nothing.
        let other = invites.mint("r", Role::Participant, 60, Some(2)).invite;
        seat(&invites, &other, "r").unwrap();
        let (_, next) = invites.admit(&other, "r").unwrap();
        assert_eq!(next.unwrap().take_on(0), Ok(()));
    }

    #[test]
    fn a_withdrawn_invite_is_refused() {
        let invites = new_invites(TokenKeys::new(""));
        let m = invites.mint("r", Role::Host, 60, None);
        let other = invites.mint("r", Role::Host, 60, None);
        invites.revocations().revoke(&m.id, unix_now()).unwrap();
        assert_eq!(
            invites.admit(&m.invite, "r").err(),
            Some(InviteError::Revoked)
        );
        assert!(invites.admit(&other.invite, "r").is_ok());
    }

    #[test]
    fn an_access_token_is_no_invite_and_an_invite_no_access_token() {
        let keys = TokenKeys::new("");
        let invites = new_invites(keys.clone());
        let access = keys.issue("@a:hs", "A", "r", true);
        assert!(matches!(
            invites.admit(&access, "r"),
            Err(InviteError::Invalid(_))
        ));
        let invite = invites.mint("r", Role::Host, 60, None).invite;
        assert!(keys.check(&invite, "r").is_err());
    }

    #[test]
    fn an_invite_is_refused_from_the_second_it_expires() {
        let keys = TokenKeys::new("");
        let invites = new_invites(keys.clone());
        for exp in [unix_now() - 60, unix_now()] {
            let t = keys.sign(&Invite {
                room: "r".into(),
                role: Role::Host,
                exp,
                uses: None,
                jti: "x".into(),
                aud: INVITE_AUDIENCE.into(),
            });
            let Err(InviteError::Invalid(m)) = invites.admit(&t, "r") else {
                panic!("an invite admitted at or after its expiry");
            };
            assert!(m.contains("Expired"), "{m}");
        }
    }
}
