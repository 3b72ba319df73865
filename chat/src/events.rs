//! What a meeting's chat shows, and how Matrix room events become that.
//!
//! The conversion works on the events' JSON as the homeserver sent it, so a
//! field a client left out or a newer event shape degrades to "not shown"
//! rather than an error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Key under which messages relayed from a meeting carry their author, so
/// that the bot's echo of them is recognised and not shown twice.
pub const AUTHOR_KEY: &str = "meet.author";

/// One change to a meeting's chat, as the web client applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    Message {
        /// Matrix event id, or a local id (`local-N`) while `pending`.
        id: String,
        /// Matrix user id of the author; empty for a meeting guest.
        sender: String,
        name: String,
        body: String,
        /// Milliseconds since the Unix epoch.
        ts: u64,
        reply_to: Option<String>,
        /// Written in the meeting and not yet in the Matrix room.
        pending: bool,
    },
    /// A pending message reached the room under event id `id`.
    Delivered {
        local_id: String,
        id: String,
    },
    /// The homeserver refused a pending message for good.
    Failed {
        local_id: String,
    },
    Edit {
        id: String,
        body: String,
    },
    Redact {
        id: String,
    },
    Reaction {
        id: String,
        target: String,
        key: String,
        name: String,
    },
}

/// A room event as far as a meeting cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Chat(ChatEvent),
    /// The user left, was kicked or was banned, or their invitation was
    /// withdrawn or declined.
    MemberGone(String),
    /// The room's power levels changed: who hosts may have.
    PowerLevels,
    /// A `!meet` command.
    Command {
        sender: String,
    },
}

