//! A fault-injecting TCP proxy for process tests: the machines these tests run on have no
//! `tc netem` and no iptables, so link faults between real `harness node` processes are made
//! by routing a node's dials through one of these (issue #4, "A fault-injecting TCP proxy").
//!
//! One `Proxy` listens on `127.0.0.1:0` and forwards every accepted connection to one target.
//! Each direction of the proxy has a mode that the test switches at run time: pass, blackhole
//! (read and drop, connection kept), delay, one bit flipped in each of the next bytes, and a
//! frame recorder whose frame can be re-sent later, on another connection. `reset` closes every
//! live connection on both sides; `refuse` closes new ones as soon as they arrive.
//!
//! The pumps know the harness framing (`u32` length prefix, docs/PROTOCOL.md §2 and
//! src/wire/codec.rs) only to find frame boundaries: a flip never lands in a length prefix (so
//! corruption shows up as a checksum failure, not as a stalled 16 MiB read) and a replayed
//! frame is inserted between two whole frames.
//!
//! Only std threads: one acceptor per proxy and two pumps per connection, each polling a stop
//! flag at least every `POLL`; at most `CONNECTIONS_MAX` live connections; `Drop` stops and
//! joins every thread.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a blocked thread looks at its stop flag and its delay queue.
const POLL: Duration = Duration::from_millis(5);
/// Live connections per proxy; more are closed at once, so a dial storm cannot spawn threads
/// without bound.
const CONNECTIONS_MAX: usize = 32;
/// A receiver that does not read for this long is treated as dead: the pump closes the
/// connection instead of blocking forever.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per call.
const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes of the length prefix of a harness frame.
const PREFIX_BYTES: usize = 4;
/// A recorded frame larger than this is not kept (the harness maximum is 16 MiB; tests need
/// small ones).
const RECORD_BYTES_MAX: usize = 1 << 20;

/// One direction of the proxied connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the dialing side to the target.
    ToTarget,
    /// From the target back to the dialing side.
    ToDialer,
}

impl Dir {
    fn index(self) -> usize {
        match self {
            Dir::ToTarget => 0,
            Dir::ToDialer => 1,
        }
    }
}

/// What a direction does with the bytes it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Read and drop; the connection stays open, so only silence detection can notice.
    Blackhole,
    /// Forward each chunk this long after it was read.
    Delay(Duration),
}

/// Per-direction switches, shared by the proxy handle and every pump of that direction.
#[derive(Debug)]
struct DirState {
    mode: Mode,
    /// Bytes (outside length prefixes) still to get one bit flipped.
    flip_left: usize,
    /// Bytes flipped so far.
    flipped: usize,
    /// Record the next whole frame of this kind (the byte after the version).
    record_kind: Option<u8>,
    /// The recorded frame.
    recorded: Option<Vec<u8>>,
    /// Re-send `recorded` once at the next frame boundary of a live connection.
    replay_pending: bool,
    /// Frames re-sent so far.
    replayed: usize,
}

impl DirState {
    fn new() -> DirState {
        DirState {
            mode: Mode::Pass,
            flip_left: 0,
            flipped: 0,
            record_kind: None,
            recorded: None,
            replay_pending: false,
            replayed: 0,
        }
    }
}

/// A live proxied connection: both sockets, so `reset` and `Drop` can close it from outside.
struct Conn {
    dialer: TcpStream,
    target: TcpStream,
    pumps: Vec<JoinHandle<()>>,
}

struct Shared {
    dirs: [DirState; 2],
    /// Close every new connection at once.
    refuse: bool,
    conns: Vec<Conn>,
    accepted: usize,
}

