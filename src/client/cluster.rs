//! `ClusterClient`: a blocking client of the whole cluster rather than of one node
//! (docs/PROTOCOL.md §8.2).
//!
//! It connects to any member of a list and, when that member fails, closes its connection or says
//! it is not in a primary view, moves on to the next one and sends the request again. Every write
//! carries a session (client id, request number): a retry repeats the number, so the state
//! machine answers a request that already committed from its exactly-once table instead of
//! applying it twice. Reads carry no session (applying a read twice changes nothing) and are
//! linearizable unless asked to be stale. Every operation is bounded by a deadline and a number
//! of attempts.

use std::fmt;
use std::net::SocketAddr;

use crate::auth::Auth;
use std::time::{Duration, Instant};

use super::{new_client_id, Client, ClientError};
use crate::ids::Seq;
use crate::replication::agreement::PENDING;
use crate::replication::{Action, Command, Entry, Guard, Op, Outcome, Read, Session};
use crate::wire::{Consistency, ErrorCode, MemberInfo, NodeStatus, WatchEvent};

/// Most attempts one operation makes, over all members.
const ATTEMPTS_MAX: usize = 64;
/// The first pause after every member failed in turn; it doubles up to `BACKOFF_MAX`.
const BACKOFF_MIN: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(800);
/// Members `view_report` asks, at most, for one in a primary view.
const REPORT_MEMBERS_MAX: usize = 3;

/// How long to wait for what, and the cluster key to prove on every connection.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Bounds one connect and one request to one member.
    pub request_timeout: Duration,
    /// Bounds a whole operation, failovers included.
    pub deadline: Duration,
    /// The cluster key of a keyed cluster (`Client::connect_with`); `None` for an open one.
    pub auth: Option<Auth>,
    /// The protocol versions spoken (`Client::connect_speaking`; docs/PROTOCOL.md §2.3).
    pub versions: crate::wire::Versions,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            request_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(15),
            auth: None,
            versions: crate::wire::Versions::ALL,
        }
    }
}

