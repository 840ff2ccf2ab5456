//! The universe as replicated state: the ids and addresses of every member, changed only by
//! ordered `Action::Universe` commands (docs/PROTOCOL.md §5.9).
//!
//! The committed universe lives in the key `harness/universe` (so checkpoints, state transfer and
//! digests carry it like any key) as text: a first line `epoch E`, then one `ID ADDRESS` line
//! per member, ids ascending. A change names the epoch it creates, `E + 1`, and applies only on
//! top of epoch `E` (compare-and-set): two changes prepared against the same universe cannot
//! both apply, which is how one change at a time is kept without a lock. The core tracks the
//! same value from the committed sequence with the same rule (`Universe::after`), since a warm
//! member applies its commands late but must dial, vote and count quorums by the universe now.

use std::collections::BTreeMap;
use std::fmt;

use super::command::{Action, ActionKind, Command};
use crate::ids::NodeId;

/// The key the committed universe is kept under. Clients may read and watch it, never write it.
pub const UNIVERSE_KEY: &str = "harness/universe";

/// Most members a universe may hold (node ids are u16, and 0 is never one).
pub const UNIVERSE_MEMBERS_MAX: usize = u16::MAX as usize;

/// One membership change, as the operator asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// A new member id with its address.
    Add(NodeId),
    /// A member leaves the universe for good.
    Remove(NodeId),
    /// A member's address changes; its id, history and votes stay.
    Update(NodeId),
}

impl MemberChange {
    /// The member the change is about.
    pub fn id(self) -> NodeId {
        match self {
            MemberChange::Add(id) | MemberChange::Remove(id) | MemberChange::Update(id) => id,
        }
    }

    /// The byte that encodes the change's kind.
    pub(crate) fn tag(self) -> u8 {
        match self {
            MemberChange::Add(_) => 1,
            MemberChange::Remove(_) => 2,
            MemberChange::Update(_) => 3,
        }
    }

    /// The change a tag and an id encode.
    pub(crate) fn from_tag(tag: u8, id: NodeId) -> Option<MemberChange> {
        match tag {
            1 => Some(MemberChange::Add(id)),
            2 => Some(MemberChange::Remove(id)),
            3 => Some(MemberChange::Update(id)),
            _ => None,
        }
    }
}

impl fmt::Display for MemberChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberChange::Add(id) => write!(f, "add {id}"),
            MemberChange::Remove(id) => write!(f, "remove {id}"),
            MemberChange::Update(id) => write!(f, "update {id}"),
        }
    }
}

/// Every member's id and address, and how many changes made it (0: the seed list a brand-new
/// cluster was started with, never committed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Universe {
    /// Changes committed so far.
    pub epoch: u64,
    /// Address (`HOST:PORT`) by member id.
    pub members: BTreeMap<NodeId, String>,
}

impl Universe {
    /// The member ids, ascending.
    pub fn ids(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }

    /// The universe `change` makes of this one, as the next epoch; an error says why the change
    /// does not fit (an id already there, an unknown id, the last member removed).
    pub fn with_change(&self, change: MemberChange, address: Option<&str>) -> Result<Universe, String> {
        let mut next = self.clone();
        next.epoch = self.epoch + 1;
        let id = change.id();
        if id.0 == 0 {
            return Err("0 is never a member id".into());
        }
        match change {
            MemberChange::Add(_) => {
                if let Some(addr) = self.members.get(&id) {
                    return Err(format!("member {id} is already in the universe (at {addr})"));
                }
                if let Some((other, _)) = self.members.iter().find(|(_, a)| Some(a.as_str()) == address) {
                    return Err(format!("member {other} already listens at that address"));
                }
                let Some(address) = address else { return Err("an added member needs an address".into()) };
                next.members.insert(id, address.to_owned());
            }
            MemberChange::Remove(_) => {
                if next.members.remove(&id).is_none() {
                    return Err(format!("member {id} is not in the universe"));
                }
                if next.members.is_empty() {
                    return Err(format!("member {id} is the last member; a cluster keeps at least one"));
                }
            }
            MemberChange::Update(_) => {
                let Some(address) = address else { return Err("an update needs the new address".into()) };
                let Some(slot) = next.members.get_mut(&id) else {
                    return Err(format!("member {id} is not in the universe"));
                };
                *slot = address.to_owned();
            }
        }
        Ok(next)
    }

    /// The id the next `member add` without an id gets: one above the highest id ever listed
    /// now (ids of removed members are not reused while a higher one exists).
    pub fn next_id(&self) -> Option<NodeId> {
        let highest = self.members.keys().next_back().map_or(0, |id| id.0);
        highest.checked_add(1).map(NodeId)
    }

