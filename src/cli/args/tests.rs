//! Unit tests of `harness node` and `harness demo` argument parsing: one story per mistake an
//! operator makes, each checked against the one line they will read.

use std::io;

use super::*;

fn strings(args: &str) -> Vec<String> {
    args.split_whitespace().map(str::to_string).collect()
}

fn no_files(_: &Path) -> io::Result<String> {
    Err(io::Error::new(io::ErrorKind::NotFound, "no such file"))
}

fn node(args: &str) -> Result<NodeArgs, CliError> {
    parse_node_args(&strings(args), no_files)
}

fn node_error(args: &str) -> String {
    node(args).unwrap_err().to_string()
}

const PEERS: &str = "--peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103";

#[test]
fn a_full_command_line_becomes_a_node_config() {
    let args =
        node(&format!(
            "--id 2 --listen 0.0.0.0:7102 {PEERS} --ring uni --token-timeout 500 --cluster-name a --delivery-log d.log"
        ))
        .unwrap();
    assert_eq!(args.delivery_log, Some(std::path::PathBuf::from("d.log")));
    assert_eq!(args.id, NodeId(2));
    assert_eq!(args.listen, "0.0.0.0:7102".parse().unwrap());
    assert_eq!(args.peers.len(), 3);
    let config = args.node_config(42).unwrap();
    assert_eq!(config.core.me, Member { id: NodeId(2), incarnation: 42 });
    assert_eq!(config.core.universe, vec![NodeId(1), NodeId(2), NodeId(3)]);
    assert_eq!(config.core.ring_mode, RingMode::Unidirectional);
    assert_eq!(config.core.token_timeout, Duration::from_millis(500));
    assert_eq!(config.core.cluster, cluster_hash("a"));
    assert_ne!(cluster_hash("a"), cluster_hash("b"));
}

#[test]
fn listen_defaults_to_the_own_peer_entry_and_ring_to_bi() {
    let args = node(&format!("--id 3 {PEERS}")).unwrap();
    assert_eq!(args.listen, "127.0.0.1:7103".parse().unwrap());
    assert_eq!(args.ring, RingMode::Bidirectional);
    assert_eq!(args.cluster_name, DEFAULT_CLUSTER);
    assert_eq!(args.delivery_log, None);
    // A short token timeout pulls the idle hold down with it instead of failing validation.
    let short = node(&format!("--id 3 {PEERS} --token-timeout 40")).unwrap();
    assert!(short.node_config(1).is_ok());
}

#[test]
fn the_idle_strategy_is_a_flag_that_reaches_the_node() {
    use crate::idle::IdleStrategy;
    assert_eq!(node(&format!("--id 1 {PEERS}")).unwrap().idle, IdleStrategy::DEFAULT);
    assert_eq!(node(&format!("--id 1 {PEERS} --idle park")).unwrap().idle, IdleStrategy::PARK);
    let spin = node(&format!("--id 1 {PEERS} --idle 20,100")).unwrap().idle;
    assert_eq!(spin, IdleStrategy { spin: Duration::from_micros(20), yield_for: Duration::from_micros(100) });
    assert_eq!(
        node_error(&format!("--id 1 {PEERS} --idle spin")),
        "bad --idle \"spin\": must be park or SPIN,YIELD in microseconds (each at most 10000)"
    );
    assert!(node_error(&format!("--id 1 {PEERS} --idle 20000,0")).starts_with("bad --idle"));
}

#[test]
fn every_mistake_names_its_flag() {
    assert_eq!(node_error(PEERS), "--id is required");
    assert_eq!(node_error("--id 1"), "--peers or --hostfile (or --slurm) is required");
    assert_eq!(node_error(&format!("--slurm {PEERS}")), "--slurm and --peers exclude each other");
    assert_eq!(node_error("--id 1 --slurm"), "--slurm and --id exclude each other");
    assert_eq!(
        node_error(&format!("--id 1 {PEERS} --port 7300")),
        "bad --port \"7300\": is only used with --slurm"
    );
    assert!(node_error("--slurm").contains("SLURM_JOB_NODELIST is not set"), "{}", node_error("--slurm"));
    assert_eq!(node_error(&format!("--id x {PEERS}")), "bad --id \"x\": must be a number in 1..=65535");
    assert_eq!(node_error(&format!("--id 0 {PEERS}")), "bad --id \"0\": must be a number in 1..=65535");
    assert_eq!(node_error(&format!("--id 9 {PEERS}")), "bad --id \"9\": is not in the peer list (ids 1,2,3)");
    assert_eq!(node_error(&format!("--id 1 {PEERS} --ring both")), "bad --ring \"both\": must be bi or uni");
    assert_eq!(
        node_error(&format!("--id 1 {PEERS} --hostfile hosts")),
        "--peers and --hostfile exclude each other"
    );
    assert!(node_error(&format!("--id 1 {PEERS} --listen 127.0.0.1:x")).starts_with("bad --listen"));
    assert!(node_error(&format!("--id 1 {PEERS} --token-timeout 5")).starts_with("bad --token-timeout"));
    assert_eq!(
        node_error(&format!("--id 1 {PEERS} --cluster-name=")),
        "bad --cluster-name \"\": must not be empty"
    );
    // The old spelling is refused with the new one, whichever form it takes.
    for old in ["--cluster a", "--cluster=a", "--cluster"] {
        assert_eq!(
            node_error(&format!("--id 1 {PEERS} {old}")),
            "--cluster is not a flag of `harness node`: name the cluster with --cluster-name NAME"
        );
    }
    assert!(node_error(&format!("--id 1 {PEERS} --delivery-log=")).starts_with("bad --delivery-log"));
    assert!(node_error(&format!("--id 1 {PEERS} --verbose")).starts_with("unknown flag --verbose"));
}

