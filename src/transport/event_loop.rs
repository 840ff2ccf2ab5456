//! The mio event loop: poll, accept, execute commands, read and split frames, flush writes.
//!
//! One turn: poll; hand queued events on; accept; execute every queued command, appending bytes to
//! write buffers; read every readable connection until `WouldBlock` (bounded per turn); expire
//! handshakes; then write each dirty connection once. Writes are thereby coalesced per wake-up.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use mio::{Events, Interest, Poll, Token, Waker};

use super::closing::{LogLimit, Why};
use super::conn::{Conn, ReadOutcome, Role, READ_CHUNK_BYTES};
use super::counters::Counters;
use super::{ClientId, Command, Event, TransportConfig};
use crate::budget::ByteBudget;
use crate::error::{DecodeError, Error};
use crate::ids::NodeId;
use crate::wire::{self, Frame, PeerFrame, FRAME_BYTES_MAX};

pub(super) const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection tokens start here and are never reused, so a stale event cannot hit a new socket.
const FIRST_CONNECTION: usize = 2;
/// Connections accepted per turn; the rest wait for the next turn.
const ACCEPTS_PER_TURN: usize = 64;
/// Commands executed per turn; the rest wait for the next turn.
const COMMANDS_PER_TURN: usize = 4096;
/// Readiness events taken per poll.
const EVENTS_PER_POLL: usize = 1024;
/// The longest poll while idle; handshake deadlines shorten it. Commands wake the loop anyway.
const IDLE_POLL_MAX: Duration = Duration::from_secs(1);
/// How often a loop whose event queue is full retries handing events on.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);
/// How often, at most, the links' byte counts are published for the metrics.
const LINK_TRAFFIC_PUBLISH: Duration = Duration::from_millis(50);

/// The byte budgets of the two channels to and from the protocol thread (docs/PROTOCOL.md §2.2).
pub(super) struct Budgets {
    /// Events queued for the protocol thread: taken here, given back by the protocol thread.
    pub(super) events: Arc<ByteBudget>,
    /// Commands queued for this loop: taken by the protocol thread, given back here.
    pub(super) commands: Arc<ByteBudget>,
}

/// The up link and the pending dial to one peer.
#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) link: Option<Token>,
    pub(super) dial: Option<Token>,
    /// The peer's proven dial, held unanswered while our crossing dial is decided (`Role::Parked`).
    pub(super) parked: Option<Token>,
    /// Bytes read and written (`[in, out]`) on its links since start, for the metrics.
    pub(super) bytes: [u64; 2],
}

pub(super) struct EventLoop {
    pub(super) config: TransportConfig,
    pub(super) poll: Poll,
    listener: mio::net::TcpListener,
    waker: Arc<Waker>,
    /// Set while the loop blocks in `poll` (`LoopHandle::wake`).
    parked: Arc<std::sync::atomic::AtomicBool>,
    events_tx: Sender<Event>,
    commands: Receiver<Command>,
    pub(super) conns: BTreeMap<Token, Conn>,
    next_token: usize,
    pub(super) slots: BTreeMap<NodeId, Slot>,
    pub(super) clients: BTreeMap<ClientId, Token>,
    pub(super) next_client: u64,
    /// Events the protocol thread's full channel did not take yet; no socket is read meanwhile.
    backlog: VecDeque<Event>,
    /// Connections that may hold unread input (read budget spent, or stalled on the backlog).
    pub(super) revisit: BTreeSet<Token>,
    /// Connections with bytes to write this turn.
    pub(super) dirty: BTreeSet<Token>,
    accept_more: bool,
    protocol_gone: bool,
    pub(super) counters: Arc<Counters>,
    /// Accepted connections still in their handshake, oldest (lowest token) first.
    pub(super) unproven: BTreeSet<Token>,
    /// Connections not read for now: clients while the protocol thread has
    /// `CLIENT_BYTES_QUEUED_MAX` of their requests or the clients hold too many unsent bytes, and
    /// clients and peers while a link is pressed (`pressure`).
    pub(super) throttled: BTreeSet<Token>,
    /// Links with too many unsent bytes (`pressure`).
    pub(super) pressed: BTreeSet<NodeId>,
    /// The clients' unsent bytes together (`pressure`).
    pub(super) clients_unsent: usize,
    /// Rate limit of the log lines about unproven connections.
    pub(super) unproven_log: LogLimit,
    budgets: Budgets,
    /// When the links' bytes were last published to `counters`, and whether they moved since.
    link_traffic_published: (Instant, bool),
}

