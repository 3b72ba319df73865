//! HTTPS on the public listener when the operator configures a
//! certificate: rustls (with ring, the provider the rest of the process
//! already carries), TLS 1.2 and 1.3, HTTP/1.1 (WebSocket upgrades need
//! it). Without one the listener speaks plain HTTP, for a reverse proxy in
//! front or a laptop.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

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
}
