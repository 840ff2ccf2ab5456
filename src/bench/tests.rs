//! The flags of `harness-bench`: defaults, narrowing, and one-line errors naming the flag.

use super::*;

fn parse(args: &str) -> Result<Option<BenchArgs>, String> {
    let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    parse_args(&args)
}

#[test]
fn defaults_run_everything_and_quick_narrows() {
    let full = parse("").unwrap().unwrap();
    assert_eq!(full.nodes, vec![3, 5, 7, 9]);
    assert_eq!(full.rings.len(), 2);
    assert_eq!(full.figures, FIGURES.to_vec());
    assert_eq!(full.svg_dir, PathBuf::from("target/bench"));
    assert_eq!(full.scale_nodes, vec![16, 64, 128, 256]);
    let quick = parse("--quick --json out.json").unwrap().unwrap();
    assert!(quick.quick);
    assert_eq!(quick.nodes, vec![3]);
    assert_eq!(quick.rings, vec![RingMode::Bidirectional]);
    assert_eq!(quick.json, Some(PathBuf::from("out.json")));
    assert_eq!(quick.scale_nodes, vec![16]);
    assert_eq!((full.state_mib, quick.state_mib), (2048, 16));
    assert_eq!(parse("--scale-nodes 32,512").unwrap().unwrap().scale_nodes, vec![32, 512]);
    let narrowed = parse("--nodes=3,5 --ring uni --figures latency,idle").unwrap().unwrap();
    assert_eq!(narrowed.nodes, vec![3, 5]);
    assert_eq!(narrowed.rings, vec![RingMode::Unidirectional]);
    assert_eq!(narrowed.figures, vec!["latency", "idle"]);
    assert_eq!(parse("--quick --help").unwrap(), None);
}

#[test]
fn bad_flags_are_one_line_naming_the_flag() {
    let check = |args: &str, expected: &str| {
        let error = parse(args).unwrap_err();
        assert!(error.contains(expected), "{args}: {error}");
        assert!(!error.contains('\n'));
    };
    check("--nodes 1", "--nodes");
    check("--nodes 3,x", "--nodes");
    check("--ring sideways", "--ring");
    check("--figures speed", "--figures");
    check("--scale-nodes 2", "--scale-nodes");
    check("--scale-nodes 2000", "--scale-nodes");
    check("--state-mib 0", "--state-mib");
    check("--json", "--json needs a value");
    check("--nodes 3 --nodes 5", "--nodes is given twice");
    check("--fast", "unknown flag --fast");
    check("quick", "unexpected argument");
    check("--quick=yes", "--quick");
}

#[test]
fn plans_meet_the_issue_sizes() {
    let full = Plan::full();
    assert!(full.latency_requests >= 5000);
    assert_eq!(full.floor_round_trips, 20_000);
    assert_eq!(full.idle, Duration::from_secs(10));
    assert!(full.repetitions >= 3);
    assert!(Plan::quick().repetitions >= 2);
}

#[test]
fn tables_have_headings_for_present_figures_only() {
    let records = vec![Record::new("floor").stat("rtt_p50_us", &[20.0, 22.0])];
    let text = tables(&records);
    assert!(text.starts_with("### Loopback floor"));
    assert!(!text.contains("Commit latency"));
}
