//! The server binary as an operator (or systemd) runs it: `--check-config`,
//! stopping it with signals while a meeting is in progress, JSON logs, a
//! listening socket passed by systemd (socket activation). A
//! real process on ephemeral ports, driven over real sockets.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::{join, recv, send, server, Process, Ws};

const BIN: &str = env!("CARGO_BIN_EXE_sfu");

impl Process {
    fn start(drain_timeout_secs: u64) -> Self {
        Self::spawn(server(drain_timeout_secs))
    }

    /// The exit status, once it has exited (bounded wait).
    async fn exited(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    async fn ws(&self) -> Ws {
        let url = format!("ws://{}/ws", self.http);
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn readyz(&self) -> (u16, Value) {
        let (status, body) = self.get("/readyz").await;
        (status, serde_json::from_str(&body).unwrap())
    }
}

/// A sample's value in Prometheus's text format, by its whole series name.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// The socket ends (a close frame, or the connection goes) within 5 s.
async fn closed(ws: &mut Ws) {
    use futures_util::StreamExt;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("the socket stayed open"),
            Ok(None | Some(Err(_))) => return,
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn sigterm_drains_until_the_last_participant_leaves() {
    let mut server = Process::start(60);
    let (status, ready) = server.readyz().await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);
    let mut alice = server.ws().await;
    assert_eq!(join(&mut alice, "standup", "Alice").await["type"], "joined");

    server.signal(libc::SIGTERM);
    let told = recv(&mut alice).await;
    assert_eq!(told["type"], "draining", "{told}");
    let left = told["seconds_left"].as_u64().unwrap();
    assert!((50..=60).contains(&left), "{told}");

    let (status, ready) = server.readyz().await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["failed"], json!(["draining"]), "{ready}");
    // Alive all the same.
    assert_eq!(server.get("/healthz").await, (200, "ok".into()));

    // Prometheus sees the drain and when it gives up.
    let (_, metrics) = server.get("/metrics").await;
    assert_eq!(sample(&metrics, "meet_draining"), Some(1.0), "{metrics}");
    let deadline = sample(&metrics, "meet_drain_deadline_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now + 50.0..=now + 61.0).contains(&deadline),
        "{deadline} vs {now}"
    );

    // A newcomer to a new meeting is turned away, for a server that takes
    // new meetings.
    let mut carol = server.ws().await;
    let refused = join(&mut carol, "retro", "Carol").await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "draining", "{refused}");
    closed(&mut carol).await;

