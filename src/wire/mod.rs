//! The wire format: frame values (`frame`) and their byte encoding (`codec`).
//!
//! Every frame is length-prefixed, versioned, tagged with its kind and checksummed; all integers
//! are big-endian so members of different architectures interoperate.

mod codec;
mod frame;

pub use codec::{decode, encode_peer, encode_reply, encode_request, frame_len, Frame, FRAME_BYTES_MAX};
pub use frame::*;
