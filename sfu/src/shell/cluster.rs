//! This server's meetings as the cluster sees them (`cluster::Local`):
//! which are in use, its load, closing a meeting another server took, and
//! taking what an administrator changed on another server.

use crate::access::policy::Overrides;
use crate::access::roster::Ended;
use crate::access::token::unix_now;
use crate::access::Access;
use crate::cluster::Local;

pub struct Meetings(pub Access);

impl Local for Meetings {
    fn in_use(&self, room: &str) -> bool {
        self.0.roster.is_running(room) || self.0.lobby.is_waiting(room)
    }

    fn lost(&self, room: &str) {
        self.0.roster.end_all(room, Ended::Moved);
    }

    fn load(&self) -> (usize, usize) {
        (self.0.drain.participants(), self.0.roster.meetings().len())
    }

    fn draining(&self) -> bool {
        self.0.drain.is_draining()
    }

    fn policies(&self, shared: Vec<(String, String)>) {
        let parsed = shared.into_iter().filter_map(|(room, json)| {
            let overrides = serde_json::from_str::<Overrides>(&json).ok()?;
            Some((room, overrides))
        });
        self.0.policies.merge(parsed);
    }

    fn revocations(&self, shared: Vec<(String, u64)>) {
        self.0.invites.revocations().merge(shared, unix_now());
    }
}
