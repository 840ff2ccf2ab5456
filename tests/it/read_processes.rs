//! Linearizable reads through the read barrier on real `harness node` processes
//! (docs/PROTOCOL.md §3 read barrier, §8.1): a get sent after a put was acknowledged, to any
//! member (hot or warm), returns that put's value, also after a member is killed and the view
//! changes; members run with different idle strategies (`--idle`), which every member honours
//! by parsing and running with it.

use crate::common;

use std::time::Duration;

use common::{init_logging, wait_until, Nodes};
use harness::client::{ClusterClient, ClusterOptions};
use harness::wire::Consistency;
use harness::RingMode;

const DEADLINE: Duration = Duration::from_secs(30);
/// Put-then-get rounds before and after the kill.
const ROUNDS: usize = 60;

/// A client of member `id` alone, so the get is answered by that member.
fn client_of(nodes: &Nodes, id: u16) -> ClusterClient {
    ClusterClient::new(&[nodes.addr(id)], ClusterOptions::default()).expect("a client")
}

/// Puts through one member and gets through another, each get after the put's acknowledgement:
/// the get must return the put's value (guarantee 6: it sees every write acknowledged before it).
fn put_then_get(nodes: &Nodes, members: &[u16], round: usize) {
    let writer = members[round % members.len()];
    let reader = members[(round + 1) % members.len()];
    let key = format!("barrier/{}", round % 4);
    let value = format!("v{round}");
    client_of(nodes, writer).put(key.as_bytes(), value.as_bytes()).expect("put");
    let (entry, _) = client_of(nodes, reader).get(key.as_bytes(), Consistency::Linearizable).expect("get");
    let got = entry.map(|e| String::from_utf8_lossy(&e.value).into_owned());
    assert_eq!(
        got.as_deref(),
        Some(value.as_str()),
        "round {round}: n{reader} after a put through n{writer}"
    );
}

#[test]
fn a_linearizable_get_sees_the_put_acknowledged_before_it_at_every_member_and_after_a_kill() {
    init_logging();
    let mut nodes = Nodes::new("read-barrier", 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(Duration::from_millis(400));
    // One member spins and yields before parking, one yields only, one parks at once.
    nodes.member_flags.insert(1, vec!["--idle".into(), "50,200".into()]);
    nodes.member_flags.insert(2, vec!["--idle".into(), "0,100".into()]);
    nodes.member_flags.insert(3, vec!["--idle".into(), "park".into()]);
    for id in 1..=3 {
        nodes.start(id);
    }
    let addrs = nodes.addrs.clone();
    wait_until("a primary view of three", Duration::from_millis(50), 2000, DEADLINE, || {
        addrs.iter().all(|addr| common::status(*addr).is_some_and(|s| s.primary && s.ring.len() == 3))
    });
    // Member 3 is a warm standby (two hot members by default): it answers from its state too.
    for round in 0..ROUNDS {
        put_then_get(&nodes, &[1, 2, 3], round);
    }
    nodes.kill(2);
    let survivors = [nodes.addr(1), nodes.addr(3)];
    wait_until("a primary view of two", Duration::from_millis(50), 2000, DEADLINE, || {
        survivors.iter().all(|addr| common::status(*addr).is_some_and(|s| s.primary && s.ring.len() == 2))
    });
    for round in ROUNDS..2 * ROUNDS {
        put_then_get(&nodes, &[1, 3], round);
    }
    nodes.stop_all();
}
