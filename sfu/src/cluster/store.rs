//! What the servers keep in Redis (or Valkey), and the commands that
//! read and change it; the only place that knows key names. Every change
//! to a lease is a Lua script, so Redis checks and changes it in one step.
//!
//! - `meet:node:<id>`: a server's [`Node`] record (JSON), expiring unless
//!   refreshed; `meet:nodes` the set of ids ever seen (ids whose record is
//!   gone are pruned from it).
//! - `meet:meeting:<room>`: the meeting's lease, `"<node> <fence>"`,
//!   expiring unless renewed.
//! - `meet:fence`: the fencing counter; each new lease takes the next
//!   number, so a later owner always holds a higher one.
//! - `meet:policies` (room → a meeting's own policy, JSON; `{}` once
//!   cleared) and `meet:revoked` (withdrawn invite ids, scored by when
//!   they may be forgotten): what an administrator changed on any
//!   server, each with a `:version` counter that grows at each change, so
//!   that the others read them again only when they changed.
//! - `meet:seats:<room>`: the meeting's participants by their `resume`
//!   secret (a hash of JSON `Seated`), for the meeting's next server to
//!   seat them again; and `meet:bans:<room>`, the keys its hosts banned
//!   (`roster::ban_keys`), and [`LOCKED`] while a host locked it. Both
//!   kept alive with the lease, for a while after it.
//! - `meet:invites:<room>`: how many joins each invite link with a use
//!   count (by its id) admitted to the meeting, on whichever server; kept
//!   until the last of those links expires.
//! - `meet:chat:*`: the chat bridge's, in `store/chat.rs`.

mod chat;

use std::time::Duration;

use redis::{AsyncCommands, Script};

use super::connection::{Connection, Target};
use super::{ClusterError, Lease, Node};

const NODES: &str = "meet:nodes";
/// How long a meeting's seats outlive its server's last renewal: its
/// participants come back to its next server well within this.
const SEATS_TTL: std::time::Duration = std::time::Duration::from_secs(30);
const FENCE: &str = "meet:fence";
const POLICIES: &str = "meet:policies";
const POLICIES_VERSION: &str = "meet:policies:version";
const REVOKED: &str = "meet:revoked";
const REVOKED_VERSION: &str = "meet:revoked:version";

fn node_key(id: &str) -> String {
    format!("meet:node:{id}")
}

fn meeting_key(room: &str) -> String {
    format!("meet:meeting:{room}")
}

fn seats_key(room: &str) -> String {
    format!("meet:seats:{room}")
}

fn bans_key(room: &str) -> String {
    format!("meet:bans:{room}")
}

/// In a meeting's bans: a host locked it (nobody but hosts comes in).
/// No ban key looks like it (`roster::ban_keys`).
const LOCKED: &str = "#locked";

fn invites_key(room: &str) -> String {
    format!("meet:invites:{room}")
}

/// Takes the meeting's lease for `node` unless someone holds it; returns
/// the holder either way, and how long its lease has left (ms).
const ACQUIRE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur then return {cur, redis.call('PTTL', KEYS[1])} end
local v = ARGV[1] .. ' ' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], v, 'PX', ARGV[2])
return {v, tonumber(ARGV[2])}
";

