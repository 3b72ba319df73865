//! TLS for `turns:` as a browser speaks it: the server's name sent (SNI),
//! its certificate checked against the system's trust store and, for a
//! private CA, `turn_ca_file`. The certificate the handshake saw is kept,
//! valid or not, for `meet_certificate_expiry_timestamp_seconds`.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::allocate::ProbeError;
use crate::certificate::{not_after, NotAfter};

/// What the `turn_ca_file` holds is not usable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TrustError(String);

/// The CA certificates `turns:` servers are checked against.
pub struct Trust {
    provider: Arc<CryptoProvider>,
    /// `None` when there is no CA certificate at all: every handshake fails.
    verifier: Option<Arc<WebPkiServerVerifier>>,
}

impl Trust {
    /// The system's trust store when `system` (only `turns:` needs it,
    /// so others are spared reading it), and the PEM certificates in
    /// `ca_file`.
    pub fn load(system: bool, ca_file: Option<&Path>) -> Result<Self, TrustError> {
        let mut roots = RootCertStore::empty();
        if system {
            // Unreadable files among the system's are skipped, as
            // browsers and OpenSSL skip them.
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        if let Some(path) = ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TrustError(format!("{}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(TrustError(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| TrustError(format!("{}: {e}", path.display())))?;
            }
        }
        Ok(Self::new(roots))
    }

    fn new(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = (!roots.is_empty()).then(|| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("a verifier builds from a non-empty root store")
        });
        Self { provider, verifier }
    }

    /// How many CA certificates there are to check against (none: every
    /// `turns:` probe fails, and the log says why).
    pub fn has_roots(&self) -> bool {
        self.verifier.is_some()
    }

    /// The TLS handshake with `host` on `tcp`. `seen` gets the validity of
    /// the certificate the server showed, before it is checked, so that
    /// an expired one is still reported.
    pub async fn connect(
        &self,
        tcp: tokio::net::TcpStream,
        host: &str,
        seen: &Arc<Mutex<Option<NotAfter>>>,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ProbeError> {
        let Some(inner) = &self.verifier else {
            return Err(ProbeError::Tls(
                "no CA certificates to check the server's against: the system's trust store is empty and turn_ca_file is not set".into(),
            ));
        };
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| ProbeError::Tls(format!("`{host}` is not a name TLS can check: {e}")))?;
        let verifier = Arc::new(Recording {
            inner: inner.clone(),
            seen: seen.clone(),
        });
        let config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| ProbeError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        connector.connect(name, tcp).await.map_err(|e| {
            let seen = seen.lock().expect("not poisoned").clone();
            ProbeError::Tls(describe(&e, host, seen.as_ref()))
        })
    }
}

/// The WebPKI verifier, noting the end-entity certificate's expiry first.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<NotAfter>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("not poisoned") = not_after(end_entity);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a handshake failed, in words that stay the same while the cause
/// does (rustls's own name the current time).
fn describe(e: &io::Error, host: &str, seen: Option<&NotAfter>) -> String {
    let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                "the server closed the connection during the handshake".into()
            }
            _ => e.to_string(),
        };
    };
    let until = seen.map_or_else(String::new, |s| format!(" (valid until {})", s.text));
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server's certificate has expired{until}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet".into()
            }
            CertificateError::UnknownIssuer => {
                "the server's certificate is not from a CA in the system's trust store or turn_ca_file".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("the server's certificate is not valid for `{host}`")
            }
            other => format!("the server's certificate is not accepted: {other}"),
        },
        rustls::Error::InvalidMessage(_) => format!("the server does not speak TLS there ({tls})"),
        other => other.to_string(),
    }
}
