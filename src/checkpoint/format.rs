//! The bytes of the durable files (pure): a checkpoint file and the records of a command log.
//!
//! Checkpoint file, big-endian: `magic "HCKP" | format version u16 (=2) | seq u64 | snapshot |
//! snapshot length u64 | crc32 u32` over everything before it. The length and checksum trail the
//! snapshot so that the storage thread can stream it out in pieces without knowing its length
//! first. A log record: `length u32 | crc32 u32 | body`, body `seq u64 | origin u16 |
//! incarnation u64 | counter u64 | attempt u16 | payload`, the CRC over the body. A torn or
//! corrupt file fails its checksum, so it is never loaded (docs/PROTOCOL.md §7, durability).

use std::io::Read;

use byteorder::{BigEndian, ByteOrder};

use crate::error::DecodeError;
use crate::ids::{MsgId, NodeId, Seq};
use crate::replication::{Builder, Checkpoint};
use crate::wire::bytes::{invalid, Reader};
use crate::wire::Message;

const MAGIC: &[u8; 4] = b"HCKP";
const FORMAT_VERSION: u16 = 2;
/// Magic, version and seq.
pub(crate) const HEADER_BYTES: usize = 4 + 2 + 8;
/// Snapshot length and CRC.
pub(crate) const TRAILER_BYTES: usize = 8 + 4;
/// Bytes read from a checkpoint file at a time while it is decoded.
const READ_BYTES: usize = 1 << 20;
/// A record's length and CRC.
pub(crate) const RECORD_HEADER_BYTES: usize = 8;
/// The fixed part of a record body.
const RECORD_FIXED_BYTES: usize = 8 + 2 + 8 + 8 + 2;
/// The largest record body read back; larger lengths are damage, not data.
pub(crate) const RECORD_BYTES_MAX: usize = RECORD_FIXED_BYTES + (64 << 20);

/// A checkpoint file's first bytes.
pub(crate) fn checkpoint_header(seq: Seq) -> [u8; HEADER_BYTES] {
    let mut out = [0u8; HEADER_BYTES];
    out[0..4].copy_from_slice(MAGIC);
    BigEndian::write_u16(&mut out[4..6], FORMAT_VERSION);
    BigEndian::write_u64(&mut out[6..14], seq);
    out
}

/// A checkpoint file's last bytes, given the snapshot's length and the hasher that has seen
/// everything before the CRC (the length included: it is hashed here).
pub(crate) fn checkpoint_trailer(length: u64, mut crc: crc32fast::Hasher) -> [u8; TRAILER_BYTES] {
    let mut out = [0u8; TRAILER_BYTES];
    BigEndian::write_u64(&mut out[0..8], length);
    crc.update(&out[0..8]);
    BigEndian::write_u32(&mut out[8..12], crc.finalize());
    out
}

/// A whole checkpoint file's bytes (tests; the node streams them).
#[cfg(test)]
pub(crate) fn encode_checkpoint(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut out = checkpoint_header(checkpoint.seq).to_vec();
    let snapshot = crate::replication::encode_all(&*checkpoint.state);
    out.extend_from_slice(&snapshot);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out);
    out.extend_from_slice(&checkpoint_trailer(snapshot.len() as u64, crc));
    out
}

/// A checkpoint from a file of `file_bytes` bytes read from `file`, decoded with `builder` a
/// block at a time (never the whole file in memory); any damage is an error naming what is
/// wrong.
pub(crate) fn read_checkpoint(
    mut file: impl Read,
    file_bytes: u64,
    mut builder: Box<dyn Builder>,
) -> Result<Checkpoint, DecodeError> {
    let io = |e: std::io::Error| invalid("checkpoint file", e.to_string());
    if file_bytes < (HEADER_BYTES + TRAILER_BYTES) as u64 {
        return Err(DecodeError::Truncated { field: "checkpoint header" });
    }
    let mut header = [0u8; HEADER_BYTES];
    file.read_exact(&mut header).map_err(io)?;
    let mut r = Reader::new(&header);
    if r.take(4, "checkpoint magic")? != MAGIC {
        return Err(invalid("checkpoint magic", "not a checkpoint file"));
    }
    let version = r.u16("checkpoint version")?;
    if version != FORMAT_VERSION {
        return Err(invalid("checkpoint version", format!("{version}, this member reads {FORMAT_VERSION}")));
    }
    let seq = r.u64("checkpoint seq")?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    let length = file_bytes - (HEADER_BYTES + TRAILER_BYTES) as u64;
    let mut left = length;
    let mut block = vec![0u8; READ_BYTES];
    // The snapshot is decoded as it is read, but the state is handed out only if the checksum
    // over the whole file holds.
    let mut decoded = Ok(());
    while left > 0 {
        let n = left.min(READ_BYTES as u64) as usize;
        file.read_exact(&mut block[..n]).map_err(io)?;
        crc.update(&block[..n]);
        if decoded.is_ok() {
            decoded = builder.push(&block[..n]);
        }
        left -= n as u64;
    }
    let mut trailer = [0u8; TRAILER_BYTES];
    file.read_exact(&mut trailer).map_err(io)?;
    crc.update(&trailer[0..8]);
    if BigEndian::read_u32(&trailer[8..12]) != crc.finalize() {
        return Err(DecodeError::Checksum);
    }
    if BigEndian::read_u64(&trailer[0..8]) != length {
        return Err(invalid("checkpoint length", "does not match the file"));
    }
    decoded?;
    Ok(Checkpoint::new(seq, builder.finish()?))
}

