//! The simulator in `make test`: fixed seed ranges, replay, the cost table, and proof that the
//! checker catches deliberately broken cores (docs/PROTOCOL.md rules cited per case).

use harness::sim::{self, cost, FaultKind, Guarantee, Profile, SimOptions};
use std::time::Duration;

use harness::{Defect, Durability, QuorumMode, RingMode, Time};

fn options(profile: &str, ring: RingMode) -> SimOptions {
    SimOptions { profile: profile.parse().expect("valid profile"), ring_mode: ring, ..SimOptions::default() }
}

fn assert_clean(range: std::ops::Range<u64>, options: &SimOptions) {
    let summary = sim::campaign(range, options, false);
    assert_eq!(
        summary.violations,
        0,
        "failing seeds {:?} ({} {})",
        summary.failed,
        options.profile,
        options.ring_mode.as_str()
    );
}

#[test]
fn fault_free_bidirectional_seeds_have_no_violations() {
    assert_clean(0..1000, &options("none", RingMode::Bidirectional));
}

#[test]
fn fault_free_unidirectional_seeds_have_no_violations() {
    assert_clean(0..500, &options("none", RingMode::Unidirectional));
}

#[test]
fn delay_and_late_join_seeds_have_no_violations() {
    // §2 and §4: jitter keeps links FIFO; a member that starts late is waited for.
    assert_clean(0..300, &options("delay,join", RingMode::Bidirectional));
    assert_clean(0..100, &options("delay,join", RingMode::Unidirectional));
}

#[test]
fn a_small_ring_and_a_ring_of_one_work() {
    for nodes in [1, 2, 3] {
        let o = SimOptions { nodes, ..options("none", RingMode::Bidirectional) };
        assert_clean(0..50, &o);
        let o = SimOptions { nodes, ..options("none", RingMode::Unidirectional) };
        assert_clean(0..50, &o);
    }
}

#[test]
fn the_same_seed_replays_the_same_trace() {
    let o = options("all", RingMode::Bidirectional);
    for seed in [3, 17, 99] {
        let one = sim::run(seed, &o);
        let two = sim::run(seed, &o);
        assert_eq!(one.trace_hash, two.trace_hash);
        assert_eq!(one.steps, two.steps);
        assert_eq!(one.violation, two.violation);
    }
    assert_ne!(sim::run(1, &o).trace_hash, sim::run(2, &o).trace_hash);
}

#[test]
fn every_fault_profile_has_no_violations_bidirectional() {
    // docs/PROTOCOL.md §5: every fault kind of the simulator, one at a time, then mixed.
    for kind in FaultKind::ALL {
        assert_clean(0..40, &options(kind.name(), RingMode::Bidirectional));
    }
    assert_clean(0..400, &options("all", RingMode::Bidirectional));
}

#[test]
fn every_fault_profile_has_no_violations_unidirectional() {
    assert_clean(0..300, &options("all", RingMode::Unidirectional));
}

#[test]
fn transactions_checkpoints_and_durable_restarts_under_all_faults_have_no_violations() {
    // §7 and guarantee 6: every run's workload is mostly DVM transactions, every checkpoint is
    // checked against the committed history, warm members catch up to the hot members' digest.
    // Here: one hot member (the most promotions), every submission a command, and restarts that
    // restore the simulated data directory; with fsync a total loss may lose no commit.
    let base = SimOptions {
        hot: 1,
        commands_percent: 100,
        checkpoint_every: 8,
        ..options("all", RingMode::Bidirectional)
    };
    assert_clean(0..120, &SimOptions { durability: Durability::Fsync, ..base.clone() });
    assert_clean(0..60, &SimOptions { durability: Durability::Checkpoint, ..base.clone() });
    assert_clean(
        0..40,
        &SimOptions { durability: Durability::Fsync, ..options("cold-start", RingMode::Bidirectional) },
    );
    let report = sim::run(1, &base);
    assert!(report.checkpoints > 0, "the run took and checked checkpoints");
}

