//! The receiving side of a connection's byte stream: plain frames during the handshake, sealed
//! records after it. Shared by the node's connections and the client.
//!
//! Bytes from the socket go into `read`. Before a session starts, frames are split from `read`
//! directly; after it, whole records are opened from `read` into `plain`, one at a time and only
//! while `plain` lacks a whole frame, so the buffers never hold more than one record and one frame
//! beyond what was read in one call (rustls keeps the same bound for TLS records).

use super::record::Opener;
use crate::error::DecodeError;
use crate::wire::{self, Frame, Versions};

/// A connection's input buffers and, once the handshake is done, its opener.
pub struct Inbound {
    /// Bytes as read from the socket.
    read: Vec<u8>,
    /// Start of the unparsed bytes in `read`.
    read_at: usize,
    /// Opened record bodies not yet split into frames (only with `opener`).
    plain: Vec<u8>,
    /// Start of the unparsed bytes in `plain`.
    plain_at: usize,
    opener: Option<Opener>,
    /// The protocol versions decoded; a frame of another is refused (docs/PROTOCOL.md §2.3).
    versions: Versions,
}

impl Default for Inbound {
    fn default() -> Inbound {
        Inbound::speaking(Versions::ALL)
    }
}

impl Inbound {
    /// Empty buffers that decode frames of `versions`.
    pub fn speaking(versions: Versions) -> Inbound {
        Inbound { read: Vec::new(), read_at: 0, plain: Vec::new(), plain_at: 0, opener: None, versions }
    }

    /// Appends bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.read_at > 0 && self.read_at == self.read.len() {
            self.read.clear();
            self.read_at = 0;
        }
        self.read.extend_from_slice(bytes);
    }

    /// Opens everything after the frame just taken as records; called right after the
    /// handshake's last frame.
    pub fn start_session(&mut self, opener: Opener) {
        self.opener = Some(opener);
    }

    /// Gives back spare capacity beyond `spare_max` once the buffers have drained
    /// (`budget::trim_capacity`); called by the owner, which knows how much its traffic needs.
    pub fn trim(&mut self, spare_max: usize) {
        if self.read_at > 0 && self.read_at == self.read.len() {
            self.read.clear();
            self.read_at = 0;
        }
        if self.plain_at > 0 && self.plain_at == self.plain.len() {
            self.plain.clear();
            self.plain_at = 0;
        }
        crate::budget::trim_capacity(&mut self.read, spare_max);
        crate::budget::trim_capacity(&mut self.plain, spare_max);
    }

    /// Whether part of a frame (or record) is buffered, waiting for the rest.
    pub fn has_partial(&self) -> bool {
        self.read_at < self.read.len() || self.plain_at < self.plain.len()
    }

    /// The unparsed plain bytes: the start of the next frame.
    pub fn unparsed(&self) -> &[u8] {
        match self.opener {
            Some(_) => &self.plain[self.plain_at..],
            None => &self.read[self.read_at..],
        }
    }

    /// The next complete frame of at most `frame_bytes_max` bytes, if any.
    pub fn next_frame(&mut self, frame_bytes_max: usize) -> Result<Option<Frame>, DecodeError> {
        Ok(self.next_versioned_frame(frame_bytes_max)?.map(|(_, frame)| frame))
    }

    /// `next_frame` with the protocol version the frame was encoded in.
    pub fn next_versioned_frame(
        &mut self,
        frame_bytes_max: usize,
    ) -> Result<Option<(u8, Frame)>, DecodeError> {
        // Bounded: every pass opens one record from the finite buffer or returns.
        loop {
            let (buf, at) = match self.opener {
                Some(_) => (&self.plain, &mut self.plain_at),
                None => (&self.read, &mut self.read_at),
            };
            let unparsed = &buf[*at..];
            if let Some(len) = wire::frame_len_within(unparsed, frame_bytes_max)? {
                let frame = wire::decode_within(&unparsed[..len], self.versions);
                *at += len;
                return frame.map(Some);
            }
            let Some(opener) = &mut self.opener else {
                compact(&mut self.read, &mut self.read_at);
                return Ok(None);
            };
            compact(&mut self.plain, &mut self.plain_at);
            let Some(len) = Opener::record_len(&self.read[self.read_at..])? else {
                compact(&mut self.read, &mut self.read_at);
                return Ok(None);
            };
            let record = &mut self.read[self.read_at..self.read_at + len];
            let body = opener.open(record)?;
            self.plain.extend_from_slice(body);
            self.read_at += len;
        }
    }
}

/// Drops parsed bytes once they are most of the buffer, so it does not grow without bound.
fn compact(buf: &mut Vec<u8>, at: &mut usize) {
    if *at > 0 && *at * 2 >= buf.len() {
        buf.drain(..*at);
        *at = 0;
    }
}