impl EventLoop {
    pub(super) fn new(
        config: TransportConfig,
        listener: TcpListener,
        events_tx: Sender<Event>,
        commands: Receiver<Command>,
        counters: Arc<Counters>,
        budgets: Budgets,
    ) -> Result<EventLoop, Error> {
        let poll = Poll::new().map_err(|e| Error::io("create the event loop", e))?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("create a waker", e))?);
        listener.set_nonblocking(true).map_err(|e| Error::io("set the listener non-blocking", e))?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| Error::io("register the listener", e))?;
        Ok(EventLoop {
            config,
            poll,
            listener,
            waker,
            parked: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            events_tx,
            commands,
            conns: BTreeMap::new(),
            next_token: FIRST_CONNECTION,
            slots: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_client: 1,
            backlog: VecDeque::new(),
            revisit: BTreeSet::new(),
            dirty: BTreeSet::new(),
            accept_more: false,
            protocol_gone: false,
            counters,
            unproven: BTreeSet::new(),
            throttled: BTreeSet::new(),
            pressed: BTreeSet::new(),
            clients_unsent: 0,
            unproven_log: LogLimit::default(),
            budgets,
            link_traffic_published: (Instant::now(), false),
        })
    }

    pub(super) fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    pub(super) fn parked(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.parked)
    }

    /// Waits for readiness or a command for at most `timeout`: first by the idle strategy
    /// (polling without blocking), then parked in `poll`, where only a socket or the waker wakes
    /// it. Returns false when `poll` failed for good.
    fn wait(&mut self, events: &mut Events, timeout: Duration) -> bool {
        use std::sync::atomic::Ordering;
        if !timeout.is_zero() {
            let deadline = Instant::now() + timeout;
            let idle = self.config.idle;
            let (poll, commands) = (&mut self.poll, &self.commands);
            let found = idle.wait_for(deadline, || {
                let ready = poll.poll(events, Some(Duration::ZERO)).is_ok() && !events.is_empty();
                (ready || !commands.is_empty()).then_some(())
            });
            if found.is_some() {
                return true;
            }
            self.parked.store(true, Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::SeqCst);
            let timeout = if self.commands.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            let result = self.poll.poll(events, Some(timeout));
            self.parked.store(false, Ordering::Relaxed);
            return self.polled(result);
        }
        let result = self.poll.poll(events, Some(timeout));
        self.polled(result)
    }

    fn polled(&self, result: io::Result<()>) -> bool {
        match result {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => {
                log::error!("{} transport: poll failed, stopping: {e}", self.config.me.id);
                false
            }
        }
    }

    /// Runs until a `Shutdown` command or until the protocol thread has gone.
    pub(super) fn run(mut self) {
        let me = self.config.me.id;
        match self.listener.local_addr() {
            Ok(addr) => log::info!("{me} transport: listening on {addr}"),
            Err(e) => log::warn!("{me} transport: listening on an unknown address: {e}"),
        }
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut scratch = vec![0u8; READ_CHUNK_BYTES];
        // Bounded by the shutdown command or the protocol thread's exit; each turn does bounded work.
        loop {
            let busy = !self.commands.is_empty() || self.accept_more || !self.revisit.is_empty();
            let timeout = if !self.backlog.is_empty() || !self.throttled.is_empty() {
                BACKLOG_RETRY
            } else if busy {
                Duration::ZERO
            } else {
                // Sleep until the next handshake deadline; with none pending, until woken.
                self.next_handshake_deadline()
                    .map_or(IDLE_POLL_MAX, |at| at.saturating_duration_since(Instant::now()))
                    .min(IDLE_POLL_MAX)
            };
            if !timeout.is_zero() {
                // Before it may sleep: what a burst just sent is published now, not a turn later.
                self.publish_link_traffic(Instant::now(), true);
            }
            if !self.wait(&mut events, timeout) {
                break;
            }
            self.hand_on_backlog();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_more = true,
                    WAKER => {}
                    token => {
                        if event.is_writable() {
                            self.on_writable(token);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.revisit.insert(token);
                        }
                    }
                }
            }
            if self.accept_more {
                self.accept();
            }
            let shutdown = self.execute_commands();
            if !self.throttled.is_empty() {
                self.release_throttled();
            }
            if !shutdown {
                for token in std::mem::take(&mut self.revisit) {
                    self.service_read(token, &mut scratch);
                }
                self.expire(Instant::now());
            }
            for token in std::mem::take(&mut self.dirty) {
                self.flush(token);
            }
            self.update_pressure();
            self.publish_link_traffic(Instant::now(), false);
            if shutdown || self.protocol_gone {
                break;
            }
        }
        // Nothing will drain the commands any more: a protocol thread waiting for room must not.
        self.budgets.commands.close();
        self.shut_down();
        log::info!("{me} transport: stopped");
    }

    /// Whether the protocol thread holds more client request bytes than it may.
    pub(super) fn client_requests_over_budget(&self) -> bool {
        self.counters.client_bytes_queued.load(std::sync::atomic::Ordering::Relaxed)
            > super::CLIENT_BYTES_QUEUED_MAX
    }

    /// Hands an event to the protocol thread, or queues it if its channel is full.
    pub(super) fn emit(&mut self, event: Event) {
        if let Event::Request { request, .. } = &event {
            // Taken off again by the protocol thread when it receives the event.
            let bytes = request.data_bytes();
            self.counters.client_bytes_queued.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        if let Some(event) = self.try_hand_on(event) {
            self.backlog.push_back(event);
        }
    }

    /// Hands an event to the protocol thread if its channel has room in count and in bytes;
    /// gives the event back otherwise (to be kept in the backlog, so no socket is read).
    fn try_hand_on(&mut self, event: Event) -> Option<Event> {
        let bytes = event.held_bytes();
        if !self.budgets.events.try_take(bytes) {
            return Some(event);
        }
        match self.events_tx.try_send(event) {
            Ok(()) => None,
            Err(TrySendError::Full(event)) => {
                self.budgets.events.give(bytes);
                Some(event)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.budgets.events.give(bytes);
                self.protocol_gone = true;
                None
            }
        }
    }

    fn hand_on_backlog(&mut self) {
        // Bounded by the backlog's length, which only shrinks here.
        while let Some(event) = self.backlog.pop_front() {
            if let Some(event) = self.try_hand_on(event) {
                self.backlog.push_front(event);
                return;
            }
            if self.protocol_gone {
                self.backlog.clear();
                return;
            }
        }
    }

    /// Registers a new connection and returns its token.
    pub(super) fn add(&mut self, mut conn: Conn, interest: Interest) -> io::Result<Token> {
        let token = Token(self.next_token);
        self.poll.registry().register(&mut conn.stream, token, interest)?;
        self.next_token += 1;
        conn.writable = interest.is_writable();
        self.conns.insert(token, conn);
        Ok(token)
    }

    fn accept(&mut self) {
        self.accept_more = false;
        let me = self.config.me.id;
        let open_max = self.config.clients_max + 2 * self.config.peers.len() + super::HANDSHAKES_MAX;
        for _ in 0..ACCEPTS_PER_TURN {
            let (stream, addr) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("{me} transport: accept failed: {e}");
                    return;
                }
            };
            Counters::bump(&self.counters.accepted);
            if self.unproven.len() >= super::HANDSHAKES_MAX {
                // The oldest unproven connection has had the longest to prove itself.
                if let Some(&oldest) = self.unproven.first() {
                    Counters::bump(&self.counters.handshakes_evicted);
                    self.close(oldest, Why::Evicted);
                }
            }
            if self.conns.len() >= open_max {
                Counters::bump(&self.counters.refused_full);
                if self.unproven_log.allow(Instant::now(), me) {
                    log::warn!(
                        "{me} transport: {} connections open; closed a new one from {addr}",
                        self.conns.len()
                    );
                }
                continue;
            }
            if let Err(e) = super::conn::tune(&stream) {
                log::debug!("{me} transport: socket options for {addr}: {e}");
            }
            let deadline = Instant::now() + super::FIRST_FRAME_TIMEOUT;
            match self.add(
                Conn::new(stream, addr, Role::Unknown { deadline }, self.config.versions),
                Interest::READABLE,
            ) {
                Ok(token) => {
                    self.unproven.insert(token);
                }
                Err(e) => log::warn!("{me} transport: cannot register a connection from {addr}: {e}"),
            }
        }
        self.accept_more = true;
    }

    /// Executes queued commands; returns true on `Shutdown` or when the protocol thread is gone.
    fn execute_commands(&mut self) -> bool {
        for _ in 0..COMMANDS_PER_TURN {
            let command = match self.commands.try_recv() {
                Ok(command) => {
                    self.budgets.commands.give(command.held_bytes());
                    command
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return false,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return true,
            };
            match command {
                Command::SendPeer { to, bytes } => match self.slots.get(&to).and_then(|slot| slot.link) {
                    Some(token) => self.queue(token, &bytes),
                    None => {
                        log::trace!("{} transport: link to {to} is down; dropped a send", self.config.me.id)
                    }
                },
                Command::SendClient { client, bytes } => {
                    if let Some(&token) = self.clients.get(&client) {
                        self.queue(token, &bytes);
                    }
                }
                Command::Connect { peer } => self.dial(peer),
                Command::Disconnect { peer } => {
                    let slot = self.slots.entry(peer).or_default();
                    let (link, dial, parked) = (slot.link.take(), slot.dial.take(), slot.parked.take());
                    for token in link.into_iter().chain(dial).chain(parked) {
                        self.close(token, Why::Disconnect);
                    }
                    self.emit(Event::LinkDown { peer });
                }
                // Links up now stay: a removed member must still commit its own removal over
                // them and leave cleanly; the core closes what it no longer wants (§5.9).
                Command::SetPeers { peers } => self.config.peers = peers,
                Command::Shutdown => return true,
            }
        }
        false
    }

    pub(super) fn queue(&mut self, token: Token, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let fits = conn.queue(bytes);
        self.recount(token);
        if fits {
            self.dirty.insert(token);
        } else {
            Counters::bump(&self.counters.slow_readers);
            self.close(token, Why::Failed("too many unsent bytes: the other end is not reading".into()));
        }
    }

    /// The largest frame a connection in `role` may send.
    fn frame_bytes_max(&self, role: &Role) -> usize {
        match role {
            // An open node's first frame may be a client's request.
            Role::Unknown { .. } if self.config.auth.is_none() => self.config.request_bytes_max,
            Role::Unknown { .. } | Role::Accepting { .. } | Role::Parked { .. } | Role::Dialing { .. } => {
                super::HANDSHAKE_FRAME_BYTES_MAX
            }
            Role::Client { .. } => self.config.request_bytes_max,
            Role::Peer { .. } => FRAME_BYTES_MAX,
        }
    }

    /// Closes a connection whose input cannot be used, counting why. A client whose request is
    /// too large is told so first, naming the request when its number has arrived.
    fn on_bad_input(&mut self, token: Token, error: DecodeError) {
        let counter = match &error {
            DecodeError::Forged { .. } => &self.counters.forged,
            DecodeError::TooLarge { .. } | DecodeError::Invalid { field: "record.length", .. } => {
                &self.counters.too_large
            }
            _ => &self.counters.malformed,
        };
        Counters::bump(counter);
        if let (DecodeError::TooLarge { length, max }, Some(conn)) = (&error, self.conns.get(&token)) {
            let request = wire::peek_broadcast_request(conn.inbound.unparsed());
            // A known client always hears why; an unknown connection only if it looks like one
            // (an open node's first frame may be a request), so garbage gets no answer.
            let client = match conn.role {
                Role::Client { .. } => Some(request.unwrap_or(0)),
                Role::Unknown { .. } if self.config.auth.is_none() => request,
                _ => None,
            };
            if let Some(request) = client {
                let payload_max = max.saturating_sub(super::REQUEST_ENVELOPE_BYTES as u64);
                let message = format!(
                    "a request of {length} bytes exceeds this node's maximum of {max} (a payload of at most \
                     {payload_max} bytes)"
                );
                self.refuse_client(token, request, message);
            }
        }
        // Another protocol version: tell the other end which one this member speaks (an
        // Error frame it can read if it speaks this version too), and the operator, who must
        // upgrade one side (docs/PROTOCOL.md §2.3).
        if let (DecodeError::Version { theirs, ours }, Some(conn)) = (&error, self.conns.get_mut(&token)) {
            log::warn!("{} transport: refused {}: {error}", self.config.me, conn.addr);
            if matches!(conn.role, Role::Unknown { .. }) {
                // Its version byte tells a newer dialler the highest this member speaks, which
                // it may dial again in (docs/PROTOCOL.md §2.3).
                conn.version = if *theirs > ours.max { ours.max } else { ours.min };
            }
            if matches!(conn.role, Role::Unknown { .. } | Role::Client { .. }) {
                self.refuse_client(token, 0, error.to_string());
            }
        }
        self.close(token, Why::Failed(format!("bad input: {error}")));
    }

    /// Sends a client one error reply at once, in the connection's version, before its
    /// connection is closed.
    pub(super) fn refuse_client(&mut self, token: Token, request: u64, message: String) {
        let mut bytes = Vec::new();
        let code = wire::ErrorCode::BadRequest;
        let version = self.conns.get(&token).map_or(self.config.versions.max, |conn| conn.version);
        wire::encode_reply_in(version, &wire::ClientReply::Error { request, code, message }, &mut bytes);
        if let Some(conn) = self.conns.get_mut(&token) {
            conn.queue(&bytes);
            let _ = conn.flush(self.poll.registry(), token);
        }
        self.recount(token);
    }

    pub(super) fn flush(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        let result = conn.flush(self.poll.registry(), token);
        let class = conn.role.traffic_class();
        self.recount(token);
        match result {
            Ok(bytes) => {
                self.counters.traffic(class, true, bytes);
                self.count_link_bytes(token, 1, bytes);
            }
            Err(e) => self.close(token, Why::Failed(format!("write failed: {e}"))),
        }
    }

    fn on_writable(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(&token) else { return };
        if let Role::Dialing { connected: false, .. } = conn.role {
            match conn.check_connected() {
                Ok(true) => {
                    if let Role::Dialing { connected, .. } = &mut conn.role {
                        *connected = true;
                    }
                }
                Ok(false) => return,
                Err(e) => return self.close(token, Why::Failed(format!("connect failed: {e}"))),
            }
        }
        self.dirty.insert(token);
    }

    /// Reads and dispatches frames until the socket is drained or this turn's budget is spent.
    fn service_read(&mut self, token: Token, scratch: &mut [u8]) {
        for _ in 0..Conn::reads_per_turn() {
            // Every buffered frame first, each pass consuming one frame or leaving.
            loop {
                if !self.backlog.is_empty() {
                    self.revisit.insert(token);
                    return;
                }
                let Some(conn) = self.conns.get(&token) else { return };
                if self.read_paused(&conn.role) {
                    self.throttled.insert(token);
                    return;
                }
                let frame_bytes_max = self.frame_bytes_max(&conn.role);
                let Some(conn) = self.conns.get_mut(&token) else { return };
                match conn.next_frame(frame_bytes_max) {
                    Ok(Some((version, frame))) => {
                        conn.partial_since = None;
                        self.on_frame(token, version, frame)
                    }
                    Ok(None) => {
                        if !conn.inbound.has_partial() {
                            conn.partial_since = None;
                        } else if conn.partial_since.is_none() {
                            conn.partial_since = Some(Instant::now());
                        }
                        break;
                    }
                    Err(e) => return self.on_bad_input(token, e),
                }
            }
            let Some(conn) = self.conns.get_mut(&token) else { return };
            if let Role::Dialing { connected: false, .. } = conn.role {
                // Not connected yet: the writable event will tell, reading now would fail.
                return self.on_writable(token);
            }
            match conn.read_once(scratch) {
                Ok(ReadOutcome::Some(bytes)) => {
                    self.counters.traffic(conn.role.traffic_class(), false, bytes);
                    self.count_link_bytes(token, 0, bytes);
                }
                Ok(ReadOutcome::Drained) => return,
                Ok(ReadOutcome::Closed) => return self.close(token, Why::Eof),
                // A reset is how a crashed peer or a dialler that lost the one-link rule ends.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return self.close(token, Why::Eof),
                Err(e) => return self.close(token, Why::Failed(format!("read failed: {e}"))),
            }
        }
        self.revisit.insert(token);
    }

    /// One frame of protocol `version` on the connection `token`.
    fn on_frame(&mut self, token: Token, version: u8, frame: Frame) {
        let Some(conn) = self.conns.get(&token) else { return };
        match (conn.role, frame) {
            (Role::Unknown { .. }, frame) => self.on_first_frame(token, version, frame),
            (Role::Accepting { transcript, .. }, frame) => self.on_proof(token, transcript, frame),
            (Role::Parked { .. }, _) => {
                // The dialler sends nothing between its proof and our answer.
                Counters::bump(&self.counters.malformed);
                self.close(token, Why::Failed("a frame before the hello-ack".into()))
            }
            (Role::Dialing { peer, nonce, transcript, version: sent, .. }, frame) => {
                self.on_dial_frame(token, peer, nonce, transcript, (sent, version), frame)
            }
            (
                Role::Peer { .. },
                Frame::Peer(
                    PeerFrame::Hello { .. }
                    | PeerFrame::HelloAck { .. }
                    | PeerFrame::Challenge { .. }
                    | PeerFrame::Proof { .. },
                ),
            ) => {
                Counters::bump(&self.counters.malformed);
                self.close(token, Why::Failed("handshake frame on an up link".into()))
            }
            (Role::Peer { member, .. }, Frame::Peer(frame)) => {
                self.emit(Event::Peer { from: member.id, frame });
            }
            (Role::Client { id }, Frame::Request(request)) => {
                self.emit(Event::Request { client: id, version: conn.version, request })
            }
            (_, _) => {
                Counters::bump(&self.counters.malformed);
                self.close(token, Why::Failed("a client frame on a peer link, or the reverse".into()))
            }
        }
    }

    /// The earliest deadline of a connection still in its handshake, or of a client holding part
    /// of a frame.
    fn next_handshake_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|conn| match conn.role {
                Role::Client { .. } => conn.partial_since.map(|since| since + super::CLIENT_STALL_TIMEOUT),
                role => role.deadline(),
            })
            .min()
    }

    /// Counts `bytes` read (`direction` 0) or written (1) on `token` if it is a peer's link.
    fn count_link_bytes(&mut self, token: Token, direction: usize, bytes: usize) {
        let Some(Role::Peer { member, .. }) = self.conns.get(&token).map(|conn| conn.role) else { return };
        self.slots.entry(member.id).or_default().bytes[direction] += bytes as u64;
        self.link_traffic_published.1 = true;
    }

    /// Publishes the bytes of every up link (at most `LINKS_PUBLISHED_MAX`) for the metrics when
    /// they moved: while busy at most once per `LINK_TRAFFIC_PUBLISH`, and (`before_sleep`) before
    /// the loop may block. The one lock the loop takes, never per read or write.
    fn publish_link_traffic(&mut self, now: Instant, before_sleep: bool) {
        let (last, moved) = self.link_traffic_published;
        if !moved || (!before_sleep && now < last + LINK_TRAFFIC_PUBLISH) {
            return;
        }
        let links: Vec<(NodeId, [u64; 2])> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.link.is_some())
            .map(|(&peer, slot)| (peer, slot.bytes))
            .take(super::counters::LINKS_PUBLISHED_MAX)
            .collect();
        if let Ok(mut published) = self.counters.link_traffic.lock() {
            *published = links;
        }
        self.link_traffic_published = (now, false);
    }

    /// Closes handshakes that took too long, and clients that stalled inside a frame.
    fn expire(&mut self, now: Instant) {
        let late: Vec<(Token, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(&token, conn)| match conn.role {
                Role::Unknown { deadline } if now >= deadline => Some((token, "no hello in time")),
                Role::Accepting { deadline, .. } if now >= deadline => Some((token, "no proof in time")),
                Role::Parked { deadline, .. } if now >= deadline => {
                    Some((token, "crossed dial undecided in time"))
                }
                Role::Dialing { deadline, .. } if now >= deadline => Some((token, "no handshake in time")),
                Role::Client { .. } => conn
                    .partial_since
                    .filter(|since| now >= *since + super::CLIENT_STALL_TIMEOUT)
                    .map(|_| (token, "part of a frame, then silence")),
                _ => None,
            })
            .collect();
        for (token, why) in late {
            let counter = match self.conns.get(&token).map(|conn| conn.role) {
                Some(Role::Client { .. }) => &self.counters.stalled,
                _ => &self.counters.handshake_timeouts,
            };
            Counters::bump(counter);
            self.close(token, Why::Failed(why.into()));
        }
    }
}