#[test]
fn large_messages_stay_within_the_byte_window_under_bursts_and_faults() {
    // §3 flow control: raw payloads of up to 8 KiB against a 16 KiB byte window. Submitted in
    // one burst, they fill the window at once; every token must carry less than the window plus
    // one payload in flight (the simulator checks each one sent), and everything still commits.
    let large = |profile: &str, ring| SimOptions {
        payload_bytes: 8 << 10,
        window_bytes: 16 << 10,
        commands_percent: 20,
        ..options(profile, ring)
    };
    let burst =
        |ring| SimOptions { messages: 200, fault_phase: Duration::from_millis(200), ..large("none", ring) };
    assert_clean(0..40, &burst(RingMode::Bidirectional));
    assert_clean(0..20, &burst(RingMode::Unidirectional));
    assert_clean(0..100, &large("all", RingMode::Bidirectional));
    assert_clean(0..30, &large("all", RingMode::Unidirectional));
}

#[test]
fn faults_in_rings_of_three_and_seven_have_no_violations() {
    assert_clean(0..200, &SimOptions { nodes: 3, ..options("all", RingMode::Bidirectional) });
    assert_clean(0..100, &SimOptions { nodes: 7, ..options("all", RingMode::Bidirectional) });
}

#[test]
fn a_large_state_is_checkpointed_and_streamed_without_excluding_a_live_member() {
    // §5.3 and §7: member 1 first writes 2 MiB of state; links carry 1 GiB/s and disks write
    // 256 MiB/s, so snapshot streams and checkpoint writes take simulated time like any other
    // delay, and crashed, restarted and late members are caught up while the ring runs. No
    // live member may be excluded, and every checkpoint is checked against the history.
    let o = SimOptions {
        state_bytes: 2 << 20,
        no_live_exclusion: true,
        durability: Durability::Checkpoint,
        checkpoint_every: 256,
        ..options("crash,restart,join", RingMode::Bidirectional)
    };
    assert_clean(0..12, &o);
    let report = sim::run(3, &o);
    assert!(report.checkpoints > 0, "the run took and checked checkpoints");
}

#[test]
fn a_member_restarted_under_heavy_writes_learns_the_log_before_it_joins() {
    // §5.3 "Learning the log": a member restarted without state is streamed a 14 MB checkpoint
    // over 8 MiB/s links (1.6 s) while the others commit ~700 messages a second and checkpoint
    // every 128. By the end of the stream the log after its checkpoint is five intervals back.
    // Before the learner fetched that log outside the view, the admission had to stream the
    // whole checkpoint inside the view change, which timed out (2 token timeouts) and excluded
    // it, round after round: seeds 0..6 all failed so (found by `make bench`'s large_state figure
    // at 1 GiB, reproduced here).
    let o = SimOptions {
        nodes: 3,
        state_bytes: 24 << 20,
        link_bytes_per_s: 8 << 20,
        window_bytes: 1 << 20,
        checkpoint_every: 128,
        messages: 2000,
        fault_phase: Duration::from_secs(8),
        token_timeout: Duration::from_millis(400),
        no_live_exclusion: true,
        ..options("restart", RingMode::Bidirectional)
    };
    assert_clean(0..6, &o);
}

#[test]
fn a_cut_link_or_a_one_way_cut_settles_into_one_stable_view() {
    // §5.5: a link that failed is avoided when ordering the ring, so with the fault still in
    // place the view changes once or twice and then stays put: no flapping.
    for profile in ["partial", "one-way"] {
        let o =
            SimOptions { fault_phase: Duration::from_secs(10), ..options(profile, RingMode::Bidirectional) };
        for seed in 0..30 {
            let report = sim::run(seed, &o);
            assert!(report.violation.is_none(), "{profile} seed {seed}: {:?}", report.violation);
            let struck = report.first_fault.expect("a fault was scheduled");
            let settled = struck + Duration::from_secs(2);
            let heal = Time::ZERO + o.fault_phase;
            let early = report.views.iter().filter(|(t, _)| *t > struck && *t <= settled).count();
            let late = report.views.iter().filter(|(t, _)| *t > settled && *t < heal).count();
            assert!(early <= 3, "{profile} seed {seed}: {early} view changes while settling");
            assert_eq!(late, 0, "{profile} seed {seed}: the view kept changing: {:?}", report.views);
        }
    }
}

