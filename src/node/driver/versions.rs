//! The protocol version each up link and client connection chose in its handshake, so the
//! protocol thread encodes what it sends to each in a version the other end reads
//! (docs/PROTOCOL.md §2.3). Only versions below this member's highest are kept.

use std::collections::BTreeMap;

use crate::ids::NodeId;
use crate::transport::ClientId;

/// Versions by link and by client connection.
#[derive(Debug)]
pub(super) struct ConnVersions {
    /// This member's highest version: what every other connection uses.
    highest: u8,
    links: BTreeMap<NodeId, u8>,
    clients: BTreeMap<ClientId, u8>,
}

impl ConnVersions {
    pub(super) fn new(highest: u8) -> ConnVersions {
        ConnVersions { highest, links: BTreeMap::new(), clients: BTreeMap::new() }
    }

    /// A link to `peer` came up in `version`; it replaces any earlier link's.
    pub(super) fn link_up(&mut self, peer: NodeId, version: u8) {
        if version < self.highest {
            self.links.insert(peer, version);
        } else {
            self.links.remove(&peer);
        }
    }

    /// A request came on `client`'s connection, whose version is `version`.
    pub(super) fn client_request(&mut self, client: ClientId, version: u8) {
        if version < self.highest {
            self.clients.insert(client, version);
        }
    }

    pub(super) fn client_gone(&mut self, client: ClientId) {
        self.clients.remove(&client);
    }

    /// The version to encode frames to `peer` in.
    pub(super) fn of_link(&self, peer: NodeId) -> u8 {
        self.links.get(&peer).copied().unwrap_or(self.highest)
    }

    /// The version to encode replies to `client` in.
    pub(super) fn of_client(&self, client: ClientId) -> u8 {
        self.clients.get(&client).copied().unwrap_or(self.highest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_or_client_of_an_older_version_is_sent_that_version_until_replaced_or_gone() {
        let mut versions = ConnVersions::new(2);
        assert_eq!(versions.of_link(NodeId(3)), 2);
        versions.link_up(NodeId(3), 1);
        assert_eq!(versions.of_link(NodeId(3)), 1);
        // The member restarted upgraded: its new link chose version 2.
        versions.link_up(NodeId(3), 2);
        assert_eq!(versions.of_link(NodeId(3)), 2);
        versions.client_request(ClientId(7), 1);
        assert_eq!((versions.of_client(ClientId(7)), versions.of_client(ClientId(8))), (1, 2));
        versions.client_gone(ClientId(7));
        assert_eq!(versions.of_client(ClientId(7)), 2);
    }
}
