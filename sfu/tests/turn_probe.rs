//! The TURN probe against Debian's coturn (`turnserver`, which `ops/setup.sh
//! test` installs), configured by ops/coturn/turnserver.conf itself with
//! this test's ports, secret and certificates put in, on 127.0.0.1: a
//! relay is allocated over UDP, TCP and TLS with the right secret, and
//! each way it must fail does fail, for the reason the log will give. Then
//! a running server's `/metrics`: `meet_turn_reachable` and
//! `meet_certificate_expiry_timestamp_seconds` (HTTPS and `turns:`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use sfu::shell::tls::certificate_not_after;
use sfu::turn::tls::Trust;
use sfu::turn::{probe_once, ProbeError, Probed, Turn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{free_port, Running};

const SECRET: &str = "0123456789abcdef0123456789abcdef-turn-probe";

/// A temporary directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("meet-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA, and certificates from it for 127.0.0.1.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for 127.0.0.1 valid from `from` until `until`
    /// (year, month, day); its PEM and its key's.
    fn issue(&self, from: (i32, u8, u8), until: (i32, u8, u8)) -> (String, String) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Debian's coturn with the sample's settings, on 127.0.0.1: TURN on
/// `port` (UDP and TCP) and TLS on `tls_port` with the given certificate.
struct Coturn {
    child: Child,
    port: u16,
    tls_port: u16,
    _dir: Dir,
}

impl Coturn {
    fn start(name: &str, cert_pem: &str, key_pem: &str, relay_ports: (u16, u16)) -> Self {
        let dir = Dir::new(name);
        let (port, tls_port) = (free_port(), free_port());
        let cert = dir.write("cert.pem", cert_pem);
        let key = dir.write("key.pem", key_pem);
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/coturn/turnserver.conf"),
        )
        .unwrap();
        let set = [
            ("listening-ip", "127.0.0.1".to_owned()),
            ("listening-port", port.to_string()),
            ("tls-listening-port", tls_port.to_string()),
            ("cert", cert.display().to_string()),
            ("pkey", key.display().to_string()),
            ("static-auth-secret", SECRET.to_owned()),
            ("allowed-peer-ip", "127.0.0.1".to_owned()),
            ("min-port", relay_ports.0.to_string()),
            ("max-port", relay_ports.1.to_string()),
            ("realm", "meet.test".to_owned()),
            ("log-file", "stdout".to_owned()),
        ];
        let mut lines: Vec<String> = sample
            .lines()
            .map(|l| {
                let key = l.split('=').next().unwrap_or_default();
                match set.iter().find(|(k, _)| *k == key) {
                    Some((k, v)) => format!("{k}={v}"),
                    None => l.to_owned(),
                }
            })
            .collect();
        for (key, _) in &set {
            assert!(
                lines.iter().any(|l| l.starts_with(&format!("{key}="))),
                "ops/coturn/turnserver.conf has no {key}"
            );
        }
        lines.extend([
            "no-dtls".to_owned(),
            "relay-ip=127.0.0.1".to_owned(),
            format!("pidfile={}", dir.0.join("turnserver.pid").display()),
            format!("userdb={}", dir.0.join("turndb").display()),
        ]);
        let config = dir.write("turnserver.conf", &lines.join("\n"));
        let child = Command::new("turnserver")
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run turnserver (coturn; ops/setup.sh test installs it): {e}")
            });
        let mut coturn = Self {
            child,
            port,
            tls_port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while [port, tls_port]
            .iter()
            .any(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            if let Some(status) = coturn.child.try_wait().unwrap() {
                panic!("coturn exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "coturn did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        coturn
    }

    fn url(&self, transport: &str) -> String {
        match transport {
            "tls" => format!("turns:127.0.0.1:{}?transport=tcp", self.tls_port),
            t => format!("turn:127.0.0.1:{}?transport={t}", self.port),
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server that is not TURN: it answers anything as an HTTP server
/// answers garbage, then closes.
async fn http_like_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    addr
}

/// The same behind TLS, with a certificate a client trusts: a web server
/// on the port the TURN URL names.
async fn https_like_server(cert: &Path, key: &Path) -> SocketAddr {
    let config = sfu::shell::tls::server_config(cert, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(s).await else {
                    return;
                };
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

fn turn(secret: &str) -> Turn {
    Turn::new(
        &["turn:unused".to_owned()],
        secret,
        Duration::from_secs(3600),
    )
    .unwrap()
}

#[track_caller]
fn fails(probed: &Probed, what: &str, reason: impl Fn(&ProbeError) -> bool) {
    match &probed.result {
        Err(e) if reason(e) => {}
        other => panic!("{what}: {other:?}"),
    }
}

fn tls_reason(e: &ProbeError, words: &str) -> bool {
    matches!(e, ProbeError::Tls(m) if m.contains(words))
}

#[tokio::test]
async fn a_relay_is_allocated_only_with_the_right_secret_from_a_real_turn_server() {
    let dir = Dir::new("turn-probe-certs");
    let ca = Ca::new("meet test CA");
    let ca_file = dir.write("ca.pem", &ca.pem);
    let (cert, key) = ca.issue((2024, 1, 1), (2099, 3, 4));
    let (expired_cert, expired_key) = ca.issue((2020, 1, 1), (2021, 2, 3));
    let good = Coturn::start("coturn-good", &cert, &key, (21000, 21099));
    let expired = Coturn::start(
        "coturn-expired",
        &expired_cert,
        &expired_key,
        (21100, 21199),
    );
    let trust = Trust::load(false, Some(&ca_file)).unwrap();
    let other_ca_file = dir.write("other-ca.pem", &Ca::new("someone else's CA").pem);
    let other_trust = Trust::load(false, Some(&other_ca_file)).unwrap();
    let right = turn(SECRET);
    let wrong = turn("a secret that is not coturn's static-auth-secret");
    let expiry_2099 = 4_076_265_600; // 2099-03-04T00:00:00Z
    let expiry_2021 = 1_612_310_400; // 2021-02-03T00:00:00Z

    // The right secret: a relay over each transport.
    for t in ["udp", "tcp", "tls"] {
        let probed = probe_once(&right, &good.url(t), &trust).await;
        assert!(probed.result.is_ok(), "{t}: {:?}", probed.result);
        let expiry = probed.certificate.map(|c| c.unix);
        assert_eq!(expiry, (t == "tls").then_some(expiry_2099), "{t}");
    }

    // A wrong secret: refused over each, as clients would be.
    for t in ["udp", "tcp", "tls"] {
        let probed = probe_once(&wrong, &good.url(t), &trust).await;
        fails(
            &probed,
            t,
            |e| matches!(e, ProbeError::Refused(m) if m.contains("401")),
        );
    }

    // An expired certificate: the handshake fails, and its expiry is known.
    let probed = probe_once(&right, &expired.url("tls"), &trust).await;
    fails(&probed, "expired", |e| tls_reason(e, "expired"));
    assert_eq!(probed.certificate.map(|c| c.unix), Some(expiry_2021));
    // The same server over plain TCP is fine: it is the certificate.
    assert!(probe_once(&right, &expired.url("tcp"), &trust)
        .await
        .result
        .is_ok());

    // A certificate from a CA nobody configured.
    let probed = probe_once(&right, &good.url("tls"), &other_trust).await;
    fails(&probed, "untrusted", |e| tls_reason(e, "not from a CA"));
    // No CA at all (an empty trust store, no turn_ca_file).
    let none = Trust::load(false, None).unwrap();
    let probed = probe_once(&right, &good.url("tls"), &none).await;
    fails(&probed, "no CA", |e| tls_reason(e, "no CA certificates"));

    // Something else on the port: a web server, plain and behind TLS
    // with a certificate the probe trusts.
    let http = http_like_server().await;
    let url = format!("turn:{http}?transport=tcp");
    fails(&probe_once(&right, &url, &trust).await, "http", |e| {
        matches!(e, ProbeError::NotStun)
    });
    let https = https_like_server(&dir.write("c.pem", &cert), &dir.write("k.pem", &key)).await;
    let url = format!("turns:{https}?transport=tcp");
    let probed = probe_once(&right, &url, &trust).await;
    fails(&probed, "https", |e| matches!(e, ProbeError::NotStun));
    assert_eq!(probed.certificate.map(|c| c.unix), Some(expiry_2099));
    // A port that speaks no TLS, with turns:.
    let url = format!("turns:{http}?transport=tcp");
    fails(
        &probe_once(&right, &url, &trust).await,
        "TLS to plain",
        |e| matches!(e, ProbeError::Tls(_)),
    );
    // Nobody there, over TCP and UDP (the ICMP port unreachable).
    let port = free_port();
    for url in [
        format!("turn:127.0.0.1:{port}?transport=tcp"),
        format!("turn:127.0.0.1:{port}?transport=udp"),
    ] {
        fails(&probe_once(&right, &url, &trust).await, &url, |e| {
            matches!(e, ProbeError::Connect(_))
        });
    }
    // A UDP service that answers, but not STUN.
    let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let url = format!("turn:{}?transport=udp", echo.local_addr().unwrap());
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((_, from)) = echo.recv_from(&mut buf).await {
            let _ = echo.send_to(b"hello, not STUN", from).await;
        }
    });
    fails(&probe_once(&right, &url, &trust).await, "udp echo", |e| {
        matches!(e, ProbeError::NotStun)
    });
}

/// The value of the sample `name{label="value"}` in `body`.
fn sample(body: &str, name: &str, label: &str, value: &str) -> Option<i64> {
    let prefix = format!("{name}{{{label}=\"{value}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn the_server_reports_reachability_and_certificate_expiry() {
    let dir = Dir::new("turn-metrics-certs");
    let ca = Ca::new("meet test CA");
    let (cert, key) = ca.issue((2024, 1, 1), (2098, 7, 8));
    let (expired_cert, expired_key) = ca.issue((2020, 1, 1), (2021, 2, 3));
    let good = Coturn::start("coturn-metrics-good", &cert, &key, (21200, 21299));
    let expired = Coturn::start(
        "coturn-metrics-expired",
        &expired_cert,
        &expired_key,
        (21300, 21399),
    );
    let http = http_like_server().await;
    let (https_cert, https_key) = ca.issue((2024, 1, 1), (2097, 5, 6));
    let urls = [
        good.url("udp"),
        good.url("tls"),
        expired.url("tls"),
        format!("turn:{http}?transport=tcp"),
    ];
    let mut config = Running::config();
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    config.tls_certificate = dir.write("https.pem", &https_cert);
    config.tls_private_key = dir.write("https.key", &https_key);
    config.turn_urls = urls.to_vec();
    config.turn_secret = SECRET.to_owned();
    config.turn_ca_file = dir.write("ca.pem", &ca.pem);
    let server = Running::start(&config).await;
    let wrong = Running::start(&sfu::shell::config::Config {
        turn_urls: vec![good.url("udp")],
        turn_secret: "a secret that is not coturn's static-auth-secret".to_owned(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Running::config()
    })
    .await;

    let scrape = |r: &Running| format!("http://{}/metrics", r.metrics.unwrap());
    let (url, wrong_url) = (scrape(&server), scrape(&wrong));
    let deadline = Instant::now() + Duration::from_secs(20);
    let (body, wrong_body) = loop {
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        let wrong_body = reqwest::get(&wrong_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let all = urls
            .iter()
            .all(|u| sample(&body, "meet_turn_reachable", "url", u).is_some());
        if all && wrong_body.contains("meet_turn_reachable{") {
            break (body, wrong_body);
        }
        assert!(
            Instant::now() < deadline,
            "no probe results within 20 s:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reachable = |u: &str| sample(&body, "meet_turn_reachable", "url", u);
    assert_eq!(reachable(&urls[0]), Some(1), "UDP, right secret");
    assert_eq!(
        reachable(&urls[1]),
        Some(1),
        "TLS, a certificate from turn_ca_file"
    );
    assert_eq!(reachable(&urls[2]), Some(0), "TLS, an expired certificate");
    assert_eq!(reachable(&urls[3]), Some(0), "not a TURN server");
    assert_eq!(
        sample(&wrong_body, "meet_turn_reachable", "url", &urls[0]),
        Some(0),
        "a wrong secret"
    );
    let expiry = |endpoint: &str| {
        sample(
            &body,
            "meet_certificate_expiry_timestamp_seconds",
            "endpoint",
            endpoint,
        )
    };
    let https = certificate_not_after(&config.tls_certificate).unwrap().unix;
    assert_eq!(https, 4_018_636_800, "2097-05-06T00:00:00Z");
    assert_eq!(expiry("https"), Some(https));
    assert_eq!(
        expiry(&urls[1]),
        Some(4_055_616_000),
        "2098-07-08T00:00:00Z"
    );
    assert_eq!(
        expiry(&urls[2]),
        Some(1_612_310_400),
        "2021-02-03T00:00:00Z"
    );
    assert_eq!(expiry(&urls[0]), None, "no certificate over UDP");
    server.stop().await;
    wrong.stop().await;
}
