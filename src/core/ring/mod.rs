//! Ring operation inside one view: the token, stamping, dissemination, agreed and safe delivery,
//! fair share and the idle park (docs/PROTOCOL.md §3). Serves guarantees 1, 2, 4 and 7.

pub(in crate::core) mod barrier;
pub(in crate::core) mod message_log;
pub(in crate::core) mod queue;

use crate::config::Defect;
use crate::core::{Core, Output};
use crate::ids::{Member, NodeId, RingMode, Seq, ViewId};
use crate::time::Time;
use crate::wire::{Data, Message, PeerFrame, Token};

/// Why this member holds the token instead of having passed it on.
#[derive(Debug)]
enum Hold {
    /// Just created; waits for the successor link before its first visit.
    Fresh,
    /// Visited; waits for the successor link to come up.
    WaitingForLink,
    /// Parked on a quiet ring until this time (docs/PROTOCOL.md §3, idle ring).
    Parked(Time),
}

/// This member's part of the ring of the installed view.
#[derive(Debug)]
pub(in crate::core) struct RingState {
    pub(in crate::core) view: ViewId,
    pub(in crate::core) members: Vec<Member>,
    pub(in crate::core) position: usize,
    mode: RingMode,
    held: Option<(Token, Hold)>,
    /// First position only: a wake arrived while the token was away.
    wake_pending: bool,
    /// A wake was sent since the token last passed here.
    wake_sent: bool,
    /// The last token seen here said the ring is about to park.
    parked_hint: bool,
    /// First position only: `next_seq` when the token last left.
    leader_last_next_seq: Seq,
    pub(in crate::core) rotations_seen: u64,
    /// Every position's `received_upto` as the token last carried it here: what status reports
    /// give as each member's progress, without asking it (docs/PROTOCOL.md §8).
    pub(in crate::core) last_received: Vec<Seq>,
}

impl RingState {
    /// The ring of `view` over `members` in ring order; `me` must be among them.
    pub(in crate::core) fn new(view: ViewId, members: Vec<Member>, me: Member, mode: RingMode) -> RingState {
        let position =
            members.iter().position(|m| m.id == me.id).expect("a member installs only views it is in");
        RingState {
            view,
            members,
            position,
            mode,
            held: None,
            wake_pending: false,
            wake_sent: false,
            parked_hint: false,
            leader_last_next_seq: 0,
            rotations_seen: 0,
            last_received: Vec::new(),
        }
    }

    fn n(&self) -> usize {
        self.members.len()
    }

    pub(in crate::core) fn successor(&self) -> NodeId {
        self.members[(self.position + 1) % self.n()].id
    }

    pub(in crate::core) fn predecessor(&self) -> NodeId {
        self.members[(self.position + self.n() - 1) % self.n()].id
    }

    /// The distinct ring neighbours (none alone, one in a ring of two).
    pub(in crate::core) fn neighbours(&self) -> Vec<NodeId> {
        let mut ids = Vec::new();
        if self.n() > 1 {
            ids.push(self.successor());
            if self.predecessor() != self.successor() {
                ids.push(self.predecessor());
            }
        }
        ids
    }

    /// The first member of a new view creates its one token; the view's history starts after `cut`.
    pub(in crate::core) fn create_token_if_first(&mut self, cut: Seq) {
        self.leader_last_next_seq = cut + 1;
        if self.position == 0 {
            let n = self.n();
            let token = Token {
                view: self.view,
                rotation: 0,
                next_seq: cut + 1,
                received: vec![cut; n],
                backlog: vec![0; n],
                quiet: 0,
                window_bytes: 0,
            };
            self.held = Some((token, Hold::Fresh));
        }
    }

    pub(in crate::core) fn on_link_up(&mut self, peer: Member) {
        if let Some(m) = self.members.iter_mut().find(|m| m.id == peer.id) {
            m.incarnation = peer.incarnation;
        }
    }

    pub(in crate::core) fn park_deadline(&self) -> Time {
        match &self.held {
            Some((_, Hold::Parked(until))) => *until,
            _ => Time::NEVER,
        }
    }

    /// Hop counts of the successor and predecessor copies of a batch (docs/PROTOCOL.md §3).
    fn spread(&self) -> (u16, u16) {
        let n = self.n() as u16;
        match self.mode {
            RingMode::Bidirectional => (n / 2, (n - 1) / 2),
            RingMode::Unidirectional => (n - 1, 0),
        }
    }
}

fn aru(token: &Token) -> Seq {
    token.received.iter().copied().min().unwrap_or(0)
}

impl Core {
    /// Whether this member holds the token of a quiet, parked ring.
    pub fn holds_parked_token(&self) -> bool {
        matches!(self.ring.held, Some((_, Hold::Parked(_))))
    }