#[test]
fn peer_lists_refuse_repeats_and_nonsense() {
    let error = |list: &str| parse_peers(list).unwrap_err().to_string();
    assert!(error("1=127.0.0.1:1,1=127.0.0.1:2").ends_with("lists id 1 twice"));
    assert!(error("1=127.0.0.1:1,2=127.0.0.1:1").ends_with("ids 1 and 2 both have 127.0.0.1:1"));
    assert!(error("1=127.0.0.1:1,127.0.0.1:2").contains("is not ID=HOST:PORT"));
    assert!(error("0=127.0.0.1:1").contains("id \"0\""));
    assert!(error("1=127.0.0.1:port").contains("id 1: port \"port\""));
    assert!(error("1=127.0.0.1:1,").contains("entry \"\""));
    assert!(error("").starts_with("bad --peers"));
}

#[test]
fn hostfile_lines_are_ids_in_order_with_comments_and_default_port() {
    let text = "# the rack\n\n10.0.0.1\n10.0.0.2:7200   # the odd one\n  \n[::1]\n";
    let peers = parse_hostfile(text).unwrap();
    let expected: Vec<(NodeId, SocketAddr)> = vec![
        (NodeId(1), "10.0.0.1:7100".parse().unwrap()),
        (NodeId(2), "10.0.0.2:7200".parse().unwrap()),
        (NodeId(3), "[::1]:7100".parse().unwrap()),
    ];
    assert_eq!(peers.into_iter().collect::<Vec<_>>(), expected);
    assert_eq!(parse_hostfile("# nothing\n").unwrap_err(), "lists no hosts");
    assert_eq!(
        parse_hostfile("10.0.0.1\n10.0.0.1\n").unwrap_err(),
        "line 2: ids 1 and 2 both have 10.0.0.1:7100"
    );
    assert!(parse_hostfile("10.0.0.1\nnot a host\n").unwrap_err().starts_with("line 2:"));
}

#[test]
fn a_hostfile_supplies_peers_and_the_listen_address() {
    let read = |path: &Path| {
        assert_eq!(path, Path::new("hosts"));
        Ok("127.0.0.1:7201\n127.0.0.1:7202\n".to_string())
    };
    let args = parse_node_args(&strings("--id 2 --hostfile hosts"), read).unwrap();
    assert_eq!(args.listen, "127.0.0.1:7202".parse().unwrap());
    assert_eq!(args.peers.len(), 2);
    let error = node_error("--id 1 --hostfile hosts");
    assert_eq!(error, "bad --hostfile \"hosts\": no such file");
    let empty = parse_node_args(&strings("--id 1 --hostfile hosts"), |_| Ok(String::new())).unwrap_err();
    assert_eq!(empty.to_string(), "bad --hostfile \"hosts\": lists no hosts");
}

#[test]
fn demo_flags_have_defaults_and_bounds() {
    let demo = parse_demo_args(&[]).unwrap();
    assert_eq!(
        demo,
        DemoArgs { nodes: 5, messages: 2000, ring: RingMode::Bidirectional, json: false, kill: 0, hot: 2 }
    );
    let demo = parse_demo_args(&strings("--kill 2 --nodes 3 --messages 10 --ring uni --json")).unwrap();
    assert_eq!(
        demo,
        DemoArgs { nodes: 3, messages: 10, ring: RingMode::Unidirectional, json: true, kill: 2, hot: 2 }
    );
    assert_eq!(
        parse_demo_args(&strings("--nodes 3 --kill 3")).unwrap_err().to_string(),
        "bad --kill \"3\": must be a number in 0..=2"
    );
    assert!(parse_demo_args(&strings("--nodes 65")).unwrap_err().to_string().starts_with("bad --nodes"));
    assert!(parse_demo_args(&strings("--messages 0")).unwrap_err().to_string().starts_with("bad --messages"));
    assert!(parse_demo_args(&strings("--id 1")).unwrap_err().to_string().starts_with("unknown flag --id"));
}

