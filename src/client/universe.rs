//! Reading and changing the universe from a client (docs/PROTOCOL.md §5.9): `harness member
//! add/remove/update`, `harness members`, and a joiner's first question to the cluster.

use super::cluster::{ClusterClient, ClusterError};
use crate::ids::NodeId;
use crate::replication::{Action, Command, MemberChange, Outcome, Session, Universe, UNIVERSE_KEY};
use crate::wire::Consistency;

/// How often a change is prepared again after another change committed first.
const CHANGE_ATTEMPTS_MAX: usize = 8;

impl ClusterClient {
    /// The committed universe, read through the ring (linearizable). Before the first change
    /// none is committed: the answering member's seed list is returned, as epoch 0.
    pub fn universe(&mut self) -> Result<Universe, ClusterError> {
        let (entry, _) = self.get(UNIVERSE_KEY.as_bytes(), Consistency::Linearizable)?;
        if let Some(entry) = entry {
            return Universe::from_text(&entry.value).map_err(|what| ClusterError::Protocol { what });
        }
        let members = self.members()?;
        Ok(Universe { epoch: 0, members: members.into_iter().map(|m| (m.id, m.addr)).collect() })
    }

    /// Commits one change on top of the universe it reads, and returns the universe it made.
    /// The change applies only on the epoch it was prepared against (compare-and-set), so when
    /// another change commits first it is prepared again; a change that finds itself already
    /// made (a retry after a lost answer) returns the universe as it is.
    pub fn change_universe(
        &mut self,
        change: MemberChange,
        address: Option<&str>,
    ) -> Result<Universe, ClusterError> {
        for _ in 0..CHANGE_ATTEMPTS_MAX {
            let current = self.universe()?;
            if already_made(&current, change, address) {
                return Ok(current);
            }
            let next =
                current.with_change(change, address).map_err(|reason| ClusterError::BadRequest { reason })?;
            let members = next.members.iter().map(|(id, addr)| (*id, addr.clone())).collect();
            let action = Action::Universe { epoch: next.epoch, change, members };
            let command = Command { session: Session::default(), action };
            match self.execute(&command, Consistency::Linearizable)?.1 {
                Outcome::Ok { .. } => return Ok(next),
                Outcome::GuardFailed { .. } => continue,
                other => {
                    return Err(ClusterError::Protocol {
                        what: format!("a universe change answered {other:?}"),
                    })
                }
            }
        }
        Err(ClusterError::Protocol {
            what: format!("{CHANGE_ATTEMPTS_MAX} other membership changes committed first; try again"),
        })
    }
}

/// Whether `universe` already is what `change` would make of it.
fn already_made(universe: &Universe, change: MemberChange, address: Option<&str>) -> bool {
    let listed = universe.members.get(&change.id()).map(String::as_str);
    match change {
        MemberChange::Add(_) | MemberChange::Update(_) => listed.is_some() && listed == address,
        MemberChange::Remove(_) => universe.epoch > 0 && listed.is_none(),
    }
}

/// The id of the member listening at `address`, if the universe lists one.
pub fn id_at(universe: &Universe, address: &str) -> Option<NodeId> {
    universe.members.iter().find(|(_, a)| a.as_str() == address).map(|(id, _)| *id)
}
