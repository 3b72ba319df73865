//! The first datagram from a new address: classified (RFC 7983) and, if it
//! is a STUN binding request, read for the ICE ufrag it is meant for and
//! checked for integrity with that connection's password.
//!
//! All peers share a worker's UDP port, so the first packet from a new
//! address must be a binding request whose USERNAME names one of our ufrags
//! and whose MESSAGE-INTEGRITY proves the sender knows the password;
//! after that the address alone identifies the connection. Anything else
//! from an unknown address is dropped before it reaches the media engine,
//! and nobody who merely saw a ufrag can make us remember addresses.

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{Message, BINDING_REQUEST};
use rtc::stun::textattrs::TextAttribute;

/// What the first byte says a datagram is (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Unknown,
}

pub fn classify(datagram: &[u8]) -> Kind {
    match datagram.first() {
        Some(0..=3) => Kind::Stun,
        Some(20..=63) => Kind::Dtls,
        Some(128..=191) => Kind::Rtp,
        _ => Kind::Unknown,
    }
}

/// A well-formed STUN binding request with a USERNAME `ours:theirs`.
pub struct BindingRequest {
    message: Message,
    /// The part of USERNAME before the colon: our ufrag.
    ufrag: String,
}

impl BindingRequest {
    pub fn parse(datagram: &[u8]) -> Option<Self> {
        if classify(datagram) != Kind::Stun {
            return None;
        }
        let mut message = Message::new();
        message.unmarshal_binary(datagram).ok()?;
        if message.typ != BINDING_REQUEST {
            return None;
        }
        let username = TextAttribute::get_from_as(&message, ATTR_USERNAME).ok()?;
        let (ours, _theirs) = username.text.split_once(':')?;
        (!ours.is_empty()).then(|| Self {
            ufrag: ours.to_owned(),
            message,
        })
    }

    /// Our ufrag the request names.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// Whether its MESSAGE-INTEGRITY was made with `pwd` (RFC 8445 §7.2.2).
    pub fn authentic(&mut self, pwd: &str, crypto: &dyn RTCCrypto) -> bool {
        MessageIntegrity::check(&mut self.message, pwd.as_bytes(), crypto).is_ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rtc::stun::attributes::ATTR_SOFTWARE;
    use rtc::stun::fingerprint::FINGERPRINT;
    use rtc::stun::message::{Setter, TransactionId};

    pub(crate) fn crypto() -> std::sync::Arc<dyn rtc::crypto::RTCCryptoProvider> {
        rtc::crypto::default_provider().unwrap()
    }

    /// A binding request as a browser sends it: USERNAME, a SOFTWARE
    /// attribute of odd length (padding), MESSAGE-INTEGRITY with `pwd`
    /// (none if `None`), FINGERPRINT.
    pub(crate) fn binding_request(username: &str, pwd: Option<&str>) -> Vec<u8> {
        let provider = crypto();
        let mut m = Message::new();
        m.typ = BINDING_REQUEST;
        m.transaction_id = TransactionId([7; 12]);
        m.write_header();
        TextAttribute::new(ATTR_SOFTWARE, "abc".into())
            .add_to(&mut m)
            .unwrap();
        TextAttribute::new(ATTR_USERNAME, username.into())
            .add_to(&mut m)
            .unwrap();
        if let Some(pwd) = pwd {
            MessageIntegrity::new_short_term_integrity_with_provider(
                pwd.to_owned(),
                provider.crypto(),
            )
            .add_to(&mut m)
            .unwrap();
        }
        FINGERPRINT.add_to(&mut m).unwrap();
        m.raw
    }

    #[test]
    fn finds_our_ufrag_and_checks_the_password() {
        let provider = crypto();
        let req = binding_request("serverufrag:browserufrag", Some("secret"));
        assert_eq!(classify(&req), Kind::Stun);
        let mut parsed = BindingRequest::parse(&req).unwrap();
        assert_eq!(parsed.ufrag(), "serverufrag");
        assert!(!parsed.authentic("guess", provider.crypto()));
        assert!(parsed.authentic("secret", provider.crypto()));
        let mut unsigned = BindingRequest::parse(&binding_request("serverufrag:x", None)).unwrap();
        assert!(!unsigned.authentic("secret", provider.crypto()));
    }

    #[test]
    fn rejects_malformed() {
        assert!(BindingRequest::parse(&[]).is_none());
        assert!(BindingRequest::parse(&[0; 19]).is_none());
        let mut req = binding_request("a:b", Some("p"));
        req[5] = 0; // broken cookie
        assert!(BindingRequest::parse(&req).is_none());
        let mut req = binding_request("a:b", Some("p"));
        req[3] = 0xff; // length beyond the datagram
        assert!(BindingRequest::parse(&req).is_none());
        assert!(BindingRequest::parse(&binding_request("nocolon", Some("p"))).is_none());
        assert!(BindingRequest::parse(&binding_request(":b", Some("p"))).is_none());
        let mut req = binding_request("a:b", Some("p"));
        req[1] = 0x11; // an indication, not a request
        assert!(BindingRequest::parse(&req).is_none());
    }

    /// Arbitrary bytes, and mutations of a valid request, never panic.
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let provider = crypto();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let valid = binding_request("serverufrag:browserufrag", Some("pwd"));
        for _ in 0..20_000 {
            let len = rng.random_range(0..80);
            let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = BindingRequest::parse(&noise);
            let mut mutated = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..mutated.len());
                mutated[i] = rng.random();
            }
            mutated.truncate(rng.random_range(0..=mutated.len()));
            if let Some(mut r) = BindingRequest::parse(&mutated) {
                let _ = r.authentic("pwd", provider.crypto());
            }
        }
    }

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[22, 254, 253]), Kind::Dtls);
        assert_eq!(classify(&[0x80, 96]), Kind::Rtp);
        assert_eq!(classify(&[255]), Kind::Unknown);
        assert_eq!(classify(&[]), Kind::Unknown);
    }
}
