//! Admitting Matrix users to a meeting: those invited to or joined in its
//! room (the room is the invitation list), hosts by its power levels. The
//! homeserver is asked every time; when it cannot answer, nobody is
//! admitted on the strength of an older answer.

use std::time::Duration;

use matrix_sdk::ruma::api::client::state::get_state_event_for_key;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::room::member::MembershipState;
use matrix_sdk::ruma::events::room::power_levels::{
    RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource,
};
use matrix_sdk::ruma::{RoomId, UserId};
use matrix_sdk::Room;
use serde_json::Value;

use crate::bridge::{Chat, Inner};
use crate::meetings::RoomUse;
use crate::openid::{OpenIdError, OpenIdToken};
use crate::ChatError;

/// How long a sign-in waits for the bot's synced state to show the
/// membership the homeserver already confirmed.
const STATE_CATCH_UP: Duration = Duration::from_secs(3);

/// A Matrix user admitted to a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub name: String,
    /// The meeting's Matrix room.
    pub room_id: String,
    /// May kick in the room, so gets host rights in the meeting.
    pub host: bool,
}

impl Chat {
    /// Checks a Matrix OpenID token and the user's membership in the
    /// meeting's room. With `room_use` [`RoomUse::MayCreate`], a meeting
    /// without a room gets one, with this user invited as its moderator:
    /// a Matrix user of an allowed homeserver may open a meeting.
    pub async fn verify(
        &self,
        meeting: &str,
        token: &OpenIdToken,
        room_use: RoomUse,
    ) -> Result<Identity, OpenIdError> {
        // The bot's own homeserver is allowed once the bot knows it.
        self.inner
            .signed_in_now()
            .await
            .map_err(|e| OpenIdError::Unavailable(e.to_string()))?;
        let user = self.inner.verifier.user_of(token).await?;
        if room_use == RoomUse::MayCreate {
            let user_id =
                UserId::parse(&user).map_err(|_| OpenIdError::WrongServer(user.clone()))?;
            let opened = self.inner.meeting(meeting, room_use, Some(&user_id)).await;
            match opened {
                Ok(_) => {}
                Err(ChatError::Http(e)) => return Err(OpenIdError::Unreachable(e.to_string())),
                Err(e @ ChatError::TooManyRooms(_)) => {
                    return Err(OpenIdError::TooManyRooms(e.to_string()))
                }
                Err(e) => return Err(OpenIdError::Unavailable(e.to_string())),
            }
        }
        self.member(meeting, &user).await
    }

    /// The Matrix user as a participant of the meeting: invited to or
    /// joined in its room now (asked of the homeserver), with host rights
    /// from the room's power levels.
    pub async fn member(&self, meeting: &str, user: &str) -> Result<Identity, OpenIdError> {
        let user = user.to_owned();
        let room_id = self
            .inner
            .room_of(meeting)
            .await
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
        let (membership, name) = self
            .inner
            .member_name(&room, &user_id)
            .await?
            .ok_or_else(|| OpenIdError::NotMember(user.clone()))?;
        // A meeting name is at most 64 characters, without control ones.
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        let name = match name.trim() {
            "" => user_id.localpart().to_owned(),
            n => n.to_owned(),
        };
        // The room's version and creators (who, from room version 12, have
        // every right) come from the synced state, which may lag an
        // invitation or a join of a moment ago by a sync.
        let deadline = tokio::time::Instant::now() + STATE_CATCH_UP;
        while !matches!(room.get_member_no_sync(&user_id).await, Ok(Some(m)) if *m.membership() == membership)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let host = self
            .inner
            .power_levels(&room)
            .await?
            .user_can_kick(&user_id);
        Ok(Identity {
            user_id: user,
            name,
            room_id: room_id.to_string(),
            host,
        })
    }
}

impl Inner {
    /// The room's power levels as the homeserver has them now. Not the
    /// synced ones: Synapse's sync may hand over an older power-levels
    /// event as state after a newer one (seen right after a room's
    /// creation), and rights must not follow that back.
    pub(crate) async fn power_levels(&self, room: &Room) -> Result<RoomPowerLevels, OpenIdError> {
        let request = get_state_event_for_key::v3::Request::new(
            room.room_id().to_owned(),
            "m.room.power_levels".into(),
            String::new(),
        );
        let content = match self.client.send(request).await {
            Ok(r) => serde_json::from_str::<RoomPowerLevelsEventContent>(r.event_or_content.get())
                .map(RoomPowerLevelsSource::Original)
                .map_err(|e| OpenIdError::Unavailable(format!("the room's power levels: {e}")))?,
            // A room without any: the specification's defaults.
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => {
                RoomPowerLevelsSource::None
            }
            Err(e) if e.as_client_api_error().is_some() => {
                return Err(OpenIdError::Unavailable(e.to_string()))
            }
            Err(e) => return Err(OpenIdError::Unreachable(e.to_string())),
        };
        let (Some(rules), Some(creators)) =
            (room.version().and_then(|v| v.rules()), room.creators())
        else {
            return Err(OpenIdError::Unavailable(
                "the room's version is not known here yet".into(),
            ));
        };
        Ok(RoomPowerLevels::new(
            content,
            &rules.authorization,
            creators,
        ))
    }

    /// The user's membership (invited or joined) and display name, if
    /// they are on the room's invitation list, asked of the homeserver:
    /// the bot's synced state may not have it yet.
    async fn member_name(
        &self,
        room: &Room,
        user: &UserId,
    ) -> Result<Option<(MembershipState, String)>, OpenIdError> {
        let request = get_state_event_for_key::v3::Request::new(
            room.room_id().to_owned(),
            "m.room.member".into(),
            user.to_string(),
        );
        let content = match self.client.send(request).await {
            Ok(r) => serde_json::from_str::<Value>(r.event_or_content.get()).unwrap_or_default(),
            // No member event: never invited.
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => {
                return Ok(None)
            }
            // Anything else (the bot no longer sees the room, a proxy's
            // error page): not an answer, so nobody gets in on it.
            Err(e) if e.as_client_api_error().is_some() => {
                return Err(OpenIdError::Unavailable(format!(
                    "the homeserver refused to show the room's members: {e}"
                )))
            }
            Err(e) => return Err(OpenIdError::Unreachable(e.to_string())),
        };
        let membership = match content.get("membership").and_then(Value::as_str) {
            Some("join") => MembershipState::Join,
            Some("invite") => MembershipState::Invite,
            _ => return Ok(None),
        };
        // An invitation carries no display name of the invitee.
        let name = content
            .get("displayname")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(user.localpart());
        Ok(Some((membership, name.to_owned())))
    }
}
