//! The delivery log: one text line per agreed delivery, written by the protocol thread.
//!
//! It is how an operator (and `harness demo`, and the fault tests) compares what members
//! delivered across crashes: members of one primary history write identical lines in identical
//! order (docs/PROTOCOL.md §5.4, virtual synchrony). A line is
//! `view seq origin incarnation counter payload_fnv64hex`, the payload hashed with FNV-1a so the
//! log never holds application bytes (STYLE.md, Logging).
//!
//! The file is replaced at every process start: a restarted member begins from a state
//! snapshot, so the lines of its previous process would not continue the same sequence. Lines
//! go through a `BufWriter` owned by the protocol thread and are flushed every `FLUSH_INTERVAL`
//! or `FLUSH_LINES`, and at a clean stop; a kill -9 loses at most the unflushed tail.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::core::Delivery;
use crate::error::{ConfigError, Error};
use crate::hash::fnv1a;
use crate::ids::{MsgId, NodeId, Seq, ViewId};

/// Longest time a written line may stay in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Most lines buffered before a flush.
pub const FLUSH_LINES: u64 = 1000;
/// The hash a delivery log line gives a payload.
pub fn payload_hash(payload: &[u8]) -> u64 {
    fnv1a(crate::hash::FNV_OFFSET, payload)
}

/// One line of a delivery log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogLine {
    /// The view the message was delivered in.
    pub view: ViewId,
    /// Its place in the history.
    pub seq: Seq,
    /// Who submitted it, in which incarnation, and its counter there.
    pub id: MsgId,
    /// `payload_hash` of its payload.
    pub payload_hash: u64,
}

impl LogLine {
    /// The line for `delivery`.
    pub fn of(delivery: &Delivery) -> LogLine {
        LogLine {
            view: delivery.view,
            seq: delivery.message.seq,
            id: delivery.message.id,
            payload_hash: payload_hash(&delivery.message.payload),
        }
    }

    /// Parses one line as `Display` writes it; the error names the bad field.
    pub fn parse(text: &str) -> Result<LogLine, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 6 {
            return Err(format!("expected 6 fields, found {}", fields.len()));
        }
        let number = |index: usize, name: &str| {
            fields[index].parse::<u64>().map_err(|_| format!("{name} {:?} is not a number", fields[index]))
        };
        let origin = fields[2].parse::<u16>().map_err(|_| format!("origin {:?} is not an id", fields[2]))?;
        let payload_hash = u64::from_str_radix(fields[5], 16)
            .map_err(|_| format!("payload hash {:?} is not hexadecimal", fields[5]))?;
        Ok(LogLine {
            view: ViewId(number(0, "view")?),
            seq: number(1, "seq")?,
            id: MsgId {
                origin: NodeId(origin),
                incarnation: number(3, "incarnation")?,
                counter: number(4, "counter")?,
            },
            payload_hash,
        })
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {:016x}",
            self.view.0, self.seq, self.id.origin.0, self.id.incarnation, self.id.counter, self.payload_hash
        )
    }
}

/// Reads a whole delivery log; the error names the file and the line.
pub fn read_log(path: &Path) -> Result<Vec<LogLine>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| LogLine::parse(line).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1)))
        .collect()
}

/// The writer the protocol thread owns.
pub(super) struct DeliveryLog {
    path: PathBuf,
    out: BufWriter<File>,
    /// Lines written since the last flush.
    unflushed: u64,
    /// When the oldest unflushed line was written.
    oldest: Option<Instant>,
    /// Set after a write error, which is logged once; the node keeps running without the log.
    failed: bool,
}

impl DeliveryLog {
    /// Creates (or empties) the file; an error names the `delivery-log` setting and the path.
    pub(super) fn create(path: &Path) -> Result<DeliveryLog, Error> {
        let file = File::create(path).map_err(|e| {
            ConfigError::new("delivery-log", format!("cannot create {}: {e}", path.display()))
        })?;
        Ok(DeliveryLog {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            unflushed: 0,
            oldest: None,
            failed: false,
        })
    }

    /// Appends the line of one delivery, flushing when `FLUSH_LINES` are buffered.
    pub(super) fn append(&mut self, delivery: &Delivery, now: Instant) {
        if self.failed {
            return;
        }
        if let Err(e) = writeln!(self.out, "{}", LogLine::of(delivery)) {
            self.fail(&e);
            return;
        }
        self.unflushed += 1;
        self.oldest.get_or_insert(now);
        if self.unflushed >= FLUSH_LINES {
            self.flush();
        }
    }

