//! The bridge's own durable state, in one SQLite file: which Matrix room
//! belongs to which meeting, whose ghost user is whose, the bot's login,
//! and the outbox of events that must reach the homeserver even if it is
//! down when they are written.
//!
//! Meetings and ghosts carry when they were last used, so that retention
//! (`retention.rs`) can forget them; what must still be erased on the
//! homeserver waits in `erasures` until it is done.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

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

/// Something that must still be erased on the homeserver; it stays in
/// the store until that succeeded, so a homeserver that is away delays an
/// erasure but never loses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Erasure {
    /// A ghost user, by localpart: deactivated and erased.
    Ghost(String),
    /// A room meet created, by id: deleted and purged.
    Room(String),
}

impl Erasure {
    fn key(&self) -> (&'static str, &str) {
        match self {
            Erasure::Ghost(l) => ("ghost", l),
            Erasure::Room(r) => ("room", r),
        }
    }
}

/// A ghost as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GhostRow {
    pub person: String,
    pub localpart: String,
    /// The display name it was last given; `None` in rows from before
    /// names were kept.
    pub name: Option<String>,
}

/// The store's file in the chat store directory.
pub const FILE: &str = "chat.sqlite3";

/// Prefix of the store keys holding a ghost's device token, by user id.
pub const GHOST_TOKEN_KEY: &str = "ghost_token:";
/// Prefix of the store keys of rooms waiting for the power to hold the
/// meeting's widget, by room id.
pub const WIDGET_WANTED_KEY: &str = "widget_wanted:";

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
        // Deleted rows are overwritten, not left in free pages: erased
        // means gone from the file, not only from the tables.
        db.pragma_update(None, "secure_delete", "ON")?;
        // `meet erase` writes while the server runs: each waits for the
        // other's write instead of failing.
        db.busy_timeout(Duration::from_secs(10))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meetings (
                 meeting TEXT PRIMARY KEY,
                 room_id TEXT NOT NULL UNIQUE,
                 last_used INTEGER NOT NULL DEFAULT 0
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
                 localpart TEXT NOT NULL UNIQUE,
                 last_used INTEGER NOT NULL DEFAULT 0,
                 name TEXT
             );
             CREATE TABLE IF NOT EXISTS kv (
                 key TEXT PRIMARY KEY,
                 value TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS erasures (
                 kind TEXT NOT NULL,
                 id TEXT NOT NULL,
                 PRIMARY KEY (kind, id)
             );",
        )?;
        // Stores from before retention lack the columns; their rows count
        // as used now, so they get the whole retention from the upgrade.
        let now = unix_ms(std::time::SystemTime::now());
        for (table, columns) in [
            ("meetings", &["last_used INTEGER NOT NULL DEFAULT 0"][..]),
            (
                "ghosts",
                &["last_used INTEGER NOT NULL DEFAULT 0", "name TEXT"][..],
            ),
        ] {
            for column in columns {
                let name = column.split(' ').next().unwrap_or_default();
                if !has_column(&db, table, name)? {
                    db.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column}"))?;
                }
            }
            db.execute(
                &format!("UPDATE {table} SET last_used = ?1 WHERE last_used = 0"),
                [now],
            )?;
        }
        // Stores from before ghosts were per person lack the column.
        if !has_column(&db, "outbox", "person")? {
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

    /// Binds `meeting` to `room_id`, used at `now_ms`.
    pub fn bind(&self, meeting: &str, room_id: &str, now_ms: i64) -> Result<(), ChatError> {
        self.db().execute(
            "INSERT INTO meetings (meeting, room_id, last_used) VALUES (?1, ?2, ?3)",
            params![meeting, room_id, now_ms],
        )?;
        Ok(())
    }

    /// Notes that `meeting` is in use at `now_ms`; whether it is bound.
    pub fn touch_meeting(&self, meeting: &str, now_ms: i64) -> Result<bool, ChatError> {
        let changed = self.db().execute(
            "UPDATE meetings SET last_used = MAX(last_used, ?2) WHERE meeting = ?1",
            params![meeting, now_ms],
        )?;
        Ok(changed > 0)
    }

    /// Every meeting bound here: its room and when it was last used.
    pub fn bindings(&self) -> Result<Vec<(String, String, i64)>, ChatError> {
        let db = self.db();
        let mut query = db.prepare_cached("SELECT meeting, room_id, last_used FROM meetings")?;
        let rows = query.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets `meeting`'s binding here (it moved to the shared state).
    pub fn unbind(&self, meeting: &str) -> Result<(), ChatError> {
        self.db()
            .execute("DELETE FROM meetings WHERE meeting = ?1", [meeting])?;
        Ok(())
    }

    /// Meetings last used before `cutoff_ms`, with their rooms.
    pub fn stale_meetings(&self, cutoff_ms: i64) -> Result<Vec<(String, String)>, ChatError> {
        let db = self.db();
        let mut query =
            db.prepare_cached("SELECT meeting, room_id FROM meetings WHERE last_used < ?1")?;
        let rows = query.query_map([cutoff_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets `meeting`'s room if it is still unused since `cutoff_ms`,
    /// queueing the room's purge if `purge`. Returns whether it did.
    pub fn forget_meeting(
        &self,
        meeting: &str,
        cutoff_ms: i64,
        purge: bool,
    ) -> Result<bool, ChatError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let room: Option<String> = tx
            .query_row(
                "DELETE FROM meetings WHERE meeting = ?1 AND last_used < ?2 RETURNING room_id",
                params![meeting, cutoff_ms],
                |r| r.get(0),
            )
            .optional()?;
        let Some(room) = room else {
            return Ok(false);
        };
        after_forgetting(&tx, room, purge)?;
        tx.commit()?;
        Ok(true)
    }

    /// A meeting bound elsewhere (shared between servers) forgot `room`:
    /// what this store keeps about the room goes too.
    pub fn forgotten(&self, room: &str, purge: bool) -> Result<(), ChatError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        after_forgetting(&tx, room.to_owned(), purge)?;
        tx.commit()?;
        Ok(())
    }

    /// The ghost localpart of `person`, drawn with `draw` the first time,
    /// noting its display name `name` and that it is used at `now_ms`.
    /// The table's UNIQUE constraint is what makes sure that no two
    /// people ever share a ghost, however the draw turns out.
    pub fn ghost_of(
        &self,
        person: &str,
        name: &str,
        now_ms: i64,
        draw: impl Fn() -> String,
    ) -> Result<String, ChatError> {
        let db = self.db();
        // One statement, so that an erasure in another process either
        // takes the row before or finds it used now.
        let known = db
            .query_row(
                "UPDATE ghosts SET last_used = MAX(last_used, ?2), name = ?3
                 WHERE person = ?1 RETURNING localpart",
                params![person, now_ms, name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(localpart) = known {
            return Ok(localpart);
        }
        for _ in 0..8 {
            let localpart = draw();
            let inserted = db.execute(
                "INSERT INTO ghosts (person, localpart, last_used, name) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![person, localpart, now_ms, name],
            )?;
            if inserted == 1 {
                return Ok(localpart);
            }
        }
        Err(ChatError::Invalid(format!(
            "no free ghost name for {person} after 8 draws"
        )))
    }

    /// Every ghost, for an erasure to choose from.
    pub fn ghosts(&self) -> Result<Vec<GhostRow>, ChatError> {
        let db = self.db();
        let mut query = db.prepare_cached("SELECT person, localpart, name FROM ghosts")?;
        let rows = query.query_map([], |r| {
            Ok(GhostRow {
                person: r.get(0)?,
                localpart: r.get(1)?,
                name: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Takes the ghosts last used before `cutoff_ms` out of use: their
    /// rows and device tokens go, their erasure on the homeserver is
    /// queued, and the people they were get new ones if they come back.
    pub fn take_stale_ghosts(&self, cutoff_ms: i64) -> Result<Vec<String>, ChatError> {
        self.take_ghosts_where("last_used < ?1", cutoff_ms.into())
    }

    /// Like [`Store::take_stale_ghosts`], for the ghost with `localpart`.
    pub fn take_ghost(&self, localpart: &str) -> Result<bool, ChatError> {
        Ok(!self
            .take_ghosts_where("localpart = ?1", localpart.to_owned().into())?
            .is_empty())
    }

    fn take_ghosts_where(
        &self,
        condition: &str,
        value: rusqlite::types::Value,
    ) -> Result<Vec<String>, ChatError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let taken: Vec<String> = {
            let mut query = tx.prepare(&format!(
                "DELETE FROM ghosts WHERE {condition} RETURNING localpart"
            ))?;
            let rows = query.query_map([value], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for localpart in &taken {
            // Keyed by the full user id, whose server part the store does
            // not know.
            let prefix = format!("{GHOST_TOKEN_KEY}@{localpart}:");
            tx.execute(
                "DELETE FROM kv WHERE substr(key, 1, length(?1)) = ?1",
                [&prefix],
            )?;
            queue_erasure(&tx, &Erasure::Ghost(localpart.clone()))?;
        }
        tx.commit()?;
        Ok(taken)
    }

    /// What still waits to be erased on the homeserver.
    pub fn erasures(&self) -> Result<Vec<Erasure>, ChatError> {
        let db = self.db();
        let mut query = db.prepare_cached("SELECT kind, id FROM erasures ORDER BY kind, id")?;
        let rows = query.query_map([], |r| {
            let (kind, id): (String, String) = (r.get(0)?, r.get(1)?);
            Ok(match kind.as_str() {
                "room" => Erasure::Room(id),
                _ => Erasure::Ghost(id),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The homeserver has erased it.
    pub fn erased(&self, erasure: &Erasure) -> Result<(), ChatError> {
        let (kind, id) = erasure.key();
        self.db().execute(
            "DELETE FROM erasures WHERE kind = ?1 AND id = ?2",
            params![kind, id],
        )?;
        Ok(())
    }

    /// Removes waiting messages written by `person`, or (`person` `None`)
    /// by an anonymous guest named `name`, or as Matrix user `user_id`.
    /// Returns how many went.
    pub fn remove_waiting_of(
        &self,
        person: Option<&str>,
        user_id: Option<&str>,
        name: Option<&str>,
    ) -> Result<usize, ChatError> {
        Ok(self.db().execute(
            "DELETE FROM outbox WHERE (?1 IS NOT NULL AND person = ?1)
               OR (?2 IS NOT NULL AND json_extract(content, '$.\"meet.author\".user_id') = ?2)
               OR (?3 IS NOT NULL AND person IS NULL
                   AND json_extract(content, '$.\"meet.author\".user_id') IS NULL
                   AND json_extract(content, '$.\"meet.author\".name') = ?3)",
            params![person, user_id, name],
        )?)
    }

    /// Moves what deleted rows left in the write-ahead log into the main
    /// file (where `secure_delete` has overwritten them) and empties the
    /// log, so that erased data does not linger beside the database.
    pub fn compact(&self) -> Result<(), ChatError> {
        self.db()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
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

fn has_column(db: &Connection, table: &str, column: &str) -> Result<bool, rusqlite::Error> {
    db.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        params![table, column],
        |r| r.get(0),
    )
}

/// What goes with a meeting's room once the meeting forgot it: a widget
/// still waiting for the bot's power there, and, if `purge`, the room
/// itself (queued for erasure).
fn after_forgetting(
    tx: &rusqlite::Transaction<'_>,
    room: String,
    purge: bool,
) -> Result<(), ChatError> {
    tx.execute(
        "DELETE FROM kv WHERE key = ?1",
        [format!("{WIDGET_WANTED_KEY}{room}")],
    )?;
    if purge {
        queue_erasure(tx, &Erasure::Room(room))?;
    }
    Ok(())
}

fn queue_erasure(tx: &rusqlite::Transaction, erasure: &Erasure) -> Result<(), rusqlite::Error> {
    let (kind, id) = erasure.key();
    tx.execute(
        "INSERT INTO erasures (kind, id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        params![kind, id],
    )?;
    Ok(())
}

/// Milliseconds since the Unix epoch, as the store keeps times.
pub fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
        store.bind("standup", "!abc", 1).unwrap();
        assert_eq!(store.room_of("standup").unwrap().as_deref(), Some("!abc"));
        assert_eq!(
            store.meeting_of("!abc").unwrap().as_deref(),
            Some("standup")
        );
        assert!(
            store.bind("other", "!abc", 1).is_err(),
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
            .ghost_of("guest:p1", "Carol (guest)", 1, || "meet_carol_1".into())
            .unwrap();
        assert_eq!(carol, "meet_carol_1");
        // Kept: the draw is not asked again.
        assert_eq!(
            store
                .ghost_of("guest:p1", "Carol (guest)", 2, || unreachable!())
                .unwrap(),
            carol
        );
        // Another Carol drawing the same name draws again.
        let draws = std::cell::Cell::new(0);
        let other = store
            .ghost_of("guest:p2", "Carol (guest)", 1, || {
                draws.set(draws.get() + 1);
                format!("meet_carol_{}", draws.get())
            })
            .unwrap();
        assert_eq!(other, "meet_carol_2");
        assert!(store
            .ghost_of("guest:p3", "Carol (guest)", 1, || carol.clone())
            .is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unused_ghosts_and_meetings_are_taken_out_and_their_erasure_queued() {
        let (store, dir) = temp_store();
        let old = store
            .ghost_of("guest:p1", "Carol (guest)", 1_000, || "meet_carol_1".into())
            .unwrap();
        store
            .ghost_of("matrix:@a:hs", "A (@a:hs, in the meeting)", 5_000, || {
                "meet_a_1".into()
            })
            .unwrap();
        store
            .set(&format!("{GHOST_TOKEN_KEY}@{old}:hs"), "secret")
            .unwrap();
        // A key that merely starts alike is another ghost's.
        store
            .set(&format!("{GHOST_TOKEN_KEY}@{old}0:hs"), "other")
            .unwrap();
        assert_eq!(store.take_stale_ghosts(5_000).unwrap(), vec![old.clone()]);
        assert_eq!(
            store.get(&format!("{GHOST_TOKEN_KEY}@{old}:hs")).unwrap(),
            None
        );
        assert!(store
            .get(&format!("{GHOST_TOKEN_KEY}@{old}0:hs"))
            .unwrap()
            .is_some());
        assert_eq!(store.erasures().unwrap(), vec![Erasure::Ghost(old.clone())]);
        let left: Vec<_> = store
            .ghosts()
            .unwrap()
            .into_iter()
            .map(|g| g.person)
            .collect();
        assert_eq!(left, vec!["matrix:@a:hs"]);
        // Carol back: a new ghost, never the one being erased.
        let again = store
            .ghost_of("guest:p1", "Carol (guest)", 6_000, || "meet_carol_2".into())
            .unwrap();
        assert_ne!(again, old);
        store.erased(&Erasure::Ghost(old)).unwrap();
        assert!(store.erasures().unwrap().is_empty());

        store.bind("old", "!old", 1_000).unwrap();
        store.bind("used", "!used", 1_000).unwrap();
        store.touch_meeting("used", 9_000).unwrap();
        store
            .set(&format!("{WIDGET_WANTED_KEY}!old"), "old")
            .unwrap();
        assert_eq!(
            store.stale_meetings(5_000).unwrap(),
            vec![("old".to_owned(), "!old".to_owned())]
        );
        // Used again meanwhile: kept.
        assert!(!store.forget_meeting("used", 5_000, true).unwrap());
        assert!(store.forget_meeting("old", 5_000, true).unwrap());
        assert_eq!(store.room_of("old").unwrap(), None);
        assert_eq!(
            store.get(&format!("{WIDGET_WANTED_KEY}!old")).unwrap(),
            None
        );
        assert_eq!(
            store.erasures().unwrap(),
            vec![Erasure::Room("!old".into())]
        );
        assert_eq!(store.room_of("used").unwrap().as_deref(), Some("!used"));
        store.compact().unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_persons_waiting_messages_can_be_removed() {
        let (store, dir) = temp_store();
        let content = |name: &str, user: Option<&str>| {
            serde_json::json!({ "body": "x", "meet.author": { "name": name, "user_id": user, "text": "x" } })
                .to_string()
        };
        let queue = |content: &str, person: Option<&str>| {
            let event = Queued {
                meeting: Some("m"),
                person,
                ..Queued::new("!r", "m.room.message", None, content)
            };
            store.enqueue("t-", &event).unwrap();
        };
        queue(
            &content("Alice", Some("@alice:hs")),
            Some("matrix:@alice:hs"),
        );
        queue(&content("Carol", None), Some("guest:p1"));
        queue(&content("Carol", None), None);
        queue(&content("Dave", None), None);
        assert_eq!(
            store
                .remove_waiting_of(None, Some("@alice:hs"), None)
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .remove_waiting_of(Some("guest:p1"), None, Some("Carol"))
                .unwrap(),
            2
        );
        assert_eq!(store.outbox_len().unwrap(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_older_store_gets_the_retention_columns() {
        let dir = std::env::temp_dir().join(format!("chat-store-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chat.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE meetings (meeting TEXT PRIMARY KEY, room_id TEXT NOT NULL UNIQUE);
             CREATE TABLE ghosts (person TEXT PRIMARY KEY, localpart TEXT NOT NULL UNIQUE);
             INSERT INTO meetings VALUES ('m', '!r');
             INSERT INTO ghosts VALUES ('guest:p', 'meet_p_1');",
        )
        .unwrap();
        drop(db);
        let store = Store::open(&path).unwrap();
        let now = unix_ms(std::time::SystemTime::now());
        // Counted as used at the upgrade: nothing is older than that.
        assert!(store.stale_meetings(now - 60_000).unwrap().is_empty());
        assert!(store.take_stale_ghosts(now - 60_000).unwrap().is_empty());
        assert_eq!(store.ghosts().unwrap()[0].name, None);
        assert_eq!(
            store.take_stale_ghosts(now + 60_000).unwrap(),
            vec!["meet_p_1"]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