    pub(in crate::core) fn on_token(&mut self, now: Time, from: NodeId, token: Token, out: &mut Vec<Output>) {
        if token.view != self.ring.view || from != self.ring.predecessor() {
            log::warn!("{} on_token: dropped a token of {} from {}", self.config.me.id, token.view, from);
            return;
        }
        let n = self.ring.members.len();
        if token.received.len() != n || token.backlog.len() != n || token.next_seq <= self.log.committed_upto
        {
            log::warn!(
                "{} on_token: dropped a malformed token of {} from {}",
                self.config.me.id,
                token.view,
                from
            );
            return;
        }
        if self.ring.held.is_some() {
            log::error!("{} on_token: a second token of {} arrived; dropped", self.config.me.id, token.view);
            return;
        }
        self.on_token_arrival(now, token, out);
    }

    /// Accounting done once per visit, then the holder acts.
    fn on_token_arrival(&mut self, now: Time, mut token: Token, out: &mut Vec<Output>) {
        let position = self.ring.position;
        self.ring.rotations_seen += 1;
        if position == 0 {
            let stamped = token.next_seq != self.ring.leader_last_next_seq;
            let all_safe = aru(&token) + 1 == token.next_seq;
            let idle = token.backlog.iter().all(|&b| b == 0);
            let quiet = !stamped && all_safe && idle && !self.ring.wake_pending;
            token.quiet = if quiet { token.quiet.saturating_add(1) } else { 0 };
            token.rotation += 1;
        }
        self.record_received(&mut token);
        self.act_as_holder(now, token, out);
    }

    /// Writes this member's `received_upto` into its entry of the token. When that raises the
    /// aru, the messages it passed are safe everywhere and leave the byte window
    /// (docs/PROTOCOL.md §3): this member holds them, since its entry is at least the new aru,
    /// and has not committed them, since it commits only up to an aru it saw on an earlier visit.
    fn record_received(&self, token: &mut Token) {
        let before = aru(token);
        token.received[self.ring.position] = self.log.received_upto;
        let after = aru(token);
        if after > before {
            token.window_bytes = token.window_bytes.saturating_sub(self.log.payload_bytes(before, after));
        }
    }

    /// Stamps this member's share, reports its progress, commits what is safe, then passes or parks.
    fn act_as_holder(&mut self, now: Time, mut token: Token, out: &mut Vec<Output>) {
        let position = self.ring.position;
        self.membership.token_seen_at = now;
        let warm = token.rotation >= 2;
        let mut stamped = false;
        if warm && self.ring.neighbours().iter().all(|&id| self.links.is_up(id)) {
            let in_flight =
                queue::InFlight { messages: token.next_seq - 1 - aru(&token), bytes: token.window_bytes };
            let share = queue::share(self.queue.waiting(), position, &token.backlog, in_flight, &self.config);
            if share.messages > 0 {
                let batch = self.queue.stamp(share.messages, share.bytes, token.next_seq);
                if self.config.defect != Defect::ReuseSeq {
                    token.next_seq += batch.len() as Seq;
                }
                token.window_bytes += batch.iter().map(|m| m.payload.len() as u64).sum::<u64>();
                for message in &batch {
                    self.log.insert(message.clone());
                }
                self.send_batch(now, batch, out);
                stamped = true;
            }
        }
        if stamped {
            // A rotation in which something was stamped is not quiet (PROTOCOL.md §3), even when
            // the first member counted it quiet on arrival: parking now would hold the fresh batch
            // uncommitted for the whole idle hold.
            token.quiet = 0;
        }
        self.record_received(&mut token);
        token.backlog[position] = u32::try_from(self.queue.waiting()).unwrap_or(u32::MAX);
        self.ring.last_received.clone_from(&token.received);
        self.deliver_ready(out);
        self.commit_upto(aru(&token), out);
        // Reads armed at the last visit are due: the token went round every member since
        // (docs/PROTOCOL.md §3, read barrier); the commits just made come before them.
        let upto = self.log.committed_upto;
        out.extend(self.barriers.on_visit().into_iter().map(|tag| Output::ReadReady { tag, upto }));
        if !self.barriers.is_empty() {
            // The armed reads need one more visit: the first member must not park the token.
            token.quiet = 0;
        }
        if position == 0 {
            self.ring.leader_last_next_seq = token.next_seq;
        }
        self.ring.parked_hint = token.quiet >= 1 && !stamped;
        self.ring.wake_sent = false;
        let park = position == 0
            && token.quiet >= 2
            && self.queue.is_empty()
            && self.barriers.is_empty()
            && !self.ring.wake_pending;
        self.ring.wake_pending = false;
        if park {
            self.ring.held = Some((token, Hold::Parked(now + self.config.idle_hold)));
        } else {
            self.pass_token(now, token, out);
        }
    }

    fn pass_token(&mut self, now: Time, token: Token, out: &mut Vec<Output>) {
        if self.ring.members.len() == 1 {
            // Alone, the token comes straight back: handled as a deadline that is due now.
            self.ring.held = Some((token, Hold::Parked(now)));
            return;
        }
        let successor = self.ring.successor();
        if self.links.is_up(successor) {
            self.links.send(successor, PeerFrame::Token(token), now, out);
        } else {
            self.ring.held = Some((token, Hold::WaitingForLink));
        }
    }

