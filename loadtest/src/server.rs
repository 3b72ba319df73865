//! The SFU under test as a child process, and what /proc and
//! its /metrics say about it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct ServerProcess {
    child: Child,
    pub http: SocketAddr,
    pub pid: u32,
    pub workers: usize,
}

/// Most participants one run may create, whatever was asked: the server
/// under test takes that many in one meeting.
pub const MAX_PARTICIPANTS: usize = 2000;

/// CPU time and memory of a process, from /proc.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
}

impl ServerProcess {
    /// Starts `bin` with media on `media_ip` only and `workers` media workers,
    /// and `env` (configuration by `MEET_*` variables) besides.
    /// In `netns` (see `ops/netns-pair.sh`) it listens on `media_ip` for
    /// HTTP too, since the load generator is outside that namespace.
    pub async fn start(
        bin: &Path,
        workers: usize,
        media_ip: IpAddr,
        netns: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let listen = match netns {
            Some(_) => format!("{media_ip}:0"),
            None => "127.0.0.1:0".to_owned(),
        };
        let mut child = in_netns(netns, bin)
            .args(["--listen", &listen, "--media-port", "0"])
            .env("MEET_MEDIA_IPS", format!(r#"["{media_ip}"]"#))
            .env("MEET_WORKERS", workers.to_string())
            // Load is about media, not about who gets in.
            .env("MEET_ANONYMOUS_JOIN", "true")
            // Rooms as large as the biggest run (the default cap is 100).
            .env("MEET_MAX_PARTICIPANTS", MAX_PARTICIPANTS.to_string())
            .env("RUST_LOG", "warn,rtc=error,rtc_ice=error,rtc_dtls=error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the server did not start within 30 s")??
            .context("the server exited before listening")?;
        // Keep reading, so the server never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let Some(addr) = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        else {
            bail!("unexpected first line from the server: {line}");
        };
        Ok(Self {
            child,
            http: addr.parse().context("parsing the server's address")?,
            pid,
            workers,
        })
    }

    pub fn usage(&self) -> anyhow::Result<Usage> {
        usage(self.pid)
    }

    /// Asks the server to shut down as an operator would (SIGTERM), so it
    /// reports what it counted; kills it if it takes over 5 s.
    pub async fn stop(mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.pid) {
            // SAFETY: kill(2) on the pid of our own child; no memory is touched.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// A command for `program`, run in network namespace `netns` if given
/// (`ip netns exec` execs the program, so the pid stays the program's).
pub fn in_netns(netns: Option<&str>, program: impl AsRef<std::ffi::OsStr>) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// CPU time and resident memory of process `pid`.
pub fn usage(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may itself contain spaces.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    Ok(Usage {
        cpu_seconds: ticks / USER_HZ,
        rss_kib,
    })
}

/// Units of the /proc CPU times: fixed at 100 by the Linux user ABI.
const USER_HZ: f64 = 100.0;
