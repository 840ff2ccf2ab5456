//! The protocol thread's metrics (`crate::metrics`): read from the core, the transport's
//! counters and this thread's own records whenever a client asks for a status. Every read is a
//! field or an atomic, so a scrape costs the ring nothing it would notice (docs/PROTOCOL.md §5.1).

use std::sync::atomic::Ordering;

use super::Driver;
use crate::core::CoreStatus;
use crate::metrics::{resident_bytes, Sample};

impl Driver {
    /// This member's samples; `status` is the core's status just taken for the same report.
    pub(super) fn metrics(&mut self, status: &CoreStatus) -> Vec<Sample> {
        let counters = self.c.counters.snapshot();
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut samples = vec![
            Sample::new("view", status.view.view.0),
            Sample::new("primary", u64::from(status.view.primary)),
        ];
        for (cause, count) in self.c.core.installs_by_reason() {
            samples.push(Sample::labelled("view_changes_total", cause, count));
        }
        samples.extend([
            Sample::new("replicas", status.replicas.in_view as u64),
            Sample::new("min_replicas", status.replicas.needed as u64),
            Sample::new("configured_members", status.replicas.configured as u64),
            Sample::new("token_rotations_total", status.rotations),
            Sample::new("delivered_total", status.delivered),
            Sample::new("committed_seq", status.committed_upto),
            Sample::new("links_up", self.c.core.link_counts().0 as u64),
            Sample::new("links_dialled_total", counters.dialled),
            Sample::new("links_accepted_total", counters.links_accepted),
            Sample::new("connections_accepted_total", counters.accepted),
        ]);
        for (cause, count) in [
            ("full", counters.refused_full),
            ("evicted", counters.handshakes_evicted),
            ("handshake_failed", counters.handshakes_failed),
            ("wrong_key", counters.wrong_key),
            ("handshake_timeout", counters.handshake_timeouts),
            ("malformed", counters.malformed),
            ("forged", counters.forged),
            ("too_large", counters.too_large),
            ("stalled", counters.stalled),
            ("slow_reader", counters.slow_readers),
        ] {
            samples.push(Sample::labelled("refused_total", cause, count));
        }
        for (class, [bytes_in, bytes_out]) in crate::transport::TRAFFIC_CLASSES.iter().zip(counters.traffic) {
            samples.push(Sample::labelled("read_bytes_total", class, bytes_in));
            samples.push(Sample::labelled("written_bytes_total", class, bytes_out));
        }
        for (peer, [bytes_in, bytes_out]) in self.c.counters.link_traffic() {
            let peer = peer.0.to_string();
            samples.push(Sample::labelled("link_read_bytes_total", &peer, bytes_in));
            samples.push(Sample::labelled("link_written_bytes_total", &peer, bytes_out));
        }
        samples.push(Sample::new("universe_epoch", self.c.core.universe().epoch));
        for (id, change) in self.c.core.changes_in_progress() {
            let value = match change {
                crate::core::ChangeInProgress::Joining => 1,
                crate::core::ChangeInProgress::Leaving => 2,
            };
            samples.push(Sample::labelled("universe_change", &id.0.to_string(), value));
        }
        samples.push(Sample::new("busy_replies_total", counters.busy_replies));
        samples.push(Sample::new("link_pushbacks_total", counters.link_pushbacks));
        let deliveries = self.deliveries_queued.queued(self.c.deliveries.len());
        for (queue, bytes) in [
            ("submit", self.c.core.submit_queue_bytes()),
            ("client_requests", self.c.counters.client_bytes_queued.load(Ordering::Relaxed)),
            ("events", self.c.events_budget.held()),
            ("embedder_requests", self.c.requests_budget.held()),
            ("deliveries", deliveries),
        ] {
            samples.push(Sample::labelled("queue_bytes", queue, bytes as u64));
        }
        let transfer = self.c.core.last_transfer().unwrap_or_default();
        samples.extend([
            Sample::new("state_bytes", self.c.core.state_bytes()),
            Sample::new("last_checkpoint_seq", self.c.core.last_checkpoint()),
            Sample::new("checkpoint_write_seconds", micros(self.last_checkpoint_write)),
            Sample::new("transfer_seconds", micros(transfer.took)),
            Sample::new("transfer_bytes", transfer.bytes),
            Sample::new("max_step_seconds", micros(self.max_step)),
            Sample::new("resident_memory_bytes", resident_bytes()),
        ]);
        samples
    }
}
