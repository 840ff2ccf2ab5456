//! The file store of `--data-dir`: the only file I/O of durable state (docs/PROTOCOL.md §7).
//!
//! Checkpoints are streamed from a frozen state to a temporary file in pieces (the storage
//! thread interleaves them with log syncs), synced, renamed into place and the directory
//! synced, so a crash leaves either the old file or the new one, never half of one.
//! Committed commands go to log segments, one per checkpoint interval, each record checksummed;
//! `sync` makes them durable before the driver acknowledges them. Loading takes the newest
//! checkpoint that verifies and the contiguous logged commands after it; a torn or corrupt file
//! is named in a warning and skipped, never loaded. The two newest checkpoints are kept, and the
//! segments the older of them still needs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::format::{checkpoint_header, checkpoint_trailer, put_record, read_checkpoint, read_records};
use crate::error::Error;
use crate::ids::Seq;
use crate::replication::{Builder, Checkpoint, Cursor};
use crate::wire::Message;

/// Checkpoint files kept: the newest, and one to fall back to if it is damaged later.
const CHECKPOINTS_KEPT: usize = 2;
/// Log bytes buffered before they are written out even without a sync.
const LOG_BUFFER_BYTES: usize = 1 << 20;
/// Checkpoint bytes written between two syncs of the temporary file, so that its final sync
/// (and a log sync behind it) does not wait for a whole state's dirty pages.
const CHECKPOINT_SYNC_BYTES: u64 = 64 << 20;

/// What was found in the data directory.
#[derive(Debug)]
pub struct Loaded {
    /// The newest checkpoint that verified (the empty state at 0 if none did).
    pub checkpoint: Option<Checkpoint>,
    /// The logged commands after it, contiguous.
    pub after: Vec<Message>,
}

/// What writing one checkpoint cost, for the log and the measurements.
#[derive(Clone, Copy, Debug)]
pub struct CheckpointWrite {
    /// File size.
    pub bytes: u64,
    /// Encode, write, sync and rename.
    pub took: Duration,
}

/// A checkpoint being streamed to its temporary file.
pub struct CheckpointFile {
    checkpoint: Checkpoint,
    replaces: bool,
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    cursor: Cursor,
    crc: crc32fast::Hasher,
    /// Snapshot bytes written so far, and since the last sync.
    written: u64,
    unsynced: u64,
    piece: Vec<u8>,
    started: Instant,
}

impl CheckpointFile {
    /// The seq of the checkpoint being written.
    pub fn seq(&self) -> Seq {
        self.checkpoint.seq
    }
}

/// The durable files of one member.
pub struct Store {
    dir: PathBuf,
    /// The open segment: its file, its first seq, and records not yet written to it.
    segment: Option<(File, Seq)>,
    buffer: Vec<u8>,
    /// Records written or buffered since the last sync.
    dirty: bool,
}

fn checkpoint_name(seq: Seq) -> String {
    format!("checkpoint-{seq:020}.hck")
}

fn segment_name(first: Seq) -> String {
    format!("log-{first:020}.hlog")
}

/// The seq in a file name `PREFIX<20 digits>SUFFIX`.
fn seq_of(name: &str, prefix: &str, suffix: &str) -> Option<Seq> {
    name.strip_prefix(prefix)?.strip_suffix(suffix).filter(|d| d.len() == 20)?.parse().ok()
}

impl Store {
    /// Opens (creating) `dir` and loads what it holds; checkpoints are decoded with builders
    /// from `builder`.
    pub fn open(dir: &Path, builder: &dyn Fn() -> Box<dyn Builder>) -> Result<(Store, Loaded), Error> {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create --data-dir {}", dir.display()), e))?;
        let mut store = Store { dir: dir.to_path_buf(), segment: None, buffer: Vec::new(), dirty: false };
        let loaded = store.load(builder)?;
        Ok((store, loaded))
    }

    fn io(&self, what: &str, path: &Path, e: io::Error) -> Error {
        Error::io(format!("{what} {}", path.display()), e)
    }

