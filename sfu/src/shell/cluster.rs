//! This server's meetings as the cluster sees them (`cluster::Local`):
//! which are in use, its load, and closing a meeting another server took.

use crate::access::roster::Ended;
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
}
