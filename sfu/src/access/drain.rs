//! Draining before a stop: who is in a meeting, and whether joins are
//! still taken. `shell::signals` starts a drain on SIGTERM (what systemd
//! sends on stop, restart and upgrade): new meetings are refused,
//! `/readyz` says not ready, sessions tell their clients, and meetings in
//! progress go on, taking joins and rejoins as before (a latecomer meets
//! the others, as with LiveKit and Jitsi), until the last participant
//! leaves or the drain timeout passes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

/// What the drain keeps; one lock (the watch's) for both, so that a join
/// either counts before a drain starts or is refused after it.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Sessions that joined (or are joining) and have not left.
    participants: usize,
    /// When the drain gives up waiting; `None` while serving.
    deadline: Option<Instant>,
    /// The same moment on the wall clock, for the metrics.
    deadline_at: Option<SystemTime>,
}

/// The server's drain state; cheap to clone.
#[derive(Clone)]
pub struct Drain {
    counts: Arc<watch::Sender<Counts>>,
    /// The deadline alone, for sessions: they wake when a drain starts, not
    /// on every join and leave anywhere.
    deadline: Arc<watch::Sender<Option<Instant>>>,
}

/// A join refused because the server is draining: to a meeting that is
/// not running here, or to any once the drain's time is up.
#[derive(Debug, thiserror::Error)]
#[error("this server is shutting down and takes no new meetings; try again in a moment")]
pub struct Draining;

/// A participant counted as in a meeting until this is dropped.
pub struct InMeeting {
    counts: Arc<watch::Sender<Counts>>,
}

impl Drop for InMeeting {
    fn drop(&mut self) {
        self.counts.send_modify(|c| c.participants -= 1);
    }
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            counts: Arc::new(watch::channel(Counts::default()).0),
            deadline: Arc::new(watch::channel(None).0),
        }
    }
}

impl Drain {
    /// Counts a participant in, unless the server is draining and the
    /// meeting is not `running` here, or the drain's time is up.
    pub fn enter(&self, running: bool) -> Result<InMeeting, Draining> {
        let mut refused = false;
        self.counts.send_if_modified(|c| {
            refused = c
                .deadline
                .is_some_and(|deadline| !running || Instant::now() >= deadline);
            if !refused {
                c.participants += 1;
            }
            !refused
        });
        if refused {
            return Err(Draining);
        }
        Ok(InMeeting {
            counts: self.counts.clone(),
        })
    }

    /// Starts draining; meetings go on for at most `timeout`. Returns the
    /// participants still in meetings.
    pub fn start(&self, timeout: Duration) -> usize {
        let mut deadline = Instant::now() + timeout;
        let mut participants = 0;
        self.counts.send_modify(|c| {
            // A drain already under way keeps its deadline.
            if c.deadline.is_none() {
                c.deadline_at = Some(SystemTime::now() + timeout);
            }
            deadline = *c.deadline.get_or_insert(deadline);
            participants = c.participants;
        });
        self.deadline
            .send_if_modified(|d| d.replace(deadline).is_none());
        participants
    }

    pub fn is_draining(&self) -> bool {
        self.counts.borrow().deadline.is_some()
    }

    /// When the drain under way gives up waiting, on the wall clock.
    pub fn deadline(&self) -> Option<SystemTime> {
        self.counts.borrow().deadline_at
    }

    pub fn participants(&self) -> usize {
        self.counts.borrow().participants
    }

    /// The deadline of the drain, once one starts.
    pub fn watch(&self) -> watch::Receiver<Option<Instant>> {
        self.deadline.subscribe()
    }

    /// Completes once the drain has started and nobody is in a meeting, or
    /// its deadline has passed; returns the participants still there.
    pub async fn finished(&self) -> usize {
        let mut rx = self.counts.subscribe();
        let deadline = {
            // The sender lives in `self`, so the channel cannot close.
            let c = rx.wait_for(|c| c.deadline.is_some()).await.ok();
            c.and_then(|c| c.deadline).unwrap_or_else(Instant::now)
        };
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(|c| c.participants == 0)).await;
        self.participants()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, in short spans: a paused clock needs tokio's `test-util`,
    // which would build tokio and all above it a second time for tests.

    #[tokio::test]
    async fn joins_count_until_a_drain_refuses_new_meetings() {
        let drain = Drain::default();
        let a = drain.enter(false).unwrap();
        let b = drain.enter(true).unwrap();
        assert_eq!(drain.participants(), 2);
        assert_eq!(drain.deadline(), None);
        let mut sessions = drain.watch();
        assert!(sessions.borrow_and_update().is_none());
        let before = SystemTime::now();
        assert_eq!(drain.start(Duration::from_secs(60)), 2);
        assert!(drain.is_draining());
        let deadline = drain.deadline().unwrap();
        assert!(deadline >= before + Duration::from_secs(60), "{deadline:?}");
        assert!(drain.enter(false).is_err(), "a new meeting while draining");
        // A meeting in progress still takes a latecomer, who then counts.
        let late = drain.enter(true).unwrap();
        assert_eq!(drain.participants(), 3);
        drop(late);
        assert!(sessions.has_changed().unwrap());
        // A session that looks only now still learns of the drain.
        assert!(drain.watch().borrow_and_update().is_some());
        drop(a);
        let finished = tokio::spawn({
            let drain = drain.clone();
            async move { drain.finished().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!finished.is_finished(), "one participant is still there");
        drop(b);
        assert_eq!(finished.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn the_timeout_ends_a_drain_with_people_still_in_meetings() {
        let drain = Drain::default();
        let _stays = drain.enter(false).unwrap();
        let started = Instant::now();
        drain.start(Duration::from_millis(200));
        // A second start keeps the first deadline.
        drain.start(Duration::from_secs(300));
        let left = tokio::time::timeout(Duration::from_secs(10), drain.finished())
            .await
            .expect("the first deadline holds");
        assert_eq!(left, 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        // Past the deadline even a running meeting takes nobody.
        assert!(drain.enter(true).is_err());
    }

    #[tokio::test]
    async fn finished_waits_for_a_drain_to_start() {
        let drain = Drain::default();
        let finished = tokio::spawn({
            let drain = drain.clone();
            async move { drain.finished().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!finished.is_finished(), "serving, not draining");
        drain.start(Duration::ZERO);
        assert_eq!(finished.await.unwrap(), 0);
    }
}