/// For each meeting (its lease, seats and bans, KEYS[3i-1..3i+1]):
/// extends the lease if it is still the one expected (ARGV[3+i]), or
/// takes it anew with a new fence if it lapsed and nobody took it
/// meanwhile, and then keeps its seats and bans (ARGV[3] ms); returns the
/// holder of each.
const RENEW: &str = r"
local out = {}
for i = 1, (#KEYS - 1) / 3 do
  local lease, seats, bans = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local cur = redis.call('GET', lease)
  local ours = cur == ARGV[3 + i]
  if ours then
    redis.call('PEXPIRE', lease, ARGV[1])
  elseif not cur then
    cur = ARGV[2] .. ' ' .. redis.call('INCR', KEYS[1])
    redis.call('SET', lease, cur, 'PX', ARGV[1])
    ours = true
  end
  if ours then
    redis.call('PEXPIRE', seats, ARGV[3])
    redis.call('PEXPIRE', bans, ARGV[3])
  end
  out[#out + 1] = cur
end
return out
";

/// Lets the lease go, if it is still the one expected; and with ARGV[2]
/// `ended`, the meeting's lock (ARGV[3], in its bans KEYS[2]) with it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == 'ended' then redis.call('SREM', KEYS[2], ARGV[3]) end
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The connection to Redis, shared by the server's tasks; reconnects by
/// itself, and a command that gets no answer in time fails rather than
/// waits.
#[derive(Clone)]
pub struct Store {
    conn: Connection,
    acquire: Script,
    renew: Script,
    release: Script,
}

impl Store {
    /// Connects lazily: a Redis that is down at start is tried again at
    /// each command, and the server meanwhile serves what it can.
    pub fn new(url: &str) -> Result<Self, ClusterError> {
        let target = Target::parse(url).map_err(ClusterError::Url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn =
            Connection::new(&target, config).map_err(|e| ClusterError::Url(e.to_string()))?;
        Ok(Self {
            conn,
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    /// Publishes this server's record for `ttl`.
    pub async fn register(&self, node: &Node, ttl: Duration) -> Result<(), ClusterError> {
        let record = serde_json::to_string(node).expect("a node record serializes");
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .set_ex(node_key(&node.id), record, ttl.as_secs().max(1))
            .ignore()
            .sadd(NODES, &node.id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Takes this server's record away at once (a clean stop).
    pub async fn unregister(&self, id: &str) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .del(node_key(id))
            .ignore()
            .srem(NODES, id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Every server whose record has not expired.
    pub async fn nodes(&self) -> Result<Vec<Node>, ClusterError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(NODES).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| node_key(id)).collect();
        let records: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut nodes = Vec::new();
        let mut gone = Vec::new();
        for (id, record) in ids.into_iter().zip(records) {
            match record.and_then(|r| serde_json::from_str::<Node>(&r).ok()) {
                Some(node) => nodes.push(node),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let _: Result<(), _> = conn.srem(NODES, gone).await;
        }
        Ok(nodes)
    }

    /// The meeting's lease for `node` if nobody holds it, else its
    /// holder's; and how long it has left.
    pub async fn acquire(
        &self,
        room: &str,
        node: &str,
        ttl: Duration,
    ) -> Result<(Lease, Duration), ClusterError> {
        let mut conn = self.conn.clone();
        let (held, left): (String, i64) = self
            .acquire
            .key(meeting_key(room))
            .key(FENCE)
            .arg(node)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        let lease = Lease::parse(&held).ok_or(ClusterError::Corrupt(held))?;
        Ok((lease, Duration::from_millis(left.max(0) as u64)))
    }

    /// Renews these leases of `node`'s; the holder of each afterwards, in
    /// the same order (the same lease, a new one of `node`'s after it
    /// lapsed, or someone else's).
    pub async fn renew(
        &self,
        node: &str,
        leases: &[(String, Lease)],
        ttl: Duration,
    ) -> Result<Vec<Lease>, ClusterError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut call = self.renew.key(FENCE);
        call.arg(ttl.as_millis() as u64)
            .arg(node)
            .arg(SEATS_TTL.as_millis() as u64);
        for (room, lease) in leases {
            call.key(meeting_key(room))
                .key(seats_key(room))
                .key(bans_key(room))
                .arg(lease.to_string());
        }
        let held: Vec<String> = call.invoke_async(&mut conn).await?;
        held.into_iter()
            .map(|h| Lease::parse(&h).ok_or(ClusterError::Corrupt(h)))
            .collect()
    }

    /// Keeps a participant's seat under its `resume` secret.
    pub async fn keep_seat(
        &self,
        room: &str,
        secret: &str,
        seated: &str,
    ) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .hset(seats_key(room), secret, seated)
            .ignore()
            .pexpire(seats_key(room), SEATS_TTL.as_millis() as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Takes the seat under `secret` away: the one it returns, if any.
    pub async fn take_seat(
        &self,
        room: &str,
        secret: &str,
    ) -> Result<Option<String>, ClusterError> {
        let mut conn = self.conn.clone();
        let (seated,): (Option<String>,) = redis::pipe()
            .atomic()
            .hget(seats_key(room), secret)
            .hdel(seats_key(room), secret)
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(seated)
    }

    /// Keeps `keys` out of `room` while it lasts, on whichever server.
    pub async fn ban(&self, room: &str, keys: &[String]) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .sadd(bans_key(room), keys)
            .ignore()
            .pexpire(bans_key(room), SEATS_TTL.as_millis() as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Locks or unlocks `room` for whichever server holds it next.
    pub async fn set_locked(&self, room: &str, locked: bool) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        match locked {
            true => pipe.sadd(bans_key(room), LOCKED),
            false => pipe.srem(bans_key(room), LOCKED),
        };
        pipe.ignore()
            .pexpire(bans_key(room), SEATS_TTL.as_millis() as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Whether a host locked `room`, on whichever server.
    pub async fn locked(&self, room: &str) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(conn.sismember(bans_key(room), LOCKED).await?)
    }

    /// Whether any of `keys` was banned from `room`.
    pub async fn banned(&self, room: &str, keys: &[String]) -> Result<bool, ClusterError> {
        if keys.is_empty() {
            return Ok(false);
        }
        let mut conn = self.conn.clone();
        let found: Vec<bool> = redis::cmd("SMISMEMBER")
            .arg(bans_key(room))
            .arg(keys)
            .query_async(&mut conn)
            .await?;
        Ok(found.into_iter().any(|b| b))
    }

    /// Shares a meeting's own policy (`{}`: cleared).
    pub async fn share_policy(&self, room: &str, overrides: &str) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset(POLICIES, room, overrides)
            .ignore()
            .incr(POLICIES_VERSION, 1)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Shares a withdrawn invite link, remembered until `until` (Unix
    /// seconds); forgets those past `now`.
    pub async fn share_revocation(
        &self,
        id: &str,
        until: u64,
        now: u64,
    ) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .zadd(REVOKED, id, until)
            .ignore()
            .zrembyscore(REVOKED, "-inf", now)
            .ignore()
            .incr(REVOKED_VERSION, 1)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The versions of the shared policies and withdrawals (0: none yet).
    pub async fn shared_versions(&self) -> Result<(u64, u64), ClusterError> {
        let mut conn = self.conn.clone();
        let (p, r): (Option<u64>, Option<u64>) = redis::cmd("MGET")
            .arg(POLICIES_VERSION)
            .arg(REVOKED_VERSION)
            .query_async(&mut conn)
            .await?;
        Ok((p.unwrap_or(0), r.unwrap_or(0)))
    }

    /// Every meeting's shared policy (JSON).
    pub async fn policies(&self) -> Result<Vec<(String, String)>, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(conn.hgetall(POLICIES).await?)
    }

    /// The withdrawn invite links not yet past `now`, with their `until`.
    pub async fn revoked(&self, now: u64) -> Result<Vec<(String, u64)>, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(conn
            .zrangebyscore_withscores(REVOKED, format!("({now}"), "+inf")
            .await?)
    }

    /// Lets a lease go (its meeting ended here, or this server stops).
    /// `ended`: the meeting ended (nobody in it for a while), and its lock
    /// with it, as on one server; else it goes on elsewhere, locked or not.
    pub async fn release(
        &self,
        room: &str,
        lease: &Lease,
        ended: bool,
    ) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release
            .key(meeting_key(room))
            .key(bans_key(room))
            .arg(lease.to_string())
            .arg(if ended { "ended" } else { "moves" })
            .arg(LOCKED)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Counts a join that invite link `id` (expiring at `exp`, Unix
    /// seconds) admitted to `room`.
    pub async fn invite_used(&self, room: &str, id: &str, exp: u64) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        let key = invites_key(room);
        // Kept as long as its longest-lived link (NX: a new key has no
        // expiry, which GT would take for an infinite one).
        let until = exp + 60;
        redis::pipe()
            .hincr(&key, id, 1)
            .ignore()
            .cmd("EXPIREAT")
            .arg(&key)
            .arg(until)
            .arg("NX")
            .ignore()
            .cmd("EXPIREAT")
            .arg(&key)
            .arg(until)
            .arg("GT")
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The joins invite link `id` admitted to `room`, on every server.
    pub async fn invite_uses(&self, room: &str, id: &str) -> Result<u32, ClusterError> {
        let mut conn = self.conn.clone();
        let used: Option<u32> = conn.hget(invites_key(room), id).await?;
        Ok(used.unwrap_or(0))
    }
}