    fn send_batch(&mut self, now: Time, batch: Vec<Message>, out: &mut Vec<Output>) {
        let (to_successor, to_predecessor) = self.ring.spread();
        let view = self.ring.view;
        if to_predecessor > 0 {
            let data = Data { view, hops_left: to_predecessor, messages: batch.clone() };
            self.links.send(self.ring.predecessor(), PeerFrame::Data(data), now, out);
        }
        if to_successor > 0 {
            let data = Data { view, hops_left: to_successor, messages: batch };
            self.links.send(self.ring.successor(), PeerFrame::Data(data), now, out);
        }
    }

    pub(in crate::core) fn on_data(&mut self, now: Time, from: NodeId, data: Data, out: &mut Vec<Output>) {
        if data.view != self.ring.view {
            log::warn!("{} on_data: dropped data of {} from {}", self.config.me.id, data.view, from);
            return;
        }
        let messages = if data.hops_left > 1 && self.config.defect != Defect::NoForwarding {
            let onward = self.onward(from);
            let copy = data.messages.clone();
            let forward = Data { view: data.view, hops_left: data.hops_left - 1, messages: data.messages };
            self.links.send(onward, PeerFrame::Data(forward), now, out);
            copy
        } else {
            data.messages
        };
        for message in messages {
            if self.config.defect == Defect::DeliverOnArrival && message.seq > self.log.received_upto + 1 {
                self.deliver_out_of_order(message, out);
                continue;
            }
            self.log.insert(message);
        }
        self.deliver_ready(out);
    }

    /// The neighbour on the other side from `from`.
    fn onward(&self, from: NodeId) -> NodeId {
        if from == self.ring.predecessor() {
            self.ring.successor()
        } else {
            self.ring.predecessor()
        }
    }

    pub(in crate::core) fn on_wake(
        &mut self,
        now: Time,
        from: NodeId,
        view: ViewId,
        hops_left: u16,
        out: &mut Vec<Output>,
    ) {
        if view != self.ring.view {
            return;
        }
        if self.ring.position == 0 {
            if !self.release_parked(now, out) {
                self.ring.wake_pending = true;
            }
        } else if hops_left > 1 {
            let onward = self.onward(from);
            self.links.send(onward, PeerFrame::Wake { view, hops_left: hops_left - 1 }, now, out);
        }
    }

    /// Own queue grew: use a parked token held here, or ask for it.
    pub(in crate::core) fn on_queue_grew(&mut self, now: Time, out: &mut Vec<Output>) {
        if !self.release_parked(now, out)
            && self.ring.held.is_none()
            && self.ring.parked_hint
            && !self.ring.wake_sent
        {
            self.send_wake(now, out);
        }
    }

    /// Puts a token parked here back to work at once; false when none is parked here.
    fn release_parked(&mut self, now: Time, out: &mut Vec<Output>) -> bool {
        match self.ring.held.take() {
            Some((mut token, Hold::Parked(_))) => {
                token.quiet = 0;
                self.act_as_holder(now, token, out);
                true
            }
            other => {
                self.ring.held = other;
                false
            }
        }
    }

    fn send_wake(&mut self, now: Time, out: &mut Vec<Output>) {
        let n = self.ring.members.len();
        let p = self.ring.position;
        if n < 2 || p == 0 {
            return;
        }
        self.ring.wake_sent = true;
        let view = self.ring.view;
        // The short way round to the first position.
        let (to, hops) =
            if p <= n - p { (self.ring.predecessor(), p) } else { (self.ring.successor(), n - p) };
        self.links.send(to, PeerFrame::Wake { view, hops_left: hops as u16 }, now, out);
    }

    /// A link came up: a token waiting for it can move.
    pub(in crate::core) fn try_release(&mut self, now: Time, out: &mut Vec<Output>) {
        let alone = self.ring.members.len() == 1;
        if !alone && !self.links.is_up(self.ring.successor()) {
            return;
        }
        match self.ring.held.take() {
            Some((token, Hold::Fresh)) => self.on_token_arrival(now, token, out),
            Some((token, Hold::WaitingForLink)) => self.pass_token(now, token, out),
            other => self.ring.held = other,
        }
    }

    /// The park (or, alone, the token's return) is due.
    pub(in crate::core) fn on_park_timeout(&mut self, now: Time, out: &mut Vec<Output>) {
        // Alone, each visit is a deadline due at once; bound the visits one step makes.
        for _ in 0..4 {
            match self.ring.held.take() {
                Some((token, Hold::Parked(until))) if until <= now => {
                    if self.ring.members.len() == 1 {
                        self.on_token_arrival(now, token, out);
                    } else {
                        self.pass_token(now, token, out);
                        return;
                    }
                }
                other => {
                    self.ring.held = other;
                    return;
                }
            }
        }
    }
}
