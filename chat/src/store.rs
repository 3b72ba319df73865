//! The bridge's own durable state, in one SQLite file: which Matrix room
//! belongs to which meeting, whose ghost user is whose, the bot's login,
//! and the outbox of events that must reach the homeserver even if it is
//! down when they are written.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use crate::ChatError;

/// An event waiting to be sent. `seq` orders the outbox; `txn_id` makes a
/// resend after a lost reply land only once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seq: i64,
    pub room_id: String,
    pub event_type: String,
    /// `Some` for a state event (whose key makes a resend harmless).
    pub state_key: Option<String>,
    pub content: String,
    pub txn_id: String,
    /// The meeting that shows this message as pending, if any.
    pub meeting: Option<String>,
    /// Whose ghost user sends it (see [`crate::Author`]); never sent itself.
    pub person: Option<String>,
}

/// An event to queue: [`Outgoing`] before it has a place and a
/// transaction id.
#[derive(Debug, Clone, Copy)]
pub struct Queued<'a> {
    pub room_id: &'a str,
    pub event_type: &'a str,
    pub state_key: Option<&'a str>,
    pub content: &'a str,
    pub meeting: Option<&'a str>,
    pub person: Option<&'a str>,
}

impl<'a> Queued<'a> {
    /// A state event or a message of the bridge's own.
    pub fn new(
        room_id: &'a str,
        event_type: &'a str,
        state_key: Option<&'a str>,
        content: &'a str,
    ) -> Self {
        Self {
            room_id,
            event_type,
            state_key,
            content,
            meeting: None,
            person: None,
        }
    }
}

