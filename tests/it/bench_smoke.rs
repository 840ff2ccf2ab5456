//! `harness-bench --quick` runs once end to end on real node processes and prints sane numbers:
//! non-zero figures and ordered percentiles. Never a timing threshold (docs/STYLE.md): the machine
//! is shared and noisy, so only shape and sanity are asserted.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BENCH: &str = env!("CARGO_BIN_EXE_harness-bench");
/// Far above the ~15 s a quick run takes, only so a hang fails instead of blocking CI.
const DEADLINE: Duration = Duration::from_secs(120);

/// The number after `"name":` in a flat JSON record.
fn field(record: &str, name: &str) -> Option<f64> {
    let key = format!("\"{name}\":");
    let rest = &record[record.find(&key)? + key.len()..];
    rest.split([',', '}']).next()?.parse().ok()
}

#[test]
fn quick_bench_completes_with_sane_numbers() {
    let dir = std::env::temp_dir().join(format!("harness-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let mut child = Command::new(BENCH)
        .args(["--quick", "--json", json.to_str().unwrap(), "--svg-dir", dir.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + DEADLINE;
    for _ in 0..100_000 {
        if !matches!(child.try_wait(), Ok(None)) || Instant::now() >= until {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "harness-bench --quick failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("### Commit latency"), "{stdout}");

    let text = std::fs::read_to_string(&json).unwrap();
    // The file is one JSON array of flat objects, each naming its figure.
    let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let parsed = parsed.as_array().unwrap();
    assert!(!parsed.is_empty() && parsed.iter().all(|r| r["figure"].is_string()), "{text}");
    let records: Vec<&str> = text.lines().filter(|l| l.contains("\"figure\"")).collect();
    let of = |figure: &str| -> Vec<&str> {
        records.iter().copied().filter(|r| r.contains(&format!("\"figure\":\"{figure}\""))).collect()
    };
    let latency = of("commit_latency");
    assert_eq!(latency.len(), 1, "{text}");
    let (p50, p99, p999) = (
        field(latency[0], "p50_us").unwrap(),
        field(latency[0], "p99_us").unwrap(),
        field(latency[0], "p999_us").unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999, "{}", latency[0]);
    let broadcast = of("broadcast_latency");
    assert_eq!(broadcast.len(), 1, "{text}");
    let at = |name: &str| field(broadcast[0], name).unwrap();
    assert!(at("p50_us") > 0.0 && at("p50_us") <= at("p99_us") && at("p99_us") <= at("p999_us"));
    // The last member delivers no earlier than the submitter, message by message.
    assert!(at("p50_us") <= at("last_p50_us") && at("last_p50_us") <= at("last_p999_us"), "{}", broadcast[0]);
    let throughput = of("throughput");
    assert_eq!(throughput.len(), 3, "one per value size: {text}");
    for record in throughput.iter().chain(&of("broadcast_throughput")) {
        let rate = field(record, "ops_per_s").or(field(record, "msgs_per_s")).unwrap();
        assert!(rate > 0.0, "{record}");
    }
    for record in &throughput {
        assert!(field(record, "cpu_s_per_1000_ops").unwrap() > 0.0, "{record}");
        assert!(field(record, "rss_kib_max").unwrap() > 0.0, "{record}");
    }
    for record in of("recovery") {
        let at = |name: &str| field(record, name).unwrap();
        assert!(at("trials") >= 3.0, "{record}");
        assert!(at("view_p50_ms") > 0.0 && at("view_p50_ms") <= at("view_max_ms"), "{record}");
        assert!(at("gap_p50_ms") > 0.0 && at("gap_p50_ms") <= at("gap_max_ms"), "{record}");
    }
    assert_eq!(of("recovery").len(), 2, "{text}");
    let jain = field(of("fairness")[0], "jain").unwrap();
    assert!(jain > 0.0 && jain <= 1.0 + 1e-9, "{jain}");
    assert!(field(of("floor")[0], "rtt_p50_us").unwrap() > 0.0);
    assert_eq!(of("floor_ratio").len(), 2, "broadcast and commit: {text}");
    assert!(of("floor_ratio").iter().all(|r| field(r, "ratio").unwrap() > 0.0), "{text}");
    assert!(field(of("idle_cpu")[0], "core_percent").unwrap() >= 0.0);
    assert!(dir.join("latency_vs_n.svg").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}
