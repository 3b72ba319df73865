//! Seats held for participants whose signalling connection dropped (a
//! train tunnel, a Wi-Fi switch): for a grace period the others see them
//! as reconnecting, and their client may come back to the seat with the
//! secret it got in `joined`. Coming back this way needs no lobby and no
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
#[derive(Debug, Clone)]
pub struct Seated {
    pub room: String,
    pub participant_id: String,
    pub name: String,
    pub identity: Option<Claims>,
    pub role: Role,
    pub guest: bool,
    pub anonymous: bool,
    pub ban_key: Option<String>,
}

/// A seat being held, until its client claims it or the grace ends.
struct Held {
    seated: Seated,
    /// Tells the session that held the seat that it was claimed.
    claimed: oneshot::Sender<()>,
}

#[derive(Clone)]
pub struct Resumes {
    grace: Duration,
    held: Arc<Mutex<HashMap<String, Held>>>,
}

impl Resumes {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            held: Default::default(),
        }
    }

    /// How long a dropped participant's seat is held; zero: not at all.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// Holds `seated`'s seat under `secret` for the grace period; true if
    /// its client came back for it meanwhile, false if the grace ran out.
    /// (Dropped early, it stops holding the seat.)
    pub async fn hold(&self, secret: &str, seated: Seated) -> bool {
        let (claimed, came_back) = oneshot::channel();
        self.lock()
            .insert(secret.to_owned(), Held { seated, claimed });
        let _forget = Forget {
            resumes: self,
            secret,
        };
        matches!(
            tokio::time::timeout(self.grace, came_back).await,
            Ok(Ok(()))
        )
    }

    /// The seat held under `secret` in `room`, if there is one: taken, so
    /// that only one connection comes back to it.
    pub fn claim(&self, secret: &str, room: &str) -> Option<Seated> {
        let mut held = self.lock();
        if held.get(secret)?.seated.room != room {
            return None;
        }
        let Held { seated, claimed } = held.remove(secret)?;
        // Its session gave up at this very moment: the seat is gone.
        claimed.send(()).ok()?;
        Some(seated)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        // A panic elsewhere cannot leave the map half-changed.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
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
            ban_key: None,
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
        assert!(resumes.claim("s3cret", "other").is_none(), "another room");
        assert!(resumes.claim("guess", "r").is_none());
        let back = resumes.claim("s3cret", "r").expect("held");
        assert_eq!(back.participant_id, "p1");
        assert!(resumes.claim("s3cret", "r").is_none(), "claimed once");
        assert!(holding.await.unwrap());
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
        assert!(resumes.claim("s3cret", "r").is_none());
    }
}