#[test]
fn a_crash_installs_the_next_view_without_a_timeout_at_every_ring_size() {
    // §2, §5.2: a crashed member's links close and its dials are refused, so the coordinator
    // hears from every target at once and never waits for a timer; at any ring size and whoever
    // crashes. The bound is virtual time, a tenth of the token timeout: no timer fires that soon.
    // (The real-process form of this rule is tests/it/failover_processes.rs: the transport's
    // crossed-dial wait that broke it there is not part of the simulated network.)
    for nodes in [3, 5, 9] {
        let o = SimOptions { nodes, ..options("crash", RingMode::Bidirectional) };
        let mut checked = 0;
        for seed in 0..20 {
            let report = sim::run(seed, &o);
            assert!(report.violation.is_none(), "n={nodes} seed {seed}: {:?}", report.violation);
            let struck = report.first_fault.expect("a crash was scheduled");
            if !report.views.iter().any(|(t, _)| *t < struck) {
                continue; // The crash came before the first view: a genesis, not a view change.
            }
            checked += 1;
            let (installed, _) =
                report.views.iter().find(|(t, _)| *t >= struck).expect("a view after the crash");
            let took = installed.since(struck);
            assert!(took < o.token_timeout / 10, "n={nodes} seed {seed}: the next view took {took:?}");
        }
        assert!(checked >= 12, "n={nodes}: only {checked} crashes hit an installed view");
    }
}

/// Seeds that once found a bug, each with the profile it ran under (docs/PROTOCOL.md rule).
const PINNED: &[(u64, &str, usize, &str)] = &[
    // §5.2: an Accept for a view already installed pulled members out of it, and the stale
    // accepted proposal was re-proposed forever.
    (918, "all", 5, "stale accept of an installed view"),
    // §5.3: the donor was a voter left out of the ring; it re-incarnated on the commit and the
    // joiner it served never finished, so a two-member view lost its quorum.
    (25, "all", 3, "donor left out of the ring"),
    // §5.3: the coordinator named itself donor without holding the prefix.
    (296, "all", 3, "donor without the prefix"),
    (735, "all", 3, "donor without the prefix"),
    // §5.2, §5.5: a left-out joiner reported a view id without its members and broke the quorum
    // count; penalties on a crashed incarnation's links kept its successor out.
    (1511, "all", 3, "quorum from a view without members"),
    // §5.4: a member cut off from the primary refused its stamped messages as never ordered,
    // though the successor view committed those below its cut; a client retry ordered them twice.
    (2, "all", 5, "stamped messages refused as excluded"),
    (8, "all", 5, "stamped messages refused as excluded"),
    // §2: an unwanted link closed while a view change was running; the commit sent on it was
    // lost and the ring never settled.
    (642, "all", 5, "unwanted link closed during a view change"),
];

/// §5.4 "A named incarnation stays": at 64 members (`make sim`'s third line), two dozen blank
/// members named in a proposal others had accepted were re-incarnated by the next `Prepare`
/// before they finished accepting, and the re-proposal never gathered `W` ring accepts.
#[test]
fn blank_members_named_in_an_accepted_view_keep_their_incarnation_at_64_members() {
    let o = SimOptions { nodes: 64, messages: 4, ..options("all", RingMode::Bidirectional) };
    let report = sim::run(144, &o);
    assert!(report.violation.is_none(), "seed 144 at 64 members: {:?}", report.violation);
}

