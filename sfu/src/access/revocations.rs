//! Invite links an administrator withdrew before they expired (a leaked
//! link), by their id. Invites are signed and checked without state, so a
//! withdrawn one must be remembered until it would have expired anyway:
//! kept in a file beside the meeting policies, so that a restart does not
//! bring a leaked link back, and forgotten once its expiry has passed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::state_file::{self, StateFileError};

/// Longest an invite may be valid for: a month of meetings, no more.
/// Set here, below `invite.rs`, because a withdrawn link whose id does not
/// say when it expires is remembered this long.
pub const MAX_LIFETIME_SECS: u64 = 31 * 24 * 3600;

/// Links that may be withdrawn at once; bounds the file and the memory one
/// administrator's automation can fill.
pub const MAX_REVOCATIONS: usize = 100_000;

/// What an invite id looks like: 32 hex digits, then (for links minted
/// since ids carry it) `-` and the link's expiry in Unix seconds.
pub fn is_invite_id(id: &str) -> bool {
    let (random, expiry) = match id.split_once('-') {
        Some((r, e)) => (r, Some(e)),
        None => (id, None),
    };
    random.len() == 32
        && random
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && expiry
            .is_none_or(|e| (1..=19).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_digit()))
}

/// Until when a withdrawn link must be remembered: its expiry, which its
/// id carries; for an id without one, the longest a link can live from now.
pub fn remember_until(id: &str, now: u64) -> u64 {
    id.split_once('-')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(now + MAX_LIFETIME_SECS)
}

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("the withdrawn invite links: {0}")]
    File(#[from] StateFileError),
    #[error("at most {MAX_REVOCATIONS} unexpired invite links may be withdrawn")]
    TooMany,
}

/// Withdrawn links by id, each with when it may be forgotten (Unix
/// seconds); cheap to clone.
#[derive(Clone, Default)]
pub struct Revocations {
    inner: Arc<Mutex<Inner>>,
    /// Where they are kept; `None`: in memory only.
    file: Option<PathBuf>,
}

#[derive(Default)]
struct Inner {
    ids: BTreeMap<String, u64>,
    /// The earliest moment one of them may be forgotten.
    next_due: u64,
}

impl Inner {
    /// Forgets the links that have expired by `now`; looks only when one
    /// is due.
    fn prune(&mut self, now: u64) {
        if now < self.next_due {
            return;
        }
        self.ids.retain(|_, until| *until > now);
        self.next_due = self.ids.values().copied().min().unwrap_or(u64::MAX);
    }
}