/// A running proxy; dropping it closes every connection and joins every thread.
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panicking pump must not hide the test's own failure behind a poisoned lock.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Proxy {
    /// Listens on a fresh loopback port and forwards to `target`, everything passing.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            dirs: [DirState::new(), DirState::new()],
            refuse: false,
            conns: Vec::new(),
            accepted: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("proxy-{addr}"))
                .spawn(move || accept_loop(listener, target, &shared, &stop))
                .unwrap()
        };
        Proxy { addr, target, shared, stop, acceptor: Some(acceptor) }
    }

    /// Where dialers connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections are forwarded.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Sets the mode of one direction.
    pub fn set_mode(&self, dir: Dir, mode: Mode) {
        lock(&self.shared).dirs[dir.index()].mode = mode;
    }

    /// Sets both directions.
    pub fn set_both(&self, mode: Mode) {
        let mut shared = lock(&self.shared);
        for dir in &mut shared.dirs {
            dir.mode = mode;
        }
    }

    /// Back to pass in both directions, no refusing, pending flips cancelled.
    pub fn heal(&self) {
        let mut shared = lock(&self.shared);
        shared.refuse = false;
        for dir in &mut shared.dirs {
            dir.mode = Mode::Pass;
            dir.flip_left = 0;
        }
    }

    /// Flips one bit in each of the next `bytes` bytes in `dir` that are not part of a length
    /// prefix.
    pub fn flip(&self, dir: Dir, bytes: usize) {
        lock(&self.shared).dirs[dir.index()].flip_left = bytes;
    }

    /// Bytes flipped so far in `dir`.
    pub fn flipped(&self, dir: Dir) -> usize {
        lock(&self.shared).dirs[dir.index()].flipped
    }

    /// Records the next whole frame in `dir` whose kind byte (src/wire/codec.rs `FrameKind`)
    /// is `kind`.
    pub fn record(&self, dir: Dir, kind: u8) {
        let mut shared = lock(&self.shared);
        shared.dirs[dir.index()].record_kind = Some(kind);
        shared.dirs[dir.index()].recorded = None;
    }

    /// The frame recorded in `dir`, if any yet.
    pub fn recorded(&self, dir: Dir) -> Option<Vec<u8>> {
        lock(&self.shared).dirs[dir.index()].recorded.clone()
    }

    /// Re-sends the recorded frame once, at the next frame boundary of a live connection in
    /// `dir`. Returns false if nothing is recorded.
    pub fn replay(&self, dir: Dir) -> bool {
        let mut shared = lock(&self.shared);
        let state = &mut shared.dirs[dir.index()];
        state.replay_pending = state.recorded.is_some();
        state.replay_pending
    }

    /// Frames re-sent so far in `dir`.
    pub fn replayed(&self, dir: Dir) -> usize {
        lock(&self.shared).dirs[dir.index()].replayed
    }

    /// Closes every live connection on both sides (the pumps then end).
    pub fn reset(&self) {
        for conn in &lock(&self.shared).conns {
            let _ = conn.dialer.shutdown(Shutdown::Both);
            let _ = conn.target.shutdown(Shutdown::Both);
        }
    }

    /// While set, every new connection is closed as soon as it is accepted.
    pub fn refuse(&self, refuse: bool) {
        lock(&self.shared).refuse = refuse;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        lock(&self.shared).accepted
    }

    /// Connections whose pumps still run.
    pub fn live(&self) -> usize {
        lock(&self.shared).conns.iter().filter(|c| c.pumps.iter().any(|p| !p.is_finished())).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let conns = std::mem::take(&mut lock(&self.shared).conns);
        for conn in conns {
            let _ = conn.dialer.shutdown(Shutdown::Both);
            let _ = conn.target.shutdown(Shutdown::Both);
            for pump in conn.pumps {
                let _ = pump.join();
            }
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    shared: &Arc<Mutex<Shared>>,
    stop: &Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let dialer = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        reap(shared);
        let refused = {
            let mut shared = lock(shared);
            shared.accepted += 1;
            shared.refuse || shared.conns.len() >= CONNECTIONS_MAX
        };
        if refused {
            let _ = dialer.shutdown(Shutdown::Both);
            continue;
        }
        // A dead target looks like a refused connection to the dialer, as it would without us.
        let Ok(target) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
            let _ = dialer.shutdown(Shutdown::Both);
            continue;
        };
        let _ = dialer.set_nonblocking(false);
        let _ = dialer.set_nodelay(true);
        let _ = target.set_nodelay(true);
        let pumps = [(Dir::ToTarget, &dialer, &target), (Dir::ToDialer, &target, &dialer)]
            .into_iter()
            .map(|(dir, from, to)| {
                let (from, to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                let (shared, stop) = (shared.clone(), stop.clone());
                std::thread::spawn(move || pump(dir, from, to, &shared, &stop))
            })
            .collect();
        lock(shared).conns.push(Conn { dialer, target, pumps });
    }
}

/// Joins the pumps of finished connections so threads never pile up.
fn reap(shared: &Mutex<Shared>) {
    let finished: Vec<Conn> = {
        let mut shared = lock(shared);
        let (done, live) = std::mem::take(&mut shared.conns)
            .into_iter()
            .partition(|c: &Conn| c.pumps.iter().all(JoinHandle::is_finished));
        shared.conns = live;
        done
    };
    for conn in finished {
        for pump in conn.pumps {
            let _ = pump.join();
        }
    }
}

