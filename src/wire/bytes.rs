//! Primitive big-endian reads and writes for the codec: a bounds-checked `Reader` whose every read
//! names the field it reads, and the matching `put_*` writers.
//!
//! Follows rustls `src/msgs/codec.rs` (`Reader`): untrusted bytes can make a read fail, never
//! panic, and no count read from the input is trusted before the bytes behind it are there.

use byteorder::{BigEndian, ByteOrder};

use crate::error::DecodeError;

/// A cursor over untrusted bytes. Every read either returns the value or
/// `DecodeError::Truncated` naming the field, and leaves the cursor where it was on failure.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    cursor: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, cursor: 0 }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.cursor
    }

    /// The next `len` bytes of `field`.
    pub(crate) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if len > self.remaining() {
            return Err(DecodeError::Truncated { field });
        }
        let bytes = &self.buf[self.cursor..self.cursor + len];
        self.cursor += len;
        Ok(bytes)
    }

    /// One byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// A big-endian u16.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(BigEndian::read_u16(self.take(2, field)?))
    }

    /// A big-endian u32.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(BigEndian::read_u32(self.take(4, field)?))
    }

    /// A big-endian u64.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(BigEndian::read_u64(self.take(8, field)?))
    }

    /// A bool as one byte, 0 or 1. Any other value is rejected so that every value has exactly
    /// one encoding and a corrupted flag cannot pass as `true`.
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(invalid(field, format!("a bool must be 0 or 1, not {other}"))),
        }
    }

    /// The presence byte of an `Option`, 0 (none) or 1 (some).
    pub(crate) fn option_tag(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(invalid(field, format!("an option tag must be 0 or 1, not {other}"))),
        }
    }

    /// A u32 element count, checked against the bytes left: every element takes at least
    /// `item_bytes_min` bytes, so a count that cannot fit is rejected before anything is
    /// allocated for it.
    pub(crate) fn count(&mut self, item_bytes_min: usize, field: &'static str) -> Result<usize, DecodeError> {
        debug_assert!(item_bytes_min > 0);
        let count = self.u32(field)? as usize;
        if count > self.remaining() / item_bytes_min {
            return Err(DecodeError::Truncated { field });
        }
        Ok(count)
    }

    /// A u32-length-prefixed byte string.
    pub(crate) fn bytes_u32(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)? as usize;
        self.take(len, field)
    }

    /// A u16-length-prefixed UTF-8 string.
    pub(crate) fn str_u16(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = usize::from(self.u16(field)?);
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map_err(|e| invalid(field, format!("not UTF-8: {e}")))
    }
}

/// An `Invalid` error for `field`.
pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid { field, reason: reason.into() }
}

/// Appends one byte.
pub(crate) fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

/// Appends a big-endian u16.
pub(crate) fn put_u16(out: &mut Vec<u8>, value: u16) {
    let mut bytes = [0; 2];
    BigEndian::write_u16(&mut bytes, value);
    out.extend_from_slice(&bytes);
}

/// Appends a big-endian u32.
pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    let mut bytes = [0; 4];
    BigEndian::write_u32(&mut bytes, value);
    out.extend_from_slice(&bytes);
}

/// Appends a big-endian u64.
pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    let mut bytes = [0; 8];
    BigEndian::write_u64(&mut bytes, value);
    out.extend_from_slice(&bytes);
}

/// Appends a bool as 0 or 1.
pub(crate) fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

/// Appends a u32 element count.
///
/// # Panics
/// If `count` cannot fit in one frame: producers bound their batches, so this is a bug.
pub(crate) fn put_count(out: &mut Vec<u8>, count: usize) {
    assert!(count <= super::codec::FRAME_BYTES_MAX, "{count} elements cannot fit in one frame");
    put_u32(out, count as u32);
}

/// Appends a u32-length-prefixed byte string.
///
/// # Panics
/// If `bytes` cannot fit in one frame (see `put_count`).
pub(crate) fn put_bytes_u32(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Appends a u16-length-prefixed UTF-8 string. Only human-readable detail travels as a string,
/// so one longer than 65535 bytes is cut at the last character boundary that fits rather than
/// making encoding fallible.
pub(crate) fn put_str_u16(out: &mut Vec<u8>, text: &str) {
    let mut len = text.len().min(usize::from(u16::MAX));
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    put_u16(out, len as u16);
    out.extend_from_slice(&text.as_bytes()[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reads_big_endian_and_names_the_truncated_field() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        assert_eq!(r.u16("a"), Ok(0x0102));
        assert_eq!(r.u32("b"), Ok(0x0304_0506));
        assert_eq!(r.u16("c"), Err(DecodeError::Truncated { field: "c" }));
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.u8("d"), Ok(7));
        assert_eq!(r.u8("e"), Err(DecodeError::Truncated { field: "e" }));
    }

    #[test]
    fn bool_and_option_tag_accept_only_zero_and_one() {
        let mut r = Reader::new(&[0, 1, 2]);
        assert_eq!(r.bool("flag"), Ok(false));
        assert_eq!(r.bool("flag"), Ok(true));
        assert!(matches!(r.bool("flag"), Err(DecodeError::Invalid { field: "flag", .. })));
        let mut r = Reader::new(&[0, 1, 255]);
        assert_eq!(r.option_tag("opt"), Ok(false));
        assert_eq!(r.option_tag("opt"), Ok(true));
        assert!(matches!(r.option_tag("opt"), Err(DecodeError::Invalid { field: "opt", .. })));
    }

    #[test]
    fn count_larger_than_the_remaining_bytes_is_rejected_before_allocation() {
        // Announces 2^32 - 1 elements of at least 8 bytes behind four bytes.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(r.count(8, "items"), Err(DecodeError::Truncated { field: "items" }));
        let mut r = Reader::new(&[0, 0, 0, 2, 1, 2]);
        assert_eq!(r.count(1, "items"), Ok(2));
    }

    #[test]
    fn strings_must_be_utf8_and_are_cut_at_a_char_boundary() {
        let mut r = Reader::new(&[0, 2, 0xc3, 0x28]);
        assert!(matches!(r.str_u16("text"), Err(DecodeError::Invalid { field: "text", .. })));

        let long = "é".repeat(40_000); // 80,000 bytes of two-byte characters
        let mut out = Vec::new();
        put_str_u16(&mut out, &long);
        let mut r = Reader::new(&out);
        let text = r.str_u16("text").expect("the cut string decodes");
        assert_eq!(text.len(), 65_534);
        assert!(long.starts_with(text));
        assert_eq!(r.remaining(), 0);
    }
}