    /// The text kept under `UNIVERSE_KEY`.
    pub fn to_text(&self) -> String {
        let mut text = format!("epoch {}\n", self.epoch);
        for (id, addr) in &self.members {
            text.push_str(&format!("{} {addr}\n", id.0));
        }
        text
    }

    /// Reads the text kept under `UNIVERSE_KEY`; the error names the bad line.
    pub fn from_text(text: &[u8]) -> Result<Universe, String> {
        let text = std::str::from_utf8(text).map_err(|_| "the universe is not UTF-8".to_string())?;
        let mut lines = text.lines();
        let epoch = lines
            .next()
            .and_then(|line| line.strip_prefix("epoch "))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| "the universe does not start with `epoch N`".to_string())?;
        let mut members = BTreeMap::new();
        for line in lines {
            let (id, addr) = line.split_once(' ').ok_or_else(|| format!("bad universe line {line:?}"))?;
            let id: u16 = id.parse().map_err(|_| format!("bad member id in universe line {line:?}"))?;
            members.insert(NodeId(id), addr.to_owned());
        }
        Ok(Universe { epoch, members })
    }

    /// The universe a committed payload makes of this one: `Some` only for a valid
    /// `Action::Universe` whose epoch is this one's plus one (the compare-and-set every member
    /// and the state machine apply alike). Cheap for any other payload: only the header's kind
    /// byte is read.
    pub fn after(&self, payload: &[u8]) -> Option<Universe> {
        if Command::peek_kind(payload) != Some(ActionKind::Universe) {
            return None;
        }
        let Ok(Command { action: Action::Universe { epoch, members, .. }, .. }) = Command::decode(payload)
        else {
            return None;
        };
        (epoch == self.epoch + 1).then(|| Universe { epoch, members: members.into_iter().collect() })
    }
}

impl fmt::Display for Universe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.members.iter().map(|(id, addr)| format!("{id}={addr}")).collect();
        write!(f, "epoch {}: {}", self.epoch, list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::command::Session;

    fn seed() -> Universe {
        let members = (1..=3).map(|i| (NodeId(i), format!("127.0.0.1:{}", 7100 + i))).collect();
        Universe { epoch: 0, members }
    }

    fn command(next: &Universe, change: MemberChange) -> Vec<u8> {
        let members = next.members.iter().map(|(id, a)| (*id, a.clone())).collect();
        Command {
            session: Session::default(),
            action: Action::Universe { epoch: next.epoch, change, members },
        }
        .encode()
    }

    #[test]
    fn a_change_applies_only_on_the_epoch_it_was_made_against() {
        let u0 = seed();
        let u1 = u0.with_change(MemberChange::Add(NodeId(4)), Some("127.0.0.1:7104")).unwrap();
        let add = command(&u1, MemberChange::Add(NodeId(4)));
        assert_eq!(u0.after(&add), Some(u1.clone()));
        // Applied twice (a retry) it is refused the second time: the epoch moved on.
        assert_eq!(u1.after(&add), None);
        // A change prepared against epoch 0 after another one committed is refused.
        let u1b = u0.with_change(MemberChange::Remove(NodeId(2)), None).unwrap();
        assert_eq!(u1.after(&command(&u1b, MemberChange::Remove(NodeId(2)))), None);
        assert_eq!(u0.after(b"not a command"), None);
    }

    #[test]
    fn changes_that_do_not_fit_are_refused_with_a_reason() {
        let u = seed();
        assert!(u.with_change(MemberChange::Add(NodeId(2)), Some("h:1")).unwrap_err().contains("already"));
        assert!(u.with_change(MemberChange::Remove(NodeId(9)), None).unwrap_err().contains("not in"));
        assert!(u.with_change(MemberChange::Update(NodeId(9)), Some("h:1")).unwrap_err().contains("not in"));
        assert!(u.with_change(MemberChange::Add(NodeId(5)), Some("127.0.0.1:7101")).is_err());
        let one = Universe { epoch: 3, members: BTreeMap::from([(NodeId(1), "h:1".to_string())]) };
        assert!(one.with_change(MemberChange::Remove(NodeId(1)), None).unwrap_err().contains("last"));
        assert_eq!(u.next_id(), Some(NodeId(4)));
    }

    #[test]
    fn the_text_form_round_trips() {
        let u = seed().with_change(MemberChange::Update(NodeId(2)), Some("[::1]:9000")).unwrap();
        assert_eq!(Universe::from_text(u.to_text().as_bytes()), Ok(u));
        assert!(Universe::from_text(b"1 a:1\n").is_err());
    }
}
