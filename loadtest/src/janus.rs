//! Janus (Debian's package, VideoRoom plugin) as the reference SFU: the
//! process, with a config rendered from `ops/janus/`, and a client of its
//! HTTP API for the load generator's participants.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use crate::server::{in_netns, usage, Usage};

pub struct JanusProcess {
    child: Child,
    pub http: SocketAddr,
    pub pid: u32,
    config_dir: PathBuf,
}

impl JanusProcess {
    /// Starts Janus with media on `media_ip` and its HTTP API on 127.0.0.1,
    /// or, in `netns`, on `media_ip` too.
    pub async fn start(
        templates: &Path,
        media_ip: IpAddr,
        netns: Option<&str>,
    ) -> anyhow::Result<Self> {
        let http_ip: IpAddr = match netns {
            Some(_) => media_ip,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        // A port free here is as good a guess as any in the other namespace.
        let port = free_port().await?;
        let config_dir =
            std::env::temp_dir().join(format!("loadtest-janus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&config_dir)?;
        for entry in std::fs::read_dir(templates)
            .with_context(|| format!("reading {}", templates.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "jcfg") {
                let text = std::fs::read_to_string(&path)?
                    .replace("@CONFIGS@", &config_dir.display().to_string())
                    .replace("@HTTP_PORT@", &port.to_string())
                    .replace("@MEDIA_IP@", &media_ip.to_string())
                    .replace("@HTTP_IP@", &http_ip.to_string());
                std::fs::write(
                    config_dir.join(path.file_name().context("file name")?),
                    text,
                )?;
            }
        }
        let child = in_netns(netns, "janus")
            .arg("--configs-folder")
            .arg(&config_dir)
            .arg("--config")
            .arg(config_dir.join("janus.jcfg"))
            .arg("--disable-stdout")
            .arg("--log-file")
            .arg(config_dir.join("janus.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting janus (apt-get install janus)")?;
        let pid = child.id().context("janus exited at once")?;
        let http = SocketAddr::new(http_ip, port);
        let mut janus = Self {
            child,
            http,
            pid,
            config_dir,
        };
        for _ in 0..100 {
            if post(
                http,
                "/janus",
                &json!({"janus": "create", "transaction": "probe"}),
            )
            .await
            .is_ok()
            {
                return Ok(janus);
            }
            if let Ok(Some(status)) = janus.child.try_wait() {
                bail!("janus exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("janus did not answer within 10 s")
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        usage(self.pid)
    }

    /// Creates a VideoRoom room for the run.
    pub async fn create_room(&self, room: u64) -> anyhow::Result<()> {
        let mut c = Client::connect(self.http).await?;
        let handle = c.attach().await?;
        let r = c
            .message(
                handle,
                json!({
                    "request": "create", "room": room, "publishers": 1000,
                    "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0,
                    "fir_freq": 0, "notify_joining": false,
                }),
                None,
            )
            .await?;
        if r["plugindata"]["data"]["videoroom"] != "created" {
            bail!("janus did not create the room: {r}");
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        if std::env::var_os("LOADTEST_KEEP_JANUS").is_none() {
            let _ = std::fs::remove_dir_all(&self.config_dir);
        }
    }
}

async fn free_port() -> anyhow::Result<u16> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.port())
}

/// One HTTP/1.1 request with `Connection: close`; the JSON body of the reply.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: janus\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").context("malformed HTTP reply")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("janus replied {}", head.lines().next().unwrap_or_default());
    }
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok(serde_json::from_str(&body)?)
}

/// Decodes an HTTP/1.1 chunked body (Janus's web server sends them).
fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("truncated chunk header")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..size).context("truncated chunk")?);
        body = rest.get(size + 2..).context("truncated chunk")?;
    }
}

async fn post(addr: SocketAddr, path: &str, body: &Value) -> anyhow::Result<Value> {
    request(addr, "POST", path, Some(body)).await
}

/// A Janus session.
pub struct Client {
    addr: SocketAddr,
    pub session: u64,
    /// Keeps transaction ids of two clients of one session apart.
    prefix: &'static str,
    transaction: u64,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let r = post(
            addr,
            "/janus",
            &json!({"janus": "create", "transaction": "create"}),
        )
        .await?;
        let session = r["data"]["id"].as_u64().context("no session id")?;
        Ok(Self::with_session(addr, session, "t"))
    }

    /// Another client of an existing session.
    pub fn with_session(addr: SocketAddr, session: u64, prefix: &'static str) -> Self {
        Self {
            addr,
            session,
            prefix,
            transaction: 0,
        }
    }

    fn transaction(&mut self) -> String {
        self.transaction += 1;
        format!("{}{}", self.prefix, self.transaction)
    }

    /// Attaches a VideoRoom handle.
    pub async fn attach(&mut self) -> anyhow::Result<u64> {
        let t = self.transaction();
        let r = post(
            self.addr,
            &format!("/janus/{}", self.session),
            &json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": t}),
        )
        .await?;
        r["data"]["id"].as_u64().context("no handle id")
    }

    /// Sends a plugin message; synchronous replies come back here, the rest
    /// as events on [`Client::poll`].
    pub async fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let t = self.transaction();
        let mut m = json!({"janus": "message", "transaction": t, "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let r = post(self.addr, &format!("/janus/{}/{handle}", self.session), &m).await?;
        if r["janus"] == "error" {
            bail!("janus error: {}", r["error"]);
        }
        Ok(r)
    }

    /// Tells Janus our candidates are all in the SDP.
    pub async fn trickle_done(&mut self, handle: u64) -> anyhow::Result<()> {
        let t = self.transaction();
        post(
            self.addr,
            &format!("/janus/{}/{handle}", self.session),
            &json!({"janus": "trickle", "transaction": t, "candidate": {"completed": true}}),
        )
        .await?;
        Ok(())
    }

    /// Long-polls for events (Janus answers within 30 s, with a keep-alive
    /// if nothing happened).
    pub async fn poll(addr: SocketAddr, session: u64) -> anyhow::Result<Vec<Value>> {
        let r = request(addr, "GET", &format!("/janus/{session}?maxev=10"), None).await?;
        Ok(match r {
            Value::Array(v) => v,
            v => vec![v],
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn destroy(&mut self) {
        let t = self.transaction();
        let _ = post(
            self.addr,
            &format!("/janus/{}", self.session),
            &json!({"janus": "destroy", "transaction": t}),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dechunks() {
        let body = "6\r\n{\"a\": \r\n2\r\n1}\r\n0\r\n\r\n";
        assert_eq!(super::dechunk(body).unwrap(), "{\"a\": 1}");
        assert!(super::dechunk("zz\r\n").is_err());
        assert!(super::dechunk("9\r\nshort").is_err());
    }
}
