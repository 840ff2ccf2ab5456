//! A member's metrics: the counters and gauges an operator graphs and alerts on, as samples a
//! member reports in its status (docs/PROTOCOL.md §8), rendered here in the Prometheus text
//! exposition format (`harness metrics`, `--listen-metrics`) and as JSON (`status --json`).
//!
//! The catalog below is the one list of families: name, type, unit scale and help. A member
//! sends only names, label values and integers, so the wire stays small and a client that does
//! not know a family (a newer member in a rolling upgrade) still prints it, untyped.

use std::fmt::Write;

use crate::json::Object;

/// Every family's name starts with this.
pub const PREFIX: &str = "harness_";
/// Most samples one status carries (the wire decoder refuses more).
pub const SAMPLES_MAX: usize = 256;

/// One reading: a family, its label value (empty: the family has no label) and an integer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The family, without `PREFIX`.
    pub name: String,
    /// The value of the family's label (`Family::label`), or empty.
    pub label: String,
    /// The value in the family's integer unit (see `Family::scale`).
    pub value: u64,
}

impl Sample {
    /// A sample of a family without a label.
    pub fn new(name: &str, value: u64) -> Sample {
        Sample { name: name.to_string(), label: String::new(), value }
    }

    /// A sample of a labelled family.
    pub fn labelled(name: &str, label: &str, value: u64) -> Sample {
        Sample { name: name.to_string(), label: label.to_string(), value }
    }
}

/// Prometheus metric types used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only grows while the process runs.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A family this client does not know.
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

/// One family of the catalog.
#[derive(Clone, Copy, Debug)]
pub struct Family {
    /// Name without `PREFIX`.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// The sample's integer is the value times `scale` (1e6 for seconds sent as microseconds).
    pub scale: u64,
    /// The label's name, for labelled families.
    pub label: Option<&'static str>,
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, scale: 1, label: None, help }
}

/// Every family a member reports, in the order they are printed.
pub const CATALOG: &[Family] = &[
    family("view", Kind::Gauge, "The installed view's number (0: none)."),
    family("primary", Kind::Gauge, "1 while the installed view is primary."),
    Family {
        label: Some("cause"),
        ..family("view_changes_total", Kind::Counter, "Views installed here, by the cause this member recorded (retry: it joined a change another member started).")
    },
    family("replicas", Kind::Gauge, "Members in the view that hold state (docs/PROTOCOL.md 5.2)."),
    family("min_replicas", Kind::Gauge, "The write quorum W the view keeps."),
    family("configured_members", Kind::Gauge, "Members of the configuration that hold state."),
    family("token_rotations_total", Kind::Counter, "Token visits seen; rate() gives rotations/s."),
    family("delivered_total", Kind::Counter, "Messages delivered in agreed order by this process."),
    family("committed_seq", Kind::Gauge, "The committed prefix of the history."),
    family("revision", Kind::Gauge, "State-changing commands applied."),
    family("links_up", Kind::Gauge, "Peer links up (the ring neighbours in a stable view)."),
    family("links_dialled_total", Kind::Counter, "Peer connections this process dialled."),
    family(
        "links_accepted_total",
        Kind::Counter,
        "Peer links other members dialled that completed their handshake.",
    ),
    family("connections_accepted_total", Kind::Counter, "Connections accepted (peers and clients)."),
    Family {
        label: Some("cause"),
        ..family(
            "refused_total",
            Kind::Counter,
            "Connections refused or closed, by cause (docs/PROTOCOL.md 2.2).",
        )
    },
    Family {
        label: Some("link"),
        ..family("read_bytes_total", Kind::Counter, "Bytes read, by what the connection was then: peer link, client, or not yet proven.")
    },
    Family {
        label: Some("link"),
        ..family("written_bytes_total", Kind::Counter, "Bytes written, by what the connection was then: peer link, client, or not yet proven.")
    },
    Family {
        label: Some("peer"),
        ..family("link_read_bytes_total", Kind::Counter, "Bytes read from each peer whose link is up, since start (its links over time).")
    },
    Family {
        label: Some("peer"),
        ..family("link_written_bytes_total", Kind::Counter, "Bytes written to each peer whose link is up, since start (its links over time).")
    },
    family("busy_replies_total", Kind::Counter, "Client requests answered busy."),
    family("link_pushbacks_total", Kind::Counter, "Times a link's unsent bytes passed their maximum."),
    Family {
        label: Some("queue"),
        ..family("queue_bytes", Kind::Gauge, "Payload bytes waiting in a queue (docs/PROTOCOL.md 2.2).")
    },
    family("state_bytes", Kind::Gauge, "Bytes of the replicated state's canonical encoding."),
    family("last_checkpoint_seq", Kind::Gauge, "The seq of the last checkpoint (0: none)."),
    Family {
        scale: 1_000_000,
        ..family("checkpoint_write_seconds", Kind::Gauge, "How long the last checkpoint took to write.")
    },
    Family {
        scale: 1_000_000,
        ..family("transfer_seconds", Kind::Gauge, "How long the last state transfer received took.")
    },
    family("transfer_bytes", Kind::Gauge, "Bytes of the last state transfer received."),
    Family {
        scale: 1_000_000,
        ..family(
            "max_step_seconds",
            Kind::Gauge,
            "The longest protocol step since start (docs/PROTOCOL.md 5.1).",
        )
    },
    family("resident_memory_bytes", Kind::Gauge, "The process's resident set size."),
    family("universe_epoch", Kind::Gauge, "Universe changes committed so far (docs/PROTOCOL.md 5.9)."),
    Family {
        label: Some("member"),
        ..family(
            "universe_change",
            Kind::Gauge,
            "A universe change the view's quorum does not reflect yet: 1 added and not yet admitted, 2 removed and still counted (docs/PROTOCOL.md 5.9).",
        )
    },
];

