//! Who is calling: local passwords (Argon2id) and signed login tokens (JWT, HS256 only).

pub mod password;
pub mod token;
