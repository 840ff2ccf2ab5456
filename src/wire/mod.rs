//! The wire format: frame values (`frame`) and their byte encoding (`codec`).
//!
//! Every frame is length-prefixed, versioned, tagged with its kind and checksummed; all integers
//! are big-endian so members of different architectures interoperate.

mod frame;

pub use frame::*;
