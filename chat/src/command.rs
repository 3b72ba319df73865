//! `!meet` in a room of someone else's, and the bot's rights there.
//!
//! A Matrix user's own room gives the bot power 0: it may post the link,
//! but not the state events that make the meeting a widget or show who is
//! in the call. Rather than lose them with an error in the server's log,
//! the bot says in the room what it needs and what works without it, and
//! adds the widget by itself once it is given the power.

use std::time::SystemTime;

use matrix_sdk::ruma::events::room::power_levels::{RoomPowerLevels, UserPowerLevel};
use matrix_sdk::ruma::events::StateEventType;
use matrix_sdk::ruma::{RoomId, UserId};
use serde_json::json;

use crate::bridge::Inner;
use crate::call::CALL_MEMBER;
use crate::events::escape_html;
use crate::store::{unix_ms, WIDGET_WANTED_KEY};
use crate::widget::{LAYOUT_EVENT, WIDGET_EVENT};
use crate::ChatError;

/// Something the bot does in a meeting's room that needs a power level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Right {
    /// The widget and its layout (state events).
    Widget,
    /// MatrixRTC call membership (state events).
    CallMembers,
    /// Inviting participants' ghost users (only with ghosts).
    InviteGhosts,
}

impl Right {
    fn what(self) -> &'static str {
        match self {
            Right::Widget => "add this meeting to the room's widgets",
            Right::CallMembers => "show who is in the call",
            Right::InviteGhosts => "let meeting participants write here under their own names",
        }
    }
}

/// What the bot may not do in a room, and the power level that would let
/// it do all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Missing {
    pub(crate) rights: Vec<Right>,
    pub(crate) needed: i64,
    pub(crate) have: i64,
}

impl Missing {
    pub(crate) fn lacks(&self, right: Right) -> bool {
        self.rights.contains(&right)
    }

    fn of(levels: &RoomPowerLevels, bot: &UserId, ghosts: bool) -> Missing {
        let have = match levels.for_user(bot) {
            UserPowerLevel::Int(i) => i.into(),
            // A creator (room version 12) may do anything.
            _ => i64::MAX,
        };
        let state = |kind: &str| i64::from(levels.for_state(StateEventType::from(kind)));
        let mut wanted = vec![
            (Right::Widget, state(WIDGET_EVENT).max(state(LAYOUT_EVENT))),
            (Right::CallMembers, state(CALL_MEMBER)),
        ];
        if ghosts {
            wanted.push((Right::InviteGhosts, i64::from(levels.invite)));
        }
        let (rights, levels): (Vec<_>, Vec<_>) = wanted
            .into_iter()
            .filter(|(_, level)| *level > have)
            .unzip();
        Missing {
            rights,
            needed: levels.into_iter().max().unwrap_or(have),
            have,
        }
    }

    /// What the bot says about it in the room, plain and HTML; `None`
    /// when it lacks nothing.
    fn explanation(&self) -> Option<(String, String)> {
        let (last, first) = self.rights.split_last()?;
        let mut what = first
            .iter()
            .map(|r| r.what())
            .collect::<Vec<_>>()
            .join(", ");
        if !what.is_empty() {
            what.push_str(" or ");
        }
        what.push_str(last.what());
        let (role, make) = match self.needed {
            50 => (" (Moderator)", "a moderator".to_owned()),
            100 => (" (Admin)", "an admin".to_owned()),
            n => ("", format!("power level {n}")),
        };
        let after = if self.lacks(Right::Widget) {
            " and the widget appears by itself"
        } else {
            ""
        };
        let text = format!(
            "I cannot {what}: that needs power level {needed}{role} in this room, and I have {have}. \
             Make me {make} in the room's settings (Roles & Permissions){after}. \
             Without it, the link works: members of this room join with their Matrix account, \
             whoever may kick here hosts the meeting, and the meeting's chat comes to this room.",
            needed = self.needed,
            have = self.have,
        );
        let html = escape_html(&text);
        Some((text, html))
    }
}

impl Inner {
    /// `!meet`: answers with the room's meeting link, binding the room to
    /// a new meeting first if it has none. The name is always a fresh
    /// random one: a room must never take over a meeting others use.
    /// Where the bot lacks the power for the widget, it says so and adds
    /// the widget once given it (see [`Inner::power_changed`]).
    pub(crate) async fn command(&self, room_id: &RoomId) -> Result<(), ChatError> {
        let now = unix_ms(SystemTime::now());
        let wanted_key = format!("{WIDGET_WANTED_KEY}{room_id}");
        let (meeting, widget_wanted) = match self.meeting_of(room_id.as_str()).await? {
            Some(m) => {
                self.touch(&m, now).await?;
                let wanted = self.store.get(&wanted_key)?.is_some();
                (m, wanted)
            }
            None => {
                let _guard = self.opening.lock().await;
                let name = crate::meetings::random_name();
                self.bind(&name, room_id.as_str(), now).await?;
                (name, true)
            }
        };
        let missing = self.missing(room_id).await;
        if widget_wanted {
            if missing.as_ref().is_some_and(|m| m.lacks(Right::Widget)) {
                self.store.set(&wanted_key, &meeting)?;
            } else {
                self.add_widget(room_id, &meeting)?;
                self.store.remove_setting(&wanted_key)?;
            }
        }
        let link = self.meeting_link(&meeting);
        let mut body = format!("Meeting: {link}");
        let mut html = format!("Meeting: <a href=\"{0}\">{0}</a>", escape_html(&link));
        if let Some((text, text_html)) = missing.as_ref().and_then(Missing::explanation) {
            body.push_str("\n\n");
            body.push_str(&text);
            html.push_str("<br><br>");
            html.push_str(&text_html);
        }
        let content = json!({
            "msgtype": "m.notice",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        });
        self.enqueue(room_id.as_str(), "m.room.message", None, &content, None)
    }

