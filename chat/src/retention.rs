//! Retention: what the bridge keeps about people goes once it has not
//! been used for the configured time. Ghost users are deactivated and
//! erased on the homeserver and their rows (and device tokens) deleted;
//! meetings lose their room mapping, and the rooms meet created for them
//! are purged from the homeserver if the operator asked for it. A pass runs
//! at start and every hour; the time it applies is an input, so tests
//! need not wait.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use matrix_sdk::ruma::RoomId;

use crate::admin::erase_ghost;
use crate::bridge::{Chat, Inner};
use crate::ghosts::GhostError;
use crate::store::{unix_ms, Erasure};
use crate::{lock, ChatError};

/// Time between two retention passes.
const EVERY: Duration = Duration::from_secs(3600);

/// What one retention pass did: counts only, so that it can be logged
/// without naming anyone.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetentionReport {
    /// Ghost users deactivated and erased on the homeserver.
    pub ghosts_erased: usize,
    /// Meetings whose room mapping was deleted.
    pub meetings_forgotten: usize,
    /// Rooms deleted and purged on the homeserver.
    pub rooms_purged: usize,
    /// Erasures the homeserver has not done yet (retried next pass).
    pub pending: usize,
}

impl Chat {
    /// Applies retention as it stands at `now`: ordinarily the present;
    /// tests pass a later time instead of waiting days.
    pub async fn apply_retention(&self, now: SystemTime) -> Result<RetentionReport, ChatError> {
        self.inner.retention_pass(now).await
    }
}

impl Inner {
    /// Runs a pass now (the bot is signed in) and every hour after.
    pub(crate) async fn retention(self: Arc<Self>) {
        loop {
            match self.retention_pass(SystemTime::now()).await {
                Ok(r) if r == RetentionReport::default() => {
                    tracing::debug!("retention: nothing to remove");
                }
                Ok(r) => tracing::info!(
                    ghosts_erased = r.ghosts_erased,
                    meetings_forgotten = r.meetings_forgotten,
                    rooms_purged = r.rooms_purged,
                    pending = r.pending,
                    "retention: removed what was kept past its time"
                ),
                Err(e) => tracing::warn!(error = %e, "retention pass failed; retrying in an hour"),
            }
            tokio::time::sleep(EVERY).await;
        }
    }

    async fn retention_pass(&self, now: SystemTime) -> Result<RetentionReport, ChatError> {
        // One pass at a time (the hourly one and one asked for).
        let _one = self.retention_running.lock().await;
        let mut report = RetentionReport::default();
        let now_ms = unix_ms(now);
        let cutoff = |keep: Duration| now_ms.saturating_sub(keep.as_millis() as i64);
        if let Some(keep) = self.config.ghost_retention {
            // Queued for erasure and out of use in one transaction: a
            // person back later gets a new ghost, never one being erased.
            self.store.take_stale_ghosts(cutoff(keep))?;
        }
        // Where servers share meetings, the one on duty forgets them for all.
        if let (Some(keep), true) = (self.config.meeting_retention, self.on_duty()) {
            report.meetings_forgotten = self.forget_meetings(now_ms, cutoff(keep)).await?;
        }
        // Including what earlier passes and `meet erase` could not finish.
        for erasure in self.store.erasures()? {
            match self.erase(&erasure).await {
                Ok(()) => {
                    self.store.erased(&erasure)?;
                    match erasure {
                        Erasure::Ghost(_) => report.ghosts_erased += 1,
                        Erasure::Room(_) => report.rooms_purged += 1,
                    }
                }
                Err(e) => {
                    report.pending += 1;
                    tracing::warn!(
                        error = e.brief(),
                        "an erasure on the homeserver failed; retried next pass"
                    );
                }
            }
        }
        self.store.compact()?;
        Ok(report)
    }

    /// Deletes the room mappings of meetings unused since `cutoff`;
    /// meetings someone is in count as used `now_ms`.
    async fn forget_meetings(&self, now_ms: i64, cutoff: i64) -> Result<usize, ChatError> {
        // Held so that no meeting opens on a room being forgotten.
        let _opening = self.opening.lock().await;
        let in_use: Vec<String> = lock(&self.meetings)
            .iter()
            .filter(|(_, m)| m.tx.receiver_count() > 0)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &in_use {
            self.touch(name, now_ms).await?;
        }
        let mut forgotten = 0;
        for (meeting, room) in self.stale_meetings(cutoff).await? {
            // Open here but idle (closed within a minute anyway): closed
            // now, so that its next use opens it on its new room.
            lock(&self.meetings).remove(&meeting);
            let purge = self.config.purge_rooms
                && self.admin.is_some()
                && !self.config.rooms.contains_key(&meeting)
                && self.created_here(&room);
            if self.forget_meeting(&meeting, &room, cutoff, purge).await? {
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Whether the bot created the room (never someone's own room that
    /// `!meet` bound, nor one the configuration names).
    fn created_here(&self, room_id: &str) -> bool {
        let (Ok(room_id), Some(bot)) = (RoomId::parse(room_id), self.client.user_id()) else {
            return false;
        };
        self.client
            .get_room(&room_id)
            .and_then(|r| r.creators())
            .is_some_and(|creators| creators.len() == 1 && creators[0] == bot)
    }

    async fn erase(&self, erasure: &Erasure) -> Result<(), GhostError> {
        match erasure {
            Erasure::Ghost(localpart) => {
                let server = self
                    .client
                    .user_id()
                    .map(|u| u.server_name().to_string())
                    .ok_or_else(|| GhostError::Transient("not signed in".into()))?;
                let user_id = format!("@{localpart}:{server}");
                erase_ghost(self.ghosts.as_ref(), self.admin.as_ref(), &user_id).await
            }
            Erasure::Room(room_id) => {
                let Some(admin) = &self.admin else {
                    return Err(GhostError::Refused(
                        "purging rooms needs matrix_admin_token".into(),
                    ));
                };
                // The bot's own client store forgets the room too.
                if let Some(room) = RoomId::parse(room_id)
                    .ok()
                    .and_then(|id| self.client.get_room(&id))
                {
                    let left = room.leave().await.is_ok();
                    if left {
                        let _ = room.forget().await;
                    }
                }
                admin.purge_room(room_id).await
            }
        }
    }
}
