//! The state machine of a raw broadcast group: a count and a hash chain over the history.
//!
//! Two members with equal digests committed the same messages in the same order. State transfer
//! moves the chain, not the messages, so a joiner's digest covers history it never saw.

use std::any::Any;
use std::sync::Arc;

use byteorder::{BigEndian, ByteOrder};

use super::{Builder, Cursor, Frozen, Snapshot, StateMachine};
use crate::error::DecodeError;
use crate::hash::{fnv1a, FNV_OFFSET};
use crate::ids::{MsgId, Seq};

/// A count of applied messages and a hash chain over them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestLog {
    /// Messages applied.
    pub count: u64,
    /// Hash chain over (seq, origin, payload) of every applied message.
    pub chain: u64,
}

impl Default for DigestLog {
    fn default() -> DigestLog {
        DigestLog { count: 0, chain: FNV_OFFSET }
    }
}

impl DigestLog {
    /// Extends a chain by one message; the delivery digest of a node uses the same rule.
    ///
    /// The payload enters as its CRC-32 (crc32fast, carry-less multiply): every member digests
    /// every delivery, and byte-wise FNV-1a over the payload was a quarter of a node's CPU time
    /// at 1 KiB messages. A 32-bit payload fingerprint is enough here: the digest detects
    /// diverging histories, it does not resist an adversary (the records' MAC does).
    pub fn extend(chain: u64, seq: Seq, id: MsgId, payload: &[u8]) -> u64 {
        let mut head = [0u8; 20];
        BigEndian::write_u64(&mut head[0..8], seq);
        BigEndian::write_u16(&mut head[8..10], id.origin.0);
        BigEndian::write_u64(&mut head[10..18], id.counter);
        BigEndian::write_u16(&mut head[18..20], payload.len().min(usize::from(u16::MAX)) as u16);
        fnv1a(fnv1a(chain, &head), &crc32fast::hash(payload).to_be_bytes())
    }
}

impl StateMachine for DigestLog {
    fn apply(&mut self, seq: Seq, id: MsgId, payload: &[u8]) -> Vec<u8> {
        self.count += 1;
        self.chain = DigestLog::extend(self.chain, seq, id, payload);
        Vec::new()
    }

    fn digest(&self) -> u64 {
        self.chain
    }

    fn freeze(&self) -> Frozen {
        Arc::new(self.clone())
    }

    fn thaw(&mut self, frozen: &Frozen) -> Result<(), DecodeError> {
        match frozen.as_any().downcast_ref::<DigestLog>() {
            Some(log) => {
                *self = log.clone();
                Ok(())
            }
            None => {
                Err(DecodeError::Invalid { field: "digest snapshot", reason: "another machine's".into() })
            }
        }
    }

    fn builder(&self) -> Box<dyn Builder> {
        Box::new(DigestLogBuilder(Vec::new()))
    }
}

impl Snapshot for DigestLog {
    fn state_digest(&self) -> u64 {
        self.chain
    }

    fn applied_count(&self) -> u64 {
        self.count
    }

    fn encoded_bytes(&self) -> u64 {
        16
    }

    fn encode_piece(&self, cursor: &mut Cursor, out: &mut Vec<u8>, _bytes_max: usize) -> bool {
        if cursor.stage == 0 {
            let mut bytes = [0u8; 16];
            BigEndian::write_u64(&mut bytes[0..8], self.count);
            BigEndian::write_u64(&mut bytes[8..16], self.chain);
            out.extend_from_slice(&bytes);
            cursor.stage = 1;
        }
        false
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Collects the 16 bytes of a digest log's snapshot.
struct DigestLogBuilder(Vec<u8>);

impl Builder for DigestLogBuilder {
    fn push(&mut self, piece: &[u8]) -> Result<(), DecodeError> {
        if self.0.len() + piece.len() > 16 {
            return Err(DecodeError::TrailingBytes { count: self.0.len() + piece.len() - 16 });
        }
        self.0.extend_from_slice(piece);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Frozen, DecodeError> {
        if self.0.len() != 16 {
            return Err(DecodeError::Invalid {
                field: "digest snapshot",
                reason: format!("{} bytes, expected 16", self.0.len()),
            });
        }
        Ok(Arc::new(DigestLog {
            count: BigEndian::read_u64(&self.0[0..8]),
            chain: BigEndian::read_u64(&self.0[8..16]),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn id(counter: u64) -> MsgId {
        MsgId { origin: NodeId(1), incarnation: 1, counter }
    }

    #[test]
    fn order_changes_the_digest_and_snapshots_round_trip() {
        let mut a = DigestLog::default();
        let mut b = DigestLog::default();
        a.apply(1, id(1), b"x");
        a.apply(2, id(2), b"y");
        b.apply(1, id(2), b"y");
        b.apply(2, id(1), b"x");
        assert_ne!(a.digest(), b.digest());
        let mut c = DigestLog::default();
        let bytes = crate::replication::encode_all(&a);
        c.thaw(&crate::replication::decode_all(c.builder(), &bytes).unwrap()).unwrap();
        assert_eq!(c, a);
        assert!(crate::replication::decode_all(c.builder(), &[1, 2, 3]).is_err());
    }

    #[test]
    fn fnv_matches_the_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }
}
