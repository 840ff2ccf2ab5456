//! The storage thread: the one extra thread of a node, for work whose time grows with the state
//! (docs/PROTOCOL.md §5.1, §7 "Durability"): blocking file I/O, and freeing what the protocol
//! thread discarded. The protocol thread hands it committed commands to log, sync requests,
//! frozen checkpoints and discarded states, and never waits for the disk or the allocator.
//!
//! - **No store.** With `--durability memory` it writes nothing; it only frees.
//! - **Group commit.** Appends are buffered; a sync request makes everything appended so far
//!   durable with one `fdatasync`, however many requests queued up meanwhile, and answers
//!   `Synced(seq)`: the protocol thread acknowledges commands up to `seq` only then.
//! - **Checkpoints in pieces.** A checkpoint is encoded from its frozen state a piece at a time
//!   and written between log syncs, so a large state never holds up an acknowledgement by more
//!   than one piece. A newer checkpoint queued behind one being written replaces the queued one.
//! - **Failure stops acknowledging.** The first error is reported as `Failed` and the thread
//!   ends: nothing after it is reported synced, so nothing after it is acknowledged.
//! - **Freeing elsewhere.** A replaced state of gigabytes takes as long to free as to build;
//!   it is dropped here (`Job::Discard`), between two pieces of work.

use std::collections::VecDeque;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::store::{CheckpointFile, CheckpointWrite, Store};
use crate::error::Error;
use crate::ids::Seq;
use crate::replication::{Checkpoint, Discarded};
use crate::wire::Message;

/// Bytes of checkpoint encoded and written between two looks at the job queue.
const PIECE_BYTES: usize = 4 << 20;
/// Jobs queued for the thread before the protocol thread would wait (it never should: a job is
/// small, and a sync answers many).
const JOBS_QUEUED_MAX: usize = 1 << 16;
/// Completions queued for the protocol thread.
const DONE_QUEUED_MAX: usize = 1024;
/// How long a failure report waits for room, so a stopping node never hangs on it.
const DONE_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// What the protocol thread asks of the storage thread.
pub enum Job {
    /// Log one committed command (`--durability fsync`).
    Append(Message),
    /// Make every command appended so far durable and answer `Synced`.
    Sync,
    /// Write a checkpoint; with `replaces`, it came from a donor and replaces every older file.
    Checkpoint {
        /// The frozen state and its seq.
        checkpoint: Checkpoint,
        /// Whether it replaces the files of a history this member left.
        replaces: bool,
    },
    /// Free what the protocol thread let go of.
    Discard(Discarded),
}

/// What the storage thread reports back.
pub enum Done {
    /// Every command up to this seq is durable.
    Synced(Seq),
    /// A checkpoint is written.
    Checkpointed {
        /// Its seq.
        seq: Seq,
        /// What it cost.
        write: CheckpointWrite,
    },
    /// Durable state cannot be written; the thread has stopped.
    Failed(Error),
}

/// The storage thread and its two channels.
pub struct StorageThread {
    jobs: Option<Sender<Job>>,
    /// Completions, for the protocol thread's select loop.
    pub done: Receiver<Done>,
    handle: Option<JoinHandle<()>>,
}

impl StorageThread {
    /// Starts the thread over an opened store, or with none (it then only frees discards).
    pub fn start(store: Option<Store>, name: String) -> Result<StorageThread, Error> {
        let (jobs, jobs_rx) = crossbeam_channel::bounded(JOBS_QUEUED_MAX);
        let (done_tx, done) = crossbeam_channel::bounded(DONE_QUEUED_MAX);
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || Worker::new(store, done_tx).run(&jobs_rx))
            .map_err(|e| Error::io("spawn the storage thread", e))?;
        Ok(StorageThread { jobs: Some(jobs), done, handle: Some(handle) })
    }

    /// Queues a job; false if the thread has stopped (after a failure it already reported).
    pub fn send(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// Finishes what is queued (the checkpoint being written included) and stops the thread.
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                log::error!("storage: the storage thread panicked");
            }
        }
    }
}

impl Drop for StorageThread {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    /// None without durability: appends, syncs and checkpoints are then never asked for.
    store: Option<Store>,
    done: Sender<Done>,
    /// The last seq appended.
    appended: Seq,
    sync_wanted: bool,
    writing: Option<CheckpointFile>,
    /// The checkpoint to write after the current one (only the newest is kept).
    next: Option<(Checkpoint, bool)>,
}

impl Worker {
    fn new(store: Option<Store>, done: Sender<Done>) -> Worker {
        Worker { store, done, appended: 0, sync_wanted: false, writing: None, next: None }
    }

    fn run(mut self, jobs: &Receiver<Job>) {
        let mut open = true;
        while open || self.sync_wanted || self.writing.is_some() || self.next.is_some() {
            let busy = self.sync_wanted || self.writing.is_some() || self.next.is_some();
            // Idle: wait for work. Busy: take whatever queued meanwhile, then do one thing.
            let first = if busy || !open {
                match jobs.try_recv() {
                    Ok(job) => Some(job),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            } else {
                match jobs.recv() {
                    Ok(job) => Some(job),
                    Err(_) => {
                        open = false;
                        None
                    }
                }
            };
            let mut queued: VecDeque<Job> = first.into_iter().collect();
            while let Ok(job) = jobs.try_recv() {
                queued.push_back(job);
            }
            let result = self.take(queued).and_then(|()| self.work(open));
            if let Err(e) = result {
                let _ = self.done.send_timeout(Done::Failed(e), DONE_WAIT_MAX);
                return;
            }
        }
    }

    fn take(&mut self, jobs: VecDeque<Job>) -> Result<(), Error> {
        for job in jobs {
            let Some(store) = self.store.as_mut() else {
                // Without a store only discards come; anything else has nothing to go to.
                drop(job);
                continue;
            };
            match job {
                Job::Append(message) => {
                    self.appended = message.seq;
                    store.append(&message)?;
                }
                Job::Sync => self.sync_wanted = true,
                Job::Checkpoint { checkpoint, replaces } => {
                    // A checkpoint that replaces the files must not be lost behind a newer one.
                    let replaces = replaces || self.next.as_ref().is_some_and(|(_, r)| *r);
                    if self.writing.is_none() {
                        self.writing = Some(store.begin_checkpoint(checkpoint, replaces)?);
                    } else {
                        self.next = Some((checkpoint, replaces));
                    }
                }
                Job::Discard(discarded) => drop(discarded),
            }
        }
        Ok(())
    }

    /// One unit of work: the sync that is asked for, else one piece of the checkpoint.
    fn work(&mut self, open: bool) -> Result<(), Error> {
        let Some(store) = self.store.as_mut() else { return Ok(()) };
        if self.sync_wanted {
            store.sync()?;
            self.sync_wanted = false;
            // A later `Synced` covers a dropped one; only a stalled protocol thread drops any.
            let _ = self.done.try_send(Done::Synced(self.appended));
            return Ok(());
        }
        if self.writing.is_none() {
            if let Some((checkpoint, replaces)) = self.next.take() {
                self.writing = Some(store.begin_checkpoint(checkpoint, replaces)?);
            }
        }
        if let Some(file) = self.writing.as_mut() {
            if let Some(write) = store.continue_checkpoint(file, PIECE_BYTES)? {
                let seq = file.seq();
                self.writing = None;
                let _ = self.done.try_send(Done::Checkpointed { seq, write });
            }
        } else if !open {
            // Stopping with nothing left but appends not asked to sync: sync them anyway.
            store.sync()?;
        }
        Ok(())
    }
}
