//! Authentication with the cluster key: who may link or connect, and sealed records after that.
//!
//! Every connection opens with a challenge-response handshake over fresh nonces from both sides
//! (docs/PROTOCOL.md §2): the dialer sends `Hello` with its nonce, the acceptor answers
//! `Challenge` with its own, the dialer proves it holds the key (`Proof`), and the acceptor
//! proves it too (`HelloAck`). Both proofs are HMAC-SHA-256 under the cluster key, already bound
//! to the cluster name (`ClusterKey::for_cluster`), over a transcript of the mode, the cluster
//! hash, both members (node ids and incarnations) and both nonces, with a different label per
//! side so a proof can never be reflected back. Fresh nonces make every transcript new, so a
//! recorded handshake proves nothing later.
//!
//! From the transcript each side derives one key per direction; every record after the handshake
//! carries a MAC (or, with `--encrypt`, is sealed with ChaCha20-Poly1305) over a per-direction
//! counter (`record`), so a frame cannot be forged, altered, reordered or replayed, neither on its
//! own connection nor on a later one, whose keys differ. Without a key a node runs open: the
//! handshake still runs (so both ends agree on the mode and refuse a mismatch) but proves nothing
//! and records are not sealed.
//!
//! The primitives come from RustCrypto crates; nothing here is hand-written cryptography.

mod key;
mod record;
mod stream;

pub use key::{ClusterKey, KEY_BYTES};
pub use record::{Opener, Sealer, RECORD_BODY_BYTES_MAX, RECORD_TAG_BYTES};
pub use stream::Inbound;

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::Member;
use crate::wire::{AuthMode, Nonce, Proof};

/// The 64-bit identity of a cluster name, carried in `Hello` so that a node can name a wrong
/// cluster in its log; the key binds the name itself (`ClusterKey::for_cluster`).
pub fn cluster_hash(name: &str) -> u64 {
    crate::hash::fnv1a(crate::hash::FNV_OFFSET, name.as_bytes())
}

/// Bytes of a transcript (see `Transcript::bytes`).
const TRANSCRIPT_BYTES: usize = 1 + 8 + 2 * (2 + 8) + 2 * 32;

/// Which end of a connection this is: the one that dialled, or the one that accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Opened the connection (a peer dialling, or a client).
    Dialer,
    /// Accepted it (a node's listener).
    Acceptor,
}

/// Everything one handshake binds its proofs and keys to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The mode both ends run in.
    pub mode: AuthMode,
    /// The cluster hash from `Hello`.
    pub cluster: u64,
    /// The dialling member (node id 0 for a client).
    pub dialer: Member,
    /// The accepting member.
    pub acceptor: Member,
    /// The dialer's fresh nonce.
    pub dialer_nonce: Nonce,
    /// The acceptor's fresh nonce.
    pub acceptor_nonce: Nonce,
}

impl Transcript {
    /// The fixed-length encoding every proof and key is computed over; fixed length, so no two
    /// transcripts share an encoding.
    pub fn bytes(&self) -> [u8; TRANSCRIPT_BYTES] {
        let mut out = [0u8; TRANSCRIPT_BYTES];
        out[0] = self.mode as u8;
        out[1..9].copy_from_slice(&self.cluster.to_be_bytes());
        out[9..11].copy_from_slice(&self.dialer.id.0.to_be_bytes());
        out[11..19].copy_from_slice(&self.dialer.incarnation.to_be_bytes());
        out[19..21].copy_from_slice(&self.acceptor.id.0.to_be_bytes());
        out[21..29].copy_from_slice(&self.acceptor.incarnation.to_be_bytes());
        out[29..61].copy_from_slice(&self.dialer_nonce);
        out[61..93].copy_from_slice(&self.acceptor_nonce);
        out
    }
}

/// A node's or client's credentials: the cluster key bound to the cluster name, and whether
/// records are encrypted.
#[derive(Clone)]
pub struct Auth {
    key: [u8; KEY_BYTES],
    cluster: u64,
    encrypt: bool,
    fingerprint: String,
}

impl Auth {
    /// Credentials for cluster `cluster_name`; `encrypt` seals records with an AEAD.
    pub fn new(key: &ClusterKey, cluster_name: &str, encrypt: bool) -> Auth {
        Auth {
            key: key.for_cluster(cluster_name),
            cluster: cluster_hash(cluster_name),
            encrypt,
            fingerprint: key.fingerprint(),
        }
    }

    /// The hash of the cluster name, as `Hello` carries it.
    pub fn cluster(&self) -> u64 {
        self.cluster
    }

    /// The mode these credentials run in.
    pub fn mode(&self) -> AuthMode {
        if self.encrypt {
            AuthMode::Encrypt
        } else {
            AuthMode::Mac
        }
    }

    /// The key's public fingerprint, for the start-up log line.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    fn prf(&self, label: &[u8], transcript: &Transcript) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(label);
        mac.update(&transcript.bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// The proof that `side` holds the key, over `transcript`.
    pub fn proof(&self, side: Side, transcript: &Transcript) -> Proof {
        self.prf(proof_label(side), transcript)
    }

    /// Whether `proof` is `side`'s proof over `transcript`; compared in constant time.
    pub fn verify(&self, side: Side, transcript: &Transcript, proof: &Proof) -> bool {
        let mut mac = self.mac();
        mac.update(proof_label(side));
        mac.update(&transcript.bytes());
        mac.verify_slice(proof).is_ok()
    }

    /// The record sealer and opener of `side` for the session of `transcript`.
    pub fn session(&self, side: Side, transcript: &Transcript) -> (Sealer, Opener) {
        let to_acceptor = self.prf(b"harness v1 dialer to acceptor\0", transcript);
        let to_dialer = self.prf(b"harness v1 acceptor to dialer\0", transcript);
        let (send, receive) = match side {
            Side::Dialer => (to_acceptor, to_dialer),
            Side::Acceptor => (to_dialer, to_acceptor),
        };
        (Sealer::new(self.encrypt, &send), Opener::new(self.encrypt, &receive))
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Auth {{ key: {}, mode: {:?} }}", self.fingerprint, self.mode())
    }
}

fn proof_label(side: Side) -> &'static [u8] {
    match side {
        Side::Dialer => b"harness v1 dialer proof\0",
        Side::Acceptor => b"harness v1 acceptor proof\0",
    }
}

/// The mode of optional credentials: none means open.
pub fn mode_of(auth: Option<&Auth>) -> AuthMode {
    auth.map_or(AuthMode::Open, Auth::mode)
}

/// A fresh handshake nonce from the operating system's random generator.
pub fn fresh_nonce() -> Result<Nonce, String> {
    let mut nonce = [0u8; 32];
    getrandom::getrandom(&mut nonce).map_err(|e| format!("the system random generator failed: {e}"))?;
    Ok(nonce)
}

#[cfg(test)]
mod tests;
