//! What meet reads of an X.509 certificate: when it ends, for the
//! certificates it serves (built-in HTTPS) and those it relies on (TURN
//! over TLS), exported as `meet_certificate_expiry_timestamp_seconds`.

/// The end of a certificate's validity (its notAfter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAfter {
    /// Unix seconds.
    pub unix: i64,
    /// For people: `Jan  2 03:04:05 2026 +00:00`.
    pub text: String,
}

/// The notAfter of a DER certificate; `None` if it does not parse.
pub fn not_after(der: &[u8]) -> Option<NotAfter> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let t = cert.validity().not_after;
    Some(NotAfter {
        unix: t.timestamp(),
        text: t.to_string(),
    })
}
