//! Who may enter meetings: the deployment's policy from the config, and a
//! meeting's own overrides, set through the admin API and kept in a file
//! so that a restart does not reopen a meeting an operator closed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::state_file::{self, StateFileError};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Meetings that may have a policy of their own; bounds the file and the
/// memory one administrator's automation can fill.
pub const MAX_MEETING_POLICIES: usize = 10_000;

/// Who may enter a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Policy {
    /// Anyone who reaches the server may open and enter the meeting with
    /// just a name (a lab, a classroom).
    pub anonymous_join: bool,
    /// Whoever may not come in directly (no invite link or Matrix
    /// membership, or the meeting is locked) waits for a host instead of
    /// being turned away.
    pub lobby: bool,
    /// Guests (no Matrix identity, not a host) may enter while no host is
    /// in the meeting; otherwise they wait until one comes.
    pub guests_before_host: bool,
}

/// A meeting's departures from the deployment's policy; an absent field
/// keeps the deployment's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_join: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lobby: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guests_before_host: Option<bool>,
}

impl Overrides {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn apply(&self, p: Policy) -> Policy {
        Policy {
            anonymous_join: self.anonymous_join.unwrap_or(p.anonymous_join),
            lobby: self.lobby.unwrap_or(p.lobby),
            guests_before_host: self.guests_before_host.unwrap_or(p.guests_before_host),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("the meeting policies: {0}")]
    File(#[from] StateFileError),
    #[error("at most {MAX_MEETING_POLICIES} meetings may have a policy of their own")]
    TooMany,
}

/// The deployment's policy and every meeting's overrides.
#[derive(Clone)]
pub struct Policies {
    deployment: Policy,
    meetings: Arc<Mutex<BTreeMap<String, Overrides>>>,
    /// Where overrides are kept; `None`: in memory only.
    file: Option<PathBuf>,
}

impl Policies {
    /// The deployment's policy, with the overrides saved in `file` (which
    /// need not exist yet).
    pub fn load(deployment: Policy, file: Option<PathBuf>) -> Result<Self, PolicyError> {
        let meetings = match &file {
            Some(path) => state_file::read(path)?,
            None => BTreeMap::new(),
        };
        Ok(Self {
            deployment,
            meetings: Arc::new(Mutex::new(meetings)),
            file,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Overrides>> {
        // Nothing panics while holding it; a poisoned map is still whole.
        self.meetings.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn deployment(&self) -> Policy {
        self.deployment
    }

    /// What applies to `room` now.
    pub fn for_meeting(&self, room: &str) -> Policy {
        self.overrides(room).apply(self.deployment)
    }

    pub fn overrides(&self, room: &str) -> Overrides {
        self.lock().get(room).copied().unwrap_or_default()
    }

    /// Replaces `room`'s overrides (none: the deployment's policy again)
    /// and saves them all before they apply, so that what a restart reads
    /// is what was in force.
    pub fn set(&self, room: &str, overrides: Overrides) -> Result<(), PolicyError> {
        let mut meetings = self.lock();
        let previous = if overrides.is_empty() {
            meetings.remove(room)
        } else {
            if !meetings.contains_key(room) && meetings.len() >= MAX_MEETING_POLICIES {
                return Err(PolicyError::TooMany);
            }
            meetings.insert(room.to_owned(), overrides)
        };
        if let Some(path) = &self.file {
            if let Err(e) = state_file::write(path, &*meetings) {
                // Unsaved, so not in force either.
                match previous {
                    Some(p) => meetings.insert(room.to_owned(), p),
                    None => meetings.remove(room),
                };
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl Policies {
    /// Takes meetings' policies set on other servers (several sharing
    /// meetings): each replaces this server's own for its room, and the
    /// file is saved once if any changed. Taken even if it cannot be
    /// written: they are in force elsewhere.
    pub fn merge(&self, shared: impl IntoIterator<Item = (String, Overrides)>) {
        let mut meetings = self.lock();
        let mut changed = false;
        for (room, overrides) in shared {
            if meetings.get(&room).copied().unwrap_or_default() == overrides {
                continue;
            }
            if overrides.is_empty() {
                meetings.remove(&room);
            } else if meetings.len() < MAX_MEETING_POLICIES || meetings.contains_key(&room) {
                meetings.insert(room, overrides);
            }
            changed = true;
        }
        if let Some(path) = self.file.as_ref().filter(|_| changed) {
            if let Err(e) = state_file::write(path, &*meetings) {
                tracing::warn!(error = %e, "policies set on other servers are not saved here");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOSED: Policy = Policy {
        anonymous_join: false,
        lobby: true,
        guests_before_host: true,
    };

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meet-policy-{name}-{:016x}", rand::random::<u64>()));
        dir.join("policies.json")
    }

    #[test]
    fn a_meeting_departs_from_the_deployment_where_it_says_so() {
        let p = Policies::load(CLOSED, None).unwrap();
        let strict = Overrides {
            lobby: Some(false),
            guests_before_host: Some(false),
            ..Overrides::default()
        };
        p.set("board", strict).unwrap();
        let board = p.for_meeting("board");
        assert!(!board.lobby && !board.guests_before_host && !board.anonymous_join);
        assert_eq!(p.for_meeting("other"), CLOSED);
        assert_eq!(p.overrides("board"), strict);
        p.set("board", Overrides::default()).unwrap();
        assert_eq!(p.for_meeting("board"), CLOSED);
        assert!(p.lock().is_empty(), "no overrides: no entry");
    }

    #[test]
    fn overrides_outlive_a_restart_and_a_bad_file_is_named() {
        let path = scratch("restart");
        let p = Policies::load(CLOSED, Some(path.clone())).unwrap();
        let open = Overrides {
            anonymous_join: Some(true),
            ..Overrides::default()
        };
        p.set("class", open).unwrap();
        let again = Policies::load(CLOSED, Some(path.clone())).unwrap();
        assert!(again.for_meeting("class").anonymous_join);
        assert!(!again.for_meeting("board").anonymous_join);

        std::fs::write(&path, "{\"class\": {\"lobbby\": true}}").unwrap();
        let e = Policies::load(CLOSED, Some(path.clone())).err().unwrap();
        assert!(e.to_string().contains("policies.json"), "{e}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn policies_from_other_servers_replace_and_clear_ours_and_are_saved() {
        let path = scratch("merge");
        let p = Policies::load(CLOSED, Some(path.clone())).unwrap();
        let open = Overrides {
            anonymous_join: Some(true),
            ..Overrides::default()
        };
        p.set("class", open).unwrap();
        p.set("lab", open).unwrap();
        let strict = Overrides {
            lobby: Some(false),
            ..Overrides::default()
        };
        // Cleared elsewhere, changed elsewhere, new elsewhere; others kept.
        p.merge([
            ("class".to_owned(), Overrides::default()),
            ("board".to_owned(), strict),
        ]);
        assert_eq!(p.overrides("class"), Overrides::default());
        assert_eq!(p.overrides("board"), strict);
        assert_eq!(p.overrides("lab"), open);
        let again = Policies::load(CLOSED, Some(path)).unwrap();
        assert_eq!(again.overrides("board"), strict);
        assert_eq!(again.overrides("class"), Overrides::default());
    }

    #[test]
    fn so_many_meetings_may_have_their_own() {
        let p = Policies::load(CLOSED, None).unwrap();
        let o = Overrides {
            lobby: Some(false),
            ..Overrides::default()
        };
        for i in 0..MAX_MEETING_POLICIES {
            p.set(&format!("m{i}"), o).unwrap();
        }
        assert!(matches!(p.set("one more", o), Err(PolicyError::TooMany)));
        // Changing or clearing one that has a policy still works.
        p.set("m0", Overrides::default()).unwrap();
        p.set("one more", o).unwrap();
    }
}
