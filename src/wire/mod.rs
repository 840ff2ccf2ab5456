//! The wire format: frame values (`frame`) and their byte encoding (`codec`, with the frame
//! bodies in `body` and the bounds-checked primitives in `bytes`).
//!
//! Every frame is length-prefixed, versioned, tagged with its kind and checksummed; all integers
//! are big-endian so members of different architectures interoperate.

#[cfg(test)]
pub(crate) mod arbitrary;
mod body;
// The bounds-checked Reader is shared with the state machine codecs in `replication`.
pub(crate) mod bytes;
mod codec;
mod frame;
mod status;

pub use codec::*;
pub use frame::*;
