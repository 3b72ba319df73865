//! Coming back after a dropped connection. A session whose socket dropped
//! (not one that left) holds its participant's seat for the grace period,
//! while the core shows the participant as reconnecting; a `join` carrying
//! that participant's `resume` secret takes the seat back, and its new self
//! takes the old one's place in the core. A session still up when its
//! secret comes back lets go of the seat (its client is elsewhere now).

use tokio::sync::mpsc;

use super::Joined;
use crate::access::resume::{Live, Seated};
use crate::access::Access;
use crate::room::api::{Command, Event};
use crate::worker::{Request, WorkerHandle};

/// A claimed seat's old participant, still in the core: removed when this
/// is dropped, unless its new self reached the core (which then removes
/// it), so that a comeback that fails on the way leaves nobody behind.
pub(super) struct Vacate {
    participant_id: Option<String>,
    worker: WorkerHandle,
}

impl Vacate {
    pub(super) fn new(participant_id: String, worker: WorkerHandle) -> Self {
        Self {
            participant_id: Some(participant_id),
            worker,
        }
    }

    pub(super) fn participant_id(&self) -> Option<&str> {
        self.participant_id.as_deref()
    }

    /// The new self's join went to the core, which removes the old one.
    pub(super) fn done(mut self) {
        self.participant_id = None;
    }
}

impl Drop for Vacate {
    fn drop(&mut self) {
        if let Some(participant_id) = self.participant_id.take() {
            // A full queue drops this; the core's peer timeout removes it.
            let _ = self.worker.send(Request::Command {
                participant_id,
                command: Command::Leave,
            });
        }
    }
}

/// Until the live session's seat is asked to let go (see `Live`).
pub(super) async fn let_go(live: &mut Option<Live>) {
    match live {
        Some(live) => live.let_go().await,
        None => std::future::pending().await,
    }
}

/// Holds the seat of `joined`, whose socket dropped: true if its client
/// came back for it within the grace, false if it did not (or the core
/// removed the participant meanwhile, or no seats are held).
pub(super) async fn hold(access: &Access, joined: &mut Joined) -> bool {
    joined.live = None;
    if access.resumes.grace().is_zero() || !joined.in_core {
        return false;
    }
    let told = joined.worker.send(Request::Command {
        participant_id: joined.participant_id.clone(),
        command: Command::Reconnecting,
    });
    if told.is_err() {
        return false;
    }
    tokio::select! {
        back = access.resumes.hold(&joined.resume, seated(joined)) => back,
        () = removed(&mut joined.events) => false,
    }
}

/// The seat of `joined`, as it was let in: what seating it again needs.
pub(super) fn seated(joined: &Joined) -> Seated {
    Seated {
        room: joined.room.clone(),
        participant_id: joined.participant_id.clone(),
        name: joined.name.clone(),
        identity: joined.identity.clone(),
        role: joined.role,
        guest: joined.guest,
        anonymous: joined.anonymous,
        ban_keys: joined.ban_keys.clone(),
    }
}

/// Until the core says the participant is out (a host removed it, the
/// meeting ended, the server stops).
async fn removed(events: &mut mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        if matches!(event, Event::Left { .. }) {
            return;
        }
    }
}