#[test]
fn key_flags_name_themselves() {
    assert_eq!(node_error(&format!("--id 1 {PEERS} --encrypt")), "--encrypt needs --key-file");
    assert_eq!(node_error(&format!("--id 1 {PEERS} --key-file=")), "bad --key-file \"\": must not be empty");
    assert!(node_error(&format!("--id 1 {PEERS} --key-file /nonexistent/k")).starts_with("bad --key-file"));
    let args = node(&format!("--id 1 {PEERS}")).unwrap();
    assert_eq!((args.key.is_none(), args.encrypt, args.auth().is_none()), (true, false, true));
    assert_eq!(parse_keygen_args(&strings("--key-file k")).unwrap(), PathBuf::from("k"));
    assert_eq!(parse_keygen_args(&[]).unwrap_err().to_string(), "--key-file is required");
}

#[test]
fn self_add_needs_a_joiner_and_the_key() {
    let joiner = "--listen 127.0.0.1:7109 --join 127.0.0.1:7101";
    assert!(
        node_error(&format!("--id 1 {PEERS} --self-add")).starts_with("--self-add needs --join or --slurm")
    );
    assert!(node_error(&format!("{joiner} --self-add")).starts_with("--self-add needs --key-file"));
    let restart = "--id 9 --listen 127.0.0.1:7109 --data-dir d --durability checkpoint --self-add";
    assert!(node_error(restart).starts_with("--self-add needs --join or --slurm"));
    let no_id = "--listen 127.0.0.1:7109 --key-file k --self-add";
    assert!(node_error(no_id).starts_with("--self-add needs --join or --slurm"));
    let args = node(joiner).unwrap();
    assert!(!args.self_add);
}

#[test]
fn slurm_gives_the_id_and_the_peers() {
    let env = |name: &str| match name {
        "SLURM_JOB_NODELIST" => Some("127.0.0.[1-4]".to_string()),
        "SLURM_PROCID" => Some("1".to_string()),
        _ => None,
    };
    let args = parse_node_args_with_env(&strings("--slurm --port 7300"), no_files, &env).unwrap();
    assert_eq!(args.id, NodeId(2));
    assert_eq!(args.listen, "127.0.0.2:7300".parse().unwrap());
    assert_eq!(args.peers.len(), 4);
    let bad = |name: &str| match name {
        "SLURM_JOB_NODELIST" => Some("node[01-".to_string()),
        "SLURM_PROCID" => Some("0".to_string()),
        _ => None,
    };
    let error = parse_node_args_with_env(&strings("--slurm"), no_files, &bad).unwrap_err().to_string();
    assert_eq!(error, "--slurm: SLURM_JOB_NODELIST: \"node[01-\" opens a bracket it does not close");
}

/// Parses `args` with `conf` as the only readable file, `node.conf`.
fn node_with_config(args: &str, conf: &'static str) -> Result<NodeArgs, CliError> {
    parse_node_args(&strings(args), move |path: &Path| {
        if path == Path::new("node.conf") {
            Ok(conf.to_string())
        } else {
            no_files(path)
        }
    })
}

#[test]
fn a_config_file_sets_flags_and_the_command_line_wins() {
    let conf = "# ring of three\nid = 2\npeers = 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103\n\
                ring = uni\nhot = 1 # one hot member\ncluster-name = \"lab a\"\n";
    let args = node_with_config("--config node.conf --ring bi", conf).unwrap();
    assert_eq!((args.id, args.peers.len(), args.state.hot), (NodeId(2), 3, 1));
    assert_eq!((args.ring, args.cluster_name.as_str()), (RingMode::Bidirectional, "lab a"));
    assert_eq!(
        node_with_config("--id 3 --config=node.conf", conf).unwrap().id,
        NodeId(3),
        "the command line's --id wins"
    );
}

#[test]
fn config_file_errors_name_the_file_and_the_line() {
    let error = |args: &str, conf: &'static str| node_with_config(args, conf).unwrap_err().to_string();
    assert_eq!(
        error("--config node.conf", "id = 1\n\nring: bi\n"),
        "node.conf line 3: \"ring: bi\" is not KEY = VALUE"
    );
    assert_eq!(
        error(&format!("--config node.conf {PEERS}"), "id = 1\nhot = lots\n"),
        "node.conf line 2: bad --hot \"lots\": must be a number in 1..=65535"
    );
    assert_eq!(
        error(&format!("--config node.conf {PEERS}"), "id = 1\nencrypt = true\n"),
        "node.conf line 2: --encrypt needs --key-file"
    );
    // A bad value on the command line is still the command line's.
    assert_eq!(
        error(&format!("--config node.conf {PEERS} --hot 0"), "id = 1\n"),
        node_error(&format!("--id 1 {PEERS} --hot 0"))
    );
    assert_eq!(error("--config missing.conf", ""), "bad --config \"missing.conf\": no such file");
}
