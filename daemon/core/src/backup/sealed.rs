//! The encryption of a backup: a stream sealed under a key derived from a passphrase.
//!
//! A sealed stream is a header, then chunks. The header names the format and the Argon2id costs
//! and salt the key was derived with; every chunk is up to 64 KiB of plaintext sealed with
//! AES-256-GCM, its nonce the chunk's number and a flag on the last one, the header as associated
//! data (the STREAM construction, as age and Tink use it). So a chunk cannot be changed, moved,
//! dropped or taken from another archive, and a stream cut short is told from a whole one: the
//! last chunk, always shorter than a full one (empty when the plaintext fills whole chunks), is
//! sealed as last. Each archive has its own random salt, hence its own key, so a nonce never
//! repeats under one key.

use crate::error::{Error, Result};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// The first bytes of every backup.
const MAGIC: &[u8; 16] = b"lemur-hsm backup";
/// The format this build writes and reads.
const FORMAT: u8 = 1;
/// Plaintext bytes per chunk.
const CHUNK: usize = 64 * 1024;
/// AES-GCM's tag, after each chunk's ciphertext.
const TAG: usize = 16;
const SALT: usize = 16;
const HEADER: usize = MAGIC.len() + 1 + 3 * 4 + SALT;

/// The shortest passphrase accepted for a new backup. The archive holds the HSM PINs and the
/// token: its passphrase guards every key in it, against an attacker with all the time they want.
pub const MIN_PASSPHRASE: usize = 12;

/// Argon2id's costs (RFC 9106's second recommended option, 64 MiB and three passes: about a
/// second on a small appliance, once per backup or restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Costs {
    memory_kib: u32,
    passes: u32,
    lanes: u32,
}

const NEW_COSTS: Costs = Costs {
    memory_kib: 64 * 1024,
    passes: 3,
    lanes: 4,
};

/// The most an archive may ask of the machine opening it: a header is read before anything in
/// it is authenticated, so it must not make the restore run out of memory (an appliance may
/// have 512 MiB) or time.
const MAX_COSTS: Costs = Costs {
    memory_kib: 256 * 1024,
    passes: 16,
    lanes: 16,
};

/// A passphrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<String>;

