//! The chat bridge's shared state (see `chat::ChatShare`):
//!
//! - `meet:chat:rooms` (meeting → room id) and `meet:chat:meetings` (room
//!   id → meeting): the bindings, both ways; `meet:chat:used` (meeting →
//!   Unix ms): when each was last used, for retention.
//! - `meet:chat:since:<meeting>`: when its chat began, expiring unless a
//!   server carrying the meeting marks it in use.
//! - `meet:chat:duty`: the server on duty for the bot (`!meet`,
//!   retention), expiring unless it renews it; `meet:chat:sending:<meeting>`
//!   the server sending the meeting's outbox, the same way.
//! - `meet:chat:outbox:<meeting>`: the meeting's messages not sent yet
//!   (a list of JSON items, oldest first), kept until sent;
//!   `meet:chat:seq` numbers them; `meet:chat:unsent` the meetings whose
//!   list is not empty.

use std::sync::LazyLock;
use std::time::Duration;

use redis::{AsyncCommands, Script};

use super::Store;
use crate::cluster::ClusterError;

const ROOMS: &str = "meet:chat:rooms";
const MEETINGS: &str = "meet:chat:meetings";
const USED: &str = "meet:chat:used";
const DUTY_KEY: &str = "meet:chat:duty";

const SEQ: &str = "meet:chat:seq";
const UNSENT: &str = "meet:chat:unsent";

fn outbox_key(meeting: &str) -> String {
    format!("meet:chat:outbox:{meeting}")
}

fn sending_key(meeting: &str) -> String {
    format!("meet:chat:sending:{meeting}")
}

fn since_key(meeting: &str) -> String {
    format!("meet:chat:since:{meeting}")
}

/// How long a meeting's chat goes on with nobody marking it in use (its
/// servers mark it every 20 s): a meeting all left starts anew after this.
const SINCE_TTL: Duration = Duration::from_secs(120);
/// How long the duty lasts unrenewed (its holder renews it every 2 s).
const DUTY_TTL: Duration = Duration::from_secs(6);

/// Binds meeting ARGV[1] to room ARGV[2], used at ARGV[3], unless it is
/// bound; returns its room.
const BIND: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
  return ARGV[2]
end
return redis.call('HGET', KEYS[1], ARGV[1])
";

/// Marks meeting ARGV[1] used at ARGV[2] (never back in time) if it is
/// bound, and keeps its chat going (KEYS[3], ARGV[3] ms); 1 if it is
/// bound.
const TOUCH: &str = r"
redis.call('PEXPIRE', KEYS[3], ARGV[3])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local used = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if used < tonumber(ARGV[2]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 1
";

/// Unbinds meeting ARGV[1] if it is still unused since ARGV[2]; 1 if it did.
const FORGET: &str = r"
local used = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
if used >= tonumber(ARGV[2]) then return 0 end
local room = redis.call('HGET', KEYS[1], ARGV[1])
if not room then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], room)
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
";

/// Takes the duty (or a meeting's sending) for ARGV[1] (ARGV[2] ms) if
/// nobody holds it, or renews it if ARGV[1] does; 1 if ARGV[1] holds it now.
const DUTY_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The scripts, hashed once.
struct Scripts {
    push: Script,
    pop: Script,
    bind: Script,
    touch: Script,
    forget: Script,
    duty: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
        push: Script::new(PUSH),
        pop: Script::new(POP),
        bind: Script::new(BIND),
        touch: Script::new(TOUCH),
        forget: Script::new(FORGET),
        duty: Script::new(DUTY_SCRIPT),
    });
    &SCRIPTS
}

/// Pushes ARGV[1] onto meeting ARGV[3]'s list unless ARGV[2] items are on
/// it, noting the meeting among those with something unsent; -1 if it
/// did, else how many are.
const PUSH: &str = r"
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[2]) then return n end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return -1
";

/// Pops the list's head if it is ARGV[1]; an emptied list's meeting
/// (ARGV[2]) has nothing unsent.
const POP: &str = r"
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('LPOP', KEYS[1]) end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return 1
";

