//! Local passwords, hashed with Argon2id (PHC strings in the database).

use crate::error::{Error, Result};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Hashes `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Ca(format!("hashing a password failed: {e}")))
}

/// Whether `password` matches the stored `hash` (false for a malformed hash).
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash that no password matches, verified against when a user does not exist so that failed
/// logins take the same time either way.
pub fn decoy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0bJ3T3U1SAp2kxG0WdgAjoEyqzi+4RN8CJIDw+T0rGM"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_reject_wrong_passwords() {
        let hash = hash("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &hash));
        assert!(!verify("correct horse batterz", &hash));
        assert!(!verify("anything", "not a hash"));
        assert!(!verify("anything", decoy_hash()));
    }

    #[test]
    fn short_passwords_are_refused_with_the_field_named() {
        let error = hash("short").unwrap_err();
        assert!(error.to_string().starts_with("password: must be at least"));
    }
}
