//! `meet_turn_reachable{url}`: every 15 s, each configured TURN server is
//! asked for a relay as a participant would ask (the same kind of
//! credentials, the same transport, TLS with the certificate checked for
//! `turns:`), and the relay is freed at once. 1 means a client could get a
//! relay there now; a wrong secret, a bad certificate, or something else
//! on the port reads 0, and the log says which (once per change).

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus::IntGaugeVec;
use tokio::sync::watch;

use super::allocate::{allocate_and_free, Conn, Credentials, ProbeError};
use super::tls::Trust;
use super::{parse, Turn, TurnUri};
use crate::certificate::NotAfter;

/// How often each TURN server is probed, and how long one probe may take
/// (resolving, connecting, the handshake and three round trips).
const PROBE_INTERVAL: Duration = Duration::from_secs(15);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The probe's names in the TURN server's log: `<expiry>:probe`.
const PROBE_USER: &str = "probe";

/// The gauges the probe sets, by URL.
#[derive(Clone)]
pub struct ProbeMetrics {
    pub reachable: IntGaugeVec,
    /// `endpoint` = the `turns:` URL.
    pub certificate_expiry: IntGaugeVec,
}

/// What one probe of one URL found.
#[derive(Debug)]
pub struct Probed {
    pub result: Result<(), ProbeError>,
    /// The certificate the TLS handshake saw (`turns:`), valid or not.
    pub certificate: Option<NotAfter>,
}

/// Probes every URL of `turn` until `stop` turns true, so that an
/// operator learns of a dead TURN server before the staff behind strict
/// firewalls do.
pub async fn probe(
    turn: Turn,
    trust: Arc<Trust>,
    metrics: ProbeMetrics,
    mut stop: watch::Receiver<bool>,
) {
    if !trust.has_roots() && turn.urls().iter().any(|u| u.starts_with("turns:")) {
        tracing::warn!("no CA certificate to check turns: servers against (the system's trust store is empty and turn_ca_file is not set)");
    }
    let turn = Arc::new(turn);
    let mut last = HashMap::new();
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // All at once: one server that times out delays no other.
        let mut round = tokio::task::JoinSet::new();
        for url in turn.urls() {
            let (turn, trust, url) = (turn.clone(), trust.clone(), url.clone());
            round.spawn(async move {
                let probed = probe_once(&turn, &url, &trust).await;
                (url, probed)
            });
        }
        let results = async {
            let mut results = Vec::new();
            while let Some(Ok(r)) = round.join_next().await {
                results.push(r);
            }
            results
        };
        let results = tokio::select! {
            r = results => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        for (url, probed) in results {
            record(&url, &probed, &metrics, &mut last);
        }
    }
}

/// Sets the gauges for `url`, and logs when its state changes: at warn
/// with the reason when it fails, or fails for another reason; at info
/// when it works again. Returns whether it logged.
fn record(
    url: &str,
    probed: &Probed,
    metrics: &ProbeMetrics,
    last: &mut HashMap<String, Option<String>>,
) -> bool {
    metrics
        .reachable
        .with_label_values(&[url])
        .set(i64::from(probed.result.is_ok()));
    if let Some(c) = &probed.certificate {
        metrics
            .certificate_expiry
            .with_label_values(&[url])
            .set(c.unix);
    }
    let now = probed.result.as_ref().err().map(ToString::to_string);
    if last.get(url) == Some(&now) {
        return false;
    }
    match &now {
        Some(reason) => tracing::warn!(url, reason, "TURN server unreachable"),
        None => tracing::info!(
            url,
            "TURN server reachable: a relay was allocated and freed"
        ),
    }
    last.insert(url.to_owned(), now);
    true
}

