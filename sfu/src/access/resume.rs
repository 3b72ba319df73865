//! Seats held for participants whose signalling connection dropped (a
//! train tunnel, a Wi-Fi switch): for a grace period the others see them
//! as reconnecting, and their client may come back to the seat with the
//! secret it got in `joined`. A client may also come back before the
//! server noticed its old socket is dead (after a change of network the
//! old TCP connection often just goes quiet): its old session is then
//! told to let go of the seat, and it is handed over. Coming back this way needs no lobby and no
//! second use of an invite link, and a Matrix user needs no fresh token:
//! they were let in a moment ago (a Matrix user's room membership is asked
//! again all the same).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::token::Claims;
use crate::room::api::Role;

/// Who held a seat, as they were let in: what admitting them again needs.
/// (Kept in Redis too where several servers share meetings, so that the
/// meeting's next server can seat them again: see `cluster`.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seated {
    pub room: String,
    pub participant_id: String,
    pub name: String,
    pub identity: Option<Claims>,
    pub role: Role,
    pub guest: bool,
    pub anonymous: bool,
    pub ban_keys: Vec<String>,
}

/// A seat, by its secret: in use by a live session, or held for a
/// client to come back to.
enum Seat {
    /// Tells the live session to let go of it.
    Live {
        room: String,
        let_go: oneshot::Sender<()>,
    },
    /// Held until its client claims it or the grace ends; `claimed` tells
    /// the session that holds it.
    Held {
        seated: Seated,
        claimed: oneshot::Sender<()>,
    },
}

/// How long a claim waits for a live session that was told to let go to
/// hold its seat (it does so at once; this bounds a stuck one).
const HANDOVER: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Resumes {
    grace: Duration,
    seats: Arc<Mutex<HashMap<String, Seat>>>,
}

/// A live session's seat under its secret, for as long as this is kept.
pub struct Live {
    resumes: Resumes,
    secret: String,
    let_go: Option<oneshot::Receiver<()>>,
}

impl Live {
    /// Resolves when a client came back with the secret while this session
    /// still had the seat: it should drop its socket and hold the seat.
    pub async fn let_go(&mut self) {
        if let Some(told) = self.let_go.as_mut() {
            if told.await.is_ok() {
                return;
            }
            self.let_go = None;
        }
        std::future::pending().await
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut seats = self.resumes.lock();
        if matches!(seats.get(&self.secret), Some(Seat::Live { .. })) {
            seats.remove(&self.secret);
        }
    }
}

impl Resumes {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            seats: Default::default(),
        }
    }

    /// How long a dropped participant's seat is held; zero: not at all.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Keeps the seat of a joined session under `secret` in `room`.
    pub fn live(&self, secret: &str, room: &str) -> Live {
        let (tell, told) = oneshot::channel();
        let seat = Seat::Live {
            room: room.to_owned(),
            let_go: tell,
        };
        self.lock().insert(secret.to_owned(), seat);
        Live {
            resumes: self.clone(),
            secret: secret.to_owned(),
            let_go: Some(told),
        }
    }

    /// Holds `seated`'s seat under `secret` for the grace period; true if
    /// its client came back for it meanwhile, false if the grace ran out.
    /// (Dropped early, it stops holding the seat.)
    pub async fn hold(&self, secret: &str, seated: Seated) -> bool {
        let (claimed, came_back) = oneshot::channel();
        self.lock()
            .insert(secret.to_owned(), Seat::Held { seated, claimed });
        let _forget = Forget {
            resumes: self,
            secret,
        };
        matches!(
            tokio::time::timeout(self.grace, came_back).await,
            Ok(Ok(()))
        )
    }

    /// The seat under `secret` in `room`, if there is one: taken, so that
    /// only one connection comes back to it. A seat still in use by a live
    /// session is handed over once that session let go of it.
    pub async fn claim(&self, secret: &str, room: &str) -> Option<Seated> {
        let deadline = tokio::time::Instant::now() + HANDOVER;
        let mut told = false;
        loop {
            match self.take(secret, room) {
                Taken::Seat(seated) => return Some(*seated),
                Taken::LettingGo => told = true,
                Taken::Nothing if !told => return None,
                // Told to let go, its session has not held the seat yet.
                Taken::Nothing => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn take(&self, secret: &str, room: &str) -> Taken {
        let mut seats = self.lock();
        let ours = match seats.get(secret) {
            Some(Seat::Held { seated, .. }) => seated.room == room,
            Some(Seat::Live { room: r, .. }) => r == room,
            None => false,
        };
        match ours.then(|| seats.remove(secret)).flatten() {
            Some(Seat::Held { seated, claimed }) => match claimed.send(()) {
                Ok(()) => Taken::Seat(Box::new(seated)),
                // Its session gave up at this very moment: the seat is gone.
                Err(()) => Taken::Nothing,
            },
            Some(Seat::Live { let_go, .. }) => {
                let _ = let_go.send(());
                Taken::LettingGo
            }
            None => Taken::Nothing,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seat>> {
        // A panic elsewhere cannot leave the map half-changed.
        self.seats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What asking for a seat found.
enum Taken {
    Seat(Box<Seated>),
    /// A live session had it and was told to let go.
    LettingGo,
    Nothing,
}

/// Ends a hold however it ends.
struct Forget<'a> {
    resumes: &'a Resumes,
    secret: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.resumes.lock().remove(self.secret);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seated(room: &str) -> Seated {
        Seated {
            room: room.into(),
            participant_id: "p1".into(),
            name: "Ada".into(),
            identity: None,
            role: Role::Participant,
            guest: true,
            anonymous: true,
            ban_keys: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_seat_is_claimed_once_in_its_own_room_within_the_grace() {
        let resumes = Resumes::new(Duration::from_secs(20));
        let holding = tokio::spawn({
            let r = resumes.clone();
            async move { r.hold("s3cret", seated("r")).await }
        });
        tokio::task::yield_now().await;
        assert!(
            resumes.claim("s3cret", "other").await.is_none(),
            "another room"
        );
        assert!(resumes.claim("guess", "r").await.is_none());
        let back = resumes.claim("s3cret", "r").await.expect("held");
        assert_eq!(back.participant_id, "p1");
        assert!(resumes.claim("s3cret", "r").await.is_none(), "claimed once");
        assert!(holding.await.unwrap());
    }

    #[tokio::test]
    async fn a_live_session_lets_go_of_its_seat_for_its_client_come_back() {
        let resumes = Resumes::new(Duration::from_secs(20));
        let mut live = resumes.live("s3cret", "r");
        assert!(
            resumes.claim("s3cret", "other").await.is_none(),
            "another room"
        );
        // The session, told to let go, holds its seat as one whose socket
        // dropped.
        let session = tokio::spawn({
            let r = resumes.clone();
            async move {
                live.let_go().await;
                drop(live);
                r.hold("s3cret", seated("r")).await
            }
        });
        let back = resumes.claim("s3cret", "r").await.expect("handed over");
        assert_eq!(back.participant_id, "p1");
        assert!(
            session.await.unwrap(),
            "the old session knows it was claimed"
        );
        // A session that ended gives its secret up.
        drop(resumes.live("other", "r"));
        assert!(resumes.claim("other", "r").await.is_none());
    }

    #[tokio::test]
    async fn past_the_grace_the_seat_is_gone() {
        let resumes = Resumes::new(Duration::from_millis(50));
        let holding = tokio::spawn({
            let r = resumes.clone();
            async move { r.hold("s3cret", seated("r")).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!holding.await.unwrap());
        assert!(resumes.claim("s3cret", "r").await.is_none());
    }
}