impl Revocations {
    /// The links withdrawn in `file` (which need not exist yet) that have
    /// not expired by `now`.
    pub fn load(file: Option<PathBuf>, now: u64) -> Result<Self, RevocationError> {
        let ids = match &file {
            Some(path) => state_file::read(path)?,
            None => BTreeMap::new(),
        };
        let kept = ids.len();
        let mut inner = Inner { ids, next_due: 0 };
        inner.prune(now);
        if let Some(path) = file.as_ref().filter(|_| inner.ids.len() < kept) {
            // Those forgotten go from the file too; should that fail, they
            // go with the next withdrawal (they are refused as expired).
            if let Err(e) = state_file::write(path, &inner.ids) {
                tracing::warn!(error = %e, "expired withdrawn invite links stay in the file for now");
            }
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            file,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Withdraws the link `id` (see [`is_invite_id`]) and saves the list
    /// before it applies, forgetting the links that have expired by `now`.
    pub fn revoke(&self, id: &str, now: u64) -> Result<(), RevocationError> {
        let mut inner = self.lock();
        inner.prune(now);
        if inner.ids.contains_key(id) {
            return Ok(());
        }
        let until = remember_until(id, now);
        if until <= now {
            // Expired already: refused as such, nothing to remember.
            return Ok(());
        }
        if inner.ids.len() >= MAX_REVOCATIONS {
            return Err(RevocationError::TooMany);
        }
        inner.ids.insert(id.to_owned(), until);
        if let Some(path) = &self.file {
            if let Err(e) = state_file::write(path, &inner.ids) {
                // Unsaved, so not in force either: the caller hears so.
                inner.ids.remove(id);
                return Err(e.into());
            }
        }
        inner.next_due = inner.next_due.min(until);
        Ok(())
    }

    /// Takes links withdrawn on other servers (several sharing meetings),
    /// `(id, until)`, and saves the list once if any was new here. Taken
    /// even if the file cannot be written: they are in force elsewhere.
    pub fn merge(&self, shared: Vec<(String, u64)>, now: u64) {
        let mut inner = self.lock();
        inner.prune(now);
        let mut new = false;
        for (id, until) in shared {
            if until > now && inner.ids.len() < MAX_REVOCATIONS && !inner.ids.contains_key(&id) {
                inner.next_due = inner.next_due.min(until);
                inner.ids.insert(id, until);
                new = true;
            }
        }
        if let Some(path) = self.file.as_ref().filter(|_| new) {
            if let Err(e) = state_file::write(path, &inner.ids) {
                tracing::warn!(error = %e, "links withdrawn on other servers are not saved here");
            }
        }
    }

    pub fn is_revoked(&self, id: &str) -> bool {
        self.lock().ids.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn ids_are_hex_with_an_expiry_or_without() {
        assert!(is_invite_id(ID));
        assert!(is_invite_id(&format!("{ID}-1800000000")));
        for bad in [
            "",
            "0123",
            &ID.to_uppercase(),
            &format!("{ID}-"),
            &format!("{ID}-x"),
            &format!("{ID}-1-2"),
            &format!("{ID}-{}", "9".repeat(20)),
            &format!("{ID}-+1"),
            "../../etc/passwd",
        ] {
            assert!(!is_invite_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_withdrawal_outlives_a_restart_until_the_link_expires() {
        let dir = std::env::temp_dir().join(format!("meet-revoked-{:016x}", rand::random::<u64>()));
        let path = dir.join("revoked-invites.json");
        let now = 1_800_000_000;
        let r = Revocations::load(Some(path.clone()), now).unwrap();
        let soon = format!("{ID}-{}", now + 60);
        let old_style = "fedcba9876543210fedcba9876543210";
        r.revoke(&soon, now).unwrap();
        r.revoke(old_style, now).unwrap();
        // Expired already: refused as expired, nothing kept.
        let gone = format!("{ID}-{}", now - 1);
        r.revoke(&gone, now).unwrap();
        assert!(r.is_revoked(&soon) && r.is_revoked(old_style) && !r.is_revoked(&gone));

        let again = Revocations::load(Some(path.clone()), now + 59).unwrap();
        assert!(again.is_revoked(&soon) && again.is_revoked(old_style));
        // Past its expiry a link is forgotten; one whose expiry is not
        // known is kept as long as any link can live.
        let later = Revocations::load(Some(path.clone()), now + 60).unwrap();
        assert!(!later.is_revoked(&soon) && later.is_revoked(old_style));
        let much_later = Revocations::load(Some(path.clone()), now + MAX_LIFETIME_SECS).unwrap();
        assert!(!much_later.is_revoked(old_style));

        std::fs::write(&path, "[1, 2]").unwrap();
        let e = Revocations::load(Some(path.clone()), now).err().unwrap();
        assert!(e.to_string().contains("revoked-invites.json"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn so_many_may_be_withdrawn() {
        let r = Revocations::load(None, 0).unwrap();
        for i in 0..MAX_REVOCATIONS {
            r.revoke(&format!("{i:032x}-100"), 0).unwrap();
        }
        let one_more = format!("{:032x}-100", MAX_REVOCATIONS);
        assert!(matches!(
            r.revoke(&one_more, 0),
            Err(RevocationError::TooMany)
        ));
        // Once they expired there is room again.
        let later = format!("{:032x}-200", MAX_REVOCATIONS);
        r.revoke(&later, 100).unwrap();
        assert!(r.is_revoked(&later) && !r.is_revoked(&format!("{:032x}-100", 0)));
    }
}
