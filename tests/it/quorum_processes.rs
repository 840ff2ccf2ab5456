//! The write quorum, witnesses and forced recovery with real `harness node` processes
//! (docs/PROTOCOL.md §5.2, §5.4, §5.7, §5.8), while clients write:
//! - the links of members 2 and 3 to member 1 flap (proxies reset them again and again): no
//!   primary view has fewer than W = 2 members, so nothing is acknowledged by fewer; then member
//!   1 is killed with kill -9 and the other two carry on with every acknowledged write;
//! - two members and a witness survive kill -9 of either member with no acknowledged write
//!   lost; once the witness and a member are both gone the survivor has no quorum, forced
//!   recovery refuses at a member with an older history and succeeds at the one that holds the
//!   newest, and every acknowledged write is still there.
//!
//! Token timeout 300 ms throughout; bounds are multiples of it with slack for two shared cores.

use crate::common;
use crate::mesh;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{init_logging, run_harness, wait_until, Nodes};
use harness::RingMode;
use mesh::{check_converged, check_converged_at, status_at, wait_settled_at, Mesh, Submitters};

const TOKEN_TIMEOUT: Duration = Duration::from_millis(300);
/// Genesis of fresh processes.
const FORM_DEADLINE: Duration = Duration::from_secs(15);
/// A new view after a fault: detection plus a Paxos round, with slack.
const REFORM_DEADLINE: Duration = Duration::from_secs(15);
/// Everything back together.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(25);
/// How often the flapping links are reset, and for how many rounds.
const FLAP_EVERY: Duration = Duration::from_millis(150);
const FLAPS: usize = 20;

/// The view installs a member logged: `(member, view, ring ids)`, from lines like
/// `n2 install: view v5 members [2, 3] primary true cut 120 replicas 2 of W 2 ...`.
fn installs(log: &str) -> Vec<(String, String, Vec<u16>)> {
    log.lines()
        .filter_map(|line| {
            let at = line.find(" install: view ")?;
            let member = line[..at].rsplit(' ').next()?.to_string();
            let rest = &line[at + " install: view ".len()..];
            let (view, rest) = rest.split_once(" members [")?;
            let (ring, _) = rest.split_once(']')?;
            let ids = ring.split(", ").filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
            Some((member, view.to_string(), ids))
        })
        .collect()
}

fn max_committed(addrs: &[SocketAddr]) -> u64 {
    addrs.iter().filter_map(|&a| status_at(a)).map(|s| s.committed_upto).max().unwrap_or(0)
}

#[test]
fn flapping_links_to_one_member_never_shrink_a_view_below_w_and_its_kill_loses_nothing() {
    init_logging();
    let mut mesh = Mesh::new("quorum-flap", 3, TOKEN_TIMEOUT);
    mesh.start_all();
    let submitters = Submitters::start(&mesh.endpoints());
    let (genesis, took) = mesh.wait_settled(&mesh.ids(), 0, FORM_DEADLINE);
    eprintln!("flap: genesis view {genesis} of three committing after {took:?}");
    // §5.5: every reset closes the links 1-2 and 1-3, on both proxies of each pair.
    for _ in 0..FLAPS {
        mesh.reset_links_of(1);
        std::thread::sleep(FLAP_EVERY);
    }
    let acked_while_flapping = submitters.acks().len();
    eprintln!("flap: {acked_while_flapping} writes acknowledged so far; kill -9 n1");
    let killed_at = Instant::now();
    mesh.kill9(1);
    let survivors = [2u16, 3];
    let addrs: Vec<SocketAddr> = survivors.iter().map(|&id| mesh.addrs[usize::from(id) - 1]).collect();
    let before = max_committed(&addrs);
    let (view, _) = mesh.wait_settled(&survivors, before, REFORM_DEADLINE);
    eprintln!("flap: n2 and n3 committing again in view {view}, {:?} after the kill", killed_at.elapsed());
    let acks = submitters.stop();
    let through_n1 = acks.iter().filter(|a| a.node == 1).count();
    check_converged(&mesh, &survivors, &acks, CONVERGE_DEADLINE);
    eprintln!("flap: n2 and n3 hold all {} acknowledged writes ({through_n1} through n1)", acks.len());
    assert!(through_n1 > 0, "n1 acknowledged nothing: the scenario did not run");

    // W = 2 (§5.2): every primary view any member installed had at least two members, and every
    // commit is safe at every member of its view (§3), so no write was acknowledged by fewer.
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(mesh.log_dir()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        lines.extend(text.lines().filter(|l| l.contains(" install: view ")).map(str::to_string));
    }
    lines.sort_by_key(|l| l.split(' ').next().map(str::to_string));
    eprintln!("flap: the views installed, as the members logged them:");
    for line in &lines {
        eprintln!("  {line}");
    }
    let views = installs(&lines.join("\n"));
    assert!(views.len() >= 3, "too few installs logged: {lines:?}");
    for (member, view, ring) in &views {
        assert!(ring.len() >= 2, "{member} installed {view} with members {ring:?}: fewer than W = 2");
    }
}

/// Starts `ids` and waits until member `ids[0]` is in a committing primary view whose ring is
/// exactly `ring`.
fn wait_for_ring(nodes: &Nodes, ring: &[u16], min_committed: u64) -> u64 {
    let addrs: Vec<SocketAddr> = ring.iter().map(|&id| nodes.addr(id)).collect();
    let (view, took) = wait_settled_at(&addrs, min_committed, REFORM_DEADLINE);
    eprintln!("witness: view {view} of {ring:?} committing after {took:?}");
    view
}

