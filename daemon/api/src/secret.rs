//! Secrets carried in JSON bodies (private keys), kept out of memory that is freed unwiped.
//!
//! serde_json unescapes a string (a PEM's `\n`s) through a scratch buffer that grows by
//! reallocation and is freed unwiped, and serialises into a `Vec` that does the same. A
//! [`SecretString`] is instead read as the raw JSON text, which serde_json borrows from the body
//! and copies once into an exact-size buffer that is wiped, and unescaped here into a buffer
//! sized up front; [`to_json`] writes a whole body into one buffer sized for the worst case.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::ops::Deref;
use zeroize::{Zeroize, Zeroizing};

/// A secret string: wiped when dropped, printed as `***`, and read from and written to JSON
/// without leaving copies behind.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// The secret, still in zeroizing memory.
    pub fn into_inner(self) -> Zeroizing<String> {
        self.0
    }
}

impl From<Zeroizing<String>> for SecretString {
    fn from(secret: Zeroizing<String>) -> Self {
        Self(secret)
    }
}

impl From<&str> for SecretString {
    fn from(secret: &str) -> Self {
        Self(Zeroizing::new(secret.to_owned()))
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Deref for SecretString {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut raw: Box<str> = Box::<RawValue>::deserialize(deserializer)?.into();
        let unescaped = unescape(&raw);
        raw.zeroize();
        unescaped.map(Self).map_err(D::Error::custom)
    }
}

/// The value of the JSON string literal `raw`, in a buffer that is never reallocated: an
/// escape is never shorter than what it stands for, so the literal's length is room enough.
fn unescape(raw: &str) -> Result<Zeroizing<String>, &'static str> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or("must be a string")?;
    let mut out = Zeroizing::new(String::with_capacity(inner.len()));
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let unescaped = match chars.next() {
            Some('"') => '"',
            Some('\\') => '\\',
            Some('/') => '/',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => code_point(&mut chars)?,
            _ => return Err("holds an invalid escape"),
        };
        out.push(unescaped);
    }
    debug_assert_eq!(out.capacity(), inner.len(), "never reallocated");
    Ok(out)
}

/// The character of a `\u` escape (its four hex digits next in `chars`), joining a UTF-16
/// surrogate pair written as two escapes.
fn code_point(chars: &mut std::str::Chars<'_>) -> Result<char, &'static str> {
    const INVALID: &str = "holds an invalid \\u escape";
    let first = hex4(chars).ok_or(INVALID)?;
    let code = if (0xD800..=0xDBFF).contains(&first) {
        let low = (chars.next() == Some('\\') && chars.next() == Some('u'))
            .then(|| hex4(chars))
            .flatten()
            .filter(|low| (0xDC00..=0xDFFF).contains(low))
            .ok_or(INVALID)?;
        0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
    } else {
        first
    };
    char::from_u32(code).ok_or(INVALID)
}

/// Four hex digits as a number.
fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    (0..4).try_fold(0, |value, _| Some(value * 16 + chars.next()?.to_digit(16)?))
}

/// `value` as a JSON body in one zeroizing buffer with room for `secret_len` bytes of secret
/// text escaped at worst (six bytes each) plus `overhead`, so serialising never reallocates.
pub fn to_json<T: Serialize>(
    value: &T,
    secret_len: usize,
    overhead: usize,
) -> serde_json::Result<Zeroizing<Vec<u8>>> {
    let room = secret_len * 6 + overhead;
    let mut body = Zeroizing::new(Vec::with_capacity(room));
    serde_json::to_writer(&mut *body, value)?;
    debug_assert_eq!(body.capacity(), room, "never reallocated");
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<String, String> {
        serde_json::from_str::<SecretString>(json)
            .map(|secret| secret.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn reads_every_json_escape() {
        let text = "-----BEGIN KEY-----\nAB/c+\r\t\"q\" \\ \u{8}\u{c} é 😀 \u{1}\n";
        let json = serde_json::to_string(text).unwrap_or_default();
        assert_eq!(read(&json), Ok(text.to_owned()));
        assert_eq!(read(r#""\ud83d\ude00 \u00e9 \/""#), Ok("😀 é /".to_owned()));
    }

    #[test]
    fn refuses_what_is_not_a_string_or_a_valid_escape() {
        assert!(read("42").is_err_and(|e| e.contains("must be a string")));
        assert!(read(r#""\ud83d""#).is_err_and(|e| e.contains("invalid \\u escape")));
        assert!(read(r#""\ude00""#).is_err_and(|e| e.contains("invalid \\u escape")));
        assert!(read(r#""\ud83d\u0041""#).is_err_and(|e| e.contains("invalid \\u escape")));
    }

    #[test]
    fn writes_within_the_room_reserved() {
        let worst = SecretString::from("\u{1}\u{2}\"\\\n".repeat(100).as_str());
        let body = to_json(&worst, worst.len(), 16).unwrap_or_default();
        assert_eq!(body.capacity(), worst.len() * 6 + 16);
        assert_eq!(
            serde_json::from_slice::<SecretString>(&body).ok(),
            Some(worst)
        );
    }
}
