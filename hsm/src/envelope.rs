//! The sealed-secret envelope: what the database stores instead of a secret.
//!
//! ```text
//! "LSE" | format (1) | label length (1) | KEK label | KEK version (u32 BE) | nonce (12) | ciphertext ‖ tag (16)
//! ```
//!
//! The header names the key-encryption key by family label and version, so after a rotation old
//! envelopes still open with the version they were sealed under. The whole header, followed by the
//! caller's context (e.g. `certificate:42:private_key`), is the AES-GCM additional data: changing
//! any header byte, or moving an envelope to another record, fails authentication.

use std::fmt;

const MAGIC: &[u8; 3] = b"LSE";
const FORMAT: u8 = 1;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
const MAX_LABEL_LEN: usize = 64;

/// Why bytes are not an envelope this version can open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Shorter than a header and a tag.
    Truncated,
    /// Does not start with the envelope magic: not a sealed secret.
    NotAnEnvelope,
    /// Written by a newer format this build does not know.
    UnsupportedFormat(u8),
    /// The KEK label is empty, too long or not printable ASCII.
    BadLabel,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Truncated => f.write_str("truncated envelope"),
            EnvelopeError::NotAnEnvelope => f.write_str("not a sealed envelope"),
            EnvelopeError::UnsupportedFormat(v) => {
                write!(f, "envelope format {v} is newer than this build (1)")
            }
            EnvelopeError::BadLabel => f.write_str("invalid key-encryption key label"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// The clear part of an envelope: which KEK sealed it and with which nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The KEK family label (the token object is `{label}-v{version}`).
    pub kek_label: String,
    /// The KEK version.
    pub kek_version: u32,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
}

/// A label a header can carry: printable ASCII, 1 to 64 characters.
pub fn valid_label(label: &str) -> bool {
    !label.is_empty() && label.len() <= MAX_LABEL_LEN && label.bytes().all(|b| b.is_ascii_graphic())
}

impl Header {
    /// The header bytes, which are also the start of the additional authenticated data.
    pub fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        if !valid_label(&self.kek_label) {
            return Err(EnvelopeError::BadLabel);
        }
        let mut out = Vec::with_capacity(4 + 1 + self.kek_label.len() + 4 + NONCE_LEN);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.push(self.kek_label.len() as u8);
        out.extend_from_slice(self.kek_label.as_bytes());
        out.extend_from_slice(&self.kek_version.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        Ok(out)
    }

    /// The additional authenticated data for this header and the caller's context.
    pub fn aad(&self, context: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let mut aad = self.encode()?;
        aad.extend_from_slice(context);
        Ok(aad)
    }
}

/// Splits an envelope into its header and `ciphertext ‖ tag`.
pub fn parse(envelope: &[u8]) -> Result<(Header, &[u8]), EnvelopeError> {
    let rest = envelope
        .strip_prefix(MAGIC.as_slice())
        .ok_or(EnvelopeError::NotAnEnvelope)?;
    let (&format, rest) = rest.split_first().ok_or(EnvelopeError::Truncated)?;
    if format != FORMAT {
        return Err(EnvelopeError::UnsupportedFormat(format));
    }
    let (&label_len, rest) = rest.split_first().ok_or(EnvelopeError::Truncated)?;
    let label_len = usize::from(label_len);
    if rest.len() < label_len + 4 + NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let (label, rest) = rest.split_at(label_len);
    let kek_label = std::str::from_utf8(label)
        .ok()
        .filter(|l| valid_label(l))
        .ok_or(EnvelopeError::BadLabel)?
        .to_owned();
    let (version, rest) = rest.split_at(4);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let mut kek_version = [0u8; 4];
    kek_version.copy_from_slice(version);
    let mut nonce_bytes = [0u8; NONCE_LEN];
    nonce_bytes.copy_from_slice(nonce);
    Ok((
        Header {
            kek_label,
            kek_version: u32::from_be_bytes(kek_version),
            nonce: nonce_bytes,
        },
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            kek_label: "lemur-kek".into(),
            kek_version: 3,
            nonce: [9; NONCE_LEN],
        }
    }

    #[test]
    fn parse_reads_back_what_encode_wrote() -> Result<(), EnvelopeError> {
        let mut envelope = header().encode()?;
        envelope.extend_from_slice(&[0xaa; 40]);
        let (parsed, body) = parse(&envelope)?;
        assert_eq!(parsed, header());
        assert_eq!(body, &[0xaa; 40][..]);
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_an_envelope_of_this_format() -> Result<(), EnvelopeError> {
        let mut envelope = header().encode()?;
        envelope.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(
            parse(b"-----BEGIN PRIVATE KEY-----"),
            Err(EnvelopeError::NotAnEnvelope)
        );
        assert_eq!(
            parse(&envelope[..envelope.len() - 1]),
            Err(EnvelopeError::Truncated)
        );
        let mut newer = envelope.clone();
        newer[3] = 2;
        assert_eq!(parse(&newer), Err(EnvelopeError::UnsupportedFormat(2)));
        let mut bad_label = envelope;
        bad_label[5] = b' ';
        assert_eq!(parse(&bad_label), Err(EnvelopeError::BadLabel));
        Ok(())
    }

    #[test]
    fn context_extends_the_authenticated_data() -> Result<(), EnvelopeError> {
        let aad = header().aad(b"certificate:42")?;
        assert!(aad.ends_with(b"certificate:42"));
        assert!(aad.starts_with(&header().encode()?));
        Ok(())
    }
}
