//! Login tokens: JWTs signed with HMAC-SHA256 under the secret of `auth.token_secret_file`.
//!
//! The algorithm is pinned by construction: a token whose header says anything but `HS256` is
//! refused before its signature is looked at (Lemur's GHSA-r9gp algorithm confusion cannot happen),
//! and the signature is compared in constant time by ring.

use crate::clock::Clock;
use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The longest a login token may live: a stolen token is good until it expires or is logged out.
pub const MAX_LIFETIME_MINUTES: u64 = 24 * 60;

/// The claims of a login token (Lemur's shape: `sub` is the user id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// The user's token generation when it was issued: a password reset advances it.
    pub generation: i64,
    /// The token's own id, which logging out records.
    pub jti: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

/// Issues and checks login tokens.
pub struct TokenKeys {
    key: hmac::Key,
    lifetime_secs: i64,
    clock: Arc<dyn Clock>,
}

impl TokenKeys {
    /// Signs with `secret` (the file's content: at least 32 bytes once trailing white space
    /// is cut).
    pub fn new(secret: &[u8], lifetime_minutes: u64, clock: Arc<dyn Clock>) -> Result<Self> {
        let trimmed = secret.trim_ascii_end();
        if trimmed.len() < 32 {
            return Err(Error::invalid(
                "auth.token_secret_file",
                "holds fewer than 32 bytes",
            ));
        }
        if !(1..=MAX_LIFETIME_MINUTES).contains(&lifetime_minutes) {
            return Err(Error::invalid(
                "auth.token_lifetime_minutes",
                format!("must be between 1 and {MAX_LIFETIME_MINUTES} (a day)"),
            ));
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, trimmed),
            lifetime_secs: i64::try_from(lifetime_minutes.saturating_mul(60)).unwrap_or(i64::MAX),
            clock,
        })
    }

    /// A token for `user_id` of token generation `generation`, valid for the configured
    /// lifetime.
    pub fn issue(&self, user_id: i64, generation: i64) -> Result<String> {
        let now = self.clock.unix();
        let claims = Claims {
            sub: user_id,
            iat: now,
            exp: now.saturating_add(self.lifetime_secs),
            generation,
            jti: crate::files::random_hex(16)?.to_string(),
        };
        let header = Header {
            alg: "HS256".into(),
            typ: "JWT".into(),
        };
        let signing_input = format!("{}.{}", encode(&header)?, encode(&claims)?);
        let signature = hmac::sign(&self.key, signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            B64.encode(signature.as_ref())
        ))
    }

    /// The claims of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let invalid = || Error::Unauthorized("invalid token".into());
        let mut parts = token.split('.');
        let (Some(header), Some(claims), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let header: Header = B64
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(invalid)?;
        if header.alg != "HS256" {
            return Err(invalid());
        }
        let signature = B64.decode(signature).map_err(|_| invalid())?;
        let signing_input_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
        hmac::verify(
            &self.key,
            &token.as_bytes()[..signing_input_len],
            &signature,
        )
        .map_err(|_| invalid())?;
        let claims: Claims = B64
            .decode(claims)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(invalid)?;
        if claims.exp <= self.clock.unix() {
            return Err(Error::Unauthorized("token expired: log in again".into()));
        }
        Ok(claims)
    }
}

fn encode(value: &impl Serialize) -> Result<String> {
    serde_json::to_vec(value)
        .map(|json| B64.encode(json))
        .map_err(|e| Error::Ca(format!("encoding a token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use time::OffsetDateTime;

    struct FixedClock(Mutex<i64>);
    impl Clock for FixedClock {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp(*self.0.lock().unwrap()).unwrap()
        }
    }

    fn keys(secret: &[u8], clock: Arc<FixedClock>) -> TokenKeys {
        TokenKeys::new(secret, 60, clock).unwrap()
    }

    #[test]
    fn lifetimes_are_capped_at_a_day() {
        let clock = Arc::new(FixedClock(Mutex::new(1_700_000_000)));
        let secret = [b's'; 32];
        for minutes in [0, MAX_LIFETIME_MINUTES + 1] {
            let Err(Error::Validation { field, .. }) =
                TokenKeys::new(&secret, minutes, Arc::clone(&clock) as Arc<dyn Clock>)
            else {
                panic!("{minutes} minutes accepted")
            };
            assert_eq!(field, "auth.token_lifetime_minutes");
        }
        assert!(TokenKeys::new(&secret, MAX_LIFETIME_MINUTES, clock).is_ok());
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let clock = Arc::new(FixedClock(Mutex::new(1_700_000_000)));
        let keys = keys(&[7u8; 32], Arc::clone(&clock));
        let token = keys.issue(42, 3).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.generation), (42, 3));
        assert_ne!(
            claims.jti,
            keys.verify(&keys.issue(42, 3).unwrap()).unwrap().jti
        );
        *clock.0.lock().unwrap() += 3600;
        assert!(
            keys.verify(&token)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
    }

    #[test]
    fn forged_and_confused_tokens_are_refused() {
        let clock = Arc::new(FixedClock(Mutex::new(1_700_000_000)));
        let keys = keys(&[7u8; 33], Arc::clone(&clock));
        let other = keys_with_other_secret(&clock);
        let token = keys.issue(1, 0).unwrap();
        assert!(
            other.verify(&token).is_err(),
            "another secret must not verify"
        );
        let (_, rest) = token.split_once('.').unwrap();
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{none_header}.{rest}")).is_err());
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 2, 'x');
        assert!(keys.verify(&tampered).is_err());
        assert!(keys.verify("a.b").is_err());
        assert!(keys.verify("a.b.c.d").is_err());
    }

    fn keys_with_other_secret(clock: &Arc<FixedClock>) -> TokenKeys {
        keys(&[b'k'; 34], Arc::clone(clock))
    }
}
