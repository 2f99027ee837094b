//! RFC 7512 PKCS#11 URIs naming keys: `pkcs11:token=lemur;object=ca-root-2026;id=%01;type=private`.
//!
//! A key reference is stored in the database next to an authority, so it must never carry a
//! secret: `pin-value` and `pin-source` are refused, PINs come from the configured PIN file only.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The kind of object a URI names (`type=` in RFC 7512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// A private key.
    Private,
    /// A public key.
    Public,
    /// A secret (symmetric) key.
    Secret,
}

impl ObjectType {
    fn as_str(self) -> &'static str {
        match self {
            ObjectType::Private => "private",
            ObjectType::Public => "public",
            ObjectType::Secret => "secret-key",
        }
    }
}

/// A reference to a key in a token. Needs the token label and a label (`object`) or an `id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyUri {
    token: String,
    object: Option<String>,
    id: Option<Vec<u8>>,
    object_type: Option<ObjectType>,
}

impl KeyUri {
    /// A URI for the key labelled `object` with CKA_ID `id` in token `token`.
    pub fn new(token: impl Into<String>, object: impl Into<String>, id: Vec<u8>) -> Self {
        Self {
            token: token.into(),
            object: Some(object.into()),
            id: Some(id),
            object_type: None,
        }
    }

    /// A URI for the object labelled `object` (no id) of the given type in token `token`.
    pub fn labelled(
        token: impl Into<String>,
        object: impl Into<String>,
        object_type: ObjectType,
    ) -> Self {
        Self {
            token: token.into(),
            object: Some(object.into()),
            id: None,
            object_type: Some(object_type),
        }
    }

    /// The same key without `type=`, naming both halves of a pair.
    pub fn without_type(mut self) -> Self {
        self.object_type = None;
        self
    }

    /// The token label.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The object label (CKA_LABEL), if given.
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }

    /// The object id (CKA_ID), if given.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }

    /// The object type, if given.
    pub fn object_type(&self) -> Option<ObjectType> {
        self.object_type
    }

    /// The same key with `type=` set.
    pub fn with_type(mut self, object_type: ObjectType) -> Self {
        self.object_type = Some(object_type);
        self
    }
}

/// Characters RFC 7512 lets a path attribute value carry unescaped (unreserved plus a few of
/// `pchar`); everything else is percent-encoded.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b':'
                | b'@'
                | b'&'
                | b'+'
                | b','
                | b'!'
                | b'$'
                | b'\''
                | b'('
                | b')'
                | b'*'
        )
}

fn encode(value: &[u8], always: bool, out: &mut String) {
    for &byte in value {
        if !always && is_plain(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

fn decode(value: &str) -> Option<Vec<u8>> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("pkcs11:token=");
        encode(self.token.as_bytes(), false, &mut out);
        if let Some(object) = &self.object {
            out.push_str(";object=");
            encode(object.as_bytes(), false, &mut out);
        }
        if let Some(id) = &self.id {
            out.push_str(";id=");
            encode(id, true, &mut out);
        }
        if let Some(object_type) = self.object_type {
            out.push_str(";type=");
            out.push_str(object_type.as_str());
        }
        f.write_str(&out)
    }
}

impl FromStr for KeyUri {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUri {
            uri: redact_pin(uri),
            reason: reason.to_owned(),
        };
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| invalid("must start with `pkcs11:`"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if let Some(attribute) = query.split('&').find(|a| !a.is_empty()) {
            let name = attribute.split('=').next().unwrap_or_default();
            if name.starts_with("pin-") {
                return Err(invalid(
                    "a key reference never carries a PIN: remove pin-value/pin-source; the PIN comes from the configured PIN file",
                ));
            }
            return Err(invalid(&format!("unsupported query attribute `{name}`")));
        }
        let mut parsed = KeyUri {
            token: String::new(),
            object: None,
            id: None,
            object_type: None,
        };
        for attribute in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attribute
                .split_once('=')
                .ok_or_else(|| invalid(&format!("attribute `{attribute}` has no value")))?;
            let value = decode(value)
                .ok_or_else(|| invalid(&format!("bad percent-encoding in `{name}`")))?;
            let text = || {
                String::from_utf8(value.clone())
                    .map_err(|_| invalid(&format!("`{name}` is not UTF-8")))
            };
            match name {
                "token" => parsed.token = text()?,
                "object" => parsed.object = Some(text()?),
                "id" => parsed.id = Some(value),
                "type" => {
                    parsed.object_type = Some(match text()?.as_str() {
                        "private" => ObjectType::Private,
                        "public" => ObjectType::Public,
                        "secret-key" => ObjectType::Secret,
                        other => return Err(invalid(&format!("unsupported type `{other}`"))),
                    })
                }
                other => return Err(invalid(&format!("unsupported attribute `{other}`"))),
            }
        }
        if parsed.token.is_empty() {
            return Err(invalid("`token` is required"));
        }
        if parsed.object.is_none() && parsed.id.is_none() {
            return Err(invalid("`object` or `id` is required"));
        }
        Ok(parsed)
    }
}

/// Keeps a refused URI out of logs when it carries a PIN value.
fn redact_pin(uri: &str) -> String {
    match uri.find("pin-value=") {
        Some(at) => {
            let end = uri[at..].find('&').map_or(uri.len(), |i| at + i);
            format!("{}pin-value=***{}", &uri[..at], &uri[end..])
        }
        None => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_percent_encoded_id() -> Result<()> {
        let uri = KeyUri::new("lemur", "ca-root-2026", vec![0x01]);
        assert_eq!(
            uri.to_string(),
            "pkcs11:token=lemur;object=ca-root-2026;id=%01"
        );
        assert_eq!(uri.to_string().parse::<KeyUri>()?, uri);
        Ok(())
    }

    #[test]
    fn encodes_reserved_characters() -> Result<()> {
        let uri = KeyUri::new("my token", "a;b=c/d", vec![0xab, 0x00]);
        let text = uri.to_string();
        assert_eq!(
            text,
            "pkcs11:token=my%20token;object=a%3Bb%3Dc%2Fd;id=%AB%00"
        );
        assert_eq!(text.parse::<KeyUri>()?, uri);
        Ok(())
    }

    #[test]
    fn parses_type_and_id_only_references() -> Result<()> {
        let uri: KeyUri = "pkcs11:token=lemur;id=%01%02;type=private".parse()?;
        assert_eq!(uri.id(), Some(&[1u8, 2][..]));
        assert_eq!(uri.object(), None);
        assert_eq!(uri.object_type(), Some(ObjectType::Private));
        Ok(())
    }

    #[test]
    fn refuses_pins_and_redacts_them_from_the_error() {
        let Err(error) = "pkcs11:token=lemur;object=k?pin-value=123456".parse::<KeyUri>() else {
            panic!("a PIN in a key URI must be refused");
        };
        let message = error.to_string();
        assert!(message.contains("never carries a PIN"), "{message}");
        assert!(!message.contains("123456"), "{message}");
        assert!(
            "pkcs11:token=lemur;object=k?pin-source=file:/p"
                .parse::<KeyUri>()
                .is_err()
        );
    }

    #[test]
    fn refuses_incomplete_or_foreign_uris() {
        for bad in [
            "token=lemur;object=k",
            "pkcs11:object=k",
            "pkcs11:token=lemur",
            "pkcs11:token=lemur;object=k;flavour=x",
            "pkcs11:token=lemur;object=%zz",
            "pkcs11:token=lemur;object",
            "pkcs11:token=lemur;object=k;type=cert",
        ] {
            assert!(bad.parse::<KeyUri>().is_err(), "{bad} should be refused");
        }
    }
}