pub struct Store {
    db: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, ChatError> {
        let db = Connection::open(path)?;
        // WAL plus synchronous=FULL: an outbox row is on disk before the
        // participant is told it was accepted.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meetings (
                 meeting TEXT PRIMARY KEY,
                 room_id TEXT NOT NULL UNIQUE
             );
             CREATE TABLE IF NOT EXISTS outbox (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 room_id TEXT NOT NULL,
                 event_type TEXT NOT NULL,
                 state_key TEXT,
                 content TEXT NOT NULL,
                 txn_id TEXT NOT NULL UNIQUE,
                 meeting TEXT,
                 person TEXT
             );
             -- Each chat message counts its meeting's waiting events.
             CREATE INDEX IF NOT EXISTS outbox_meeting ON outbox (meeting);
             CREATE TABLE IF NOT EXISTS ghosts (
                 person TEXT PRIMARY KEY,
                 localpart TEXT NOT NULL UNIQUE
             );
             CREATE TABLE IF NOT EXISTS kv (
                 key TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             );",
        )?;
        // Stores from before ghosts were per person lack the column.
        let has_person: bool = db.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('outbox') WHERE name = 'person'",
            [],
            |r| r.get(0),
        )?;
        if !has_person {
            db.execute_batch("ALTER TABLE outbox ADD COLUMN person TEXT")?;
        }
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // Each statement is atomic, so a panic while holding the lock
        // leaves the database consistent.
        crate::lock(&self.db)
    }

    pub fn room_of(&self, meeting: &str) -> Result<Option<String>, ChatError> {
        Ok(self
            .db()
            .query_row(
                "SELECT room_id FROM meetings WHERE meeting = ?1",
                [meeting],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn meeting_of(&self, room_id: &str) -> Result<Option<String>, ChatError> {
        Ok(self
            .db()
            .query_row(
                "SELECT meeting FROM meetings WHERE room_id = ?1",
                [room_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn bind(&self, meeting: &str, room_id: &str) -> Result<(), ChatError> {
        self.db().execute(
            "INSERT INTO meetings (meeting, room_id) VALUES (?1, ?2)",
            params![meeting, room_id],
        )?;
        Ok(())
    }

    /// The ghost localpart of `person`, drawn with `draw` the first time.
    /// The table's UNIQUE constraint is what makes sure that no two
    /// people ever share a ghost, however the draw turns out.
    pub fn ghost_of(&self, person: &str, draw: impl Fn() -> String) -> Result<String, ChatError> {
        let db = self.db();
        let known = db
            .query_row(
                "SELECT localpart FROM ghosts WHERE person = ?1",
                [person],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(localpart) = known {
            return Ok(localpart);
        }
        for _ in 0..8 {
            let localpart = draw();
            let inserted = db.execute(
                "INSERT INTO ghosts (person, localpart) VALUES (?1, ?2)
                 ON CONFLICT DO NOTHING",
                params![person, localpart],
            )?;
            if inserted == 1 {
                return Ok(localpart);
            }
        }
        Err(ChatError::Invalid(format!(
            "no free ghost name for {person} after 8 draws"
        )))
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, ChatError> {
        Ok(self
            .db()
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), ChatError> {
        self.db().execute(
            "INSERT INTO kv (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn remove_setting(&self, key: &str) -> Result<(), ChatError> {
        self.db().execute("DELETE FROM kv WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Appends to the outbox; returns the row's sequence number. The
    /// transaction id is derived from it and `txn_prefix` (unique per
    /// store), so it is stable across restarts.
    pub fn enqueue(&self, txn_prefix: &str, event: &Queued) -> Result<i64, ChatError> {
        let db = self.db();
        let seq: i64 = db.query_row(
            "INSERT INTO outbox (room_id, event_type, state_key, content, txn_id, meeting, person)
             VALUES (?1, ?2, ?3, ?4, ?5 || (SELECT COALESCE(MAX(seq), 0) + 1 FROM outbox)
                     || '-' || hex(randomblob(4)), ?6, ?7)
             RETURNING seq",
            params![
                event.room_id,
                event.event_type,
                event.state_key,
                event.content,
                txn_prefix,
                event.meeting,
                event.person
            ],
            |r| r.get(0),
        )?;
        Ok(seq)
    }

    /// The oldest waiting event.
    pub fn first(&self) -> Result<Option<Outgoing>, ChatError> {
        Ok(self.waiting(None, 1)?.pop())
    }

    /// Events waiting for a meeting, oldest first (at most `limit`).
    pub fn waiting_for(&self, meeting: &str, limit: u32) -> Result<Vec<Outgoing>, ChatError> {
        self.waiting(Some(meeting), limit)
    }

    fn waiting(&self, meeting: Option<&str>, limit: u32) -> Result<Vec<Outgoing>, ChatError> {
        let db = self.db();
        let mut query = db.prepare_cached(
            "SELECT seq, room_id, event_type, state_key, content, txn_id, meeting, person
             FROM outbox WHERE ?1 IS NULL OR meeting = ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = query.query_map(params![meeting, limit], |r| {
            Ok(Outgoing {
                seq: r.get(0)?,
                room_id: r.get(1)?,
                event_type: r.get(2)?,
                state_key: r.get(3)?,
                content: r.get(4)?,
                txn_id: r.get(5)?,
                meeting: r.get(6)?,
                person: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn remove(&self, seq: i64) -> Result<(), ChatError> {
        self.db()
            .execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// Events waiting for one meeting.
    pub fn outbox_len_for(&self, meeting: &str) -> Result<u64, ChatError> {
        Ok(self.db().query_row(
            "SELECT COUNT(*) FROM outbox WHERE meeting = ?1",
            [meeting],
            |r| r.get(0),
        )?)
    }

    pub fn outbox_len(&self) -> Result<u64, ChatError> {
        Ok(self
            .db()
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("chat-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        (Store::open(&dir.join("chat.db")).unwrap(), dir)
    }

    #[test]
    fn outbox_is_ordered_and_survives_reopening() {
        let (store, dir) = temp_store();
        let message = Queued {
            meeting: Some("m"),
            person: Some("guest:p1"),
            ..Queued::new("!r", "m.room.message", None, "{}")
        };
        let a = store.enqueue("t1-", &message).unwrap();
        let b = store
            .enqueue("t1-", &Queued::new("!r", "x.state", Some("k"), "{}"))
            .unwrap();
        assert!(a < b);
        drop(store);
        let store = Store::open(&dir.join("chat.db")).unwrap();
        let first = store.first().unwrap().unwrap();
        assert_eq!(first.seq, a);
        assert!(first.txn_id.starts_with("t1-"));
        assert_eq!(first.meeting.as_deref(), Some("m"));
        assert_eq!(first.person.as_deref(), Some("guest:p1"));
        store.remove(a).unwrap();
        let second = store.first().unwrap().unwrap();
        assert_eq!(second.state_key.as_deref(), Some("k"));
        assert_ne!(second.txn_id, first.txn_id);
        assert_eq!(store.outbox_len().unwrap(), 1);
        assert!(store.waiting_for("m", 10).unwrap().is_empty());
        store.enqueue("t1-", &message).unwrap();
        assert_eq!(store.waiting_for("m", 10).unwrap().len(), 1);
        assert_eq!(store.outbox_len_for("m").unwrap(), 1);
        assert_eq!(store.outbox_len_for("other").unwrap(), 0);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn meetings_and_settings() {
        let (store, dir) = temp_store();
        assert_eq!(store.room_of("standup").unwrap(), None);
        store.bind("standup", "!abc").unwrap();
        assert_eq!(store.room_of("standup").unwrap().as_deref(), Some("!abc"));
        assert_eq!(
            store.meeting_of("!abc").unwrap().as_deref(),
            Some("standup")
        );
        assert!(
            store.bind("other", "!abc").is_err(),
            "a room serves one meeting"
        );
        store.set("k", "1").unwrap();
        store.set("k", "2").unwrap();
        assert_eq!(store.get("k").unwrap().as_deref(), Some("2"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_ghost_per_person_and_never_one_for_two() {
        let (store, dir) = temp_store();
        let carol = store
            .ghost_of("guest:p1", || "meet_carol_1".into())
            .unwrap();
        assert_eq!(carol, "meet_carol_1");
        // Kept: the draw is not asked again.
        assert_eq!(
            store.ghost_of("guest:p1", || unreachable!()).unwrap(),
            carol
        );
        // Another Carol drawing the same name draws again.
        let draws = std::cell::Cell::new(0);
        let other = store
            .ghost_of("guest:p2", || {
                draws.set(draws.get() + 1);
                format!("meet_carol_{}", draws.get())
            })
            .unwrap();
        assert_eq!(other, "meet_carol_2");
        assert!(store.ghost_of("guest:p3", || carol.clone()).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
