//! Who is calling: local passwords (Argon2id), login throttling, and signed login tokens (JWT,
//! HS256 only).

pub mod password;
pub mod throttle;
pub mod token;
