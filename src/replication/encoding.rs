//! Big-endian writers for the DVM state machine's commands, outcomes and snapshots.
//!
//! Every writer goes through a `Sink`, so the one canonical encoding of the state feeds both the
//! snapshot (bytes in a `Vec`) and the digest (an FNV-1a hash, without building the bytes): two
//! members with equal digests hold states with equal canonical encodings (guarantee 6). Reads go
//! through the bounds-checked `wire::bytes::Reader`, so decoding never panics.

use byteorder::{BigEndian, ByteOrder};

use crate::hash::{fnv1a, FNV_OFFSET};

/// Where encoded bytes go.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A sink that hashes what it is given with FNV-1a instead of keeping it.
#[derive(Debug)]
pub(crate) struct FnvSink {
    /// The hash of everything put so far.
    pub(crate) hash: u64,
}

impl FnvSink {
    /// A hasher that has seen nothing.
    pub(crate) fn new() -> FnvSink {
        FnvSink { hash: FNV_OFFSET }
    }
}

impl Sink for FnvSink {
    fn put(&mut self, bytes: &[u8]) {
        self.hash = fnv1a(self.hash, bytes);
    }
}

/// Appends one byte.
pub(crate) fn put_u8(sink: &mut impl Sink, value: u8) {
    sink.put(&[value]);
}

/// Appends a big-endian u16.
pub(crate) fn put_u16(sink: &mut impl Sink, value: u16) {
    let mut bytes = [0; 2];
    BigEndian::write_u16(&mut bytes, value);
    sink.put(&bytes);
}

/// Appends a big-endian u32.
pub(crate) fn put_u32(sink: &mut impl Sink, value: u32) {
    let mut bytes = [0; 4];
    BigEndian::write_u32(&mut bytes, value);
    sink.put(&bytes);
}

/// Appends a big-endian u64.
pub(crate) fn put_u64(sink: &mut impl Sink, value: u64) {
    let mut bytes = [0; 8];
    BigEndian::write_u64(&mut bytes, value);
    sink.put(&bytes);
}

/// Appends a bool as 0 or 1.
pub(crate) fn put_bool(sink: &mut impl Sink, value: bool) {
    put_u8(sink, u8::from(value));
}

/// Appends a u32 element count.
///
/// # Panics
/// If `count` exceeds `u32::MAX`: commands are bounded far below that by their limits, and a state
/// with four billion keys, members or sessions cannot be held in memory, so this is a bug.
pub(crate) fn put_count(sink: &mut impl Sink, count: usize) {
    let count = u32::try_from(count).expect("a DVM collection never exceeds u32::MAX elements");
    put_u32(sink, count);
}

/// Appends a u32-length-prefixed byte string. Lengths are u32 everywhere so that encoding never
/// fails or cuts: limits are the decoder's business (`Command::validate`).
pub(crate) fn put_bytes(sink: &mut impl Sink, bytes: &[u8]) {
    put_count(sink, bytes.len());
    sink.put(bytes);
}

/// Appends a u32-length-prefixed UTF-8 string.
pub(crate) fn put_str(sink: &mut impl Sink, text: &str) {
    put_bytes(sink, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashing_sink_equals_hashing_the_encoded_bytes() {
        let mut bytes = Vec::new();
        let mut hasher = FnvSink::new();
        for sink in [&mut bytes as &mut dyn Sample, &mut hasher] {
            sink.write_sample();
        }
        assert_eq!(bytes, [7, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(hasher.hash, fnv1a(FNV_OFFSET, &bytes));
    }

    /// Writes the same sample through any sink, so both sinks see identical calls.
    trait Sample {
        fn write_sample(&mut self);
    }

    impl<S: Sink> Sample for S {
        fn write_sample(&mut self) {
            put_u8(self, 7);
            put_u16(self, 1);
            put_u32(self, 2);
            put_u64(self, 3);
            put_bool(self, true);
            put_str(self, "hi");
        }
    }
}