    /// The room's power levels changed: a widget waiting for the bot's
    /// power is added once it has it.
    pub(crate) async fn power_changed(&self, room_id: &RoomId) {
        let key = format!("{WIDGET_WANTED_KEY}{room_id}");
        let Ok(Some(meeting)) = self.store.get(&key) else {
            return;
        };
        let Some(missing) = self.missing(room_id).await else {
            return;
        };
        if missing.lacks(Right::Widget) {
            return;
        }
        let added = self.add_widget(room_id, &meeting).and_then(|()| {
            self.store.remove_setting(&key)?;
            let content = json!({
                "msgtype": "m.notice",
                "body": "Thank you: the meeting is now among this room's widgets.",
            });
            self.enqueue(room_id.as_str(), "m.room.message", None, &content, None)
        });
        if let Err(e) = added {
            tracing::warn!(%room_id, error = %e, "cannot add the meeting's widget");
        }
    }

    /// Adds the meeting's widget to a room meet did not create, or notes
    /// that it waits for the bot's power there.
    pub(crate) async fn add_widget_if_allowed(
        &self,
        room_id: &RoomId,
        meeting: &str,
    ) -> Result<(), ChatError> {
        match self.missing(room_id).await {
            Some(m) if m.lacks(Right::Widget) => {
                tracing::warn!(%room_id, needed = m.needed, have = m.have,
                    "the chat bot lacks the power level for the meeting's widget in its room; it is added once the bot has it");
                self.store
                    .set(&format!("{WIDGET_WANTED_KEY}{room_id}"), meeting)
            }
            _ => self.add_widget(room_id, meeting),
        }
    }

    /// What the bot may not do in the room, as the homeserver has its
    /// power levels now; `None` if they cannot be read (then the bot tries
    /// as before, and the homeserver decides).
    async fn missing(&self, room_id: &RoomId) -> Option<Missing> {
        let bot = self.client.user_id()?.to_owned();
        let room = self.client.get_room(room_id)?;
        match self.power_levels(&room).await {
            Ok(levels) => Some(Missing::of(&levels, &bot, self.ghosts.is_some())),
            Err(e) => {
                tracing::warn!(%room_id, error = %e, "cannot read the room's power levels");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use matrix_sdk::ruma::events::room::power_levels::{
        RoomPowerLevelsEventContent, RoomPowerLevelsSource,
    };
    use matrix_sdk::ruma::room_version_rules::AuthorizationRules;
    use matrix_sdk::ruma::{int, owned_user_id, Int};

    fn levels(bot: i64, state_default: i64, invite: i64) -> RoomPowerLevels {
        let mut content = RoomPowerLevelsEventContent::new(&AuthorizationRules::V11);
        content.state_default = Int::new_saturating(state_default);
        content.invite = Int::new_saturating(invite);
        content
            .users
            .insert(owned_user_id!("@bot:hs"), Int::new_saturating(bot));
        content.users.insert(owned_user_id!("@alice:hs"), int!(100));
        RoomPowerLevels::new(
            RoomPowerLevelsSource::Original(content),
            &AuthorizationRules::V11,
            [owned_user_id!("@alice:hs")],
        )
    }

    #[test]
    fn the_bot_says_what_it_lacks_and_what_works_anyway() {
        let bot = owned_user_id!("@bot:hs");
        let m = Missing::of(&levels(0, 50, 0), &bot, true);
        assert_eq!(m.rights, vec![Right::Widget, Right::CallMembers]);
        assert_eq!((m.needed, m.have), (50, 0));
        let (text, html) = m.explanation().unwrap();
        assert!(
            text.starts_with("I cannot add this meeting to the room's widgets or show who is in the call: that needs power level 50 (Moderator) in this room, and I have 0. Make me a moderator"),
            "{text}"
        );
        assert!(text.contains("the widget appears by itself"), "{text}");
        assert!(text.contains("the link works"), "{text}");
        assert!(html.contains("Roles &amp; Permissions"), "{html}");

        // Invites refused too, with ghosts: said as well.
        let m = Missing::of(&levels(0, 50, 50), &bot, true);
        assert_eq!(m.rights.len(), 3);
        assert!(m.explanation().unwrap().0.contains(
            "show who is in the call or let meeting participants write here under their own names"
        ));
        // Without ghosts, invites do not matter.
        assert_eq!(Missing::of(&levels(0, 50, 50), &bot, false).rights.len(), 2);
        // An unusual level is named as it is.
        let m = Missing::of(&levels(10, 75, 0), &bot, false);
        assert!(m
            .explanation()
            .unwrap()
            .0
            .contains("needs power level 75 in this room, and I have 10. Make me power level 75"));
        // A moderator bot lacks nothing and says nothing more.
        let m = Missing::of(&levels(50, 50, 0), &bot, true);
        assert!(m.rights.is_empty());
        assert_eq!(m.explanation(), None);
    }
}
