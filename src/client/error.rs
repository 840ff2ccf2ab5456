//! `ClientError`: everything that can go wrong talking to a node, as one enum.
//!
//! The client is the outside world's view of a node, so every failure is a value naming what
//! was being done and with which address; none of them panics.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::error::DecodeError;
use crate::wire::ErrorCode;

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The TCP connection could not be opened.
    Connect {
        /// The node's address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    Io {
        /// The node's address.
        addr: SocketAddr,
        /// What was being done: "send", "receive", "configure".
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// No answer within the time allowed.
    Timeout {
        /// The node's address.
        addr: SocketAddr,
        /// What was awaited.
        waiting_for: &'static str,
        /// How long we waited.
        waited: Duration,
    },
    /// The node closed the connection.
    Closed {
        /// The node's address.
        addr: SocketAddr,
    },
    /// The node sent bytes that are not a valid frame.
    Decode {
        /// The node's address.
        addr: SocketAddr,
        /// What is wrong with them.
        source: DecodeError,
    },
    /// The node sent a valid frame that is not an answer to anything we asked.
    Unexpected {
        /// The node's address.
        addr: SocketAddr,
        /// What arrived.
        what: String,
    },
    /// The node refused the request.
    Rejected {
        /// The request refused.
        request: u64,
        /// The node's reason.
        code: ErrorCode,
        /// The node's explanation.
        message: String,
    },
    /// The cluster key's handshake failed: a wrong key, cluster name or mode on one side.
    Handshake {
        /// The node's address.
        addr: SocketAddr,
        /// What went wrong.
        problem: String,
    },
    /// The payload would not fit in one frame.
    PayloadTooLarge {
        /// Its size.
        bytes: usize,
        /// The most a client may send.
        max: usize,
    },
}

impl ClientError {
    /// Whether trying the same request again later may succeed (the node was busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Rejected { code: ErrorCode::Busy, .. })
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { addr, source } => write!(f, "connect to {addr}: {source}"),
            ClientError::Io { addr, action, source } => write!(f, "{action} to {addr}: {source}"),
            ClientError::Timeout { addr, waiting_for, waited } => {
                write!(f, "no {waiting_for} from {addr} within {waited:?}")
            }
            ClientError::Closed { addr } => write!(f, "{addr} closed the connection"),
            ClientError::Decode { addr, source } => write!(f, "bad frame from {addr}: {source}"),
            ClientError::Unexpected { addr, what } => write!(f, "unexpected {what} from {addr}"),
            ClientError::Rejected { request, code, message } => {
                write!(f, "request {request} refused ({}): {message}", code_name(*code))
            }
            ClientError::Handshake { addr, problem } => write!(f, "handshake with {addr}: {problem}"),
            ClientError::PayloadTooLarge { bytes, max } => {
                write!(f, "payload of {bytes} bytes exceeds the maximum of {max}")
            }
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Connect { source, .. } | ClientError::Io { source, .. } => Some(source),
            ClientError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The error code's name as an operator reads it.
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Busy => "busy",
        ErrorCode::NoQuorum => "no quorum",
        ErrorCode::BadRequest => "bad request",
        ErrorCode::ShuttingDown => "shutting down",
        ErrorCode::OutcomeUnknown => "outcome unknown",
        ErrorCode::Compacted => "compacted",
        ErrorCode::NotEnoughReplicas => "not enough replicas",
        ErrorCode::Refused => "refused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_lowercase_line_naming_the_address() {
        let addr: SocketAddr = "127.0.0.1:7101".parse().unwrap();
        let errors = [
            ClientError::Closed { addr },
            ClientError::Timeout { addr, waiting_for: "reply", waited: Duration::from_secs(1) },
            ClientError::Connect { addr, source: io::Error::from(io::ErrorKind::ConnectionRefused) },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.contains("127.0.0.1:7101"), "{text}");
            assert!(!text.contains('\n') && !text.ends_with('.'), "{text}");
        }
        let busy = ClientError::Rejected { request: 3, code: ErrorCode::Busy, message: "queue full".into() };
        assert!(busy.is_retryable());
        assert_eq!(busy.to_string(), "request 3 refused (busy): queue full");
    }
}