/// Full-cluster restarts from durable state, with the default workload (plug-in proposals
/// among the commands) and with universe changes.
#[test]
fn full_restarts_from_durable_state_leave_no_proposal_open_and_no_member_waiting() {
    const PINNED_DURABLE: &[(u64, Durability, bool, &str)] = &[
        // §7.1: the first view after a full restart is view 1 again, so a proposal of the old view
        // 1 did not count as older and stayed open.
        (210, Durability::Checkpoint, false, "a proposal of view 1 left open by a full restart"),
        (796, Durability::Fsync, false, "a proposal of view 1 left open by a full restart"),
        // §5.9: a removed member restarted with the others kept a link up, and the lowest member
        // waited for it to say it was fresh before forming the first view.
        (32, Durability::Checkpoint, true, "a removed member's link held the first view back"),
    ];
    for &(seed, durability, member_changes, what) in PINNED_DURABLE {
        let o = SimOptions { durability, member_changes, ..options("all", RingMode::Bidirectional) };
        let report = sim::run(seed, &o);
        assert!(report.violation.is_none(), "pinned seed {seed} ({what}): {:?}", report.violation);
    }
    let o = SimOptions { durability: Durability::Checkpoint, ..options("all", RingMode::Bidirectional) };
    assert_clean(0..300, &o);
    assert_clean(0..200, &SimOptions { member_changes: true, ..o });
}

#[test]
fn pinned_seeds_stay_fixed() {
    for &(seed, profile, nodes, what) in PINNED {
        let o = SimOptions { nodes, ..options(profile, RingMode::Bidirectional) };
        let report = sim::run(seed, &o);
        assert!(report.violation.is_none(), "pinned seed {seed} ({what}): {:?}", report.violation);
    }
}

fn first_violation(defect: Defect, ring: RingMode) -> Option<(u64, Guarantee)> {
    // Jitter well above the hop latency makes copies from the two directions overtake each other.
    let o = SimOptions {
        defect,
        ring_mode: ring,
        messages: 300,
        jitter: std::time::Duration::from_micros(400),
        ..SimOptions::default()
    };
    (0..20).find_map(|seed| sim::run(seed, &o).violation.map(|v| (seed, v.guarantee)))
}

#[test]
fn the_checker_catches_out_of_order_delivery() {
    // §3 agreed delivery: seq order without gaps.
    let (_, guarantee) = first_violation(Defect::DeliverOnArrival, RingMode::Bidirectional).expect("caught");
    assert_eq!(guarantee, Guarantee::AgreedOrder);
}

#[test]
fn the_checker_catches_reused_seqs() {
    // §3 token: a seq is assigned exactly once.
    let (_, guarantee) = first_violation(Defect::ReuseSeq, RingMode::Bidirectional).expect("caught");
    // Either two members disagree on the seq (1, 6) or the duplicate seq is filtered and one
    // message never commits (7); both are caught.
    assert!(
        matches!(guarantee, Guarantee::AgreedOrder | Guarantee::LinearHistory | Guarantee::Liveness),
        "{guarantee:?}"
    );
}

#[test]
fn the_checker_catches_a_ring_that_stops_forwarding() {
    // §3 dissemination: every member receives each batch.
    let (_, guarantee) = first_violation(Defect::NoForwarding, RingMode::Bidirectional).expect("caught");
    assert_eq!(guarantee, Guarantee::Liveness);
}

/// The first violation of a defective core under `profile`, within a bounded number of seeds.
fn first_violation_under(defect: Defect, profile: &str, seeds: u64) -> Option<(u64, Guarantee)> {
    let o = SimOptions { defect, ..options(profile, RingMode::Bidirectional) };
    (0..seeds).find_map(|seed| sim::run(seed, &o).violation.map(|v| (seed, v.guarantee)))
}

#[test]
fn the_checker_catches_a_primary_without_quorum() {
    // §5.2: only a quorum of the last primary view may choose its successor.
    let (seed, guarantee) = first_violation_under(Defect::QuorumOff, "partition", 200).expect("caught");
    assert!(
        guarantee.number() > 0 && guarantee.number() != 4 && guarantee.number() != 7,
        "seed {seed}: {guarantee:?}"
    );
}

