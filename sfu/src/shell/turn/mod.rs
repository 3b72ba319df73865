//! TURN credentials for clients whose firewall blocks the media path:
//! short-lived ones of the TURN REST API's shared-secret scheme (coturn's
//! `use-auth-secret`), so that the TURN server and meet share one secret
//! and no account per user exists anywhere.
//!
//! The username is `<expiry as Unix seconds>:<participant id>`, the
//! password the base64 of HMAC-SHA1(secret, username); the TURN server
//! recomputes it and refuses it after the expiry. Each server is probed
//! (a STUN Binding request) for `meet_turn_reachable`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use prometheus::IntGaugeVec;
use rtc_stun::message::{Message, TransactionId, BINDING_REQUEST, BINDING_SUCCESS};
use serde::{Deserialize, Serialize};
use sha1::Sha1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// One entry of `RTCConfiguration.iceServers`, as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// The configured TURN servers and the secret they share with us.
#[derive(Clone)]
pub struct Turn {
    urls: Vec<String>,
    secret: String,
    ttl: Duration,
}

impl Turn {
    /// `None` when no TURN server is configured.
    pub fn new(urls: &[String], secret: &str, ttl: Duration) -> Option<Self> {
        (!urls.is_empty()).then(|| Self {
            urls: urls.to_vec(),
            secret: secret.to_owned(),
            ttl,
        })
    }

    /// Credentials for `participant`, valid from `now` for the configured
    /// time: long enough for a meeting, as the TURN server checks them
    /// again on every refresh of an allocation.
    pub fn ice_servers(&self, participant: &str, now: SystemTime) -> Vec<IceServer> {
        let expiry = now.duration_since(UNIX_EPOCH).unwrap_or_default() + self.ttl;
        let username = format!("{}:{participant}", expiry.as_secs());
        let credential = credential(&self.secret, &username);
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }
}

fn credential(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A TURN URI (RFC 7065) taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TurnUri {
    host: String,
    port: u16,
    /// `turns:`: TLS over TCP.
    secure: bool,
    tcp: bool,
}

/// Parses `turn:` or `turns:`, a host, an optional port and
/// `?transport=udp|tcp`, as browsers take them.
fn parse(url: &str) -> Option<TurnUri> {
    let (secure, rest) = match url.strip_prefix("turns:") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("turn:")?),
    };
    let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, port) = match host_port.strip_prefix('[') {
        // An IPv6 address: `[addr]` or `[addr]:port`.
        Some(v6) => match v6.split_once(']')? {
            (addr, "") => (addr, None),
            (addr, tail) => (addr, Some(tail.strip_prefix(':')?)),
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
        None if secure => 5349,
        None => 3478,
    };
    let tcp = match query {
        "" => secure,
        "transport=udp" if !secure => false,
        "transport=tcp" => true,
        _ => return None,
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
    host_ok.then(|| TurnUri {
        host: host.to_owned(),
        port,
        secure,
        tcp,
    })
}

/// Whether `url` is a TURN URI a browser takes.
pub fn valid_url(url: &str) -> bool {
    parse(url).is_some()
}

/// How often each TURN server is probed, and how long a probe waits.
const PROBE_INTERVAL: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probes every URL in `urls` until `stop` turns true, setting
/// `reachable{url}` to 1 while its server answers and 0 while it does not,
/// so that an operator learns of a dead TURN server before the staff
/// behind strict firewalls do.
pub async fn probe(urls: Vec<String>, reachable: IntGaugeVec, mut stop: watch::Receiver<bool>) {
    let targets: Vec<(String, TurnUri)> = urls
        .into_iter()
        .filter_map(|u| parse(&u).map(|t| (u, t)))
        .collect();
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for (url, target) in &targets {
            let ok = tokio::time::timeout(PROBE_TIMEOUT, answers(target))
                .await
                .is_ok_and(|r| r.is_ok());
            if !ok {
                tracing::warn!(url, "TURN server does not answer");
            }
            reachable.with_label_values(&[url]).set(i64::from(ok));
        }
    }
}