    /// When the buffered lines must be flushed, if any are buffered.
    pub(super) fn flush_deadline(&self) -> Option<Instant> {
        self.oldest.map(|oldest| oldest + FLUSH_INTERVAL)
    }

    /// Flushes if the oldest buffered line has waited `FLUSH_INTERVAL`.
    pub(super) fn on_tick(&mut self, now: Instant) {
        if self.flush_deadline().is_some_and(|deadline| now >= deadline) {
            self.flush();
        }
    }

    /// Flushes, closes the file and opens its path again for appending: after a rotation renamed
    /// it, the lines from now on go to a new file (one `open`, bounded like any step). A failure
    /// is logged and stops the log, as a write error does.
    pub(super) fn reopen(&mut self) {
        self.flush();
        match std::fs::OpenOptions::new().create(true).append(true).open(&self.path) {
            Ok(file) => {
                self.out = BufWriter::new(file);
                self.failed = false;
                log::info!("delivery log {} reopened", self.path.display());
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Writes everything buffered to the file.
    pub(super) fn flush(&mut self) {
        self.unflushed = 0;
        self.oldest = None;
        if !self.failed {
            if let Err(e) = self.out.flush() {
                self.fail(&e);
            }
        }
    }

    fn fail(&mut self, e: &std::io::Error) {
        // The operator must act (a full disk, a removed mount); ordering goes on without the log.
        log::error!("delivery log {}: {e}; no further lines are written", self.path.display());
        self.failed = true;
        self.oldest = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;

    fn delivery(seq: Seq, payload: &[u8]) -> Delivery {
        let id = MsgId { origin: NodeId(3), incarnation: 1_700_000_000_123_456, counter: seq + 10 };
        Delivery { view: ViewId(2), message: Message { seq, id, attempt: 0, payload: payload.into() } }
    }

    #[test]
    fn lines_round_trip_and_name_the_bad_field() {
        let line = LogLine::of(&delivery(7, b"hello"));
        let text = line.to_string();
        assert_eq!(text, format!("2 7 3 1700000000123456 17 {:016x}", payload_hash(b"hello")));
        assert_eq!(LogLine::parse(&text), Ok(line));
        assert!(LogLine::parse("2 7 3").unwrap_err().contains("6 fields"));
        assert!(LogLine::parse("x 7 3 1 1 00").unwrap_err().contains("view"));
        assert!(LogLine::parse("2 7 70000 1 1 00").unwrap_err().contains("origin"));
        assert!(LogLine::parse("2 7 3 1 1 zz").unwrap_err().contains("payload hash"));
    }

    #[test]
    fn lines_reach_the_file_after_the_interval_or_a_flush() {
        let dir = std::env::temp_dir().join(format!("harness-delivery-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("deliveries.log");
        let mut log = DeliveryLog::create(&path).unwrap();
        let start = Instant::now();
        log.append(&delivery(1, b"a"), start);
        log.append(&delivery(2, b"b"), start);
        assert_eq!(log.flush_deadline(), Some(start + FLUSH_INTERVAL));
        log.on_tick(start + FLUSH_INTERVAL / 2);
        assert_eq!(read_log(&path).unwrap().len(), 0, "still buffered");
        log.on_tick(start + FLUSH_INTERVAL);
        assert_eq!(
            read_log(&path).unwrap(),
            vec![LogLine::of(&delivery(1, b"a")), LogLine::of(&delivery(2, b"b"))]
        );
        assert_eq!(log.flush_deadline(), None);
        for seq in 3..3 + FLUSH_LINES {
            log.append(&delivery(seq, b"c"), start);
        }
        assert_eq!(read_log(&path).unwrap().len() as u64, 2 + FLUSH_LINES, "flushed by count");
        // A restart replaces the file.
        drop(log);
        let _ = DeliveryLog::create(&path).unwrap();
        assert_eq!(read_log(&path).unwrap().len(), 0);
        let bad = DeliveryLog::create(&dir.join("missing").join("x.log")).err().unwrap();
        assert!(bad.to_string().contains("delivery-log"), "{bad}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