#[test]
fn the_checker_catches_recovery_without_re_sending() {
    // §5.3: a member accepts only once it holds everything up to the cut. A blank member that
    // skipped its transfer may also trip the replica's "commits in seq order" assertion (0).
    let (seed, guarantee) =
        first_violation_under(Defect::SkipRecovery, "crash,partition,pause", 200).expect("caught");
    assert!(
        matches!(
            guarantee,
            Guarantee::CoreAssertion
                | Guarantee::SafeDelivery
                | Guarantee::VirtualSynchrony
                | Guarantee::LinearHistory
                | Guarantee::Liveness
        ),
        "seed {seed}: {guarantee:?}"
    );
}

#[test]
fn the_checker_catches_duplicate_filtering_off() {
    // §5.4: after a view change a sender re-sends only what did not commit.
    let (seed, guarantee) =
        first_violation_under(Defect::ResendCommitted, "crash,partition,pause", 200).expect("caught");
    assert_eq!(guarantee, Guarantee::Integrity, "seed {seed}");
}

#[test]
fn a_glitch_then_a_crash_keeps_every_acknowledged_write_on_w_members() {
    // §5.2, §5.4: the links of two members to a third flap while every member writes, then one
    // of the three crashes. Every acknowledgement is checked against the write quorum (guarantee
    // 8) and the survivors must settle with every acknowledged write: partial connectivity, slow
    // members and sequential failures, in rings of three, five and seven.
    let glitchy = "glitch,partial,one-way,pause,delay,cascade";
    assert_clean(0..150, &SimOptions { nodes: 3, ..options(glitchy, RingMode::Bidirectional) });
    assert_clean(0..60, &SimOptions { nodes: 5, ..options(glitchy, RingMode::Bidirectional) });
    assert_clean(0..40, &SimOptions { nodes: 3, ..options("glitch", RingMode::Unidirectional) });
    assert_clean(0..20, &SimOptions { nodes: 7, ..options("glitch", RingMode::Bidirectional) });
}

#[test]
fn the_checker_catches_the_old_behaviour_without_a_replica_floor() {
    // §5.2: before the write quorum, a glitch could shrink the primary view to one member, which
    // then acknowledged writes that no other member held. The seed is pinned; the search shows
    // it is not the only one.
    let o =
        SimOptions { nodes: 3, defect: Defect::NoReplicaFloor, ..options("glitch", RingMode::Bidirectional) };
    let v = sim::run(1, &o).violation.expect("seed 1 acknowledges a write held by one member");
    assert_eq!(v.guarantee, Guarantee::WriteQuorum, "{v}");
    assert!(v.detail.contains("fewer than W = 2"), "{v}");
    let caught = (0..20)
        .filter(|&seed| sim::run(seed, &o).violation.is_some_and(|v| v.guarantee == Guarantee::WriteQuorum))
        .count();
    assert!(caught >= 5, "only {caught} of 20 seeds caught");
}

#[test]
fn dynamic_linear_voting_stops_where_the_configuration_quorum_carries_on() {
    // §5.4: after a glitch shrank the view to W = 2 of three members, a crash of one of them
    // leaves a minority of the last view: `dynamic` stops for good (an operator must force a
    // primary, §5.8), `configuration` counts the excluded member's vote and carries on.
    let base = SimOptions { nodes: 3, ..options("glitch", RingMode::Bidirectional) };
    let dynamic = SimOptions { quorum_mode: QuorumMode::Dynamic, ..base.clone() };
    let stuck = sim::run(1, &dynamic).violation.expect("dynamic linear voting stops on seed 1");
    assert_eq!(stuck.guarantee, Guarantee::Liveness, "{stuck}");
    assert!(sim::run(1, &base).violation.is_none());
    // Dynamic voting is still safe: whatever it does, it never acknowledges below W or forks.
    for seed in 0..40 {
        if let Some(v) = sim::run(seed, &dynamic).violation {
            assert_eq!(v.guarantee, Guarantee::Liveness, "seed {seed}: {v}");
        }
    }
}

