//! The Element widget that opens a meeting inside its Matrix room.

use matrix_sdk::ruma::RoomId;
use serde_json::json;

use crate::bridge::Inner;
use crate::ChatError;

const WIDGET_ID: &str = "meet";
/// The state events that hold a room's widgets and their layout.
pub(crate) const WIDGET_EVENT: &str = "im.vector.modular.widgets";
pub(crate) const LAYOUT_EVENT: &str = "io.element.widgets.layout";

impl Inner {
    /// Element shows room widgets; this one opens the meeting inside it.
    pub(crate) fn add_widget(&self, room_id: &RoomId, meeting: &str) -> Result<(), ChatError> {
        let url = format!(
            "{}?widgetId=$matrix_widget_id&parentUrl=$parentUrl&userId=$matrix_user_id&displayName=$matrix_display_name&roomId=$matrix_room_id",
            self.meeting_link(meeting)
        );
        let widget = json!({
            "id": WIDGET_ID,
            "type": "m.custom",
            "name": "Meeting",
            "url": url,
            "creatorUserId": self.client.user_id().map(|u| u.to_string()),
            "data": { "title": format!("Video meeting {meeting}") },
        });
        self.enqueue(
            room_id.as_str(),
            WIDGET_EVENT,
            Some(WIDGET_ID),
            &widget,
            None,
        )?;
        let layout = json!({
            "widgets": { WIDGET_ID: { "container": "top", "index": 0, "width": 100, "height": 50 } }
        });
        self.enqueue(room_id.as_str(), LAYOUT_EVENT, Some(""), &layout, None)
    }
}
