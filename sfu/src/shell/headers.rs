//! What every HTTP response tells the browser about itself: HTTPS only
//! (when we serve it), a strict Content-Security-Policy (our own scripts, styles and connections only;
//! framed only by ourselves and the configured Matrix clients), no MIME
//! sniffing, no referrer (invite links carry their grant in the URL), and
//! camera, microphone and screen capture for this origin alone. And the
//! checks that a browser opening the signalling WebSocket came from one of
//! our pages, under one of our names.

use axum::extract::{Request, State};
use std::net::SocketAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;

use crate::cluster::Cluster;

/// The headers added to every response, made once at start.
#[derive(Clone)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `frame-ancestors`' value, for a policy made per response.
    ancestors: String,
    /// Several servers under names of their own: a page may connect to
    /// whichever holds its meeting, as the registry has them now.
    cluster: Option<Cluster>,
}

/// The Content-Security-Policy: our own scripts, styles and connections
/// (and `connect` beside them), framed by `ancestors`.
fn csp(ancestors: &str, connect: &[String]) -> String {
    let mut connect_src = String::from("'self'");
    for origin in connect {
        connect_src.push(' ');
        connect_src.push_str(origin);
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data: blob:; media-src 'self' blob: mediastream:; \
         connect-src {connect_src}; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors {ancestors}"
    )
}

impl SecurityHeaders {
    /// `frame_ancestors`: origins (`https://element.example.org`) that may
    /// embed the meeting as a widget, beside ourselves. `https`: we serve
    /// TLS ourselves, so browsers are told to keep to it (HSTS, a year;
    /// behind a proxy the proxy, which holds the certificate, says so).
    pub fn new(frame_ancestors: &[String], https: bool, cluster: Option<Cluster>) -> Self {
        let mut ancestors = String::from("'self'");
        for origin in frame_ancestors {
            ancestors.push(' ');
            ancestors.push_str(origin);
        }
        let csp = csp(&ancestors, &[]);
        let value = |v: &str| HeaderValue::from_str(v).expect("origins were validated at start");
        let hsts = https.then(|| (header::STRICT_TRANSPORT_SECURITY, value("max-age=31536000")));
        Self {
            headers: hsts
                .into_iter()
                .chain([
                    (header::CONTENT_SECURITY_POLICY, value(&csp)),
                    (header::X_CONTENT_TYPE_OPTIONS, value("nosniff")),
                    (header::REFERRER_POLICY, value("no-referrer")),
                    (
                        HeaderName::from_static("permissions-policy"),
                        value(
                            "camera=(self), microphone=(self), display-capture=(self), \
                         fullscreen=(self), geolocation=(), payment=(), usb=()",
                        ),
                    ),
                    (
                        HeaderName::from_static("cross-origin-opener-policy"),
                        value("same-origin"),
                    ),
                ])
                .collect(),
            ancestors,
            cluster,
        }
    }
}

pub async fn add(State(headers): State<SecurityHeaders>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in &headers.headers {
        h.insert(name.clone(), value.clone());
    }
    let others = headers.cluster.as_ref().map(Cluster::ws_origins);
    if let Some(others) = others.filter(|o| !o.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(&csp(&headers.ancestors, &others)) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    response
}

/// The host names browsers may reach the signalling WebSocket under. A
/// page that a DNS-rebinding attack put on our address keeps its own name
/// (`evil.example`), and so its `Origin` and `Host` agree: only the names
/// we know (`public_url`'s, `allowed_hosts`, `localhost` where we listen on
/// loopback) tell it from our own pages. An address in `Host` cannot be
/// rebound (a page at that address is one we, or our proxy, served) and is
/// always taken; the port is not looked at, as a proxy's `$host` drops it.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
    localhost: bool,
}

impl AllowedHosts {
    pub fn new(public_url: Option<&url::Url>, configured: &[String], listen: SocketAddr) -> Self {
        let names = public_url
            .and_then(|u| u.host_str())
            .into_iter()
            .chain(configured.iter().map(String::as_str))
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let ip = listen.ip();
        Self {
            names,
            localhost: ip.is_loopback() || ip.is_unspecified(),
        }
    }