impl Store {
    pub async fn chat_room_of(&self, meeting: &str) -> Result<Option<String>, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(ROOMS, meeting).await?)
    }

    pub async fn chat_meeting_of(&self, room: &str) -> Result<Option<String>, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(MEETINGS, room).await?)
    }

    /// Binds `meeting` to `room` unless it is bound; its room either way.
    pub async fn chat_bind(
        &self,
        meeting: &str,
        room: &str,
        now_ms: i64,
    ) -> Result<String, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(scripts()
            .bind
            .key(ROOMS)
            .key(MEETINGS)
            .key(USED)
            .arg(meeting)
            .arg(room)
            .arg(now_ms)
            .invoke_async(&mut conn)
            .await?)
    }

    /// Marks `meeting` used; whether it is bound.
    pub async fn chat_touch(&self, meeting: &str, now_ms: i64) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let bound: i64 = scripts()
            .touch
            .key(ROOMS)
            .key(USED)
            .key(since_key(meeting))
            .arg(meeting)
            .arg(now_ms)
            .arg(SINCE_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(bound == 1)
    }

    /// Bound meetings last used before `cutoff_ms`, with their rooms.
    pub async fn chat_stale(&self, cutoff_ms: i64) -> Result<Vec<(String, String)>, ClusterError> {
        let mut conn = self.conn.clone();
        let rooms: Vec<(String, String)> = conn.hgetall(ROOMS).await?;
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = rooms.iter().map(|(m, _)| m.as_str()).collect();
        let used: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(USED)
            .arg(&names)
            .query_async(&mut conn)
            .await?;
        Ok(rooms
            .into_iter()
            .zip(used)
            .filter(|(_, used)| used.unwrap_or(0) < cutoff_ms)
            .map(|(binding, _)| binding)
            .collect())
    }

    pub async fn chat_forget(&self, meeting: &str, cutoff_ms: i64) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let forgot: i64 = scripts()
            .forget
            .key(ROOMS)
            .key(MEETINGS)
            .key(USED)
            .arg(meeting)
            .arg(cutoff_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(forgot == 1)
    }

    /// When `meeting`'s chat began: `now_ms` if it had not.
    pub async fn chat_since(&self, meeting: &str, now_ms: u64) -> Result<u64, ClusterError> {
        let mut conn = self.conn.clone();
        let key = since_key(meeting);
        let (since,): (u64,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&key)
            .arg(now_ms)
            .arg("NX")
            .arg("PX")
            .arg(SINCE_TTL.as_millis() as u64)
            .ignore()
            .get(&key)
            .query_async(&mut conn)
            .await?;
        Ok(since)
    }

    /// Takes or keeps the duty for `node`; whether it holds it now.
    pub async fn chat_duty(&self, node: &str) -> Result<bool, ClusterError> {
        self.hold(DUTY_KEY, node).await
    }

    /// Takes or keeps the sending of `meeting`'s outbox for `node`.
    pub async fn chat_sending(&self, meeting: &str, node: &str) -> Result<bool, ClusterError> {
        self.hold(&sending_key(meeting), node).await
    }

    async fn hold(&self, key: &str, node: &str) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let held: i64 = scripts()
            .duty
            .key(key)
            .arg(node)
            .arg(DUTY_TTL.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(held == 1)
    }

    pub async fn chat_seq(&self) -> Result<i64, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(conn.incr(SEQ, 1).await?)
    }

    /// Queues `item` in `meeting`'s outbox unless `bound` wait there.
    pub async fn chat_push(
        &self,
        meeting: &str,
        item: &str,
        bound: u64,
    ) -> Result<Result<(), u64>, ClusterError> {
        let mut conn = self.conn.clone();
        let n: i64 = scripts()
            .push
            .key(outbox_key(meeting))
            .key(UNSENT)
            .arg(item)
            .arg(bound)
            .arg(meeting)
            .invoke_async(&mut conn)
            .await?;
        Ok(if n < 0 { Ok(()) } else { Err(n as u64) })
    }

    pub async fn chat_waiting(
        &self,
        meeting: &str,
        limit: u32,
    ) -> Result<Vec<String>, ClusterError> {
        let mut conn = self.conn.clone();
        let last = limit as isize - 1;
        Ok(conn.lrange(outbox_key(meeting), 0, last).await?)
    }

    pub async fn chat_pop(&self, meeting: &str, item: &str) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        scripts()
            .pop
            .key(outbox_key(meeting))
            .key(UNSENT)
            .arg(item)
            .arg(meeting)
            .invoke_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The meetings with messages not sent yet that no server holds (a
    /// meeting's server sends its own).
    pub async fn chat_unsent(&self) -> Result<Vec<String>, ClusterError> {
        let mut conn = self.conn.clone();
        let meetings: Vec<String> = conn.smembers(UNSENT).await?;
        let mut unheld = Vec::new();
        for m in meetings {
            let held: bool = conn.exists(super::meeting_key(&m)).await?;
            if !held {
                unheld.push(m);
            }
        }
        Ok(unheld)
    }
}
