//! HTTPS on the public listener when the operator configures a
//! certificate: rustls (with ring, the provider the rest of the process
//! already carries), TLS 1.2 and 1.3, HTTP/1.1 (WebSocket upgrades need
//! it). Without one the listener speaks plain HTTP, for a reverse proxy in
//! front or a laptop. Also what a certificate's expiry is, for
//! `meet_certificate_expiry_timestamp_seconds`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::certificate::{not_after, NotAfter};

/// What is wrong with the configured certificate or key; `key` is the
/// config key naming the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

/// The rustls configuration for a PEM certificate chain and private key.
pub fn server_config(
    certificate: &Path,
    private_key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let fail = |key, message: String| TlsError { key, message };
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail("tls_certificate", format!("{}: {e}", certificate.display())))?;
    if chain.is_empty() {
        let message = format!("{}: no PEM certificate in it", certificate.display());
        return Err(fail("tls_certificate", message));
    }
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|e| fail("tls_private_key", format!("{}: {e}", private_key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("tls_certificate", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            fail(
                "tls_private_key",
                format!("does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The notAfter of the first certificate in a PEM file (the server's own,
/// as a chain starts with it), for `tls_certificate`.
pub fn certificate_not_after(path: &Path) -> Result<NotAfter, TlsError> {
    let fail = |message: String| TlsError {
        key: "tls_certificate",
        message,
    };
    let first = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?
        .next()
        .ok_or_else(|| fail(format!("{}: no PEM certificate in it", path.display())))?
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    not_after(&first).ok_or_else(|| fail(format!("{}: not an X.509 certificate", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_certificate_and_its_key_make_a_config_and_bad_files_name_their_key() {
        let dir = std::env::temp_dir().join(format!("meet-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["meet.test".into()]).unwrap();
        let cert = write(&dir, "cert.pem", &made.cert.pem());
        let key = write(&dir, "key.pem", &made.signing_key.serialize_pem());
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(
            certificate_not_after(&key).unwrap_err().key,
            "tls_certificate"
        );

        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        let wrong_key = write(&dir, "other.pem", &other.signing_key.serialize_pem());
        let e = server_config(&cert, &wrong_key).unwrap_err();
        assert_eq!(e.key, "tls_private_key", "{e}");
        let e = server_config(&key, &key).unwrap_err();
        assert_eq!(e.key, "tls_certificate", "{e}");
        let e = server_config(&dir.join("missing.pem"), &key).unwrap_err();
        assert_eq!(e.key, "tls_certificate", "{e}");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_expiry_is_the_first_certificates_not_after() {
        let dir = std::env::temp_dir().join(format!("meet-tls-expiry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["meet.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 5, 6);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // A chain: the server's certificate first, then one that expires later.
        let other = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let path = write(
            &dir,
            "chain.pem",
            &format!("{}{}", cert.pem(), other.cert.pem()),
        );
        let expiry = certificate_not_after(&path).unwrap();
        assert_eq!(
            expiry.unix, 1_935_792_000,
            "2031-05-06T00:00:00Z: {expiry:?}"
        );
        assert_eq!(expiry.text, "May  6 00:00:00 2031 +00:00");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
