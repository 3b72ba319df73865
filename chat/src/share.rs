//! What the chat bridges of several meeting servers share, so that a
//! meeting has one room and one history whichever server carries it: the
//! meeting↔room bindings and when each meeting was last used, since when
//! each meeting's chat runs, which server does the bot's own duties
//! (answering `!meet`, forgetting unused meetings), and each meeting's
//! outbox, so that what its participants wrote outlives their server. The server's cluster
//! keeps these in Redis; a server alone shares nothing and its store holds
//! the bindings.

use std::future::Future;
use std::pin::Pin;

/// A shared operation's result, on its way.
pub type Shared<'a, T> = Pin<Box<dyn Future<Output = Result<T, ShareError>> + Send + 'a>>;

/// The shared state cannot be reached or read.
#[derive(Debug, thiserror::Error)]
#[error("shared chat state: {0}")]
pub struct ShareError(pub String);

/// The shared half of the bridge's state (see the module's comment).
pub trait ChatShare: Send + Sync {
    /// The room bound to `meeting`, if any.
    fn room_of<'a>(&'a self, meeting: &'a str) -> Shared<'a, Option<String>>;
    /// The meeting bound to `room`, if any.
    fn meeting_of<'a>(&'a self, room: &'a str) -> Shared<'a, Option<String>>;
    /// Binds `meeting` to `room`, used at `now_ms`, unless another server
    /// bound it first: returns the room it is bound to.
    fn bind<'a>(&'a self, meeting: &'a str, room: &'a str, now_ms: i64) -> Shared<'a, String>;
    /// `meeting` is in use at `now_ms`: kept from retention, and its chat
    /// goes on (see [`ChatShare::chat_since`]). Whether it is bound (a
    /// binding just forgotten by retention is not).
    fn touch<'a>(&'a self, meeting: &'a str, now_ms: i64) -> Shared<'a, bool>;
    /// Meetings last used before `cutoff_ms`, with their rooms.
    fn stale(&self, cutoff_ms: i64) -> Shared<'_, Vec<(String, String)>>;
    /// Unbinds `meeting` if it is still unused since `cutoff_ms`; whether
    /// it did.
    fn forget<'a>(&'a self, meeting: &'a str, cutoff_ms: i64) -> Shared<'a, bool>;
    /// Since when `meeting`'s chat runs (Unix ms): `now_ms` if it was not
    /// running anywhere. A meeting nobody touched for a while starts anew.
    fn chat_since<'a>(&'a self, meeting: &'a str, now_ms: u64) -> Shared<'a, u64>;
    /// Takes or keeps the bot's duties for this server; whether it holds
    /// them now. Called every few seconds; a server that stops calling
    /// loses them to another within seconds.
    fn hold_duties(&self) -> Shared<'_, bool>;
    /// A number no item of any server's gets twice.
    fn next_seq(&self) -> Shared<'_, i64>;
    /// Queues `item` last in `meeting`'s outbox unless `bound` items wait
    /// there already (`Err` with how many).
    fn outbox_push<'a>(
        &'a self,
        meeting: &'a str,
        item: &'a str,
        bound: u64,
    ) -> Shared<'a, Result<(), u64>>;
    /// The first `limit` items waiting in `meeting`'s outbox.
    fn outbox_waiting<'a>(&'a self, meeting: &'a str, limit: u32) -> Shared<'a, Vec<String>>;
    /// Takes `item` off the head of `meeting`'s outbox, if it is still
    /// there.
    fn outbox_pop<'a>(&'a self, meeting: &'a str, item: &'a str) -> Shared<'a, ()>;
    /// The meetings whose outbox holds something and that no server
    /// carries now.
    fn outbox_meetings(&self) -> Shared<'_, Vec<String>>;
    /// Takes or keeps the sending of `meeting`'s outbox for this server,
    /// as [`ChatShare::hold_duties`] does the duties; whether it holds it.
    fn outbox_claim<'a>(&'a self, meeting: &'a str) -> Shared<'a, bool>;
}