    /// Files named `PREFIX<seq>SUFFIX` in the directory, by seq.
    fn list(&self, prefix: &str, suffix: &str) -> Result<Vec<(Seq, PathBuf)>, Error> {
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("read --data-dir", &self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("read --data-dir", &self.dir, e))?;
            if let Some(seq) = entry.file_name().to_str().and_then(|n| seq_of(n, prefix, suffix)) {
                found.push((seq, entry.path()));
            }
        }
        found.sort();
        Ok(found)
    }

    fn load(&mut self, builder: &dyn Fn() -> Box<dyn Builder>) -> Result<Loaded, Error> {
        let mut checkpoint = None;
        for (_, path) in self.list("checkpoint-", ".hck")?.into_iter().rev() {
            let file = File::open(&path).map_err(|e| self.io("open", &path, e))?;
            let length = file.metadata().map_err(|e| self.io("read", &path, e))?.len();
            match read_checkpoint(BufReader::new(file), length, builder()) {
                Ok(c) => {
                    checkpoint = Some(c);
                    break;
                }
                Err(e) => {
                    // Kept for the operator under another name, so no later load trips on it.
                    let aside = path.with_extension("hck.damaged");
                    log::warn!(
                        "store: refusing damaged checkpoint {}: {e}; moved to {}",
                        path.display(),
                        aside.display()
                    );
                    fs::rename(&path, &aside).map_err(|e| self.io("rename", &path, e))?;
                }
            }
        }
        let mut upto = checkpoint.as_ref().map_or(0, |c| c.seq);
        let mut after = Vec::new();
        let segments = self.list("log-", ".hlog")?;
        for (first, path) in &segments {
            if *first > upto + 1 {
                break;
            }
            let bytes = fs::read(path).map_err(|e| self.io("read", path, e))?;
            let (messages, damage) = read_records(&bytes);
            if let Some(damage) = damage {
                log::warn!(
                    "store: log {} is damaged {damage}; the records after it are skipped",
                    path.display()
                );
            }
            for message in messages {
                if message.seq == upto + 1 {
                    upto = message.seq;
                    after.push(message);
                }
            }
        }
        // Segments past a gap, or from a history this member no longer follows, are never loaded.
        for (first, path) in segments.into_iter().filter(|(first, _)| *first > upto) {
            log::warn!(
                "store: removing log {} (starts at {first}, the history here ends at {upto})",
                path.display()
            );
            fs::remove_file(&path).map_err(|e| self.io("remove", &path, e))?;
        }
        Ok(Loaded { checkpoint, after })
    }

    /// Buffers one committed command; `sync` makes it durable.
    pub fn append(&mut self, message: &Message) -> Result<(), Error> {
        if self.segment.is_none() {
            let path = self.dir.join(segment_name(message.seq));
            let file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(|e| self.io("create", &path, e))?;
            self.segment = Some((file, message.seq));
        }
        put_record(&mut self.buffer, message);
        self.dirty = true;
        if self.buffer.len() >= LOG_BUFFER_BYTES {
            self.write_buffer()?;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<(), Error> {
        if let Some((file, first)) = &mut self.segment {
            if let Err(e) = file.write_all(&self.buffer) {
                return Err(Error::io(format!("append to {}", segment_name(*first)), e));
            }
        }
        self.buffer.clear();
        Ok(())
    }

    /// Makes every appended command durable.
    pub fn sync(&mut self) -> Result<(), Error> {
        if !self.dirty {
            return Ok(());
        }
        self.write_buffer()?;
        if let Some((file, first)) = &self.segment {
            file.sync_data().map_err(|e| Error::io(format!("sync {}", segment_name(*first)), e))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Writes a checkpoint atomically, then drops what it makes unneeded. With `replaces`, the
    /// state came from a donor: every older file belongs to a history this member left.
    pub fn write_checkpoint(
        &mut self,
        checkpoint: &Checkpoint,
        replaces: bool,
    ) -> Result<CheckpointWrite, Error> {
        let mut file = self.begin_checkpoint(checkpoint.clone(), replaces)?;
        loop {
            if let Some(done) = self.continue_checkpoint(&mut file, usize::MAX)? {
                return Ok(done);
            }
        }
    }

    /// Starts writing a checkpoint: the log written so far is synced, later commands go to a
    /// new segment, and the temporary file gets its header.
    pub fn begin_checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        replaces: bool,
    ) -> Result<CheckpointFile, Error> {
        let started = Instant::now();
        self.sync()?;
        self.segment = None;
        let path = self.dir.join(checkpoint_name(checkpoint.seq));
        let tmp = path.with_extension("hck.tmp");
        let mut file = File::create(&tmp).map_err(|e| self.io("create", &tmp, e))?;
        let header = checkpoint_header(checkpoint.seq);
        file.write_all(&header).map_err(|e| self.io("write", &tmp, e))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&header);
        Ok(CheckpointFile {
            checkpoint,
            replaces,
            file,
            tmp,
            path,
            cursor: Cursor::default(),
            crc,
            written: 0,
            unsynced: 0,
            piece: Vec::new(),
            started,
        })
    }

    /// Encodes and writes the next piece of about `bytes_max` bytes; once the snapshot is
    /// whole, finishes the file (trailer, sync, rename, directory sync), retires what it makes
    /// unneeded and says what it cost.
    pub fn continue_checkpoint(
        &mut self,
        w: &mut CheckpointFile,
        bytes_max: usize,
    ) -> Result<Option<CheckpointWrite>, Error> {
        w.piece.clear();
        let more = w.checkpoint.state.encode_piece(&mut w.cursor, &mut w.piece, bytes_max);
        w.file.write_all(&w.piece).map_err(|e| self.io("write", &w.tmp, e))?;
        w.crc.update(&w.piece);
        w.written += w.piece.len() as u64;
        w.unsynced += w.piece.len() as u64;
        if w.unsynced >= CHECKPOINT_SYNC_BYTES {
            w.file.sync_data().map_err(|e| self.io("sync", &w.tmp, e))?;
            w.unsynced = 0;
        }
        if more {
            return Ok(None);
        }
        let trailer = checkpoint_trailer(w.written, w.crc.clone());
        w.file.write_all(&trailer).map_err(|e| self.io("write", &w.tmp, e))?;
        w.file.sync_all().map_err(|e| self.io("sync", &w.tmp, e))?;
        fs::rename(&w.tmp, &w.path).map_err(|e| self.io("rename into", &w.path, e))?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| self.io("sync", &self.dir, e))?;
        let took = w.started.elapsed();
        self.retire(w.checkpoint.seq, w.replaces)?;
        w.piece = Vec::new();
        Ok(Some(CheckpointWrite {
            bytes: w.written + (super::format::HEADER_BYTES + super::format::TRAILER_BYTES) as u64,
            took,
        }))
    }

    /// Removes checkpoints beyond the kept ones and the segments none of them needs.
    fn retire(&mut self, newest: Seq, replaces: bool) -> Result<(), Error> {
        let checkpoints = self.list("checkpoint-", ".hck")?;
        let keep = if replaces { 1 } else { CHECKPOINTS_KEPT };
        let kept: Vec<Seq> =
            checkpoints.iter().map(|(s, _)| *s).filter(|&s| s <= newest).rev().take(keep).collect();
        let oldest_kept = kept.last().copied().unwrap_or(newest);
        for (seq, path) in checkpoints {
            if !kept.contains(&seq) {
                fs::remove_file(&path).map_err(|e| self.io("remove", &path, e))?;
            }
        }
        let segments = self.list("log-", ".hlog")?;
        for (i, (first, path)) in segments.iter().enumerate() {
            // A segment ends before the next one starts; it is unneeded once that is covered.
            let ends_covered = segments.get(i + 1).is_some_and(|(next, _)| *next <= oldest_kept + 1);
            if replaces || ends_covered || *first > newest + 1 {
                fs::remove_file(path).map_err(|e| self.io("remove", path, e))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{MsgId, NodeId};

    fn message(seq: Seq) -> Message {
        Message {
            seq,
            id: MsgId { origin: NodeId(1), incarnation: 1, counter: seq },
            attempt: 0,
            payload: vec![seq as u8; 20].into(),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("harness-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn open(dir: &Path) -> Result<(Store, Loaded), Error> {
        Store::open(dir, &|| Box::new(crate::replication::DvmBuilder::new()))
    }

    /// A checkpoint at `seq` of a state that applied `seq` raw messages.
    fn checkpoint(seq: Seq) -> Checkpoint {
        use crate::replication::StateMachine;
        let mut state = crate::replication::DvmState::default();
        for s in 1..=seq {
            state.apply(s, message(s).id, &message(s).payload);
        }
        Checkpoint::new(seq, state.freeze())
    }

    fn seqs(loaded: &Loaded) -> (Option<Seq>, Vec<Seq>) {
        (loaded.checkpoint.as_ref().map(|c| c.seq), loaded.after.iter().map(|m| m.seq).collect())
    }

    #[test]
    fn checkpoints_and_synced_commands_come_back_and_old_files_are_retired() {
        let dir = scratch("round-trip");
        let (mut store, loaded) = open(&dir).expect("opens");
        assert_eq!(seqs(&loaded), (None, vec![]));
        for seq in 1..=10 {
            store.append(&message(seq)).expect("appends");
            if seq % 4 == 0 {
                store.write_checkpoint(&checkpoint(seq), false).expect("writes");
            }
        }
        store.sync().expect("syncs");
        drop(store);
        let (_, loaded) = open(&dir).expect("reopens");
        assert_eq!(seqs(&loaded), (Some(8), vec![9, 10]));
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(!names.iter().any(|n| n == &checkpoint_name(0) || n == &segment_name(1)), "{names:?}");
        fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn a_damaged_newest_checkpoint_is_refused_and_the_older_one_is_used() {
        let dir = scratch("damaged");
        let (mut store, _) = open(&dir).expect("opens");
        for seq in 1..=8 {
            store.append(&message(seq)).expect("appends");
            if seq % 4 == 0 {
                store.write_checkpoint(&checkpoint(seq), false).expect("writes");
            }
        }
        store.sync().expect("syncs");
        drop(store);
        let newest = dir.join(checkpoint_name(8));
        let mut bytes = fs::read(&newest).unwrap();
        bytes[20] ^= 0xff;
        fs::write(&newest, &bytes).unwrap();
        let (_, loaded) = open(&dir).expect("reopens");
        assert_eq!(seqs(&loaded), (Some(4), vec![5, 6, 7, 8]), "the older checkpoint and its log");
        assert!(!newest.exists() && dir.join(format!("{}.damaged", checkpoint_name(8))).exists());
        // Truncated to nothing: the torn write of a crash.
        fs::write(dir.join(checkpoint_name(4)), b"").unwrap();
        let (_, loaded) = open(&dir).expect("reopens");
        assert_eq!(seqs(&loaded), (None, vec![]), "no checkpoint and no log from 1 are left");
        fs::remove_dir_all(&dir).expect("cleans up");
    }

    #[test]
    fn a_checkpoint_from_a_donor_replaces_every_older_file() {
        let dir = scratch("replace");
        let (mut store, _) = open(&dir).expect("opens");
        for seq in 1..=6 {
            store.append(&message(seq)).expect("appends");
        }
        store.sync().expect("syncs");
        store.write_checkpoint(&checkpoint(3), true).expect("writes");
        store.append(&message(4)).expect("appends");
        store.sync().expect("syncs");
        drop(store);
        let (_, loaded) = open(&dir).expect("reopens");
        assert_eq!(seqs(&loaded), (Some(3), vec![4]), "the old history's 4..6 are gone");
        fs::remove_dir_all(&dir).expect("cleans up");
    }
}
