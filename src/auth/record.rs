//! Sealed records: the byte stream of a connection after its handshake.
//!
//! ```text
//! u32 length | body | tag (16 bytes)
//! ```
//! `length` counts body and tag. The body is a piece of the plain frame stream (records and frames
//! need not line up; the receiver concatenates bodies and splits frames as before). Each direction
//! numbers its records 0, 1, 2, ... and never sends that number: both ends count, so a record
//! that is replayed, dropped or moved is checked against the wrong number and fails.
//! - MAC mode: the body is plain and `tag` is HMAC-SHA-256(key, number || length || body) cut to
//!   16 bytes (RFC 4868's truncation).
//! - Encrypt mode: the body is ChaCha20-Poly1305 ciphertext under nonce 0u32 || number, with
//!   `length` as associated data, and `tag` is the Poly1305 tag (RFC 8439).

use byteorder::{BigEndian, ByteOrder};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::DecodeError;

/// Bytes of the length prefix.
const LENGTH_BYTES: usize = 4;
/// Bytes of a record's tag.
pub const RECORD_TAG_BYTES: usize = 16;
/// The largest record body; a longer stream is cut into several records, so a receiver never
/// holds more than one record it cannot check yet.
pub const RECORD_BODY_BYTES_MAX: usize = 1 << 20;

/// The keyed primitive of one direction.
#[derive(Clone)]
enum Cipher {
    /// A keyed HMAC state, cloned per record so the key is not hashed again each time.
    Mac(Hmac<Sha256>),
    Aead(Box<ChaCha20Poly1305>),
}

impl Cipher {
    fn new(encrypt: bool, key: &[u8; 32]) -> Cipher {
        if encrypt {
            Cipher::Aead(Box::new(ChaCha20Poly1305::new(Key::from_slice(key))))
        } else {
            Cipher::Mac(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"))
        }
    }
}

fn mac_of(mac: &Hmac<Sha256>, number: u64, length: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = mac.clone();
    mac.update(&number.to_be_bytes());
    mac.update(length);
    mac.update(body);
    mac
}

fn nonce_of(number: u64) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&number.to_be_bytes());
    Nonce::from(nonce)
}

/// The sending half of a session.
#[derive(Clone)]
pub struct Sealer {
    cipher: Cipher,
    next: u64,
}

impl Sealer {
    /// A sealer with `key`, starting at record 0.
    pub fn new(encrypt: bool, key: &[u8; 32]) -> Sealer {
        Sealer { cipher: Cipher::new(encrypt, key), next: 0 }
    }

    /// Appends `plain` to `out` as one or more records.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        for piece in plain.chunks(RECORD_BODY_BYTES_MAX) {
            self.seal_one(piece, out);
        }
    }

    fn seal_one(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let number = self.next;
        // u64 record numbers do not wrap in any real connection's life (STYLE.md).
        self.next += 1;
        let length = ((piece.len() + RECORD_TAG_BYTES) as u32).to_be_bytes();
        out.extend_from_slice(&length);
        let body_at = out.len();
        out.extend_from_slice(piece);
        let tag: [u8; RECORD_TAG_BYTES] = match &self.cipher {
            Cipher::Mac(mac) => {
                let full = mac_of(mac, number, &length, piece).finalize().into_bytes();
                full[..RECORD_TAG_BYTES].try_into().expect("SHA-256 is longer than the tag")
            }
            Cipher::Aead(aead) => aead
                .encrypt_in_place_detached(&nonce_of(number), &length, &mut out[body_at..])
                .expect("a record body is far below ChaCha20's limit")
                .into(),
        };
        out.extend_from_slice(&tag);
    }
}

/// The receiving half of a session.
#[derive(Clone)]
pub struct Opener {
    cipher: Cipher,
    next: u64,
}

impl Opener {
    /// An opener with `key`, expecting record 0 first.
    pub fn new(encrypt: bool, key: &[u8; 32]) -> Opener {
        Opener { cipher: Cipher::new(encrypt, key), next: 0 }
    }

    /// If `buf` starts with a whole record, its length (prefix included); `Ok(None)` if more bytes
    /// are needed. An announced length that cannot be a record is an error at once, before its
    /// bytes are buffered.
    pub fn record_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        let Some(prefix) = buf.get(..LENGTH_BYTES) else { return Ok(None) };
        let length = BigEndian::read_u32(prefix) as usize;
        if length > RECORD_BODY_BYTES_MAX + RECORD_TAG_BYTES {
            let max = RECORD_BODY_BYTES_MAX + RECORD_TAG_BYTES;
            return Err(DecodeError::Invalid {
                field: "record.length",
                reason: format!("{length} bytes exceed the maximum of {max}"),
            });
        }
        if length <= RECORD_TAG_BYTES {
            return Err(DecodeError::Invalid {
                field: "record.length",
                reason: format!("{length} bytes hold no body behind the {RECORD_TAG_BYTES}-byte tag"),
            });
        }
        Ok((buf.len() >= LENGTH_BYTES + length).then_some(LENGTH_BYTES + length))
    }

    /// Checks one whole record (as `record_len` measured it) and returns its plain body, decrypted
    /// in place when encrypted. A record that fails is `DecodeError::Forged`; the connection must
    /// then be closed, since the counters no longer agree.
    pub fn open<'a>(&mut self, record: &'a mut [u8]) -> Result<&'a [u8], DecodeError> {
        let number = self.next;
        let forged = DecodeError::Forged { record: number };
        if record.len() <= LENGTH_BYTES + RECORD_TAG_BYTES {
            return Err(forged);
        }
        let (length, rest) = record.split_at_mut(LENGTH_BYTES);
        if BigEndian::read_u32(length) as usize != rest.len() {
            return Err(forged);
        }
        let (body, tag) = rest.split_at_mut(rest.len() - RECORD_TAG_BYTES);
        let valid = match &self.cipher {
            Cipher::Mac(mac) => mac_of(mac, number, length, body).verify_truncated_left(tag).is_ok(),
            Cipher::Aead(aead) => {
                aead.decrypt_in_place_detached(&nonce_of(number), length, body, Tag::from_slice(tag)).is_ok()
            }
        };
        if !valid {
            return Err(forged);
        }
        self.next += 1;
        Ok(body)
    }
}
