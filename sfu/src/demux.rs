//! Classifies datagrams arriving on the shared media port (RFC 7983) and finds
//! the connection a STUN binding request is meant for.
//!
//! All peers share one UDP port, so the first packet from a new address must
//! be a STUN binding request whose USERNAME names our ICE ufrag; after that the
//! address alone identifies the connection. Anything else from an unknown
//! address is garbage and dropped before it reaches the media engine.

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

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const HEADER_LEN: usize = 20;

/// The local (our) ufrag named by a STUN binding request, i.e. the part of
/// USERNAME before the colon. `None` for anything that is not a well-formed
/// binding request with a USERNAME.
pub fn binding_request_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < HEADER_LEN || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    let msg_len = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    if msg_type != BINDING_REQUEST || HEADER_LEN + msg_len > datagram.len() {
        return None;
    }
    let mut attrs = &datagram[HEADER_LEN..HEADER_LEN + msg_len];
    while attrs.len() >= 4 {
        let typ = u16::from_be_bytes([attrs[0], attrs[1]]);
        let len = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let value = attrs.get(4..4 + len)?;
        if typ == ATTR_USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (local, _remote) = username.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        // Attributes are padded to a multiple of four bytes.
        let padded = (4 + len + 3) & !3;
        attrs = attrs.get(padded..)?;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A binding request with the given USERNAME and a dummy attribute before it.
    pub(crate) fn binding_request(username: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        // A 3-byte SOFTWARE attribute, to exercise padding.
        attrs.extend_from_slice(&[0x80, 0x22, 0, 3, b'a', b'b', b'c', 0]);
        attrs.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn finds_local_ufrag() {
        let req = binding_request("serverufrag:browserufrag");
        assert_eq!(classify(&req), Kind::Stun);
        assert_eq!(binding_request_ufrag(&req), Some("serverufrag"));
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(binding_request_ufrag(&[]), None);
        assert_eq!(binding_request_ufrag(&[0; 19]), None);
        let mut req = binding_request("a:b");
        req[5] = 0; // broken cookie
        assert_eq!(binding_request_ufrag(&req), None);
        let mut req = binding_request("a:b");
        req[3] = 0xff; // length beyond the datagram
        assert_eq!(binding_request_ufrag(&req), None);
        assert_eq!(binding_request_ufrag(&binding_request("nocolon")), None);
        assert_eq!(binding_request_ufrag(&binding_request(":b")), None);
        let mut req = binding_request("a:b");
        req[1] = 0x11; // an indication, not a request
        assert_eq!(binding_request_ufrag(&req), None);
    }

    #[test]
    fn truncated_attribute_does_not_panic() {
        let mut req = binding_request("serverufrag:browserufrag");
        let n = req.len();
        req.truncate(n - 6);
        let len = (req.len() - HEADER_LEN) as u16;
        req[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(binding_request_ufrag(&req), None);
    }

    /// Arbitrary bytes, and mutations of a valid request, never panic.
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let valid = binding_request("serverufrag:browserufrag");
        for _ in 0..20_000 {
            let len = rng.random_range(0..80);
            let noise: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = binding_request_ufrag(&noise);
            let mut mutated = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..mutated.len());
                mutated[i] = rng.random();
            }
            mutated.truncate(rng.random_range(0..=mutated.len()));
            let _ = binding_request_ufrag(&mutated);
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