/// Why a cluster operation failed. "Not found" and "guard failed" are outcomes, not errors.
#[derive(Debug)]
pub enum ClusterError {
    /// No member answered within the deadline; the last failure is kept.
    Unreachable {
        /// Attempts made.
        attempts: usize,
        /// The last member's failure, if any attempt was made.
        last: Option<ClientError>,
    },
    /// Members answered, but none is in a primary view.
    NoQuorum {
        /// The last member's explanation.
        message: String,
    },
    /// Members answered, but none is in a primary view because too few members are connected
    /// for the write quorum (docs/PROTOCOL.md §5.2).
    NotEnoughReplicas {
        /// The last member's explanation: "not enough replicas: k of n in the view, W needed".
        message: String,
    },
    /// The request is malformed (found before sending, or by the node).
    BadRequest {
        /// Why.
        reason: String,
    },
    /// A watch asked for revisions the member's change history no longer holds.
    Compacted {
        /// The member's explanation.
        message: String,
    },
    /// A distributed agreement was not decided before the deadline; its decision key says how it
    /// ends.
    Undecided {
        /// The decision key.
        key: String,
    },
    /// A member sent something that is not a valid answer.
    Protocol {
        /// What was wrong.
        what: String,
    },
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Unreachable { attempts, last: Some(last) } => {
                write!(f, "no member reachable after {attempts} attempts (last: {last})")
            }
            ClusterError::Unreachable { attempts, last: None } => {
                write!(f, "no member reachable after {attempts} attempts")
            }
            ClusterError::NoQuorum { message } => write!(f, "no quorum: {message}"),
            ClusterError::NotEnoughReplicas { message } => write!(f, "{message}"),
            ClusterError::Undecided { key } => write!(f, "not decided before the deadline; see key {key}"),
            ClusterError::BadRequest { reason } => write!(f, "bad request: {reason}"),
            ClusterError::Compacted { message } => write!(f, "compacted: {message}"),
            ClusterError::Protocol { what } => write!(f, "protocol error: {what}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A client of the cluster at `addrs` with failover and exactly-once writes.
///
/// Against a ring of one member started in the same process:
///
/// ```
/// # use std::collections::BTreeMap;
/// # use harness::{CoreConfig, Member, Node, NodeConfig, NodeId};
/// use harness::client::{ClusterClient, ClusterOptions};
/// use harness::wire::Consistency;
///
/// # let addr = harness::procs::free_loopback_ports(1)?[0];
/// # let core = CoreConfig::new(Member { id: NodeId(1), incarnation: 1 }, vec![NodeId(1)]);
/// # let peers = BTreeMap::from([(NodeId(1), addr)]);
/// # let node = Node::start(NodeConfig { core, listen: addr, peers, auth: None })?;
/// let mut client = ClusterClient::new(&[addr], ClusterOptions::default())?;
/// client.put(b"jobs/42", b"queued")?;
/// let (entry, _revision) = client.get(b"jobs/42", Consistency::Linearizable)?;
/// assert_eq!(entry.map(|e| e.value), Some(b"queued".to_vec()));
/// # node.stop()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ClusterClient {
    addrs: Vec<SocketAddr>,
    options: ClusterOptions,
    /// The member tried next when the current connection fails.
    next_member: usize,
    current: Option<Client>,
    session: Session,
}

/// How one attempt at one member ended.
enum Attempt<T> {
    Done(T),
    /// Try another member (this one failed or cannot serve).
    Failover(FailedWith),
    /// Try the same member again after a pause (it was busy).
    Again,
    Fatal(ClusterError),
}

enum FailedWith {
    Io(ClientError),
    /// The member is in no primary view: `ClusterError::NoQuorum` or `NotEnoughReplicas`.
    NoPrimary(ClusterError),
}

impl ClusterClient {
    /// A client of the members at `addrs` (at least one), with a fresh client id. Nothing is
    /// dialled until the first request, so a member that is down costs nothing here.
    pub fn new(addrs: &[SocketAddr], options: ClusterOptions) -> Result<ClusterClient, ClusterError> {
        if addrs.is_empty() {
            return Err(ClusterError::BadRequest { reason: "no member address given".into() });
        }
        Ok(ClusterClient {
            addrs: addrs.to_vec(),
            options,
            next_member: 0,
            current: None,
            session: Session { client_id: new_client_id(), request: 0 },
        })
    }

    /// Uses `client_id` from now on, its next write numbered `next_request`. A process that
    /// retries a write it sent before a crash uses its old id and number, so the retry is
    /// answered from the exactly-once table.
    pub fn set_session(&mut self, client_id: u64, next_request: u64) -> Result<(), ClusterError> {
        if client_id == 0 || next_request == 0 {
            return Err(ClusterError::BadRequest { reason: "client id and request must not be 0".into() });
        }
        self.session = Session { client_id, request: next_request - 1 };
        Ok(())
    }

    /// The session the last write used (its client id and request number).
    pub fn session(&self) -> Session {
        self.session
    }

    /// The member the client is connected to, if any.
    pub fn connected_to(&self) -> Option<SocketAddr> {
        self.current.as_ref().map(Client::addr)
    }

    /// Sets `key` to `value`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Outcome, ClusterError> {
        self.write(Action::Put { key: key.to_vec(), value: value.to_vec() })
    }

    /// Removes `key`; the outcome is `NotFound` if it did not exist.
    pub fn delete(&mut self, key: &[u8]) -> Result<Outcome, ClusterError> {
        self.write(Action::Delete { key: key.to_vec() })
    }

    /// Runs a transaction: if every guard holds, `then`, else `otherwise`.
    pub fn txn(
        &mut self,
        guards: Vec<Guard>,
        then: Vec<Op>,
        otherwise: Vec<Op>,
    ) -> Result<Outcome, ClusterError> {
        self.write(Action::Txn { guards, then, otherwise })
    }