/// The header: format, costs, salt; the associated data of every chunk.
fn header(costs: Costs, salt: &[u8; SALT]) -> [u8; HEADER] {
    let mut bytes = [0u8; HEADER];
    let mut at = 0;
    for part in [
        &MAGIC[..],
        &[FORMAT],
        &costs.memory_kib.to_be_bytes(),
        &costs.passes.to_be_bytes(),
        &costs.lanes.to_be_bytes(),
        salt,
    ] {
        bytes[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    bytes
}

/// The header's costs, checked against [`MAX_COSTS`], and salt.
fn parse_header(bytes: &[u8; HEADER]) -> Result<(Costs, [u8; SALT])> {
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(damaged("it is not a Lemur-HSM backup"));
    }
    let format = bytes[MAGIC.len()];
    if format != FORMAT {
        return Err(damaged(format!(
            "it is a backup of format {format}; this release reads format {FORMAT}: restore it with the release that wrote it"
        )));
    }
    let number = |index: usize| {
        let at = MAGIC.len() + 1 + 4 * index;
        u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    };
    let costs = Costs {
        memory_kib: number(0),
        passes: number(1),
        lanes: number(2),
    };
    if costs.memory_kib > MAX_COSTS.memory_kib
        || costs.passes > MAX_COSTS.passes
        || costs.lanes > MAX_COSTS.lanes
    {
        return Err(damaged(format!(
            "its key derivation asks for {costs:?}, beyond the {MAX_COSTS:?} a restore allows"
        )));
    }
    let mut salt = [0u8; SALT];
    salt.copy_from_slice(&bytes[HEADER - SALT..]);
    Ok((costs, salt))
}

/// The AES-256 key for `passphrase` under the header's costs and salt.
fn derive(passphrase: &str, costs: Costs, salt: &[u8; SALT]) -> Result<LessSafeKey> {
    let params = Params::new(costs.memory_kib, costs.passes, costs.lanes, Some(32))
        .map_err(|e| damaged(format!("its key derivation costs are unusable: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
        .map_err(|e| damaged(format!("deriving its key: {e}")))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key[..])
        .map_err(|_| damaged("deriving its key: AES-256-GCM refused it"))?;
    Ok(LessSafeKey::new(unbound))
}

/// The nonce of chunk `counter`: its number, big-endian, and 1 in the last byte for the last.
fn nonce(counter: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; NONCE_LEN];
    bytes[..8].copy_from_slice(&counter.to_be_bytes());
    bytes[NONCE_LEN - 1] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

fn damaged(reason: impl Into<String>) -> Error {
    Error::invalid("backup", reason)
}

/// Writes a sealed stream: [`Write`] the plaintext, then [`Sealer::finish`], without which
/// the stream reads as cut short.
pub struct Sealer<W: Write> {
    out: W,
    key: LessSafeKey,
    header: [u8; HEADER],
    /// The chunk being filled; room for its tag, so that sealing does not reallocate (and leave
    /// a copy of plaintext behind).
    chunk: Zeroizing<Vec<u8>>,
    counter: u64,
}

impl<W: Write> Sealer<W> {
    /// Starts a stream on `out` sealed under `passphrase`, which must be at least
    /// [`MIN_PASSPHRASE`] characters long.
    pub fn new(mut out: W, passphrase: &str) -> Result<Self> {
        if passphrase.chars().count() < MIN_PASSPHRASE {
            return Err(Error::invalid(
                "passphrase",
                format!(
                    "is shorter than {MIN_PASSPHRASE} characters: it guards the HSM PINs and every key in the token"
                ),
            ));
        }
        let mut salt = [0u8; SALT];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| Error::Ca("the OS random number generator failed".into()))?;
        let header = header(NEW_COSTS, &salt);
        let key = derive(passphrase, NEW_COSTS, &salt)?;
        out.write_all(&header)
            .map_err(Error::io("writing the backup"))?;
        Ok(Self {
            out,
            key,
            header,
            chunk: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
            counter: 0,
        })
    }

    fn seal(&mut self, last: bool) -> std::io::Result<()> {
        let nonce = nonce(self.counter, last);
        self.counter += 1;
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(&self.header[..]), &mut *self.chunk)
            .map_err(|_| std::io::Error::other("AES-256-GCM failed to seal a chunk"))?;
        self.out.write_all(&self.chunk)?;
        self.chunk.clear();
        Ok(())
    }

    /// Seals the last chunk and flushes: the stream is whole.
    pub fn finish(mut self) -> Result<W> {
        self.seal(true)
            .and_then(|()| self.out.flush())
            .map_err(Error::io("writing the backup"))?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let taken = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..taken]);
        if self.chunk.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads a sealed stream's plaintext, failing on any chunk that does not open and on a stream
/// that ends before its last chunk.
pub struct Opener<R: Read> {
    input: R,
    key: LessSafeKey,
    header: [u8; HEADER],
    chunk: Zeroizing<Vec<u8>>,
    /// Where reading the opened chunk has got to.
    at: usize,
    counter: u64,
    finished: bool,
}

impl<R: Read> Opener<R> {
    /// Opens the stream on `input` with `passphrase`. The first chunk is opened at once, so a
    /// wrong passphrase is told before anything is read.
    pub fn new(mut input: R, passphrase: &str) -> Result<Self> {
        let mut header = [0u8; HEADER];
        input.read_exact(&mut header).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                damaged("it is not a Lemur-HSM backup (too short)")
            }
            _ => Error::io("reading the backup")(e),
        })?;
        let (costs, salt) = parse_header(&header)?;
        let key = derive(passphrase, costs, &salt)?;
        let mut opener = Self {
            input,
            key,
            header,
            chunk: Zeroizing::new(vec![0u8; CHUNK + TAG]),
            at: 0,
            counter: 0,
            finished: false,
        };
        opener.next_chunk().map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Error::invalid(
                "passphrase",
                "does not open this backup (or the backup's start is damaged)",
            ),
            _ => Error::io("reading the backup")(e),
        })?;
        Ok(opener)
    }

    /// Reads and opens the next chunk into `chunk`.
    fn next_chunk(&mut self) -> std::io::Result<()> {
        self.chunk.resize(CHUNK + TAG, 0);
        let mut filled = 0;
        while filled < self.chunk.len() {
            match self.input.read(&mut self.chunk[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        let last = filled < CHUNK + TAG;
        if filled < TAG {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the backup ends early: it is incomplete (a copy cut short?)",
            ));
        }
        let nonce = nonce(self.counter, last);
        let opened = self
            .key
            .open_in_place(
                nonce,
                Aad::from(&self.header[..]),
                &mut self.chunk[..filled],
            )
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the backup is damaged or was changed (part {} of it does not open)",
                        self.counter + 1
                    ),
                )
            })?
            .len();
        self.chunk.truncate(opened);
        self.at = 0;
        self.counter += 1;
        self.finished = last;
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.finished {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let count = buf.len().min(self.chunk.len() - self.at);
        buf[..count].copy_from_slice(&self.chunk[self.at..self.at + count]);
        self.at += count;
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSPHRASE: &str = "correct horse battery staple";

    fn seal(plain: &[u8]) -> Vec<u8> {
        let mut sealer = Sealer::new(Vec::new(), PASSPHRASE).unwrap();
        sealer.write_all(plain).unwrap();
        sealer.finish().unwrap()
    }

    fn open(sealed: &[u8], passphrase: &str) -> Result<Vec<u8>> {
        let mut plain = Vec::new();
        Opener::new(sealed, passphrase)?
            .read_to_end(&mut plain)
            .map_err(Error::io("reading"))?;
        Ok(plain)
    }

    #[test]
    fn streams_of_every_length_open_as_written() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = seal(&plain);
            assert_eq!(sealed.len(), HEADER + len + (len / CHUNK + 1) * TAG);
            assert_eq!(open(&sealed, PASSPHRASE).unwrap(), plain, "{len} bytes");
        }
    }

    #[test]
    fn a_wrong_passphrase_is_named() {
        let error = open(&seal(b"secret"), "a wrong passphrase").unwrap_err();
        assert!(error.to_string().contains("passphrase"), "{error}");
    }

    #[test]
    fn a_changed_cut_or_extended_stream_does_not_open() {
        let plain = vec![7u8; 2 * CHUNK + 10];
        let sealed = seal(&plain);
        let mut changed = sealed.clone();
        changed[HEADER + CHUNK + 100] ^= 1;
        let error = open(&changed, PASSPHRASE).unwrap_err().to_string();
        assert!(error.contains("part 2"), "{error}");
        // Cut at a chunk's end: every chunk opens, but none was the last.
        let cut = &sealed[..HEADER + 2 * (CHUNK + TAG)];
        let error = open(cut, PASSPHRASE).unwrap_err().to_string();
        assert!(error.contains("ends early"), "{error}");
        let mut extended = sealed.clone();
        extended.extend_from_slice(&[0; 40]);
        assert!(open(&extended, PASSPHRASE).is_err());
        // The header is bound to every chunk: costs changed within limits do not open.
        let mut header_changed = sealed;
        header_changed[MAGIC.len() + 1 + 7] ^= 1;
        assert!(open(&header_changed, PASSPHRASE).is_err());
    }

    #[test]
    fn short_passphrases_foreign_files_and_greedy_headers_are_refused() {
        assert!(Sealer::new(Vec::new(), "short").is_err());
        let error = open(
            b"not a backup at all, but long enough to hold a header",
            PASSPHRASE,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("not a Lemur-HSM backup"), "{error}");
        let greedy = header(
            Costs {
                memory_kib: u32::MAX,
                passes: 1,
                lanes: 1,
            },
            &[0; SALT],
        );
        let error = open(&greedy, PASSPHRASE).unwrap_err().to_string();
        assert!(error.contains("beyond"), "{error}");
    }
}
