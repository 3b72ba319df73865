//! MatrixRTC call membership: the `call.member` state events saying who is in a meeting's call.

use serde_json::{json, Value};

use crate::bridge::{Chat, Inner};
use crate::lock;

pub(crate) const CALL_MEMBER: &str = "org.matrix.msc3401.call.member";
/// A call membership not renewed within this is stale (MSC4143).
const CALL_MEMBER_EXPIRES_MS: u64 = 4 * 3600 * 1000;

impl Chat {
    /// Publishes that a Matrix user is in the meeting's call (MatrixRTC).
    pub fn call_joined(&self, meeting: &str, user_id: &str, participant_id: &str) {
        let content = json!({
            "application": "m.call",
            "call_id": "",
            "scope": "m.room",
            "device_id": device_id(participant_id),
            "expires": CALL_MEMBER_EXPIRES_MS,
            "focus_active": { "type": "meet" },
            "foci_preferred": [{ "type": "meet", "url": self.inner.meeting_link(meeting) }],
        });
        self.inner
            .call_member(meeting, user_id, participant_id, content);
    }

    /// Withdraws [`Chat::call_joined`].
    pub fn call_left(&self, meeting: &str, user_id: &str, participant_id: &str) {
        self.inner
            .call_member(meeting, user_id, participant_id, json!({}));
    }
}

impl Inner {
    fn call_member(&self, meeting: &str, user_id: &str, participant_id: &str, content: Value) {
        // Called as a participant joins or leaves, when the meeting is open
        // here (a server alone also knows rooms of meetings not open).
        let open = lock(&self.meetings)
            .get(meeting)
            .map(|m| m.room_id.to_string());
        let bound = || self.store.room_of(meeting).ok().flatten();
        let Some(room_id) = open.or_else(|| self.share.is_none().then(bound).flatten()) else {
            return;
        };
        // The leading underscore lets the bot set a key naming another user
        // (MSC3779); it has the power level for the event type.
        let key = format!("_{user_id}_{}_m.call", device_id(participant_id));
        if let Err(e) = self.enqueue(&room_id, CALL_MEMBER, Some(&key), &content, None) {
            tracing::warn!(error = %e, "cannot queue call membership");
        }
    }
}

fn device_id(participant_id: &str) -> String {
    format!("MEET{}", participant_id.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_per_participant() {
        assert_eq!(device_id("ab12"), "MEETAB12");
    }
}
