//! `DemoReport`: what `harness demo` found, as a human summary and as one JSON object.
//!
//! `verified` is true only when no check of the demo or of the delivery-log audit failed, so the
//! exit code, the summary's last verdict and the JSON agree by construction.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::ids::{NodeId, RingMode};
use crate::json::{self, Object};
use crate::wire::NodeStatus;

/// One member killed during the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kill {
    /// The member.
    pub id: NodeId,
    /// Seconds after the submitters started.
    pub at: f64,
    /// Whether it was started again.
    pub restarted: bool,
}

/// What the demo found.
#[derive(Clone, Debug)]
pub struct DemoReport {
    /// Nodes started.
    pub nodes: usize,
    /// Ring mode used.
    pub ring: RingMode,
    /// Messages submitted over all nodes.
    pub messages: u64,
    /// Members killed and restarted during the run.
    pub kills: Vec<Kill>,
    /// The seed that chose the victims and times (`--kill`), for the record.
    pub seed: u64,
    /// Each node's last status (`None`: it never answered).
    pub statuses: Vec<Option<NodeStatus>>,
    /// Each node's address.
    pub addrs: Vec<SocketAddr>,
    /// Everything that went wrong; empty means verified.
    pub problems: Vec<String>,
    /// Facts from the audit that break nothing.
    pub notes: Vec<String>,
    /// Wall-clock time of the whole demo.
    pub seconds: f64,
    /// Where each node's stderr and delivery log went (kept when the demo fails).
    pub log_dir: PathBuf,
    /// How many members (the lowest ids) were hot at the end.
    pub hot: usize,
}

impl DemoReport {
    /// Whether every check held.
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }

    /// The one-object JSON summary (`messages` is the total over all nodes).
    pub fn json(&self) -> String {
        let delivered = self.statuses.iter().map(|s| s.as_ref().map_or(0, |s| s.delivered).to_string());
        let digests = self
            .statuses
            .iter()
            .map(|s| json::string(&format!("{:016x}", s.as_ref().map_or(0, |s| s.delivery_digest))));
        let killed = self.kills.iter().map(|k| json::string(&k.id.to_string()));
        Object::new()
            .uint("nodes", self.nodes as u64)
            .str("ring", self.ring.as_str())
            .uint("messages", self.messages)
            .raw("delivered", &json::array(delivered))
            .raw("digests", &json::array(digests))
            .raw("killed", &json::array(killed))
            .bool("verified", self.verified())
            .fixed("seconds", self.seconds, 2)
            .finish()
    }

    /// The human summary, several lines.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "harness demo: {} nodes, ring {}, {} messages ({} per node) in {:.2} s\n",
            self.nodes,
            self.ring.as_str(),
            self.messages,
            self.messages / self.nodes.max(1) as u64,
            self.seconds
        );
        for kill in &self.kills {
            let restarted = if kill.restarted { "restarted with the same id" } else { "not restarted" };
            let _ = writeln!(
                text,
                "  killed {} (kill -9) at {:.2} s, {restarted} (seed {})",
                kill.id, kill.at, self.seed
            );
        }
        for (i, status) in self.statuses.iter().enumerate() {
            let addr = self.addrs.get(i).map_or(String::new(), SocketAddr::to_string);
            let _ = match status {
                Some(s) => writeln!(
                    text,
                    "  n{:<3} {addr:<21} delivered {:>8}  committed {:>8}  delivery digest {:016x}  state digest {:016x}",
                    i + 1,
                    s.delivered,
                    s.committed_upto,
                    s.delivery_digest,
                    s.state_digest
                ),
                None => writeln!(text, "  n{:<3} {addr:<21} no status", i + 1),
            };
        }
        if let Some(Some(first)) = self.statuses.first() {
            // The DVM revision, as the member reports it: commands that changed the state.
            let _ = writeln!(
                text,
                "  committed revision {} (committed seq {})",
                first.revision, first.committed_upto
            );
        }
        for (i, status) in self.statuses.iter().enumerate().take(self.hot) {
            if let Some(s) = status {
                let _ = writeln!(text, "  hot n{} state digest {:016x}", i + 1, s.state_digest);
            }
        }
        for note in &self.notes {
            let _ = writeln!(text, "  note: {note}");
        }
        if self.verified() && self.kills.is_empty() {
            let _ = writeln!(
                text,
                "verified: every node delivered all {} messages exactly once, in the same order",
                self.messages
            );
        } else if self.verified() {
            let _ = writeln!(
                text,
                "verified: all {} messages acknowledged once and ordered once; survivors' delivery logs \
                 identical; every node, restarted ones included, at the same commit and state digest",
                self.messages
            );
        } else {
            let _ = writeln!(text, "NOT verified:");
            for problem in &self.problems {
                let _ = writeln!(text, "  - {problem}");
            }
            let _ = writeln!(text, "node and delivery logs: {}", self.log_dir.display());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let status = |delivered, digest| {
            Some(NodeStatus {
                member: crate::ids::Member { id: NodeId(1), incarnation: 1 },
                view: crate::ids::ViewId(1),
                primary: true,
                ring: Vec::new(),
                delivered,
                committed_upto: delivered,
                state_digest: digest,
                delivery_digest: digest,
                rotations: 0,
                revision: 0,
                rotation_millihertz: 0,
                role: crate::wire::StandbyRole::Hot,
                last_checkpoint: 0,
                replicas: 1,
                configured: 1,
                min_replicas: 1,
                max_step_us: 0,
                state_bytes: 0,
                links_up: 0,
                links_dialled: 0,
                links_accepted: 0,
                version: env!("CARGO_PKG_VERSION").into(),
                metrics: Vec::new(),
            })
        };
        let mut report = DemoReport {
            nodes: 2,
            ring: RingMode::Bidirectional,
            messages: 10,
            kills: Vec::new(),
            seed: 7,
            statuses: vec![status(10, 0xab), None],
            addrs: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
            seconds: 1.234,
            log_dir: PathBuf::new(),
            hot: 0,
        };
        assert_eq!(
            report.json(),
            "{\"nodes\":2,\"ring\":\"bi\",\"messages\":10,\"delivered\":[10,0],\
             \"digests\":[\"00000000000000ab\",\"0000000000000000\"],\"killed\":[],\"verified\":true,\"seconds\":1.23}"
        );
        assert!(report.summary().contains("verified: every node delivered all 10 messages"));
        let parsed: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(parsed["digests"][0], "00000000000000ab");
        report.kills.push(Kill { id: NodeId(2), at: 0.5, restarted: true });
        assert!(report.json().contains("\"killed\":[\"n2\"]"));
        assert!(report
            .summary()
            .contains("killed n2 (kill -9) at 0.50 s, restarted with the same id (seed 7)"));
        report.problems.push("n2 differs".into());
        assert!(report.json().contains("\"verified\":false"));
        assert!(report.summary().contains("NOT verified:\n  - n2 differs"));
    }
}