/// Where the pump stands in the frame stream it reads.
struct Framing {
    /// Bytes of the current length prefix seen so far.
    prefix: Vec<u8>,
    /// Bytes of the current frame after its prefix still to come.
    body_left: usize,
    /// The current frame, while it is being recorded.
    recording: Option<Vec<u8>>,
}

impl Framing {
    fn at_boundary(&self) -> bool {
        self.prefix.is_empty() && self.body_left == 0
    }
}

/// Copies `from` to `to` applying `dir`'s switches until either side closes or `stop` is set;
/// then closes both sides, so the peer pump ends too.
fn pump(dir: Dir, mut from: TcpStream, mut to: TcpStream, shared: &Mutex<Shared>, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(POLL));
    let _ = to.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut framing = Framing { prefix: Vec::new(), body_left: 0, recording: None };
    let mut delayed: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let ok = loop {
        if stop.load(Ordering::SeqCst) {
            break true;
        }
        // Due delayed bytes first, then a pending replay, which must sit between whole frames.
        let now = Instant::now();
        let mut failed = false;
        while delayed.front().is_some_and(|(due, _)| *due <= now) {
            let (_, bytes) = delayed.pop_front().unwrap();
            if to.write_all(&bytes).is_err() {
                failed = true;
                break;
            }
        }
        if failed {
            break false;
        }
        if framing.at_boundary() && delayed.is_empty() {
            let replay = {
                let mut shared = lock(shared);
                let state = &mut shared.dirs[dir.index()];
                if state.replay_pending && state.mode != Mode::Blackhole {
                    state.replay_pending = false;
                    state.replayed += 1;
                    state.recorded.clone()
                } else {
                    None
                }
            };
            if let Some(frame) = replay {
                if to.write_all(&frame).is_err() {
                    break false;
                }
            }
        }
        let read = match from.read(&mut buf) {
            Ok(0) => break true,
            Ok(read) => read,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => break false,
        };
        let chunk = &mut buf[..read];
        let mode = {
            let mut shared = lock(shared);
            let state = &mut shared.dirs[dir.index()];
            apply_framing(&mut framing, state, chunk);
            state.mode
        };
        let result = match mode {
            Mode::Pass if delayed.is_empty() => to.write_all(chunk),
            // Bytes delayed before a switch to pass keep their order.
            Mode::Pass => {
                delayed.push_back((Instant::now(), chunk.to_vec()));
                Ok(())
            }
            Mode::Blackhole => Ok(()),
            Mode::Delay(by) => {
                delayed.push_back((Instant::now() + by, chunk.to_vec()));
                Ok(())
            }
        };
        if result.is_err() {
            break false;
        }
    };
    let _ = ok;
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Walks `chunk` through the framing: records frames, and flips bits outside length prefixes.
fn apply_framing(framing: &mut Framing, state: &mut DirState, chunk: &mut [u8]) {
    for byte in chunk.iter_mut() {
        if framing.body_left == 0 {
            // A length prefix byte: never corrupted, so the receiver still finds the frame end.
            framing.prefix.push(*byte);
            if framing.prefix.len() == PREFIX_BYTES {
                let length = u32::from_be_bytes(framing.prefix[..].try_into().unwrap()) as usize;
                framing.body_left = length;
                if state.record_kind.is_some() && length + PREFIX_BYTES <= RECORD_BYTES_MAX {
                    framing.recording = Some(framing.prefix.clone());
                }
                framing.prefix.clear();
            }
            continue;
        }
        if let Some(recording) = &mut framing.recording {
            // The original bytes are recorded, so a replay is a valid old frame.
            recording.push(*byte);
            // Prefix, version, kind: the kind decides whether this frame is the one wanted.
            if recording.len() == PREFIX_BYTES + 2 && state.record_kind != Some(*byte) {
                framing.recording = None;
            }
        }
        if state.flip_left > 0 {
            state.flip_left -= 1;
            state.flipped += 1;
            *byte ^= 0x10;
        }
        framing.body_left -= 1;
        if framing.body_left == 0 {
            if let Some(frame) = framing.recording.take() {
                state.recorded = Some(frame);
                state.record_kind = None;
            }
        }
    }
}
