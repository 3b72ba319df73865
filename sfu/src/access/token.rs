//! Meeting access tokens: what `/api/token` hands a participant whose Matrix
//! identity was checked, and what `join` presents. Signed JWTs (HS256), so
//! any node holding the secret can check them without shared state. The
//! same keys sign invite links (`invite.rs`); each kind names its own
//! audience, so that one is never taken for the other.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The audience of access tokens.
const ACCESS_AUDIENCE: &str = "meet-access";

/// How long a token admits its holder to `join`; joining again later needs
/// a fresh one (the widget gets one in a second). Room membership is
/// checked again at every join; this only bounds a token's misuse.
pub const LIFETIME_SECS: u64 = 600;

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Matrix user id.
    pub sub: String,
    pub name: String,
    /// The meeting this token admits to.
    pub room: String,
    pub host: bool,
    pub exp: u64,
    pub aud: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid access token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the access token is for another meeting")]
    WrongRoom,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    /// `secret` empty: a random one.
    pub fn new(secret: &str) -> Self {
        let bytes: Vec<u8> = if secret.is_empty() {
            rand::random::<[u8; 32]>().to_vec()
        } else {
            secret.as_bytes().to_vec()
        };
        Self {
            encoding: EncodingKey::from_secret(&bytes),
            decoding: DecodingKey::from_secret(&bytes),
        }
    }

    pub fn issue(&self, sub: &str, name: &str, room: &str, host: bool) -> String {
        self.sign(&Claims {
            sub: sub.to_owned(),
            name: name.to_owned(),
            room: room.to_owned(),
            host,
            exp: unix_now() + LIFETIME_SECS,
            aud: ACCESS_AUDIENCE.to_owned(),
        })
    }

    /// Checks signature, expiry and that the token is for `room`.
    pub fn check(&self, token: &str, room: &str) -> Result<Claims, TokenError> {
        let claims: Claims = self.verify(token, ACCESS_AUDIENCE)?;
        if claims.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(claims)
    }

    /// Signs claims of any kind; they must carry `exp` and `aud`.
    pub(super) fn sign(&self, claims: &impl Serialize) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// Checks signature, expiry and audience.
    pub(super) fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry holds to the second: valid while now < exp (RFC 7519:
        // not accepted "on or after" it). jsonwebtoken refuses
        // `exp - reject < now - leeway`, so no leeway and a reject margin
        // of one second refuse `exp <= now`; the signer's clock is ours.
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 1;
        validation.set_audience(&[audience]);
        Ok(decode::<T>(token, &self.decoding, &validation)?.claims)
    }
}

/// Now, in Unix seconds, as tokens and invites reckon expiry.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::errors::ErrorKind;

    /// What a refused token was refused for, as jsonwebtoken says it.
    fn refusal(r: Result<Claims, TokenError>) -> ErrorKind {
        match r {
            Err(TokenError::Invalid(e)) => e.into_kind(),
            other => panic!("not refused as invalid: {other:?}"),
        }
    }

    #[test]
    fn issued_tokens_check_out_for_their_room_only() {
        let keys = TokenKeys::new("");
        let t = keys.issue("@alice:hs", "Alice", "standup", true);
        let c = keys.check(&t, "standup").unwrap();
        assert_eq!((c.sub.as_str(), c.host), ("@alice:hs", true));
        assert!(matches!(
            keys.check(&t, "other"),
            Err(TokenError::WrongRoom)
        ));
        assert_eq!(
            refusal(TokenKeys::new("").check(&t, "standup")),
            ErrorKind::InvalidSignature,
            "signed with another key"
        );
        // A guest's token made a host's: the claims changed, the signature
        // did not.
        let guest = keys.issue("@bob:hs", "Bob", "standup", false);
        let (header, rest) = guest.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let host_claims = t.split('.').nth(1).unwrap();
        let forged = format!("{header}.{host_claims}.{signature}");
        assert_eq!(
            refusal(keys.check(&forged, "standup")),
            ErrorKind::InvalidSignature
        );
        assert_eq!(
            refusal(keys.check("garbage", "standup")),
            ErrorKind::InvalidToken
        );
        // Another algorithm than the one we sign with, however signed.
        let claims = keys.check(&t, "standup").unwrap();
        let hs512 = encode(&Header::new(Algorithm::HS512), &claims, &keys.encoding).unwrap();
        assert_eq!(
            refusal(keys.check(&hs512, "standup")),
            ErrorKind::InvalidAlgorithm
        );
    }

    #[test]
    fn expired_tokens_are_refused_from_their_second_on() {
        let keys = TokenKeys::new(&"s".repeat(32));
        let token = |exp: u64| {
            let claims = Claims {
                sub: "@a:hs".into(),
                name: "A".into(),
                room: "r".into(),
                host: false,
                exp,
                aud: ACCESS_AUDIENCE.into(),
            };
            encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap()
        };
        // No leeway: a second past it, and the second of expiry itself (the
        // clock only moves on between making the token and checking it).
        for exp in [unix_now() - 60, unix_now() - 1, unix_now()] {
            assert_eq!(
                refusal(keys.check(&token(exp), "r")),
                ErrorKind::ExpiredSignature,
                "exp {exp}"
            );
        }
        assert!(keys.check(&token(unix_now() + 60), "r").is_ok());
    }
}
