//! The connection to Redis: to one server named by a `redis://` (or
//! `unix://`) URL, or to whichever server a set of Sentinels names as the
//! master (`redis+sentinel://[:password@]host[:port][,host[:port]…]/<master>[/<db>]`),
//! found again when the master fails over.
//!
//! Either way the connection manager of the `redis` crate does the work
//! (it connects lazily, reconnects, and times commands out); with
//! Sentinels, a command that fails as a lost or read-only master would
//! (the old master comes back as a replica) makes the next one ask the
//! Sentinels again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};

/// The scheme of a Sentinel URL.
const SENTINEL_SCHEME: &str = "redis+sentinel://";
/// Sentinels' own port, where a host names none.
const SENTINEL_PORT: u16 = 26379;
/// How long asking the Sentinels for the master may take.
const ASK_SENTINELS: Duration = Duration::from_secs(2);

/// What a `redis` setting names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// One server (`redis://`, `rediss://`, `unix://`).
    Server(String),
    /// The master the Sentinels at `sentinels` (`redis://host:port` URLs)
    /// name `master`, with this password and database.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
        password: Option<String>,
        db: i64,
    },
}

impl Target {
    /// Reads a `redis` setting; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) else {
            redis::Client::open(url).map_err(|e| e.to_string())?;
            return Ok(Self::Server(url.to_owned()));
        };
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let password = match auth {
            None => None,
            Some(a) => match a.strip_prefix(':') {
                Some(p) if !p.is_empty() => Some(p.to_owned()),
                _ => return Err("a Sentinel URL takes a password only (`:password@`)".into()),
            },
        };
        let (hosts, path) = rest
            .split_once('/')
            .ok_or("a Sentinel URL names its master after the hosts (`/mymaster`)")?;
        let mut parts = path.split('/');
        let master = parts.next().unwrap_or_default();
        if master.is_empty() {
            return Err("a Sentinel URL names its master after the hosts (`/mymaster`)".into());
        }
        let db = match parts.next() {
            None | Some("") => 0,
            Some(d) => d
                .parse()
                .map_err(|_| format!("the database `{d}` is not a number"))?,
        };
        let sentinels = hosts
            .split(',')
            .map(|h| {
                if h.is_empty() {
                    return Err("a Sentinel URL lists at least one host".to_owned());
                }
                let url = if h
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    format!("redis://{h}")
                } else {
                    format!("redis://{h}:{SENTINEL_PORT}")
                };
                redis::Client::open(url.as_str()).map_err(|e| format!("`{h}`: {e}"))?;
                Ok(url)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Sentinel {
            sentinels,
            master: master.to_owned(),
            password,
            db,
        })
    }
}

/// A connection shared by the server's tasks: clones share it.
#[derive(Clone)]
pub struct Connection(Arc<Inner>);

enum Inner {
    Server(ConnectionManager),
    Sentinel(Box<Sentinels>),
}

struct Sentinels {
    client: tokio::sync::Mutex<SentinelClient>,
    /// The master's connection, until a failure says it may have moved.
    master: Mutex<Option<ConnectionManager>>,
    config: ConnectionManagerConfig,
    db: i64,
}

impl Connection {
    /// Connects lazily: a Redis that is down at start is tried again at
    /// each command.
    pub fn new(target: &Target, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let inner = match target {
            Target::Server(url) => Inner::Server(ConnectionManager::new_lazy_with_config(
                redis::Client::open(url.as_str())?,
                config,
            )?),
            Target::Sentinel {
                sentinels,
                master,
                password,
                db,
            } => {
                let mut redis = redis::RedisConnectionInfo::default().set_db(*db);
                if let Some(p) = password {
                    redis = redis.set_password(p);
                }
                let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
                Inner::Sentinel(Box::new(Sentinels {
                    client: tokio::sync::Mutex::new(SentinelClient::build(
                        sentinels.clone(),
                        master.clone(),
                        Some(node),
                        SentinelServerType::Master,
                    )?),
                    master: Mutex::new(None),
                    config,
                    db: *db,
                }))
            }
        };
        Ok(Self(Arc::new(inner)))
    }

    /// The connection to use now.
    async fn current(&self) -> RedisResult<ConnectionManager> {
        let s = match &*self.0 {
            Inner::Server(c) => return Ok(c.clone()),
            Inner::Sentinel(s) => s,
        };
        if let Some(c) = lock(&s.master).clone() {
            return Ok(c);
        }
        // One task asks; the others find its answer.
        let mut sentinels = s.client.lock().await;
        if let Some(c) = lock(&s.master).clone() {
            return Ok(c);
        }
        let client = tokio::time::timeout(ASK_SENTINELS, sentinels.async_get_client())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "the Sentinels did not answer")))??;
        let c = ConnectionManager::new_lazy_with_config(client, s.config.clone())?;
        *lock(&s.master) = Some(c.clone());
        Ok(c)
    }

    /// After a failure that a master gone (or no longer master) would
    /// cause, the next command asks the Sentinels again.
    fn failed<T>(&self, result: &RedisResult<T>) {
        let (Err(e), Inner::Sentinel(s)) = (result, &*self.0) else {
            return;
        };
        let moved = e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_timeout()
            || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
        if moved {
            lock(&s.master).take();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = match self.current().await {
                Ok(mut c) => c.req_packed_command(cmd).await,
                Err(e) => Err(e),
            };
            self.failed(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = match self.current().await {
                Ok(mut c) => c.req_packed_commands(pipeline, offset, count).await,
                Err(e) => Err(e),
            };
            self.failed(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        match &*self.0 {
            Inner::Server(c) => c.get_db(),
            Inner::Sentinel(s) => s.db,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentinel_url_names_its_hosts_master_password_and_database() {
        assert_eq!(
            Target::parse("redis+sentinel://:s3cret@10.0.0.1,10.0.0.2:26380/meet/2"),
            Ok(Target::Sentinel {
                sentinels: vec![
                    "redis://10.0.0.1:26379".into(),
                    "redis://10.0.0.2:26380".into()
                ],
                master: "meet".into(),
                password: Some("s3cret".into()),
                db: 2,
            })
        );
        assert_eq!(
            Target::parse("redis+sentinel://sentinel.example/mymaster"),
            Ok(Target::Sentinel {
                sentinels: vec!["redis://sentinel.example:26379".into()],
                master: "mymaster".into(),
                password: None,
                db: 0,
            })
        );
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0"),
            Ok(Target::Server("redis://127.0.0.1:6379/0".into()))
        );
    }

    #[test]
    fn a_bad_redis_url_says_what_is_wrong() {
        for (url, says) in [
            ("redis+sentinel://h1,h2", "names its master"),
            ("redis+sentinel://h1/", "names its master"),
            ("redis+sentinel://,h2/m", "at least one host"),
            ("redis+sentinel://h1/m/x", "not a number"),
            ("redis+sentinel://user:pw@h1/m", "password only"),
            ("http://h1/", ""),
        ] {
            let e = Target::parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }
}