    /// Whether `host` (a `Host` header: a name or an address, and maybe a
    /// port) is one of ours.
    pub fn allows(&self, host: &str) -> bool {
        let Ok(url) = url::Url::parse(&format!("http://{host}/")) else {
            return false;
        };
        match url.host() {
            Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                (self.localhost && name == "localhost") || self.names.iter().any(|n| n == name)
            }
            None => false,
        }
    }
}

/// The host a request was sent to: its `Host` header, or over HTTP/2 the
/// authority of its URI.
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Whether a WebSocket upgrade may proceed: browsers always say which page
/// opened it (`Origin`), and only our own pages may (a page elsewhere must
/// not join meetings with its visitors' cookies and network position):
/// one of `public_url`'s origin (behind a proxy that passes a `Host` of
/// its own), or one of the very name the request was sent to, which
/// [`AllowedHosts`] has checked is ours (a second name of the server).
/// Clients that are not browsers send no `Origin` and are let through; they
/// can claim any origin anyway.
pub fn same_origin(headers: &HeaderMap, host: Option<&str>, public_origin: Option<&str>) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if public_origin.is_some_and(|public| origin.eq_ignore_ascii_case(public)) {
        return true;
    }
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((bare, host), (Some(b), Some(h)) if b.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn same(h: &HeaderMap, public: Option<&str>) -> bool {
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        same_origin(h, host, public)
    }

    #[test]
    fn only_our_own_pages_open_the_websocket() {
        let ours = headers(&[
            ("host", "meet.example:8080"),
            ("origin", "http://meet.example:8080"),
        ]);
        assert!(same(&ours, None));
        let evil = headers(&[
            ("host", "meet.example:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!same(&evil, None));
        let null = headers(&[("host", "meet.example:8080"), ("origin", "null")]);
        assert!(!same(&null, None));
        // Not a browser.
        assert!(same(&headers(&[("host", "meet.example")]), None));
        // Behind a proxy: the public URL's origin is the page's.
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://meet.example"),
        ]);
        assert!(same(&proxied, Some("https://meet.example")));
        assert!(!same(&evil, Some("https://meet.example")));
        // A page of the (checked) name the request went to: another name
        // of ours beside the public URL's.
        assert!(same(&ours, Some("https://meet.example")));
    }

    #[test]
    fn only_our_names_reach_the_websocket() {
        let public = url::Url::parse("https://Meet.Example.org/").unwrap();
        let configured = ["video.example.org".to_owned()];
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let hosts = AllowedHosts::new(Some(&public), &configured, loopback);
        for ours in [
            "meet.example.org",
            "MEET.example.org:443",
            "meet.example.org.",
            "video.example.org:8443",
            "localhost:8080",
            "127.0.0.1:8080",
            "10.99.0.1",
            "[::1]:8080",
        ] {
            assert!(hosts.allows(ours), "{ours}");
        }
        for theirs in [
            "evil.example",
            "meet.example.org.evil.example",
            "evilmeet.example.org",
            "",
            "a b",
        ] {
            assert!(!hosts.allows(theirs), "{theirs}");
        }
        // Without a public URL, a name must be configured; `localhost`
        // only reaches a server listening on loopback (or everywhere).
        let public_listener: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let bare = AllowedHosts::new(None, &[], public_listener);
        assert!(!bare.allows("localhost") && !bare.allows("meet.example.org"));
        assert!(bare.allows("192.0.2.1"));
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(AllowedHosts::new(None, &[], wildcard).allows("localhost:8080"));
    }

    #[test]
    fn frame_ancestors_name_the_configured_clients() {
        let clients = ["https://element.example".into(), "vector://vector".into()];
        let h = SecurityHeaders::new(&clients, false, None);
        let csp = h
            .headers
            .iter()
            .find(|(n, _)| n == header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .1
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.ends_with("frame-ancestors 'self' https://element.example vector://vector"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        let hsts = |h: &SecurityHeaders| {
            h.headers
                .iter()
                .any(|(n, _)| n == header::STRICT_TRANSPORT_SECURITY)
        };
        assert!(!hsts(&h), "HSTS over plain HTTP");
        assert!(hsts(&SecurityHeaders::new(&[], true, None)));
    }
}
