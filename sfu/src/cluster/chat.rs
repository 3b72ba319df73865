//! The chat bridge's shared state (`chat::ChatShare`) kept in the
//! cluster's Redis: a meeting keeps its Matrix room whichever server
//! carries it, and one server at a time does the bot's duties.

use chat::{ChatShare, ShareError, Shared};

use super::{Cluster, ClusterError};

impl Cluster {
    fn shared<T>(&self, result: Result<T, ClusterError>) -> Result<T, ShareError> {
        result.map_err(|e| {
            self.redis_failed(&e);
            ShareError(e.to_string())
        })
    }
}

impl ChatShare for Cluster {
    fn room_of<'a>(&'a self, meeting: &'a str) -> Shared<'a, Option<String>> {
        Box::pin(async move { self.shared(self.inner.store.chat_room_of(meeting).await) })
    }

    fn meeting_of<'a>(&'a self, room: &'a str) -> Shared<'a, Option<String>> {
        Box::pin(async move { self.shared(self.inner.store.chat_meeting_of(room).await) })
    }

    fn bind<'a>(&'a self, meeting: &'a str, room: &'a str, now_ms: i64) -> Shared<'a, String> {
        Box::pin(
            async move { self.shared(self.inner.store.chat_bind(meeting, room, now_ms).await) },
        )
    }

    fn touch<'a>(&'a self, meeting: &'a str, now_ms: i64) -> Shared<'a, bool> {
        Box::pin(async move { self.shared(self.inner.store.chat_touch(meeting, now_ms).await) })
    }

    fn stale(&self, cutoff_ms: i64) -> Shared<'_, Vec<(String, String)>> {
        Box::pin(async move { self.shared(self.inner.store.chat_stale(cutoff_ms).await) })
    }

    fn forget<'a>(&'a self, meeting: &'a str, cutoff_ms: i64) -> Shared<'a, bool> {
        Box::pin(async move { self.shared(self.inner.store.chat_forget(meeting, cutoff_ms).await) })
    }

    fn chat_since<'a>(&'a self, meeting: &'a str, now_ms: u64) -> Shared<'a, u64> {
        Box::pin(async move { self.shared(self.inner.store.chat_since(meeting, now_ms).await) })
    }

    fn hold_duties(&self) -> Shared<'_, bool> {
        Box::pin(async move { self.shared(self.inner.store.chat_duty(self.id()).await) })
    }

    fn next_seq(&self) -> Shared<'_, i64> {
        Box::pin(async move { self.shared(self.inner.store.chat_seq().await) })
    }

    fn outbox_push<'a>(
        &'a self,
        meeting: &'a str,
        item: &'a str,
        bound: u64,
    ) -> Shared<'a, Result<(), u64>> {
        Box::pin(async move { self.shared(self.inner.store.chat_push(meeting, item, bound).await) })
    }

    fn outbox_waiting<'a>(&'a self, meeting: &'a str, limit: u32) -> Shared<'a, Vec<String>> {
        Box::pin(async move { self.shared(self.inner.store.chat_waiting(meeting, limit).await) })
    }

    fn outbox_pop<'a>(&'a self, meeting: &'a str, item: &'a str) -> Shared<'a, ()> {
        Box::pin(async move { self.shared(self.inner.store.chat_pop(meeting, item).await) })
    }

    fn outbox_meetings(&self) -> Shared<'_, Vec<String>> {
        Box::pin(async move { self.shared(self.inner.store.chat_unsent().await) })
    }

    fn outbox_claim<'a>(&'a self, meeting: &'a str) -> Shared<'a, bool> {
        Box::pin(
            async move { self.shared(self.inner.store.chat_sending(meeting, self.id()).await) },
        )
    }
}
