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

/// The splitmix64 finalizer: spreads a hash over all 64 bits, so that sums of many hashes (the
/// incremental state digest) do not cancel by accident.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