    // A latecomer to the meeting under way gets in and meets Alice.
    let mut bob = server.ws().await;
    send(
        &mut bob,
        json!({"type": "join", "v": 1, "room": "standup", "name": "Bob"}),
    )
    .await;
    // Bob, too, is told the server is stopping: before or after `joined`.
    let (mut joined, mut told) = (Value::Null, Value::Null);
    while joined.is_null() || told.is_null() {
        let m = recv(&mut bob).await;
        match m["type"].as_str() {
            Some("joined") => joined = m,
            Some("draining") => told = m,
            Some("error") => panic!("{m}"),
            _ => {}
        }
    }
    assert!(told["seconds_left"].as_u64().unwrap() <= 60, "{told}");
    let names: Vec<_> = joined["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"Alice".to_owned()), "{joined}");

    // The meeting goes on: Alice is still served.
    send(
        &mut alice,
        json!({"type": "mute", "mid": "0", "muted": true}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.running(), "stopped with a meeting in progress");

    send(&mut alice, json!({"type": "leave"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.running(), "stopped with Bob still in the meeting");
    send(&mut bob, json!({"type": "leave"})).await;
    let status = server.exited(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn the_drain_timeout_stops_a_meeting_that_goes_on() {
    let mut server = Process::start(1);
    let mut alice = server.ws().await;
    assert_eq!(join(&mut alice, "standup", "Alice").await["type"], "joined");
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let told = recv(&mut alice).await;
    assert_eq!(told["type"], "draining", "{told}");
    assert!(told["seconds_left"].as_u64().unwrap() <= 1, "{told}");
    let status = server.exited(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
    assert!(started.elapsed() >= Duration::from_secs(1), "stopped early");
    closed(&mut alice).await;
}

#[tokio::test]
async fn a_second_sigterm_or_a_sigint_stops_at_once() {
    for second in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Process::start(600);
        let mut alice = server.ws().await;
        assert_eq!(join(&mut alice, "standup", "Alice").await["type"], "joined");
        server.signal(libc::SIGTERM);
        assert_eq!(recv(&mut alice).await["type"], "draining");
        server.signal(second);
        let status = server.exited(Duration::from_secs(10)).await;
        assert!(status.success(), "{status}");
    }
    // SIGINT alone (a Ctrl-C) does not wait for the meeting either.
    let mut server = Process::start(600);
    let mut alice = server.ws().await;
    assert_eq!(join(&mut alice, "standup", "Alice").await["type"], "joined");
    server.signal(libc::SIGINT);
    let status = server.exited(Duration::from_secs(10)).await;
    assert!(status.success(), "{status}");
}

/// Runs `--check-config FILE` with `env`: the exit status and all output.
fn check_config(file: &std::path::Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .arg("--check-config")
        .arg(file)
        .envs(env.iter().copied())
        .env("MEET_MEDIA_IPS", r#"["127.0.0.1"]"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    (child.wait().unwrap(), out)
}

#[test]
fn check_config_validates_and_names_the_bad_key() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/meet.toml");
    let (status, out) = check_config(&sample, &[]);
    assert!(status.success(), "{out}");
    assert!(out.contains("is valid"), "{out}");

    let dir = std::env::temp_dir().join(format!("meet-check-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    for (text, env, key) in [
        ("peer_timeout_secs = 0\n", &[][..], "peer_timeout_secs"),
        ("listen = 8080\n", &[], "listen"),
        ("no_such_key = 1\n", &[], "no_such_key"),
        (
            "",
            &[("MEET_DRAIN_TIMEOUT_SECS", "forever")][..],
            "drain_timeout_secs",
        ),
        (
            "matrix_homeserver = \"http://127.0.0.1:8008\"\n",
            &[],
            "matrix_user",
        ),
    ] {
        std::fs::write(&bad, text).unwrap();
        let (status, out) = check_config(&bad, env);
        assert_eq!(status.code(), Some(1), "{text:?} {env:?}: {out}");
        assert!(
            out.contains(key),
            "{text:?} {env:?} should name {key}: {out}"
        );
    }
    let (status, out) = check_config(&dir.join("missing.toml"), &[]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("missing.toml"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_warns_where_the_firewall_would_be_guesswork() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/meet.toml");
    let (status, out) = check_config(&sample, &[]);
    assert!(status.success(), "warnings do not fail the check: {out}");
    assert!(out.contains("warning: `media_port` is 0"), "{out}");
    assert!(out.contains("warning: `workers` is 0"), "{out}");
    let fixed = [("MEET_MEDIA_PORT", "40000"), ("MEET_WORKERS", "2")];
    let (status, out) = check_config(&sample, &fixed);
    assert!(status.success(), "{out}");
    assert!(!out.contains("warning"), "{out}");
    // A misspelt variable is named as the operator wrote it.
    let (status, out) = check_config(&sample, &[("MEET_MEDIA_PROT", "40000")]);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("MEET_MEDIA_PROT"), "{out}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let mut command = server(60);
    command
        .env("MEET_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped());
    let mut server = Process::spawn(command);
    let mut alice = server.ws().await;
    assert_eq!(join(&mut alice, "standup", "Alice").await["type"], "joined");
    server.signal(libc::SIGTERM);
    assert_eq!(recv(&mut alice).await["type"], "draining");
    send(&mut alice, json!({"type": "leave"})).await;
    assert!(server.exited(Duration::from_secs(10)).await.success());
    let mut logs = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let drain = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("SIGTERM: draining"))
        })
        .unwrap_or_else(|| panic!("no drain line in {logs}"));
    assert_eq!(drain["level"], "INFO", "{drain}");
    assert_eq!(drain["fields"]["participants"], 1, "{drain}");
    assert!(drain["timestamp"].is_string(), "{drain}");
}

/// Under the unit's `ProcSubset=pid` the process sees only its own entries
/// in `/proc` (no `/proc/stat`, hence no boot time): the start time must
/// still be right, not 1970. The same view made here with a private
/// `/proc` mounted `subset=pid` in a user, mount and PID namespace.
#[tokio::test]
async fn the_start_time_is_right_where_proc_hides_the_boot_time() {
    let server = server(60);
    let script = r#"mount -t proc -o subset=pid proc /proc || exit 3
test ! -e /proc/stat || { echo "/proc/stat is still there" >&2; exit 4; }
exec "$@""#;
    let mut command = Command::new("unshare");
    command
        .args(["--user", "--map-root-user", "--mount", "--pid", "--fork"])
        .arg("--kill-child")
        .args(["sh", "-c", script, "sh", BIN])
        .args(server.get_args())
        .envs(server.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(Stdio::piped());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let server = Process::spawn(command);
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    let start = sample(&metrics, "process_start_time_seconds").expect("the start time");
    assert!(
        (started - 60.0..=started + 60.0).contains(&start),
        "process_start_time_seconds {start}, started about {started}"
    );
    // The rest of the process's figures are still read from /proc.
    assert!(
        sample(&metrics, "process_open_fds").is_some_and(|n| n > 0.0),
        "{metrics}"
    );
}

/// The server started as systemd starts it with a socket unit: `fd`
/// becomes its descriptor 3, `LISTEN_FDS` says how many were passed, and
/// `LISTEN_PID` names the server (`sh` sets its own pid, which the server
/// keeps across `exec`). No `--listen`: `MEET_LISTEN` is an address of no
/// interface here, so a server that bound it instead would not start.
fn activated(fd: RawFd, listen_fds: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "export LISTEN_PID=$$; exec \"$@\"", "sh", BIN])
        .args(["--media-port", "0"])
        .env("LISTEN_FDS", listen_fds)
        .env("MEET_LISTEN", "192.0.2.1:9")
        .env("MEET_WORKERS", "1")
        .env("MEET_MEDIA_IPS", r#"["127.0.0.1"]"#)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only dup2(2) and fcntl(2), which are
    // async-signal-safe; `fd` stays open in the parent meanwhile.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// GET `path` over TLS from `addr`, trusting only `certificate` (for
/// `localhost`): the whole response, head and body.
fn https_get(
    addr: SocketAddr,
    certificate: &rustls::pki_types::CertificateDer<'static>,
    path: &str,
) -> String {
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate.clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            // The server may close without a close_notify once it has answered.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading {path} over TLS: {e}"),
        }
    }
    String::from_utf8(response).unwrap()
}

#[test]
fn a_socket_passed_by_systemd_serves_https_instead_of_listen() {
    let dir = std::env::temp_dir().join(format!("meet-activation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();

    let mut command = activated(listener.as_raw_fd(), "1");
    command
        .env("MEET_TLS_CERTIFICATE", dir.join("cert.pem"))
        .env("MEET_TLS_PRIVATE_KEY", dir.join("key.pem"));
    let mut server = Process {
        child: command.spawn().unwrap(),
        http: addr,
    };
    // The test's own copy goes: only the server holds the socket now.
    drop(listener);
    let mut line = String::new();
    BufReader::new(server.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let mut err = String::new();
        let _ = server.child.stderr.take().unwrap().read_to_string(&mut err);
        panic!("the server did not start: {err}");
    }
    assert!(line.contains(&format!("https://{addr} ")), "{line}");

    let response = https_get(addr, made.cert.der(), "/readyz");
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(response.contains(r#""ready":true"#), "{response}");
    assert!(
        response.contains("strict-transport-security: max-age="),
        "{response}"
    );

    server.signal(libc::SIGTERM);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_passed_socket_that_does_not_fit_stops_the_start_saying_why() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let connected = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    for (fd, listen_fds, why) in [
        (udp.as_raw_fd(), "1", "not a stream socket"),
        (connected.as_raw_fd(), "1", "not listening"),
        (tcp.as_raw_fd(), "2", "passed 2 sockets"),
        (tcp.as_raw_fd(), "many", "LISTEN_FDS=\"many\""),
    ] {
        let out = activated(fd, listen_fds).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{why}: {err}");
        assert!(err.contains(why), "should say {why:?}: {err}");
        assert!(out.stdout.is_empty(), "{why}: it started");
    }
}
