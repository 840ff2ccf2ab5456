//! The result of one DVM command, as returned to its submitter and remembered for retries.
//!
//! `apply` returns an `Outcome`'s bytes; a client (docs/PROTOCOL.md §8.2) decodes them with `Outcome::decode`.
//! The same command at the same point of the order yields the same bytes at every member, which is
//! what lets a retried request be answered from the exactly-once table (guarantee 6).
//!
//! Encoding, big-endian: `tag u8 | body`; Ok (1) and GuardFailed (2) carry
//! `revision u64 | deleted u64 | reads`; NotFound (3) carries `revision u64`; BadCommand (4) a
//! u32-length-prefixed reason. A read is `1 | present u8 | entry` (get) or
//! `2 | more u8 | count u32 | entries` (range); an entry is
//! `key | value | create_revision u64 | mod_revision u64 | version u64`.

use super::command::parse::{bytes, text};
use super::encoding::{put_bool, put_bytes, put_count, put_str, put_u64, put_u8, Sink};
use crate::error::DecodeError;
use crate::wire::bytes::{invalid, Reader};

/// The fewest bytes an entry takes: two empty byte strings and three u64s.
pub(crate) const ENTRY_BYTES_MIN: usize = 4 + 4 + 3 * 8;

/// One key as read: its value and its revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// Its value.
    pub value: Vec<u8>,
    /// The revision that created it (since it was last missing).
    pub create_revision: u64,
    /// The revision that last wrote it.
    pub mod_revision: u64,
    /// Puts since it was created, from 1.
    pub version: u64,
}

/// What one read operation of a transaction saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// A single key, `None` if missing.
    Get(Option<Entry>),
    /// The keys under a prefix, in key order.
    Range {
        /// Up to the limit, or fewer if the range byte budget ran out.
        entries: Vec<Entry>,
        /// Whether keys under the prefix were left out.
        more: bool,
    },
}

/// The result of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Applied (for a transaction: every guard held and the `then` branch ran).
    Ok {
        /// The state's revision after the command.
        revision: u64,
        /// Keys removed.
        deleted: u64,
        /// One per get or range op, in op order.
        reads: Vec<Read>,
    },
    /// A transaction guard failed; the `otherwise` branch ran with this outcome.
    GuardFailed {
        /// The state's revision after the command.
        revision: u64,
        /// Keys removed by the `otherwise` branch.
        deleted: u64,
        /// One per get or range op of the `otherwise` branch.
        reads: Vec<Read>,
    },
    /// The key, member or plug-in the command names does not exist; nothing changed.
    NotFound {
        /// The state's (unchanged) revision.
        revision: u64,
    },
    /// The payload is not a valid command; nothing changed.
    BadCommand {
        /// Why, naming the field.
        reason: String,
    },
}

impl Outcome {
    /// The outcome's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Outcome::Ok { revision, deleted, reads } | Outcome::GuardFailed { revision, deleted, reads } => {
                put_u8(&mut out, if matches!(self, Outcome::Ok { .. }) { 1 } else { 2 });
                put_u64(&mut out, *revision);
                put_u64(&mut out, *deleted);
                put_count(&mut out, reads.len());
                for read in reads {
                    put_read(&mut out, read);
                }
            }
            Outcome::NotFound { revision } => {
                put_u8(&mut out, 3);
                put_u64(&mut out, *revision);
            }
            Outcome::BadCommand { reason } => {
                put_u8(&mut out, 4);
                put_str(&mut out, reason);
            }
        }
        out
    }

    /// Decodes an outcome; the error names the field that failed.
    pub fn decode(bytes: &[u8]) -> Result<Outcome, DecodeError> {
        let mut r = Reader::new(bytes);
        let outcome = match r.u8("outcome kind")? {
            tag @ (1 | 2) => {
                let revision = r.u64("revision")?;
                let deleted = r.u64("deleted")?;
                // The smallest read is a get of a missing key: two bytes.
                let count = r.count(2, "reads")?;
                let reads = (0..count).map(|_| read(&mut r)).collect::<Result<_, _>>()?;
                if tag == 1 {
                    Outcome::Ok { revision, deleted, reads }
                } else {
                    Outcome::GuardFailed { revision, deleted, reads }
                }
            }
            3 => Outcome::NotFound { revision: r.u64("revision")? },
            4 => Outcome::BadCommand { reason: text(&mut r, "reason")? },
            other => return Err(invalid("outcome kind", format!("unknown kind {other}"))),
        };
        if r.remaining() > 0 {
            return Err(DecodeError::TrailingBytes { count: r.remaining() });
        }
        Ok(outcome)
    }
}