#[test]
fn two_members_and_a_witness_survive_the_loss_of_either_member() {
    // §5.7: the witness votes, holds nothing and is never in the ring; W = 1 lets the survivor
    // of either member's crash carry on with the witness.
    for profile in ["crash", "restart", "link", "partition", "pause", "join", "all"] {
        let o = SimOptions { nodes: 3, witnesses: 1, ..options(profile, RingMode::Bidirectional) };
        assert_clean(0..40, &o);
    }
    // Four members and a witness: W is still two.
    assert_clean(0..40, &SimOptions { nodes: 5, witnesses: 1, ..options("all", RingMode::Bidirectional) });
}

#[test]
fn the_measured_cost_table_matches_the_ring_design() {
    // §3 dissemination: bidirectional batches reach everyone in ceil((n-1)/2) hops with n-1
    // frames; unidirectional ones in n-1 hops. The sender commits after one rotation (n hops).
    for n in [2usize, 3, 4, 5, 8, 16, 33] {
        let bi = cost::measure(n, RingMode::Bidirectional);
        let hops = (n as u64) / 2;
        assert_eq!(bi.reliable, (hops, n as u64 - 1), "n={n}");
        assert_eq!(bi.atomic, (hops, n as u64 - 1), "n={n}");
        assert_eq!(bi.agreement.0, n as u64, "n={n}");
        assert!(bi.transaction.0 < 2 * n as u64, "n={n}");
        let uni = cost::measure(n, RingMode::Unidirectional);
        assert_eq!(uni.reliable, (n as u64 - 1, n as u64 - 1), "n={n}");
        assert_eq!(uni.agreement.0, n as u64, "n={n}");
    }
}

#[test]
fn a_view_change_costs_a_few_frames_per_member_and_opens_at_most_one_connection_each() {
    // §4: the failed member's predecessor coordinates alone and dials at most 16 members at a
    // time; each member gets a prepare, an accept and a commit and answers two of them. So the
    // hops grow with n / 16 (one hop per handshake here) and the frames with 5n.
    for n in [4usize, 16, 64, 256] {
        let row = cost::measure(n, RingMode::Bidirectional);
        let (hops, frames) = row.view_change.expect("the survivors install a view");
        let n = n as u64;
        assert!(hops <= 8 + n.div_ceil(16), "n={n}: {hops} hops");
        assert!(frames <= 6 * n, "n={n}: {frames} frames");
        assert!(row.view_change_dials < n, "n={n}: {} connections", row.view_change_dials);
    }
    assert_eq!(
        cost::measure(2, RingMode::Bidirectional).view_change,
        None,
        "two members have no quorum left"
    );
}

#[test]
fn formation_a_view_change_and_a_join_open_linear_connections_at_64_256_and_1024_members() {
    // §4: a fresh member dials its three contacts and its successor; a view change or a join is
    // dialled by its coordinator alone; a stable view keeps two links per member. Seed 1 at 1024
    // members found donors that kept only 256 deferred fetches, so the other participants of the
    // view change waited until they were excluded (docs/PROTOCOL.md §5.3): pinned here.
    for n in [64usize, 256, 1024] {
        let row = sim::scale_run(n, 1);
        assert_eq!(row.violation, None, "n={n}");
        let n64 = n as u64;
        assert!(row.formation.dials_max <= 4, "n={n}: {:?}", row.formation);
        assert!(row.formation.dials_total <= 4 * n64, "n={n}: {:?}", row.formation);
        for phase in [row.view_change, row.join] {
            assert!(phase.dials_total <= n64 + 8, "n={n}: {phase:?}");
            assert!(phase.membership_frames <= 8 * n64, "n={n}: {phase:?}");
            // The simulator's token timeout is 200 ms: a few of them at most.
            assert!(phase.time <= Duration::from_millis(600), "n={n}: {phase:?}");
        }
        assert_eq!(row.links_max, 2, "n={n}: a stable view keeps the two ring links only");
    }
}

