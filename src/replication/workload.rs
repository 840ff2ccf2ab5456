//! Random DVM commands for the simulator's workload and the state machine's tests: a small key
//! space, so that guards, transactions and registry commands interact (docs/PROTOCOL.md §7).

use super::command::{Action, Check, Compare, Guard, MemberStatus, Op, Role};
use crate::ids::NodeId;
use crate::rng::Rng;

/// A random valid action.
pub(crate) fn random_action(rng: &mut Rng) -> Action {
    let key = |rng: &mut Rng| format!("k{}", rng.below(12)).into_bytes();
    let value = |rng: &mut Rng| format!("v{}", rng.below(1000)).into_bytes();
    let op = |rng: &mut Rng| match rng.below(4) {
        0 => Op::Put { key: key(rng), value: value(rng) },
        1 => Op::Delete { key: key(rng) },
        2 => Op::Get { key: key(rng) },
        _ => Op::Range { prefix: b"k1".to_vec(), limit: rng.below(4) as u32 },
    };
    match rng.below(10) {
        0..=2 => Action::Put { key: key(rng), value: value(rng) },
        3 => Action::Delete { key: key(rng) },
        4 => Action::DeleteRange { prefix: format!("k{}", rng.below(3)).into_bytes() },
        5 | 6 => {
            let check = match rng.below(5) {
                0 => Check::ValueEquals(value(rng)),
                1 => Check::Version(Compare::Less, rng.below(4)),
                2 => Check::ModRevision(Compare::Greater, rng.below(20)),
                3 => Check::Exists,
                _ => Check::Missing,
            };
            let then = (0..rng.below(4)).map(|_| op(rng)).collect();
            let otherwise = (0..rng.below(3)).map(|_| op(rng)).collect();
            Action::Txn { guards: vec![Guard { key: key(rng), check }], then, otherwise }
        }
        7 => Action::RegisterMember {
            id: NodeId(rng.range(1, 4) as u16),
            host: format!("node{}", rng.below(4)),
            role: if rng.chance(1, 2) { Role::Hot } else { Role::Warm },
            attributes: vec![("rack".into(), format!("r{}", rng.below(3)))],
        },
        8 => Action::SetMemberStatus { id: NodeId(rng.range(1, 4) as u16), status: MemberStatus::Down },
        _ => {
            Action::LoadPlugin { name: format!("p{}", rng.below(3)), member: NodeId(rng.range(1, 4) as u16) }
        }
    }
}