fn put_read(out: &mut impl Sink, read: &Read) {
    match read {
        Read::Get(entry) => {
            put_u8(out, 1);
            put_bool(out, entry.is_some());
            if let Some(entry) = entry {
                put_entry(out, entry);
            }
        }
        Read::Range { entries, more } => {
            put_u8(out, 2);
            put_bool(out, *more);
            put_count(out, entries.len());
            for entry in entries {
                put_entry(out, entry);
            }
        }
    }
}

fn read(r: &mut Reader<'_>) -> Result<Read, DecodeError> {
    match r.u8("read kind")? {
        1 => Ok(Read::Get(if r.option_tag("read present")? { Some(entry(r)?) } else { None })),
        2 => {
            let more = r.bool("read more")?;
            let count = r.count(ENTRY_BYTES_MIN, "read entries")?;
            let entries = (0..count).map(|_| entry(r)).collect::<Result<_, _>>()?;
            Ok(Read::Range { entries, more })
        }
        other => Err(invalid("read kind", format!("unknown kind {other}"))),
    }
}

/// Appends an entry; the snapshot stores keys the same way.
pub(crate) fn put_entry(out: &mut impl Sink, entry: &Entry) {
    put_bytes(out, &entry.key);
    put_bytes(out, &entry.value);
    put_u64(out, entry.create_revision);
    put_u64(out, entry.mod_revision);
    put_u64(out, entry.version);
}

/// Reads an entry written by `put_entry`.
pub(crate) fn entry(r: &mut Reader<'_>) -> Result<Entry, DecodeError> {
    Ok(Entry {
        key: bytes(r, "entry key")?,
        value: bytes(r, "entry value")?,
        create_revision: r.u64("create revision")?,
        mod_revision: r.u64("mod revision")?,
        version: r.u64("version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_of(key: &str, revision: u64) -> Entry {
        Entry {
            key: key.as_bytes().to_vec(),
            value: b"v".to_vec(),
            create_revision: 1,
            mod_revision: revision,
            version: revision,
        }
    }

    fn samples() -> Vec<Outcome> {
        let reads = vec![
            Read::Get(None),
            Read::Get(Some(entry_of("a", 2))),
            Read::Range { entries: vec![entry_of("a", 2), entry_of("ab", 3)], more: true },
        ];
        vec![
            Outcome::Ok { revision: 4, deleted: 0, reads: reads.clone() },
            Outcome::GuardFailed { revision: 4, deleted: 2, reads },
            Outcome::NotFound { revision: 9 },
            Outcome::BadCommand { reason: "bad key: empty".into() },
        ]
    }

    #[test]
    fn outcomes_round_trip_and_truncations_are_refused() {
        for outcome in samples() {
            let bytes = outcome.encode();
            assert_eq!(Outcome::decode(&bytes), Ok(outcome.clone()));
            for len in 0..bytes.len() {
                assert!(
                    matches!(Outcome::decode(&bytes[..len]), Err(DecodeError::Truncated { .. })),
                    "{outcome:?} cut at {len}"
                );
            }
        }
    }

    #[test]
    fn not_found_has_golden_bytes() {
        assert_eq!(Outcome::NotFound { revision: 258 }.encode(), [3, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert!(matches!(Outcome::decode(&[9]), Err(DecodeError::Invalid { field: "outcome kind", .. })));
    }
}
