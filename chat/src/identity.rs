//! Admitting Matrix users to a meeting: members of its room, hosts by its power levels.

use std::time::Duration;

use matrix_sdk::ruma::api::client::state::get_state_event_for_key;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::{RoomId, UserId};
use matrix_sdk::Room;
use serde_json::Value;

use crate::bridge::{Chat, Inner};
use crate::openid::{OpenIdError, OpenIdToken};

/// How long a sign-in waits for the bot's synced state to show a join the
/// homeserver already confirmed.
const STATE_CATCH_UP: Duration = Duration::from_secs(3);

/// A Matrix user admitted to a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
    /// May kick in the room, so gets host rights in the meeting.
    pub host: bool,
}

impl Chat {
    /// Checks a Matrix OpenID token and the user's membership in the
    /// meeting's room.
    pub async fn verify(
        &self,
        meeting: &str,
        token: &OpenIdToken,
    ) -> Result<Identity, OpenIdError> {
        let user = self.inner.verifier.user_of(token).await?;
        self.member(meeting, &user).await
    }

    /// The Matrix user as a participant of the meeting: joined to its room
    /// now (asked of the homeserver), with host rights from the room's
    /// power levels.
    pub async fn member(&self, meeting: &str, user: &str) -> Result<Identity, OpenIdError> {
        let user = user.to_owned();
        let room_id = self
            .inner
            .store
            .room_of(meeting)
            .map_err(|e| OpenIdError::Unavailable(e.to_string()))?
            .ok_or(OpenIdError::NoRoom)?;
        let room_id =
            RoomId::parse(room_id).map_err(|e| OpenIdError::Unavailable(e.to_string()))?;
        let user_id = UserId::parse(&user).map_err(|_| OpenIdError::WrongServer(user.clone()))?;
        let room = self
            .inner
            .client
            .get_room(&room_id)
            .ok_or_else(|| OpenIdError::Unavailable("the bot is not in the room".into()))?;
        let name = self
            .inner
            .joined_member_name(&room, &user_id)
            .await?
            .ok_or_else(|| OpenIdError::NotMember(user.clone()))?;
        // A meeting name is at most 64 characters, without control ones.
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        let name = match name.trim() {
            "" => user_id.localpart().to_owned(),
            n => n.to_owned(),
        };
        // Power levels (and, from room version 12, creators) come from the
        // synced state, which may lag a join of a moment ago by a sync.
        let deadline = tokio::time::Instant::now() + STATE_CATCH_UP;
        while !matches!(room.get_member_no_sync(&user_id).await, Ok(Some(m)) if *m.membership() == MembershipState::Join)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let host = room
            .power_levels()
            .await
            .map(|pl| pl.user_can_kick(&user_id))
            .unwrap_or(false);
        Ok(Identity {
            user_id: user,
            name,
            host,
        })
    }
}

impl Inner {
    /// The user's display name if they are joined to the room, asked of
    /// the homeserver: the bot's synced state may not have the join yet.
    async fn joined_member_name(
        &self,
        room: &Room,
        user: &UserId,
    ) -> Result<Option<String>, OpenIdError> {
        let request = get_state_event_for_key::v3::Request::new(
            room.room_id().to_owned(),
            "m.room.member".into(),
            user.to_string(),
        );
        let content = match self.client.send(request).await {
            Ok(r) => serde_json::from_str::<Value>(r.event_or_content.get()).unwrap_or_default(),
            // Not found: never a member.
            Err(e) if e.as_client_api_error().is_some() => return Ok(None),
            Err(e) => return Err(OpenIdError::Unreachable(e.to_string())),
        };
        if content.get("membership").and_then(Value::as_str) != Some("join") {
            return Ok(None);
        }
        let name = content
            .get("displayname")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(user.localpart());
        Ok(Some(name.to_owned()))
    }
}