/// Whether the server answers a STUN Binding request (over UDP or TCP);
/// for `turns:` whether it takes a TCP connection (meet checks no TLS).
async fn answers(target: &TurnUri) -> io::Result<()> {
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await?
        .next()
        .ok_or_else(|| io::Error::other("the name resolves to no address"))?;
    if target.secure {
        tokio::net::TcpStream::connect(addr).await?;
        return Ok(());
    }
    let request = binding_request()?;
    let mut buf = vec![0u8; 1500];
    let n = if target.tcp {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(&request.raw).await?;
        stream.read(&mut buf).await?
    } else {
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(local).await?;
        socket.send_to(&request.raw, addr).await?;
        socket.recv(&mut buf).await?
    };
    let mut response = Message::new();
    response
        .unmarshal_binary(&buf[..n])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if response.transaction_id == request.transaction_id && response.typ == BINDING_SUCCESS {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a Binding success response",
        ))
    }
}

fn binding_request() -> io::Result<Message> {
    let mut m = Message::new();
    m.build(&[Box::new(BINDING_REQUEST), Box::new(TransactionId::new())])
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_the_rest_api_hmac_of_an_expiring_username() {
        let turn = Turn::new(
            &["turn:turn.example.org:3478?transport=udp".into()],
            "a shared secret",
            Duration::from_secs(3600),
        )
        .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = turn.ice_servers("p1", now);
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].username, "1700003600:p1");
        // printf %s 1700003600:p1 | openssl dgst -sha1 -hmac 'a shared secret' -binary | base64
        assert_eq!(servers[0].credential, "sM1xL7GkOQ6RDXdU1dCZX2RDtlY=");
        assert_eq!(
            servers[0].urls,
            ["turn:turn.example.org:3478?transport=udp"]
        );
    }

    #[test]
    fn uris_are_taken_apart_with_their_defaults() {
        let p = parse("turn:turn.example.org").unwrap();
        assert_eq!((p.port, p.tcp, p.secure), (3478, false, false));
        let p = parse("turns:turn.example.org").unwrap();
        assert_eq!((p.port, p.tcp, p.secure), (5349, true, true));
        let p = parse("turn:[2001:db8::1]:3479?transport=tcp").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.tcp),
            ("2001:db8::1", 3479, true)
        );
        assert_eq!(parse("turns:h?transport=udp"), None, "no TLS over UDP");
    }

    /// A Binding request answered by a small STUN responder on loopback
    /// counts as reachable; silence does not.
    #[tokio::test]
    async fn a_server_that_answers_binding_requests_is_reachable() {
        let server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        let responder = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let mut request = Message::new();
            request.unmarshal_binary(&buf[..n]).unwrap();
            assert_eq!(request.typ, BINDING_REQUEST);
            let mut response = Message::new();
            response
                .build(&[Box::new(BINDING_SUCCESS), Box::new(request.transaction_id)])
                .unwrap();
            server.send_to(&response.raw, from).await.unwrap();
        });
        let target = parse(&format!("turn:127.0.0.1:{port}?transport=udp")).unwrap();
        answers(&target).await.unwrap();
        responder.await.unwrap();

        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let target = parse(&format!("turn:127.0.0.1:{port}?transport=udp")).unwrap();
        let probe = tokio::time::timeout(Duration::from_millis(300), answers(&target)).await;
        assert!(probe.is_err(), "nothing answered, yet the probe succeeded");
    }

    #[test]
    fn nothing_configured_means_no_turn() {
        assert!(Turn::new(&[], "secret", Duration::from_secs(60)).is_none());
    }

    #[test]
    fn only_turn_uris_pass() {
        for good in [
            "turn:turn.example.org",
            "turn:10.0.0.1:3478?transport=udp",
            "turn:turn.example.org:3478?transport=tcp",
            "turns:turn.example.org:443?transport=tcp",
            "turn:[2001:db8::1]:3478",
            "turn:[2001:db8::1]",
        ] {
            assert!(valid_url(good), "{good}");
        }
        for bad in [
            "stun:stun.example.org",
            "https://turn.example.org",
            "turn:",
            "turn:host:port",
            "turn:host:3478?transport=sctp",
            "turn:ho st",
            "turn:[2001:db8::1]x",
            "turn:host:0",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
    }
}
