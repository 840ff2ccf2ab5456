//! The hashes the project computes itself, in one place: FNV-1a for digests, trace hashes and the
//! cluster name (fixed and portable, not for security; the cluster key's MACs use HMAC-SHA-256 in
//! `auth`, and frames and files carry CRC-32 from `crc32fast`).

/// FNV-1a, 64-bit: a fixed, portable hash for digests (not for security).
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The FNV-1a 64-bit offset basis: the hash of no bytes.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
