//! Byte budgets for the channels that carry other people's bytes between threads
//! (docs/PROTOCOL.md §2.2): a channel bounded in items can still hold items of any size, so each
//! such channel also has a budget in bytes that its sender takes from and its receiver gives
//! back.
//!
//! `ByteBudget` is for a sender that may wait (an embedder's `Node::submit`, the protocol thread
//! handing encoded frames to the event loop): it waits until the receiver has given enough back.
//! One item is always let through when nothing is held, so an item larger than the whole budget
//! still moves. The lock guards one counter, never protocol state, and is held for a few
//! instructions.
//!
//! `FifoBytes` is for a channel whose receiver the embedder owns (deliveries, commits), which
//! cannot report what it took: since the channel is first-in first-out, the bytes still queued
//! are those of the last `len()` items sent, which the sender remembers.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// Gives a buffer's spare capacity back when it exceeds `spare_max` and most of the buffer is
/// spare: a connection keeps room for its usual traffic, but a buffer that once held a burst of
/// megabytes gives them back once it has drained (docs/PROTOCOL.md §2.2).
pub fn trim_capacity(buf: &mut Vec<u8>, spare_max: usize) {
    let spare = buf.capacity() - buf.len();
    if spare > spare_max && spare > buf.len() {
        buf.shrink_to(buf.len() + spare_max / 2);
    }
}

/// How long one wait for room lasts before the waiter checks whether it should give up.
pub const WAIT_SLICE: Duration = Duration::from_millis(50);

/// A count of bytes held, with a maximum that senders wait for.
#[derive(Debug)]
pub struct ByteBudget {
    max: usize,
    state: Mutex<Held>,
    room: Condvar,
}

#[derive(Debug, Default)]
struct Held {
    bytes: usize,
    /// The receiver has gone: nothing will be given back, so nobody waits any more.
    closed: bool,
}

impl Held {
    fn fits(&self, bytes: usize, max: usize) -> bool {
        self.closed || self.bytes == 0 || self.bytes + bytes <= max
    }
}

impl ByteBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> ByteBudget {
        ByteBudget { max, state: Mutex::new(Held::default()), room: Condvar::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.lock().bytes
    }

    /// Takes `bytes` if they fit, or if nothing is held; false otherwise.
    pub fn try_take(&self, bytes: usize) -> bool {
        let mut held = self.lock();
        if !held.fits(bytes, self.max) {
            return false;
        }
        held.bytes += bytes;
        true
    }

    /// Takes `bytes`, waiting for room in slices of `WAIT_SLICE`; after each slice without room
    /// `give_up` is asked, and if it says so the bytes are not taken and false is returned.
    pub fn take(&self, bytes: usize, mut give_up: impl FnMut() -> bool) -> bool {
        let mut held = self.lock();
        // Bounded by `give_up`: every waiter checks it at least once per slice.
        loop {
            if held.fits(bytes, self.max) {
                held.bytes += bytes;
                return true;
            }
            let (next, _) = self.room.wait_timeout(held, WAIT_SLICE).unwrap_or_else(PoisonError::into_inner);
            held = next;
            if !held.fits(bytes, self.max) && give_up() {
                return false;
            }
        }
    }

    /// Gives `bytes` back and wakes the waiters.
    pub fn give(&self, bytes: usize) {
        let mut held = self.lock();
        held.bytes = held.bytes.saturating_sub(bytes);
        drop(held);
        self.room.notify_all();
    }

    /// The receiver has gone: every wait ends at once, now and later.
    pub fn close(&self) {
        self.lock().closed = true;
        self.room.notify_all();
    }
}

/// The bytes queued in a FIFO channel, known to its sender from the sizes it sent.
#[derive(Debug, Default)]
pub struct FifoBytes {
    /// Sizes of the items that may still be queued, oldest first.
    sizes: VecDeque<usize>,
    bytes: usize,
}

impl FifoBytes {
    /// Records an item of `bytes` sent.
    pub fn sent(&mut self, bytes: usize) {
        self.sizes.push_back(bytes);
        self.bytes += bytes;
    }

    /// The bytes still queued, given that `queued` items are (the channel's `len()`).
    pub fn queued(&mut self, queued: usize) -> usize {
        // Bounded by the sizes remembered, which only shrink here.
        while self.sizes.len() > queued {
            if let Some(size) = self.sizes.pop_front() {
                self.bytes -= size;
            }
        }
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_budget_lets_one_large_item_through_and_then_waits_for_room() {
        let budget = ByteBudget::new(100);
        assert!(budget.try_take(60));
        assert!(!budget.try_take(50), "over the budget while something is held");
        assert!(budget.try_take(40));
        budget.give(100);
        assert!(budget.try_take(500), "nothing held: one item of any size goes");
        assert!(!budget.take(1, || true), "no room and told to give up");
        assert_eq!(budget.held(), 500);

        let budget = Arc::new(ByteBudget::new(100));
        assert!(budget.try_take(100));
        let giver = {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                budget.give(100);
            })
        };
        let mut asked = 0;
        assert!(budget.take(10, || {
            asked += 1;
            asked > 100
        }));
        giver.join().unwrap();
        assert_eq!(budget.held(), 10);
        assert!(budget.try_take(90) && !budget.try_take(1));
        budget.close();
        assert!(budget.take(1000, || false), "a closed budget never makes anyone wait");
    }

    #[test]
    fn idle_buffers_give_their_capacity_back() {
        let mut buf = vec![0u8; 4 << 20];
        buf.truncate(100);
        trim_capacity(&mut buf, 64 << 10);
        assert!(buf.capacity() <= 100 + (64 << 10), "{}", buf.capacity());
        let mut full = vec![0u8; 4 << 20];
        let before = full.capacity();
        trim_capacity(&mut full, 64 << 10);
        assert_eq!(full.capacity(), before, "a full buffer keeps its room");
    }

    #[test]
    fn fifo_bytes_are_those_of_the_last_items_sent() {
        let mut fifo = FifoBytes::default();
        for size in [10, 20, 30] {
            fifo.sent(size);
        }
        assert_eq!(fifo.queued(3), 60);
        assert_eq!(fifo.queued(1), 30, "the two oldest were received");
        fifo.sent(5);
        assert_eq!(fifo.queued(2), 35);
        assert_eq!(fifo.queued(0), 0);
    }
}
