//! The crate's error types: one enum per layer, lowercase `Display`, `From` into `Error`.

use std::fmt;
use std::io;

/// A bad configuration value, named by its flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The flag or setting, without dashes.
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// A problem with `setting`.
    pub fn new(setting: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError { setting, problem: problem.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad --{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Bytes that are not a valid frame. Names the field that failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside `field`.
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// `field` holds a value that is not allowed.
    Invalid {
        /// The field being read.
        field: &'static str,
        /// Why it is not allowed.
        reason: String,
    },
    /// The frame announces more than the maximum frame size.
    TooLarge {
        /// Announced length.
        length: u64,
        /// The maximum.
        max: u64,
    },
    /// The integrity check does not match: the frame was corrupted.
    Checksum,
    /// Bytes were left over after the frame's last field.
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The frame is of a protocol version this build does not speak (docs/PROTOCOL.md §2.3).
    Version {
        /// The version the frame carries.
        theirs: u8,
        /// The versions the receiver speaks.
        ours: crate::wire::Versions,
    },
    /// A sealed record fails its MAC or AEAD tag: forged, altered, replayed or reordered
    /// (`auth::Opener`).
    Forged {
        /// The record's number in its direction of the connection.
        record: u64,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { field } => write!(f, "frame ends inside {field}"),
            DecodeError::Invalid { field, reason } => write!(f, "bad {field}: {reason}"),
            DecodeError::TooLarge { length, max } => {
                write!(f, "frame of {length} bytes exceeds the maximum of {max}")
            }
            DecodeError::Checksum => write!(f, "frame checksum mismatch"),
            DecodeError::TrailingBytes { count } => write!(f, "{count} bytes after the frame's end"),
            DecodeError::Version { theirs, ours } => write!(
                f,
                "protocol version {theirs} is not supported: this member or client (harness {}) speaks \
                 protocol version{} {ours}",
                env!("CARGO_PKG_VERSION"),
                if ours.min == ours.max { "" } else { "s" }
            ),
            DecodeError::Forged { record } => {
                write!(f, "record {record} fails authentication: forged, altered, replayed or reordered")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Any error the library returns.
#[derive(Debug)]
pub enum Error {
    /// A bad configuration value.
    Config(ConfigError),
    /// A bad frame.
    Decode(DecodeError),
    /// An operating-system error, with what we were doing.
    Io {
        /// What failed, e.g. "bind 127.0.0.1:7101".
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The node has stopped.
    Stopped,
}

impl Error {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Decode(e) => e.fmt(f),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Stopped => write!(f, "the node has stopped"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Decode(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            Error::Stopped => None,
        }
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Error {
        Error::Decode(e)
    }
}