#[test]
fn sixty_four_members_under_every_fault_kind_have_no_violations() {
    // §4 and §5 at a size where the bounded dials and the contacts matter; a small workload per
    // member keeps the n × n deliveries affordable (`make sim` runs more seeds).
    for kind in FaultKind::ALL {
        let o = SimOptions { nodes: 64, messages: 4, ..options(kind.name(), RingMode::Bidirectional) };
        assert_clean(0..3, &o);
    }
}

#[test]
fn profiles_name_their_faults() {
    assert_eq!("none".parse::<Profile>().map(|p| p.kinds.len()), Ok(0));
    assert!("crash,nonsense".parse::<Profile>().is_err());
}

#[test]
fn universe_changes_interleaved_with_the_workload_have_no_violations() {
    // docs/PROTOCOL.md §5.9: a member moved, one removed (it commits its removal, leaves and
    // is restarted) and added back, another moved, at random times and members; every
    // guarantee holds and every member ends in one view of the whole universe.
    let o = SimOptions { member_changes: true, ..options("none", RingMode::Bidirectional) };
    assert_clean(0..200, &o);
    let o = SimOptions { member_changes: true, ..options("none", RingMode::Unidirectional) };
    assert_clean(0..100, &o);
}

/// Seeds where universe changes under faults once ended without liveness (docs/PROTOCOL.md
/// §5.6, §5.9), each with its profile and what it found.
const PINNED_UNIVERSE: &[(u64, &str, &str)] = &[
    // The open seeds of the first pass. 72 already passed on main 50591dc (not re-diagnosed);
    // 27 ended early like 110 below; 40 to 158 are the lost-majority runs below.
    (72, "crash", "open in the first pass"),
    (27, "all", "open in the first pass"),
    // The run was declared settled while a member's own vote on a plug-in proposal was sent but
    // not yet committed: a simulator bug, since votes carry no tag for the checker to wait on.
    (110, "all", "vote in flight at the end"),
    (431, "all", "vote in flight at the end"),
    (243, "crash", "vote in flight at the end"),
    // Two crashes that lose state while one member is out of the universe: two of four left,
    // no quorum for any protocol. The simulator's fault budget now counts the removed member.
    (40, "all", "state lost by a majority of the smaller universe"),
    (74, "all", "state lost by a majority of the smaller universe"),
    (127, "all", "state lost by a majority of the smaller universe"),
    (139, "all", "state lost by a majority of the smaller universe"),
    (158, "all", "state lost by a majority of the smaller universe"),
    // Every re-submission after the heal went to the removed member, which orders nothing until
    // it is added back. The simulator now sends the rounds through different members.
    (1039, "all", "re-submitted only through the removed member"),
    // §5.6: the removed member coordinated its own leave and exited with its Commit in flight;
    // the chosen view named a blank member that had since rejoined as a new incarnation, so it
    // could never be committed. A leaving coordinator now lingers until its Commit is out.
    (157, "all", "a leaving coordinator's commit lost with its process"),
    (1344, "all", "a leaving coordinator's commit lost with its process"),
    (1492, "all", "a leaving coordinator's commit lost with its process"),
    (15773, "all", "a blank member named in an accepted view re-incarnated, so it could never commit"),
    (18139, "all", "a learner restored a checkpoint below what it had learned"),
];

#[test]
fn pinned_universe_seeds_stay_fixed() {
    for &(seed, profile, what) in PINNED_UNIVERSE {
        let o = SimOptions { member_changes: true, ..options(profile, RingMode::Bidirectional) };
        let report = sim::run(seed, &o);
        assert!(report.violation.is_none(), "pinned seed {seed} ({profile}: {what}): {:?}", report.violation);
    }
}

#[test]
fn universe_changes_under_every_fault_kind_have_no_violations() {
    // docs/PROTOCOL.md §5.9 under every fault kind, crashes of the member being removed or added
    // and of the coordinator mid-change included (`make sim` runs 20,000 seeds).
    let o = SimOptions { member_changes: true, ..options("all", RingMode::Bidirectional) };
    assert_clean(0..300, &o);
    let o = SimOptions { member_changes: true, ..options("all", RingMode::Unidirectional) };
    assert_clean(0..100, &o);
}
