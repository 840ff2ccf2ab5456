//! The bytes of the durable files (pure): a checkpoint file and the records of a command log.
//!
//! Checkpoint file, big-endian: `magic "HCKP" | format version u16 (=1) | seq u64 | length u64 |
//! snapshot | crc32 u32` over everything before it. A log record: `length u32 | crc32 u32 |
//! body`, body `seq u64 | origin u16 | incarnation u64 | counter u64 | attempt u16 | payload`,
//! the CRC over the body. A torn or corrupt file fails its checksum, so it is never loaded
//! (issue 5, durability).

use byteorder::{BigEndian, ByteOrder};

use crate::error::DecodeError;
use crate::ids::{MsgId, NodeId};
use crate::replication::Checkpoint;
use crate::wire::bytes::{invalid, Reader};
use crate::wire::Message;

const MAGIC: &[u8; 4] = b"HCKP";
const FORMAT_VERSION: u16 = 1;
/// Magic, version, seq and length.
const HEADER_BYTES: usize = 4 + 2 + 8 + 8;
/// A record's length and CRC.
pub(crate) const RECORD_HEADER_BYTES: usize = 8;
/// The fixed part of a record body.
const RECORD_FIXED_BYTES: usize = 8 + 2 + 8 + 8 + 2;
/// The largest record body read back; larger lengths are damage, not data.
pub(crate) const RECORD_BYTES_MAX: usize = RECORD_FIXED_BYTES + (64 << 20);

/// A checkpoint file's bytes.
pub(crate) fn encode_checkpoint(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + checkpoint.bytes.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&checkpoint.seq.to_be_bytes());
    out.extend_from_slice(&(checkpoint.bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(&checkpoint.bytes);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A checkpoint from a file's bytes; any damage is an error naming what is wrong.
pub(crate) fn decode_checkpoint(file: &[u8]) -> Result<Checkpoint, DecodeError> {
    let mut r = Reader::new(file);
    if r.take(4, "checkpoint magic")? != MAGIC {
        return Err(invalid("checkpoint magic", "not a checkpoint file"));
    }
    let version = r.u16("checkpoint version")?;
    if version != FORMAT_VERSION {
        return Err(invalid("checkpoint version", format!("{version}, this member reads {FORMAT_VERSION}")));
    }
    let seq = r.u64("checkpoint seq")?;
    let length = r.u64("checkpoint length")?;
    if (r.remaining() as u64).checked_sub(4) != Some(length) {
        return Err(DecodeError::Truncated { field: "checkpoint snapshot" });
    }
    let bytes = r.take(length as usize, "checkpoint snapshot")?.to_vec();
    let crc = r.u32("checkpoint checksum")?;
    if crc != crc32fast::hash(&file[..file.len() - 4]) {
        return Err(DecodeError::Checksum);
    }
    Ok(Checkpoint { seq, bytes })
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

    #[test]
    fn a_checkpoint_file_round_trips_and_any_damage_is_refused() {
        let checkpoint = Checkpoint { seq: 77, bytes: b"snapshot bytes".to_vec() };
        let file = encode_checkpoint(&checkpoint);
        assert_eq!(decode_checkpoint(&file), Ok(checkpoint));
        for len in 0..file.len() {
            assert!(decode_checkpoint(&file[..len]).is_err(), "torn at {len}");
        }
        for at in 0..file.len() {
            let mut bad = file.clone();
            bad[at] ^= 0x10;
            assert!(decode_checkpoint(&bad).is_err(), "byte {at} flipped");
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
