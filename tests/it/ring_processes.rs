//! Five real `harness node` processes on loopback, fed through clients from every node at once:
//! every node must deliver every message exactly once in the same order (equal delivery
//! digests over equal counts), in both ring modes and whatever the start order
//! (docs/PROTOCOL.md §3 agreed and safe delivery, §4 startup in any order).

use crate::common;

use std::time::Duration;

use common::{init_logging, submit, wait_for_total, Nodes};
use harness::RingMode;

const NODES: u16 = 5;
/// Per node, so 10,000 in all.
const MESSAGES: u64 = 2_000;
const SUBMIT_DEADLINE: Duration = Duration::from_secs(120);
const DELIVERY_DEADLINE: Duration = Duration::from_secs(60);

/// Starts the ring in `order`, with `late` started `delay` after the others while the clients
/// are already submitting; then checks the story's ending.
fn ring_converges(name: &str, ring: RingMode, order: &[u16], late: Option<(u16, Duration)>) {
    init_logging();
    let mut nodes = Nodes::new(name, usize::from(NODES), ring);
    for &id in order {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    let mut seqs: Vec<u64> = std::thread::scope(|scope| {
        let submitters: Vec<_> = (1..=NODES)
            .map(|id| {
                let addr = addrs[usize::from(id) - 1];
                scope.spawn(move || submit(addr, id, MESSAGES, SUBMIT_DEADLINE))
            })
            .collect();
        if let Some((id, delay)) = late {
            std::thread::sleep(delay);
            nodes.start(id);
        }
        submitters.into_iter().flat_map(|s| s.join().expect("a submitter panicked")).collect()
    });
    let total = MESSAGES * u64::from(NODES);
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=total).collect::<Vec<_>>(),
        "every submission acknowledged once, at a distinct seq"
    );

    let statuses = wait_for_total(&addrs, total, DELIVERY_DEADLINE);
    for (i, status) in statuses.iter().enumerate() {
        assert_eq!(status.delivered, total, "n{} delivered count", i + 1);
        assert_eq!(status.delivery_digest, statuses[0].delivery_digest, "n{} delivery order differs", i + 1);
        assert_eq!(status.state_digest, statuses[0].state_digest, "n{} history differs", i + 1);
    }
    for (id, status) in nodes.stop_all() {
        let log = nodes.log(id.0);
        assert!(
            status.is_some_and(|s| s.success()),
            "{id} did not leave cleanly ({status:?}); see {}",
            log.display()
        );
    }
}

#[test]
fn five_nodes_bidirectional_deliver_ten_thousand_messages_in_one_order() {
    ring_converges("bi", RingMode::Bidirectional, &[1, 2, 3, 4, 5], None);
}

#[test]
fn five_nodes_unidirectional_deliver_ten_thousand_messages_in_one_order() {
    ring_converges("uni", RingMode::Unidirectional, &[1, 2, 3, 4, 5], None);
}

#[test]
fn shuffled_start_with_one_node_two_seconds_late_still_converges() {
    // A fixed shuffle keeps the test reproducible; node 3 sits mid-ring, so both of its
    // neighbours must wait and reconnect with backoff.
    ring_converges("late", RingMode::Bidirectional, &[4, 1, 5, 2], Some((3, Duration::from_secs(2))));
}