/// The catalog entry of `name`, if this client knows it.
pub fn find(name: &str) -> Option<&'static Family> {
    CATALOG.iter().find(|f| f.name == name)
}

/// The families of `samples` in catalog order, then unknown ones in their order of appearance.
fn families(members: &[(u16, &[Sample])]) -> Vec<(String, Option<&'static Family>)> {
    let mut names: Vec<(String, Option<&'static Family>)> = Vec::new();
    for family in CATALOG {
        if members.iter().any(|(_, samples)| samples.iter().any(|s| s.name == family.name)) {
            names.push((family.name.to_string(), Some(family)));
        }
    }
    for (_, samples) in members {
        for sample in samples.iter() {
            if find(&sample.name).is_none() && !names.iter().any(|(n, _)| *n == sample.name) {
                names.push((sample.name.clone(), None));
            }
        }
    }
    names
}

/// `value` in the family's unit: an integer, or a decimal for a scaled one.
fn number(value: u64, scale: u64) -> String {
    if scale == 1 {
        value.to_string()
    } else {
        format!("{}", value as f64 / scale as f64)
    }
}

/// A label value escaped as the exposition format asks (backslash, quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Whether `name` is a valid metric or label name (`[a-zA-Z_][a-zA-Z0-9_]*`); a sample of a
/// newer member with another name is skipped rather than printed as a broken line.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The Prometheus text exposition format (version 0.0.4) of every member's samples, each line
/// labelled `member="ID"`: one `# HELP` and `# TYPE` per family, then its samples.
pub fn render_prometheus(members: &[(u16, &[Sample])]) -> String {
    let mut text = String::new();
    for (name, family) in families(members) {
        if !valid_name(&name) {
            continue;
        }
        let (kind, help, scale, label) = match family {
            Some(f) => (f.kind, f.help, f.scale, f.label.unwrap_or("label")),
            None => (Kind::Untyped, "Reported by a member of another version.", 1, "label"),
        };
        let _ = writeln!(text, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(text, "# TYPE {PREFIX}{name} {}", kind.as_str());
        for (member, samples) in members {
            for sample in samples.iter().filter(|s| s.name == name) {
                let extra = if sample.label.is_empty() {
                    String::new()
                } else {
                    format!(",{label}=\"{}\"", escape(&sample.label))
                };
                let value = number(sample.value, scale);
                let _ = writeln!(text, "{PREFIX}{name}{{member=\"{member}\"{extra}}} {value}");
            }
        }
    }
    text
}

/// One member's samples as a JSON object: `name: value`, or `name: {label: value, ...}` for a
/// labelled family; scaled families as decimals, like the text format.
pub fn render_json(samples: &[Sample]) -> String {
    let members = [(0u16, samples)];
    let mut object = Object::new();
    for (name, family) in families(&members) {
        let scale = family.map_or(1, |f| f.scale);
        let of_family: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
        if of_family.iter().all(|s| s.label.is_empty()) {
            let value = of_family.last().map_or(0, |s| s.value);
            object = object.raw(&name, &number(value, scale));
        } else {
            let mut inner = Object::new();
            for sample in of_family {
                inner = inner.raw(&sample.label, &number(sample.value, scale));
            }
            object = object.raw(&name, &inner.finish());
        }
    }
    object.finish()
}

/// This process's resident set size in bytes, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // 4 KiB pages: the size on every platform this runs on (x86-64, aarch64 Linux defaults).
    pages * 4096
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_help_type_and_labelled_samples() {
        let one = vec![
            Sample::new("view", 4),
            Sample::labelled("refused_total", "wrong_key", 2),
            Sample::new("max_step_seconds", 1500),
            Sample::new("from_the_future", 9),
        ];
        let two = vec![Sample::new("view", 4), Sample::new("bad name", 1)];
        let text = render_prometheus(&[(1, &one), (2, &two)]);
        assert_eq!(
            text,
            "# HELP harness_view The installed view's number (0: none).\n\
             # TYPE harness_view gauge\n\
             harness_view{member=\"1\"} 4\n\
             harness_view{member=\"2\"} 4\n\
             # HELP harness_refused_total Connections refused or closed, by cause (docs/PROTOCOL.md 2.2).\n\
             # TYPE harness_refused_total counter\n\
             harness_refused_total{member=\"1\",cause=\"wrong_key\"} 2\n\
             # HELP harness_max_step_seconds The longest protocol step since start (docs/PROTOCOL.md 5.1).\n\
             # TYPE harness_max_step_seconds gauge\n\
             harness_max_step_seconds{member=\"1\"} 0.0015\n\
             # HELP harness_from_the_future Reported by a member of another version.\n\
             # TYPE harness_from_the_future untyped\n\
             harness_from_the_future{member=\"1\"} 9\n"
        );
        assert_eq!(
            render_json(&one),
            "{\"view\":4,\"refused_total\":{\"wrong_key\":2},\"max_step_seconds\":0.0015,\"from_the_future\":9}"
        );
    }

    #[test]
    fn catalog_names_are_valid_and_unique() {
        for (i, family) in CATALOG.iter().enumerate() {
            assert!(valid_name(family.name), "{}", family.name);
            assert!(!family.help.contains('\n'), "{}", family.name);
            assert!(CATALOG[..i].iter().all(|f| f.name != family.name), "{} twice", family.name);
            assert_eq!(family.kind == Kind::Counter, family.name.ends_with("_total"), "{}", family.name);
        }
    }
}
