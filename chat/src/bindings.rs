//! Which room is each meeting's, and when each meeting was last used: in
//! the store for a server alone, through [`ChatShare`] where servers share
//! meetings (a meeting that moves to another server keeps its room).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::bridge::Inner;
use crate::meeting::Meeting;
use crate::share::ChatShare;
use crate::store::unix_ms;
use crate::{lock, ChatError};

impl Inner {
    fn share(&self) -> Option<&Arc<dyn ChatShare>> {
        self.share.as_ref()
    }

    /// The room of `meeting`: the open meeting's, else its binding.
    pub(crate) async fn room_of(&self, meeting: &str) -> Result<Option<String>, ChatError> {
        if let Some(m) = lock(&self.meetings).get(meeting) {
            return Ok(Some(m.room_id.to_string()));
        }
        match self.share() {
            Some(share) => Ok(share.room_of(meeting).await?),
            None => self.store.room_of(meeting),
        }
    }

    /// The meeting bound to `room`, if any.
    pub(crate) async fn meeting_of(&self, room: &str) -> Result<Option<String>, ChatError> {
        match self.share() {
            Some(share) => Ok(share.meeting_of(room).await?),
            None => self.store.meeting_of(room),
        }
    }

    /// The meeting open here in `room`, if any.
    pub(crate) fn open_meeting_in(&self, room: &str) -> Option<Arc<Meeting>> {
        lock(&self.meetings)
            .values()
            .find(|m| m.room_id.as_str() == room)
            .cloned()
    }

    /// Binds `meeting` to `room`; returns the room it is bound to, which
    /// is another one where another server bound it first.
    pub(crate) async fn bind(
        &self,
        meeting: &str,
        room: &str,
        now_ms: i64,
    ) -> Result<String, ChatError> {
        match self.share() {
            Some(share) => Ok(share.bind(meeting, room, now_ms).await?),
            None => {
                self.store.bind(meeting, room, now_ms)?;
                Ok(room.to_owned())
            }
        }
    }

    /// `meeting` is in use at `now_ms`; whether it is still bound.
    pub(crate) async fn touch(&self, meeting: &str, now_ms: i64) -> Result<bool, ChatError> {
        match self.share() {
            Some(share) => Ok(share.touch(meeting, now_ms).await?),
            None => self.store.touch_meeting(meeting, now_ms),
        }
    }

    /// Meetings last used before `cutoff_ms`, with their rooms.
    pub(crate) async fn stale_meetings(
        &self,
        cutoff_ms: i64,
    ) -> Result<Vec<(String, String)>, ChatError> {
        match self.share() {
            Some(share) => Ok(share.stale(cutoff_ms).await?),
            None => self.store.stale_meetings(cutoff_ms),
        }
    }

    /// Unbinds `meeting` (in `room`) if it is still unused since
    /// `cutoff_ms`, queueing the room's purge if `purge`; whether it did.
    pub(crate) async fn forget_meeting(
        &self,
        meeting: &str,
        room: &str,
        cutoff_ms: i64,
        purge: bool,
    ) -> Result<bool, ChatError> {
        match self.share() {
            Some(share) => {
                if !share.forget(meeting, cutoff_ms).await? {
                    return Ok(false);
                }
                self.store.forgotten(room, purge)?;
                Ok(true)
            }
            None => self.store.forget_meeting(meeting, cutoff_ms, purge),
        }
    }

    /// Since when `meeting`'s chat runs (Unix ms): from now for a server
    /// alone; where servers share meetings, from when the first of them
    /// opened it, so that the next one shows the same history.
    pub(crate) async fn chat_since(&self, meeting: &str, now_ms: u64) -> Result<u64, ChatError> {
        match self.share() {
            Some(share) => Ok(share.chat_since(meeting, now_ms).await?),
            None => Ok(now_ms),
        }
    }

    /// Whether this server does the bot's own duties: always for a server
    /// alone; where servers share meetings, the one holding them.
    pub(crate) fn on_duty(&self) -> bool {
        self.share().is_none() || self.on_duty.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// The meetings this server bound while it ran alone keep their rooms
    /// where servers share meetings (a meeting another server bound
    /// first keeps that one's room): their bindings move to the shared
    /// state, which alone holds them from then on.
    async fn share_bindings(&self, share: &dyn ChatShare) {
        let bindings = match self.store.bindings() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the chat store's meeting bindings");
                return;
            }
        };
        let mut shared = 0;
        for (meeting, room, used) in &bindings {
            // Tried again at the next start if Redis is away now.
            match share.bind(meeting, room, *used).await {
                Ok(bound) => {
                    shared += usize::from(bound == *room);
                    if let Err(e) = self.store.unbind(meeting) {
                        tracing::error!(error = %e, "cannot remove a shared binding from the chat store");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot share this server's meeting bindings now");
                    return;
                }
            }
        }
        if shared > 0 {
            tracing::info!(
                shared,
                "meetings bound on this server alone now keep their rooms for all"
            );
        }
    }
}

/// How often a server takes or keeps the bot's duties (the lease in the
/// shared state outlives a few of these).
const DUTY_EVERY: Duration = Duration::from_secs(2);
/// How often the server on duty looks for meetings' messages that nobody
/// sends (their server died, and the meeting did not go on elsewhere).
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// How often the meetings open here with participants are marked in use,
/// so that their chat goes on and retention keeps them.
const TOUCH_EVERY: Duration = Duration::from_secs(20);

impl Inner {
    /// Where servers share meetings: holds the duties when it can, and
    /// marks the meetings in use here, until the process ends.
    pub(crate) async fn share_loop(self: Arc<Self>, share: Arc<dyn ChatShare>) {
        self.share_bindings(share.as_ref()).await;
        let mut last_touch: Option<Instant> = None;
        let mut last_sweep: Option<Instant> = None;
        loop {
            let held = match share.hold_duties().await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the shared chat state");
                    false
                }
            };
            if self.on_duty.swap(held, Ordering::Relaxed) != held {
                tracing::info!(
                    on_duty = held,
                    "the chat bot's duties (`!meet`, retention) changed hands"
                );
            }
            if held && last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                last_sweep = Some(Instant::now());
                self.sweep_outboxes(share.as_ref()).await;
            }
            if last_touch.is_none_or(|t| t.elapsed() >= TOUCH_EVERY) {
                last_touch = Some(Instant::now());
                let in_use: Vec<String> = lock(&self.meetings)
                    .iter()
                    .filter(|(_, m)| m.tx.receiver_count() > 0)
                    .map(|(name, _)| name.clone())
                    .collect();
                let now = unix_ms(SystemTime::now());
                for name in in_use {
                    if let Err(e) = share.touch(&name, now).await {
                        tracing::warn!(error = %e, "cannot mark a meeting in use");
                    }
                }
            }
            tokio::time::sleep(DUTY_EVERY).await;
        }
    }
}