/// Runs `harness force-primary` against member `id`; returns (exit code, stdout, stderr). A
/// forced view change that another interrupted is retried (bounded).
fn force_primary(nodes: &Nodes, id: u16, confirm: bool) -> (i32, String, String) {
    let cluster = nodes.addr(id).to_string();
    let mut args = vec!["force-primary", "--cluster", cluster.as_str(), "--timeout", "10000"];
    if confirm {
        args.push("--yes");
    }
    let mut last = (0, String::new(), String::new());
    for _ in 0..5 {
        let output = run_harness(&args, Duration::from_secs(20));
        last = (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        if !last.2.contains("interrupted") {
            break;
        }
        std::thread::sleep(TOKEN_TIMEOUT);
    }
    eprintln!(
        "witness: force-primary at n{id}{}: exit {}\n  {}{}",
        if confirm { " --yes" } else { "" },
        last.0,
        last.1,
        last.2
    );
    last
}

#[test]
fn two_members_and_a_witness_survive_kill_9_of_either_and_forced_recovery_refuses_older_history() {
    init_logging();
    let mut nodes = Nodes::new("witness", 3, RingMode::Bidirectional);
    nodes.token_timeout = Some(TOKEN_TIMEOUT);
    nodes.flags = vec!["--witness".into(), "3".into()];
    nodes.rust_log = Some("info");
    for id in 1..=3 {
        nodes.start(id);
    }
    let (a1, a2) = (nodes.addr(1), nodes.addr(2));
    let data = [(1u16, a1), (2u16, a2)];
    let submitters = Submitters::start(&data);
    let (view, _) = wait_settled_at(&[a1, a2], 0, FORM_DEADLINE);
    let witness = status_at(nodes.addr(3)).map(|s| (s.role, s.primary));
    eprintln!("witness: genesis view {view} of members 1 and 2; the witness answers {witness:?}");
    assert_eq!(witness, Some((harness::wire::StandbyRole::Witness, false)));

    // §5.7: kill -9 either member; the other and the witness are a quorum, W = 1.
    nodes.kill(1);
    wait_for_ring(&nodes, &[2], max_committed(&[a2]));
    nodes.start(1);
    wait_for_ring(&nodes, &[1, 2], max_committed(&[a2]));
    nodes.kill(2);
    wait_for_ring(&nodes, &[1], max_committed(&[a1]));
    nodes.start(2);
    wait_for_ring(&nodes, &[1, 2], max_committed(&[a1]));
    check_converged_at(&[a1, a2], &submitters.acks(), CONVERGE_DEADLINE);
    eprintln!("witness: both kills survived with all {} acknowledged writes", submitters.acks().len());

    // The witness and member 2 are lost: member 1 alone is one vote of three, no quorum.
    nodes.kill(3);
    nodes.kill(2);
    wait_until("n1 to leave its primary view", Duration::from_millis(50), 1_000, REFORM_DEADLINE, || {
        status_at(a1).is_some_and(|s| !s.primary)
    });
    // Member 2 comes back as a new process with nothing: still no quorum (it forgot its votes).
    nodes.start(2);
    std::thread::sleep(TOKEN_TIMEOUT * 4);
    assert!(status_at(a1).is_some_and(|s| !s.primary), "n1 became primary without a quorum");
    let committed_before = max_committed(&[a1]);

    // §5.8: refused at member 2, which holds an older history than the reachable member 1.
    let (code, _, stderr) = force_primary(&nodes, 2, true);
    assert_eq!(code, 1, "force-primary at n2 was not refused: {stderr}");
    assert!(stderr.contains("newer history") || stderr.contains("newer primary"), "{stderr}");
    assert!(status_at(a2).is_some_and(|s| !s.primary));
    // A dry run at member 1 says what it would do and changes nothing.
    let (code, stdout, _) = force_primary(&nodes, 1, false);
    assert_eq!(code, 0);
    assert!(stdout.contains("would form") && stdout.contains("may be lost"), "{stdout}");
    assert!(status_at(a1).is_some_and(|s| !s.primary));
    // Member 1 holds the newest history: it forms the primary, and both commit again.
    let (code, stdout, stderr) = force_primary(&nodes, 1, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("forced primary") && stdout.contains("declared lost"), "{stdout}");
    wait_for_ring(&nodes, &[1, 2], committed_before);
    let acks = submitters.stop();
    let statuses = check_converged_at(&[a1, a2], &acks, CONVERGE_DEADLINE);
    eprintln!(
        "witness: forced view {} holds all {} acknowledged writes (committed {})",
        statuses[0].view,
        acks.len(),
        statuses[0].committed_upto
    );
    let log = std::fs::read_to_string(nodes.log(1)).unwrap_or_default();
    let forced: Vec<&str> = log.lines().filter(|l| l.contains("force")).collect();
    eprintln!("witness: n1 logged:\n  {}", forced.join("\n  "));
    assert!(forced.iter().any(|l| l.contains("ERROR") && l.contains("forced primary")), "not logged");
    // The witness comes back and votes again once a view change names its new process.
    nodes.start(3);
    wait_until("the witness to answer", Duration::from_millis(50), 400, REFORM_DEADLINE, || {
        status_at(nodes.addr(3)).is_some()
    });
}