/// Appends one log record for `message`.
pub(crate) fn put_record(out: &mut Vec<u8>, message: &Message) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
    out.extend_from_slice(&message.seq.to_be_bytes());
    out.extend_from_slice(&message.id.origin.0.to_be_bytes());
    out.extend_from_slice(&message.id.incarnation.to_be_bytes());
    out.extend_from_slice(&message.id.counter.to_be_bytes());
    out.extend_from_slice(&message.attempt.to_be_bytes());
    out.extend_from_slice(&message.payload);
    let body = start + RECORD_HEADER_BYTES;
    let crc = crc32fast::hash(&out[body..]);
    let length = (out.len() - body) as u32;
    BigEndian::write_u32(&mut out[start..start + 4], length);
    BigEndian::write_u32(&mut out[start + 4..body], crc);
}

/// The records of a log file up to the first damaged one, and whether the file ended cleanly.
pub(crate) fn read_records(file: &[u8]) -> (Vec<Message>, Option<String>) {
    let mut messages = Vec::new();
    let mut at = 0usize;
    while at < file.len() {
        match record_at(&file[at..]) {
            Ok((message, used)) => {
                messages.push(message);
                at += used;
            }
            Err(e) => return (messages, Some(format!("at byte {at}: {e}"))),
        }
    }
    (messages, None)
}

fn record_at(bytes: &[u8]) -> Result<(Message, usize), DecodeError> {
    let mut r = Reader::new(bytes);
    let length = r.u32("record length")? as usize;
    let crc = r.u32("record checksum")?;
    if !(RECORD_FIXED_BYTES..=RECORD_BYTES_MAX).contains(&length) {
        return Err(invalid("record length", format!("{length}")));
    }
    let body = r.take(length, "record body")?;
    if crc32fast::hash(body) != crc {
        return Err(DecodeError::Checksum);
    }
    let mut r = Reader::new(body);
    let seq = r.u64("record seq")?;
    let id = MsgId {
        origin: NodeId(r.u16("record origin")?),
        incarnation: r.u64("record incarnation")?,
        counter: r.u64("record counter")?,
    };
    let attempt = r.u16("record attempt")?;
    let payload = r.take(r.remaining(), "record payload")?;
    Ok((Message { seq, id, attempt, payload: payload.into() }, RECORD_HEADER_BYTES + length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, payload: &[u8]) -> Message {
        Message {
            seq,
            id: MsgId { origin: NodeId(3), incarnation: 9, counter: seq * 2 },
            attempt: 1,
            payload: payload.into(),
        }
    }

    fn read(file: &[u8]) -> Result<Checkpoint, DecodeError> {
        read_checkpoint(file, file.len() as u64, Box::new(crate::replication::DvmBuilder::new()))
    }

    #[test]
    fn a_checkpoint_file_round_trips_and_any_damage_is_refused() {
        let mut state = crate::replication::DvmState::default();
        crate::replication::StateMachine::apply(&mut state, 1, message(1, b"").id, b"raw");
        let checkpoint = Checkpoint::new(77, crate::replication::StateMachine::freeze(&state));
        let file = encode_checkpoint(&checkpoint);
        assert_eq!(read(&file), Ok(checkpoint));
        for len in 0..file.len() {
            assert!(read(&file[..len]).is_err(), "torn at {len}");
        }
        for at in 0..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0x10;
            assert!(read(&bad).is_err(), "byte {at} flipped");
        }
    }

    #[test]
    fn log_records_read_back_up_to_a_torn_or_corrupt_one() {
        let mut file = Vec::new();
        for seq in 1..=3 {
            put_record(&mut file, &message(seq, &vec![seq as u8; seq as usize * 10]));
        }
        let (messages, damage) = read_records(&file);
        assert_eq!(
            messages,
            (1..=3).map(|s| message(s, &vec![s as u8; s as usize * 10])).collect::<Vec<_>>()
        );
        assert_eq!(damage, None);
        let torn = &file[..file.len() - 5];
        let (messages, damage) = read_records(torn);
        assert_eq!(messages.len(), 2);
        assert!(damage.is_some());
        let mut corrupt = file.clone();
        let second = RECORD_HEADER_BYTES + RECORD_FIXED_BYTES + 10 + RECORD_HEADER_BYTES + 3;
        corrupt[second] ^= 1;
        let (messages, damage) = read_records(&corrupt);
        assert_eq!(messages.len(), 1);
        assert!(damage.expect("damage named").contains("checksum"));
    }
}
