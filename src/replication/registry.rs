//! The DVM member registry and plug-in registry: who is in the DVM and what is loaded where.
//!
//! Both are replicated state changed only by committed commands, so every hot member knows the
//! same members, roles, statuses and plug-in placements at the same revision (guarantee 6). Maps
//! are ordered (persistent `OrdMap`s, so that freezing the state copies nothing) and iteration,
//! snapshots and digests follow one order everywhere.

use std::collections::{BTreeMap, BTreeSet};

use imbl::OrdMap;

use super::command::{MemberStatus, Role};
use crate::ids::NodeId;

/// What the registry holds about one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// Where it runs.
    pub host: String,
    /// Its standby role.
    pub role: Role,
    /// Free-form name/value pairs.
    pub attributes: BTreeMap<String, String>,
    /// Up, down or left.
    pub status: MemberStatus,
    /// The revision of its (latest) registration.
    pub joined_at: u64,
}

/// What a registry command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// The registry changed: the command takes a new revision.
    Changed,
    /// The registry already was as asked: the revision stays.
    Unchanged,
    /// The named member or placement does not exist.
    NotFound,
}

/// Members by id and, per plug-in, the members it is loaded on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Registry {
    /// By member id.
    pub(crate) members: OrdMap<NodeId, MemberRecord>,
    /// By plug-in name; a plug-in loaded nowhere has no entry, so the encoding is canonical.
    pub(crate) plugins: OrdMap<String, BTreeSet<NodeId>>,
}

impl Registry {
    /// Adds `id` or replaces its record; a re-registered member (a restart) joins anew at
    /// `revision`, up, and keeps its plug-in placements until they are unloaded.
    pub(crate) fn register(
        &mut self,
        id: NodeId,
        host: &str,
        role: Role,
        attributes: &[(String, String)],
        revision: u64,
    ) -> Change {
        let record = MemberRecord {
            host: host.to_owned(),
            role,
            attributes: attributes.iter().cloned().collect(),
            status: MemberStatus::Up,
            joined_at: revision,
        };
        self.members.insert(id, record);
        Change::Changed
    }

    /// Sets a registered member's status.
    pub(crate) fn set_status(&mut self, id: NodeId, status: MemberStatus) -> Change {
        match self.members.get_mut(&id) {
            None => Change::NotFound,
            Some(record) if record.status == status => Change::Unchanged,
            Some(record) => {
                record.status = status;
                Change::Changed
            }
        }
    }

    /// Records plug-in `name` as loaded on `member`, which must be registered.
    pub(crate) fn load(&mut self, name: &str, member: NodeId) -> Change {
        if !self.members.contains_key(&member) {
            return Change::NotFound;
        }
        if self.plugins.entry(name.to_owned()).or_default().insert(member) {
            Change::Changed
        } else {
            Change::Unchanged
        }
    }

    /// Records plug-in `name` as loaded on `member` by a committed agreement: every voter was a
    /// member of the view, registered or not (docs/PROTOCOL.md §7.1).
    pub(crate) fn load_agreed(&mut self, name: &str, member: NodeId) {
        self.plugins.entry(name.to_owned()).or_default().insert(member);
    }

    /// Records plug-in `name` as no longer loaded on `member`.
    pub(crate) fn unload(&mut self, name: &str, member: NodeId) -> Change {
        let Some(members) = self.plugins.get_mut(name) else { return Change::NotFound };
        if !members.remove(&member) {
            return Change::NotFound;
        }
        if members.is_empty() {
            self.plugins.remove(name);
        }
        Change::Changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(ids: &[u16]) -> Registry {
        let mut registry = Registry::default();
        for &id in ids {
            let attributes = [("cores".to_owned(), "64".to_owned())];
            assert_eq!(registry.register(NodeId(id), "host", Role::Hot, &attributes, 1), Change::Changed);
        }
        registry
    }

    #[test]
    fn a_registered_member_is_up_and_re_registering_replaces_its_record() {
        let mut registry = registered(&[1]);
        assert_eq!(registry.set_status(NodeId(1), MemberStatus::Down), Change::Changed);
        assert_eq!(registry.set_status(NodeId(1), MemberStatus::Down), Change::Unchanged);
        assert_eq!(registry.set_status(NodeId(2), MemberStatus::Down), Change::NotFound);
        registry.register(NodeId(1), "other", Role::Warm, &[], 7);
        let record = &registry.members[&NodeId(1)];
        assert_eq!(
            (record.host.as_str(), record.role, record.status, record.joined_at),
            ("other", Role::Warm, MemberStatus::Up, 7)
        );
        assert!(record.attributes.is_empty());
    }

    #[test]
    fn plugins_load_only_on_registered_members_and_vanish_when_unloaded_everywhere() {
        let mut registry = registered(&[1, 2]);
        assert_eq!(registry.load("odls", NodeId(3)), Change::NotFound);
        assert_eq!(registry.load("odls", NodeId(1)), Change::Changed);
        assert_eq!(registry.load("odls", NodeId(1)), Change::Unchanged);
        assert_eq!(registry.load("odls", NodeId(2)), Change::Changed);
        assert_eq!(registry.unload("odls", NodeId(1)), Change::Changed);
        assert_eq!(registry.unload("odls", NodeId(1)), Change::NotFound);
        assert_eq!(registry.unload("ras", NodeId(1)), Change::NotFound);
        assert_eq!(registry.unload("odls", NodeId(2)), Change::Changed);
        assert!(registry.plugins.is_empty());
    }
}