    /// Reads one key and the revision the read saw.
    pub fn get(
        &mut self,
        key: &[u8],
        consistency: Consistency,
    ) -> Result<(Option<Entry>, u64), ClusterError> {
        let outcome = self.read(Op::Get { key: key.to_vec() }, consistency)?;
        match outcome {
            (revision, Read::Get(entry)) => Ok((entry, revision)),
            (_, other) => Err(ClusterError::Protocol { what: format!("a get answered with {other:?}") }),
        }
    }

    /// Reads the keys under `prefix` (at most `limit`, 0: the node's maximum): the entries,
    /// whether more were left out, and the revision the read saw.
    pub fn range(
        &mut self,
        prefix: &[u8],
        limit: u32,
        consistency: Consistency,
    ) -> Result<(Vec<Entry>, bool, u64), ClusterError> {
        match self.read(Op::Range { prefix: prefix.to_vec(), limit }, consistency)? {
            (revision, Read::Range { entries, more }) => Ok((entries, more, revision)),
            (_, other) => Err(ClusterError::Protocol { what: format!("a range answered with {other:?}") }),
        }
    }

    /// Loads plug-in `name` on every member of the view by distributed agreement (docs/PROTOCOL.md
    /// §7.1): proposes it, then reads its decision key until it is decided or the deadline passes.
    /// Returns the decision (`committed`, or `aborted: ...` with the reason) and its revision.
    pub fn load_plugin(&mut self, name: &str) -> Result<(String, u64), ClusterError> {
        let action = Action::Propose { name: name.to_owned(), view: 0, voters: Vec::new() };
        let key = match self.write(action)? {
            Outcome::Ok { reads, .. } => match reads.as_slice() {
                [Read::Get(Some(entry))] => entry.key.clone(),
                _ => {
                    return Err(ClusterError::Protocol { what: "a proposal answered without its key".into() })
                }
            },
            other => return Err(ClusterError::Protocol { what: format!("a proposal answered {other:?}") }),
        };
        let deadline = Instant::now() + self.options.deadline;
        let mut wait = Duration::from_millis(5);
        // Each round costs a linearizable read; the deadline bounds the rounds.
        loop {
            if let (Some(entry), revision) = self.get(&key, Consistency::Linearizable)? {
                if entry.value != PENDING.as_bytes() {
                    return Ok((String::from_utf8_lossy(&entry.value).into_owned(), revision));
                }
            }
            if Instant::now() + wait > deadline {
                return Err(ClusterError::Undecided { key: String::from_utf8_lossy(&key).into_owned() });
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }

    /// A write with a new session request number, retried with the same number on failover.
    fn write(&mut self, action: Action) -> Result<Outcome, ClusterError> {
        let session = Session { client_id: self.session.client_id, request: self.session.request + 1 };
        self.session = session;
        let command = Command { session, action };
        Ok(self.execute(&command, Consistency::Linearizable)?.1)
    }

    /// A read as a guard-less transaction of one op, without a session.
    fn read(&mut self, op: Op, consistency: Consistency) -> Result<(u64, Read), ClusterError> {
        let action = Action::Txn { guards: Vec::new(), then: vec![op], otherwise: Vec::new() };
        let command = Command { session: Session::default(), action };
        match self.execute(&command, consistency)?.1 {
            Outcome::Ok { revision, mut reads, .. } if reads.len() == 1 => Ok((revision, reads.remove(0))),
            Outcome::BadCommand { reason } => Err(ClusterError::BadRequest { reason }),
            other => Err(ClusterError::Protocol { what: format!("a read answered with {other:?}") }),
        }
    }

    /// Sends a command to some member, failing over until it is answered or the deadline passes.
    pub fn execute(
        &mut self,
        command: &Command,
        consistency: Consistency,
    ) -> Result<(Seq, Outcome), ClusterError> {
        command.validate().map_err(|e| ClusterError::BadRequest { reason: e.to_string() })?;
        let bytes = command.encode();
        let outcome = self.with_failover(|client| match client.execute(consistency, &bytes) {
            Ok((seq, outcome)) => match Outcome::decode(&outcome) {
                Ok(outcome) => Attempt::Done((seq, outcome)),
                Err(e) => {
                    Attempt::Fatal(ClusterError::Protocol { what: format!("undecodable outcome: {e}") })
                }
            },
            Err(e) => classify(e),
        })?;
        if let (_, Outcome::BadCommand { reason }) = &outcome {
            return Err(ClusterError::BadRequest { reason: reason.clone() });
        }
        Ok(outcome)
    }

    /// The status of the member the client is connected to (or the first that answers).
    pub fn status(&mut self) -> Result<NodeStatus, ClusterError> {
        self.with_failover(|client| match client.status() {
            Ok(status) => Attempt::Done(status),
            Err(e) => classify(e),
        })
    }

    /// The status of the member at `addr` only, without failover.
    pub fn status_of(&self, addr: SocketAddr) -> Result<NodeStatus, ClientError> {
        Client::connect_speaking(
            addr,
            self.options.request_timeout,
            self.options.auth.as_ref(),
            self.options.versions,
        )?
        .status()
    }

    /// Every configured member as one member reports it (its role, and its received prefix as
    /// the token carries it), with that member's own status, over one connection: the whole
    /// member table in two requests, whatever the size of the cluster (docs/PROTOCOL.md §8). A
    /// member outside the primary view has a stale view, so the next member is asked, a few at
    /// most; the last answer is returned if none is primary.
    pub fn view_report(&mut self) -> Result<(Vec<MemberInfo>, NodeStatus), ClusterError> {
        let mut last = None;
        for _ in 0..self.addrs.len().clamp(1, REPORT_MEMBERS_MAX) {
            let report = self.with_failover(|client| {
                let members = match client.members() {
                    Ok(members) => members,
                    Err(e) => return classify(e),
                };
                match client.status() {
                    Ok(status) => Attempt::Done((members, status)),
                    Err(e) => classify(e),
                }
            })?;
            if report.1.primary {
                return Ok(report);
            }
            last = Some(report);
            // The next attempt connects to the next member.
            self.current = None;
        }
        last.ok_or(ClusterError::Unreachable { attempts: 0, last: None })
    }

    /// The configured members, as some member knows them.
    pub fn members(&mut self) -> Result<Vec<MemberInfo>, ClusterError> {
        self.with_failover(|client| match client.members() {
            Ok(members) => Attempt::Done(members),
            Err(e) => classify(e),
        })
    }

    /// Starts watching the keys under `prefix` from revision `from` (0: changes from now on).
    pub fn watch(&self, prefix: &[u8], from: u64) -> Result<Watcher, ClusterError> {
        let mut watcher = Watcher {
            addrs: self.addrs.clone(),
            options: self.options.clone(),
            next_member: self.next_member,
            prefix: prefix.to_vec(),
            next_from: from,
            connection: None,
            buffered: Vec::new(),
        };
        watcher.reconnect(Instant::now() + self.options.deadline)?;
        Ok(watcher)
    }

    /// Runs `attempt` against the current member, failing over and backing off as it says.
    fn with_failover<T>(
        &mut self,
        mut attempt: impl FnMut(&mut Client) -> Attempt<T>,
    ) -> Result<T, ClusterError> {
        let deadline = Instant::now() + self.options.deadline;
        let mut backoff = BACKOFF_MIN;
        let mut last_io = None;
        let mut last_no_quorum = None;
        // Failovers since the last answer: the client moves to the next member at once, and
        // backs off only once every member has failed in turn (docs/PROTOCOL.md §8.2). A
        // member in a view change holds the request until the next view, so the first retry
        // after a crash is answered as soon as that view installs, not after a pause.
        let mut failed_in_turn = 0;
        for attempts in 1..=ATTEMPTS_MAX {
            let client = match self.current.take() {
                Some(client) => client,
                None => match connect_next(&self.addrs, &mut self.next_member, &self.options) {
                    Ok(client) => client,
                    Err(e) => {
                        last_io = Some(e);
                        failed_in_turn += 1;
                        if failed_in_turn % self.addrs.len() == 0 && !pause(&mut backoff, deadline) {
                            return Err(give_up(attempts, last_io, last_no_quorum));
                        }
                        if Instant::now() >= deadline {
                            return Err(give_up(attempts, last_io, last_no_quorum));
                        }
                        continue;
                    }
                },
            };
            let mut client = client;
            match attempt(&mut client) {
                Attempt::Done(value) => {
                    self.current = Some(client);
                    return Ok(value);
                }
                Attempt::Fatal(e) => {
                    self.current = Some(client);
                    return Err(e);
                }
                Attempt::Again => {
                    self.current = Some(client);
                    if !pause(&mut backoff, deadline) {
                        return Err(give_up(attempts, last_io, last_no_quorum));
                    }
                    continue;
                }
                Attempt::Failover(FailedWith::Io(e)) => {
                    log::debug!("client: {e}; failing over");
                    last_io = Some(e);
                }
                Attempt::Failover(FailedWith::NoPrimary(error)) => {
                    log::debug!("client: {} has no primary ({error}); failing over", client.addr());
                    last_no_quorum = Some(error);
                }
            }
            failed_in_turn += 1;
            let round_over = failed_in_turn % self.addrs.len() == 0;
            if (round_over && !pause(&mut backoff, deadline)) || Instant::now() >= deadline {
                return Err(give_up(attempts, last_io, last_no_quorum));
            }
        }
        Err(give_up(ATTEMPTS_MAX, last_io, last_no_quorum))
    }
}

/// What a failed attempt means for the next one.
fn classify<T>(error: ClientError) -> Attempt<T> {
    match error {
        ClientError::Rejected { code: ErrorCode::Busy, .. } => Attempt::Again,
        ClientError::Rejected { code: ErrorCode::NoQuorum, message, .. } => {
            Attempt::Failover(FailedWith::NoPrimary(ClusterError::NoQuorum { message }))
        }
        ClientError::Rejected { code: ErrorCode::NotEnoughReplicas, message, .. } => {
            Attempt::Failover(FailedWith::NoPrimary(ClusterError::NotEnoughReplicas { message }))
        }
        ClientError::Rejected { code: ErrorCode::BadRequest, message, .. } => {
            Attempt::Fatal(ClusterError::BadRequest { reason: message })
        }
        ClientError::Rejected { code: ErrorCode::Compacted, message, .. } => {
            Attempt::Fatal(ClusterError::Compacted { message })
        }
        ClientError::PayloadTooLarge { .. } => {
            Attempt::Fatal(ClusterError::BadRequest { reason: error.to_string() })
        }
        // The member lost its place in the view after ordering the request: it may have
        // committed. The retry carries the same session and request number, so the state
        // machine answers it from its session table instead of applying it twice.
        error @ ClientError::Rejected { code: ErrorCode::OutcomeUnknown, .. } => {
            Attempt::Failover(FailedWith::Io(error))
        }
        // Shutting down, closed, timed out, garbled: another member may do better.
        other => Attempt::Failover(FailedWith::Io(other)),
    }
}

/// The error of an operation that ran out of time or attempts: "no quorum" or "not enough
/// replicas" if a member said so (the members that did not answer cannot make a primary either),
/// else "unreachable".
fn give_up(
    attempts: usize,
    last_io: Option<ClientError>,
    last_no_primary: Option<ClusterError>,
) -> ClusterError {
    match last_no_primary {
        Some(error) => error,
        None => ClusterError::Unreachable { attempts, last: last_io },
    }
}

/// Sleeps for the backoff (doubling it) unless that would pass the deadline.
fn pause(backoff: &mut Duration, deadline: Instant) -> bool {
    let now = Instant::now();
    if now + *backoff >= deadline {
        return false;
    }
    std::thread::sleep(*backoff);
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    true
}

/// Connects to the member at `next`, advancing it so the following call tries the next one.
fn connect_next(
    addrs: &[SocketAddr],
    next: &mut usize,
    options: &ClusterOptions,
) -> Result<Client, ClientError> {
    let addr = addrs[*next % addrs.len()];
    *next = (*next + 1) % addrs.len();
    Client::connect_speaking(addr, options.request_timeout, options.auth.as_ref(), options.versions)
}

/// A stream of committed changes under a prefix that survives member failures: it reconnects
/// to another member and resumes after the last revision it has seen.
pub struct Watcher {
    addrs: Vec<SocketAddr>,
    options: ClusterOptions,
    next_member: usize,
    prefix: Vec<u8>,
    /// The first revision not yet streamed; 0 until the first confirmation.
    next_from: u64,
    connection: Option<Client>,
    /// Events received but not yet handed out, in revision order (reversed: next at the end).
    buffered: Vec<WatchEvent>,
}

impl Watcher {
    /// The next change, waiting at most `timeout`; `Ok(None)` if none came in time.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<WatchEvent>, ClusterError> {
        let until = Instant::now() + timeout;
        for _ in 0..ATTEMPTS_MAX * 16 {
            if let Some(event) = self.buffered.pop() {
                return Ok(Some(event));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let Some(client) = self.connection.as_mut() else {
                self.reconnect(until.max(now + self.options.deadline))?;
                continue;
            };
            match client.next_events(until - now) {
                Ok(Some((revision, events))) => self.accept(revision, events),
                Ok(None) => {}
                Err(ClientError::Rejected { code: ErrorCode::Compacted, message, .. }) => {
                    return Err(ClusterError::Compacted { message })
                }
                Err(e) => {
                    log::debug!("watch: {e}; reconnecting to another member");
                    self.connection = None;
                }
            }
        }
        Ok(None)
    }

    /// The first revision the watch has not streamed yet.
    pub fn next_revision(&self) -> u64 {
        self.next_from
    }

    fn accept(&mut self, revision: u64, events: Vec<WatchEvent>) {
        // After a reconnect a member may repeat what the last one sent; skip it.
        let fresh = events.into_iter().filter(|event| event.revision >= self.next_from);
        let mut fresh: Vec<WatchEvent> = fresh.collect();
        fresh.reverse();
        fresh.append(&mut self.buffered);
        self.buffered = fresh;
        self.next_from = self.next_from.max(revision + 1);
    }

    /// (Re)starts the watch at some member, from where the stream stopped.
    fn reconnect(&mut self, deadline: Instant) -> Result<(), ClusterError> {
        let mut backoff = BACKOFF_MIN;
        let mut last_io = None;
        let mut last_no_quorum = None;
        for attempts in 1..=ATTEMPTS_MAX {
            match connect_next(&self.addrs, &mut self.next_member, &self.options) {
                Ok(mut client) => match client.start_watch(&self.prefix, self.next_from) {
                    Ok((revision, events)) => {
                        self.accept(revision, events);
                        self.connection = Some(client);
                        return Ok(());
                    }
                    Err(e) => match classify::<()>(e) {
                        Attempt::Fatal(e) => return Err(e),
                        Attempt::Failover(FailedWith::NoPrimary(error)) => last_no_quorum = Some(error),
                        Attempt::Failover(FailedWith::Io(e)) => last_io = Some(e),
                        Attempt::Again | Attempt::Done(()) => {}
                    },
                },
                Err(e) => last_io = Some(e),
            }
            if !pause(&mut backoff, deadline) {
                return Err(give_up(attempts, last_io, last_no_quorum));
            }
        }
        Err(give_up(ATTEMPTS_MAX, last_io, last_no_quorum))
    }
}
