//! Meeting chat on Matrix: a bot account bridges each meeting to a Matrix
//! room, both ways, checks Matrix identities for meeting sign-in, and
//! publishes who is in a call as MatrixRTC membership.
//!
//! The server binary holds one [`Chat`]; everything here runs on its tokio
//! runtime, away from the media workers.

mod admin;
mod bindings;
mod bridge;
mod call;
mod command;
mod erasure;
mod events;
mod ghosts;
mod history;
mod identity;
mod meeting;
mod meetings;
mod openid;
mod outbox;
mod quota;
mod retention;
mod share;
mod shared_outbox;
mod store;
mod sync;
mod time;
mod widget;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use bridge::{Chat, ChatStats};
pub use erasure::{erase, ErasedGhost, ErasureReport, Subject};
pub use events::ChatEvent;
pub use identity::Identity;
pub use meeting::{MeetingChat, MeetingEvent};
pub use meetings::RoomUse;
pub use openid::{OpenIdError, OpenIdToken};
pub use outbox::Author;
pub use retention::RetentionReport;
pub use share::{ChatShare, ShareError, Shared};
use url::Url;

/// Longest chat message accepted from a meeting, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Client-Server API base URL of the bot's homeserver.
    pub homeserver: Url,
    /// The bot's user (localpart or full id) and password.
    pub user: String,
    pub password: String,
    /// Where the bot keeps its login, sync state, room mapping and outbox.
    pub store_dir: PathBuf,
    /// Base URL of the meeting server as users reach it, for links.
    pub public_url: Url,
    /// Homeservers whose users may sign in to meetings, by server name, with
    /// the base URL their OpenID userinfo is served under. Empty: the bot's
    /// own homeserver only.
    pub openid_homeservers: BTreeMap<String, Url>,
    /// Meetings bound to existing rooms (room id or alias) instead of a new one.
    pub rooms: BTreeMap<String, String>,
    /// Set when the homeserver has our application-service registration:
    /// participants then write as ghost users instead of through the bot.
    pub appservice: Option<AppService>,
    /// Messages of one meeting that may wait in the outbox (the homeserver
    /// is away); more are refused, so one meeting cannot fill the disk.
    pub max_outbox_per_meeting: u64,
    /// How long the rooms we create keep their messages (`m.room.retention`
    /// `max_lifetime`). None: as long as the homeserver keeps them.
    pub room_retention: Option<Duration>,
    /// Rooms one Matrix user may make us create (by opening meetings under
    /// new names) in a day.
    pub max_rooms_per_user_per_day: u32,
    /// Ghost users unused this long are deactivated and erased on the
    /// homeserver and forgotten here. None: kept.
    pub ghost_retention: Option<Duration>,
    /// Meetings unused this long lose their room (the next use makes a new
    /// one). None: kept.
    pub meeting_retention: Option<Duration>,
    /// With `meeting_retention`, the rooms meet created for those meetings
    /// are also deleted and purged from the homeserver (needs
    /// `admin_token`).
    pub purge_rooms: bool,
    /// A homeserver admin's access token, for its admin API: purging rooms,
    /// and erasing ghost users when there is no application service.
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AppService {
    /// The registration's `as_token`.
    pub as_token: String,
    /// Localpart prefix of the registration's exclusive user namespace.
    pub prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the chat bot is not signed in to the homeserver (yet)")]
    NotReady,
    #[error("homeserver: {0}")]
    Matrix(#[from] matrix_sdk::Error),
    #[error("homeserver: {0}")]
    Http(#[from] matrix_sdk::HttpError),
    #[error("chat store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("{0}")]
    Share(#[from] ShareError),
    #[error("cannot create the chat store directory {path}: {source}")]
    StoreDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("chat: {0}")]
    Invalid(String),
    #[error("meeting `{0}` has no chat room open here")]
    NoMeeting(String),
    /// The homeserver is away and the meeting's outbox is full.
    #[error("{0} chat messages of this meeting already wait for the homeserver; try again when chat is back")]
    Backlog(u64),
    /// The user opened as many meetings with new rooms as a day allows.
    #[error("you opened {0} meetings with new Matrix rooms in the last day, as many as this server allows; reuse one or wait")]
    TooManyRooms(u32),
    /// Only identified participants make the bridge create a room.
    #[error("meeting `{0}` has no Matrix room, and only an identified participant makes one")]
    NoRoom(String),
}

/// Locks a mutex whose data stays consistent even if a holder panicked
/// (every critical section here is a single insert, remove or read).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