/// Converts one timeline event. `ours` tells the bridge's own users (the bot
/// and its ghosts); `name_of` gives a member's display name.
pub fn convert(
    event: &Value,
    ours: impl Fn(&str) -> bool,
    name_of: impl Fn(&str) -> String,
) -> Option<RoomEvent> {
    let kind = event.get("type")?.as_str()?;
    let sender = event.get("sender")?.as_str()?;
    let id = event.get("event_id")?.as_str()?;
    let content = event.get("content")?;
    let ts = event
        .get("origin_server_ts")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match kind {
        "m.room.message" => {
            let relates = content.get("m.relates_to");
            if relation_type(relates) == Some("m.replace") {
                let body = content
                    .get("m.new_content")
                    .and_then(|c| c.get("body"))
                    .and_then(Value::as_str)?;
                let target = relates?.get("event_id")?.as_str()?;
                return Some(RoomEvent::Chat(ChatEvent::Edit {
                    id: target.to_owned(),
                    body: body.to_owned(),
                }));
            }
            if ours(sender) && content.get(AUTHOR_KEY).is_some() {
                return None; // our own relay of a meeting message
            }
            let body = content.get("body")?.as_str()?;
            let reply_to = relates
                .and_then(|r| r.get("m.in_reply_to"))
                .and_then(|r| r.get("event_id"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            let body = if reply_to.is_some() {
                strip_reply_fallback(body)
            } else {
                body
            };
            if !ours(sender) && is_command(body) {
                return Some(RoomEvent::Command {
                    sender: sender.to_owned(),
                });
            }
            Some(RoomEvent::Chat(ChatEvent::Message {
                id: id.to_owned(),
                sender: sender.to_owned(),
                name: name_of(sender),
                body: body.to_owned(),
                ts,
                reply_to,
                pending: false,
            }))
        }
        "m.reaction" => {
            let relates = content.get("m.relates_to")?;
            if relation_type(Some(relates)) != Some("m.annotation") {
                return None;
            }
            Some(RoomEvent::Chat(ChatEvent::Reaction {
                id: id.to_owned(),
                target: relates.get("event_id")?.as_str()?.to_owned(),
                key: relates.get("key")?.as_str()?.to_owned(),
                name: name_of(sender),
            }))
        }
        "m.room.redaction" => {
            // Room version 11 moved `redacts` into the content.
            let target = content
                .get("redacts")
                .or_else(|| event.get("redacts"))?
                .as_str()?;
            Some(RoomEvent::Chat(ChatEvent::Redact {
                id: target.to_owned(),
            }))
        }
        "m.room.power_levels" if event.get("state_key")?.as_str()?.is_empty() => {
            Some(RoomEvent::PowerLevels)
        }
        "m.room.member" => {
            let user = event.get("state_key")?.as_str()?;
            match content.get("membership")?.as_str()? {
                "leave" | "ban" => Some(RoomEvent::MemberGone(user.to_owned())),
                _ => None,
            }
        }
        _ => None,
    }
}

fn relation_type(relates: Option<&Value>) -> Option<&str> {
    relates?.get("rel_type")?.as_str()
}

/// `!meet`, also with words after it; not `!meeting`.
fn is_command(body: &str) -> bool {
    body.trim()
        .strip_prefix("!meet")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// Older clients quote the replied-to message as `> ` lines, then a blank
/// line; the meeting shows its own quote, so that fallback goes.
fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(i) if body[..i].lines().all(|l| l.starts_with('>')) => &body[i + 2..],
        _ => body,
    }
}

pub(crate) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(escape_html("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
    use serde_json::json;

    fn conv(ev: Value) -> Option<RoomEvent> {
        convert(
            &ev,
            |u| u == "@bot:hs" || u.starts_with("@meet_"),
            |u| format!("name of {u}"),
        )
    }

    fn msg(content: Value) -> Value {
        json!({"type":"m.room.message","sender":"@alice:hs","event_id":"$1","origin_server_ts":5,"content":content})
    }

    #[test]
    fn text_message() {
        assert_eq!(
            conv(msg(json!({"msgtype":"m.text","body":"hi"}))),
            Some(RoomEvent::Chat(ChatEvent::Message {
                id: "$1".into(),
                sender: "@alice:hs".into(),
                name: "name of @alice:hs".into(),
                body: "hi".into(),
                ts: 5,
                reply_to: None,
                pending: false
            }))
        );
    }

    #[test]
    fn reply_loses_its_fallback_quote() {
        let ev = conv(msg(
            json!({"msgtype":"m.text","body":"> <@bob:hs> earlier\n> more\n\nmy answer",
            "m.relates_to":{"m.in_reply_to":{"event_id":"$0"}}}),
        ));
        let Some(RoomEvent::Chat(ChatEvent::Message { body, reply_to, .. })) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(body, "my answer");
        assert_eq!(reply_to.as_deref(), Some("$0"));
    }

    #[test]
    fn edit_reaction_redaction() {
        assert_eq!(
            conv(msg(json!({"msgtype":"m.text","body":"* fixed",
                "m.new_content":{"msgtype":"m.text","body":"fixed"},
                "m.relates_to":{"rel_type":"m.replace","event_id":"$0"}}))),
            Some(RoomEvent::Chat(ChatEvent::Edit {
                id: "$0".into(),
                body: "fixed".into()
            }))
        );
        assert_eq!(
            conv(
                json!({"type":"m.reaction","sender":"@alice:hs","event_id":"$r","content":
                {"m.relates_to":{"rel_type":"m.annotation","event_id":"$0","key":"👍"}}})
            ),
            Some(RoomEvent::Chat(ChatEvent::Reaction {
                id: "$r".into(),
                target: "$0".into(),
                key: "👍".into(),
                name: "name of @alice:hs".into()
            }))
        );
        let redact = Some(RoomEvent::Chat(ChatEvent::Redact { id: "$0".into() }));
        assert_eq!(
            conv(
                json!({"type":"m.room.redaction","sender":"@a:hs","event_id":"$x","content":{"redacts":"$0"}})
            ),
            redact
        );
        assert_eq!(
            conv(
                json!({"type":"m.room.redaction","sender":"@a:hs","event_id":"$x","redacts":"$0","content":{}})
            ),
            redact
        );
    }

    #[test]
    fn membership_and_commands() {
        let member = |m: &str| json!({"type":"m.room.member","sender":"@mod:hs","event_id":"$m","state_key":"@alice:hs","content":{"membership":m}});
        assert_eq!(
            conv(member("ban")),
            Some(RoomEvent::MemberGone("@alice:hs".into()))
        );
        assert_eq!(
            conv(member("leave")),
            Some(RoomEvent::MemberGone("@alice:hs".into()))
        );
        assert_eq!(conv(member("join")), None);
        assert_eq!(conv(member("invite")), None);
        assert_eq!(
            conv(
                json!({"type":"m.room.power_levels","sender":"@mod:hs","event_id":"$p","state_key":"","content":{"users":{}}})
            ),
            Some(RoomEvent::PowerLevels)
        );
        assert_eq!(
            conv(msg(json!({"msgtype":"m.text","body":" !meet  standup "}))),
            Some(RoomEvent::Command {
                sender: "@alice:hs".into(),
            })
        );
        assert!(matches!(
            conv(msg(json!({"msgtype":"m.text","body":"!meeting"}))),
            Some(RoomEvent::Chat(_))
        ));
    }

    #[test]
    fn own_relays_are_skipped_and_junk_ignored() {
        let relay = json!({"type":"m.room.message","sender":"@bot:hs","event_id":"$2","content":
            {"msgtype":"m.text","body":"Carol: hi", AUTHOR_KEY: {"name":"Carol"}}});
        assert_eq!(conv(relay), None);
        let ghost = json!({"type":"m.room.message","sender":"@meet_carol_1:hs","event_id":"$3","content":
            {"msgtype":"m.text","body":"hi", AUTHOR_KEY: {"name":"Carol"}}});
        assert_eq!(conv(ghost), None);
        assert_eq!(conv(json!({"type":"m.room.message"})), None);
        assert_eq!(conv(json!("not an object")), None);
        assert_eq!(
            conv(msg(json!({"msgtype":"m.image","body":7}))),
            None,
            "a body that is not text"
        );
    }

    #[test]
    fn wire_format() {
        let s = serde_json::to_string(&ChatEvent::Delivered {
            local_id: "local-1".into(),
            id: "$e".into(),
        })
        .unwrap();
        assert_eq!(s, r#"{"kind":"delivered","local_id":"local-1","id":"$e"}"#);
    }
}