/// One probe of `url`: connect as a browser would for that URL, allocate a
/// relay with credentials from `turn`'s secret, free it.
pub async fn probe_once(turn: &Turn, url: &str, trust: &Trust) -> Probed {
    let seen = Arc::new(Mutex::new(None));
    let result = match parse(url) {
        // The configuration checks every URL before this runs.
        None => Err(ProbeError::Build(format!("`{url}` is not a TURN URI"))),
        Some(target) => {
            let (username, password) = turn.credentials(PROBE_USER, SystemTime::now());
            let attempt = async {
                let mut conn = connect(&target, trust, &seen).await?;
                let crypto = rtc::crypto::default_provider()
                    .map_err(|e| ProbeError::Build(e.to_string()))?;
                let credentials = Credentials {
                    username: &username,
                    password: &password,
                };
                allocate_and_free(&mut conn, &credentials, crypto.crypto()).await?;
                conn.close().await;
                Ok(())
            };
            tokio::time::timeout(PROBE_TIMEOUT, attempt)
                .await
                .unwrap_or(Err(ProbeError::Timeout(PROBE_TIMEOUT)))
        }
    };
    let certificate = seen.lock().expect("not poisoned").take();
    Probed {
        result,
        certificate,
    }
}

async fn connect(
    target: &TurnUri,
    trust: &Trust,
    seen: &Arc<Mutex<Option<NotAfter>>>,
) -> Result<Conn, ProbeError> {
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(ProbeError::Resolve)?
        .next()
        .ok_or_else(|| {
            ProbeError::Resolve(std::io::Error::other("the name resolves to no address"))
        })?;
    if !target.tcp {
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(ProbeError::Io)?;
        // Connected: only the server's answers come in, and an ICMP
        // "port unreachable" surfaces as a refused receive.
        socket.connect(addr).await.map_err(ProbeError::Connect)?;
        return Ok(Conn::Udp(socket));
    }
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(ProbeError::Connect)?;
    // Requests are single small writes: do not hold them back.
    let _ = tcp.set_nodelay(true);
    if target.secure {
        let tls = trust.connect(tcp, &target.host, seen).await?;
        Ok(Conn::Stream(Box::new(tls)))
    } else {
        Ok(Conn::Stream(Box::new(tcp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::Opts;

    fn gauges(name: &str, label: &str) -> IntGaugeVec {
        IntGaugeVec::new(Opts::new(name, "test"), &[label]).unwrap()
    }

    #[test]
    fn gauges_follow_each_probe_and_the_log_each_change() {
        let metrics = ProbeMetrics {
            reachable: gauges("r", "url"),
            certificate_expiry: gauges("e", "endpoint"),
        };
        let url = "turns:turn.test:443?transport=tcp";
        let mut last = HashMap::new();
        let probed = |result, unix: Option<i64>| Probed {
            result,
            certificate: unix.map(|unix| NotAfter {
                unix,
                text: String::new(),
            }),
        };
        let refused = || Err(ProbeError::Refused("error 401 (Unauthorized)".into()));
        let timeout = || Err(ProbeError::Timeout(PROBE_TIMEOUT));
        let reachable = |m: &ProbeMetrics| m.reachable.with_label_values(&[url]).get();
        let expiry = |m: &ProbeMetrics| m.certificate_expiry.with_label_values(&[url]).get();

        assert!(
            record(url, &probed(refused(), Some(100)), &metrics, &mut last),
            "first failure"
        );
        assert_eq!((reachable(&metrics), expiry(&metrics)), (0, 100));
        assert!(
            !record(url, &probed(refused(), Some(100)), &metrics, &mut last),
            "same again"
        );
        assert!(
            record(url, &probed(timeout(), None), &metrics, &mut last),
            "another reason"
        );
        assert_eq!(expiry(&metrics), 100, "the last certificate seen stays");
        assert!(
            record(url, &probed(Ok(()), Some(200)), &metrics, &mut last),
            "back"
        );
        assert_eq!((reachable(&metrics), expiry(&metrics)), (1, 200));
        assert!(
            !record(url, &probed(Ok(()), Some(200)), &metrics, &mut last),
            "still fine"
        );
    }
}
