//! Following a Matrix participant's place on the room's invitation list
//! while it is in the meeting: the homeserver asked again when the bot's
//! sync may have missed a change.

use chat::{Chat, Identity, OpenIdError};

use super::Joined;

/// Asking the homeserver again whether a Matrix participant is still on
/// the room's invitation list, and with what rights: one question at a
/// time, and one more if something changed while it was out (its answer
/// may predate the change).
#[derive(Default)]
pub(super) struct Recheck {
    asking: Option<tokio::task::JoinHandle<Result<Identity, OpenIdError>>>,
    again: bool,
}

impl Recheck {
    pub(super) fn start(&mut self, chat: Option<&Chat>, joined: &Joined) {
        let (Some(chat), Some(claims)) = (chat, &joined.identity) else {
            return;
        };
        if self.asking.is_some() {
            self.again = true;
            return;
        }
        let (chat, room, user) = (chat.clone(), joined.room.clone(), claims.sub.clone());
        self.asking = Some(tokio::spawn(async move { chat.member(&room, &user).await }));
        self.again = false;
    }

    pub(super) fn running(&self) -> bool {
        self.asking.is_some()
    }

    /// The answer; poll only while [`Recheck::running`].
    pub(super) async fn done(
        &mut self,
    ) -> Result<Result<Identity, OpenIdError>, tokio::task::JoinError> {
        let answer = match self.asking.as_mut() {
            Some(asking) => asking.await,
            None => std::future::pending().await,
        };
        self.asking = None;
        answer
    }

    /// Whether another question is due, asked after an answer came.
    pub(super) fn take_again(&mut self) -> bool {
        std::mem::take(&mut self.again)
    }
}
