//! Records, statistics and output: every figure becomes flat records that print as markdown
//! tables and serialise as one JSON array.
//!
//! A repeated measurement is kept as median, min and max (the machine is noisy, so one run
//! means little); in JSON the median keeps the plain field name that scripts rely on
//! (`p50_us`) and the spread goes into `p50_us_min` and `p50_us_max`, so records stay flat.

use std::fmt::Write as _;

use crate::json::Object;

/// One field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A label: ring mode, fault kind.
    Text(String),
    /// A count or size.
    Int(u64),
    /// A single measured number.
    Num(f64),
    /// A repeated measurement.
    Stat(Stat),
}

/// Median, min and max over repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The smallest repetition.
    pub min: f64,
    /// The largest repetition.
    pub max: f64,
}

impl Stat {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Stat> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 { sorted[mid] } else { (sorted[mid - 1] + sorted[mid]) / 2.0 };
        Some(Stat { median, min: sorted[0], max: sorted[sorted.len() - 1] })
    }
}

/// The exact `q`-quantile (0 < q <= 1) of ascending `sorted` by nearest rank; 0 when empty.
/// Exact over a sorted Vec rather than a histogram: a few hundred thousand samples at most.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One flat record: a figure name and its fields, in the order they print.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The figure: `commit_latency`, `throughput`, ...
    pub figure: &'static str,
    /// Its fields.
    pub fields: Vec<(&'static str, Value)>,
}

impl Record {
    /// A record with no fields yet.
    pub fn new(figure: &'static str) -> Record {
        Record { figure, fields: Vec::new() }
    }

    /// Adds a label.
    pub fn text(mut self, name: &'static str, value: &str) -> Record {
        self.fields.push((name, Value::Text(value.to_string())));
        self
    }

    /// Adds a count.
    pub fn int(mut self, name: &'static str, value: u64) -> Record {
        self.fields.push((name, Value::Int(value)));
        self
    }

    /// Adds a single number.
    pub fn num(mut self, name: &'static str, value: f64) -> Record {
        self.fields.push((name, Value::Num(value)));
        self
    }

    /// Adds the summary of repeated samples; nothing when there are none.
    pub fn stat(mut self, name: &'static str, samples: &[f64]) -> Record {
        if let Some(stat) = Stat::of(samples) {
            self.fields.push((name, Value::Stat(stat)));
        }
        self
    }

    /// The median (or single number) of `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(n, _)| *n == name).and_then(|(_, v)| match v {
            Value::Int(i) => Some(*i as f64),
            Value::Num(x) => Some(*x),
            Value::Stat(s) => Some(s.median),
            Value::Text(_) => None,
        })
    }

    /// The label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| *n == name).and_then(|(_, v)| match v {
            Value::Text(t) => Some(t.as_str()),
            _ => None,
        })
    }

    /// The record as one flat JSON object.
    pub fn json(&self) -> String {
        let mut out = Object::new().str("figure", self.figure);
        for (name, value) in &self.fields {
            out = match value {
                Value::Text(t) => out.str(name, t),
                Value::Int(i) => out.uint(name, *i),
                Value::Num(x) => out.fixed(name, *x, 3),
                Value::Stat(s) => out.fixed(name, s.median, 3).fixed(&format!("{name}_min"), s.min, 3).fixed(
                    &format!("{name}_max"),
                    s.max,
                    3,
                ),
            };
        }
        out.finish()
    }
}

/// Every record as a JSON array, one record a line.
pub fn json_array(records: &[Record]) -> String {
    let lines: Vec<String> = records.iter().map(Record::json).collect();
    format!("[\n{}\n]\n", lines.join(",\n"))
}

/// The records of `figure` as a markdown table, columns in order of first appearance;
/// repeated measurements print as `median [min–max]`.
pub fn markdown(records: &[Record], figure: &str) -> String {
    let rows: Vec<&Record> = records.iter().filter(|r| r.figure == figure).collect();
    let mut columns: Vec<&'static str> = Vec::new();
    for (name, _) in rows.iter().flat_map(|r| r.fields.iter()) {
        if !columns.contains(name) {
            columns.push(name);
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut out = format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| row.fields.iter().find(|(n, _)| n == c).map_or(String::from("–"), |(_, v)| cell(v)))
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::Text(t) => t.clone(),
        Value::Int(i) => i.to_string(),
        Value::Num(x) => short(*x),
        Value::Stat(s) => format!("{} [{}–{}]", short(s.median), short(s.min), short(s.max)),
    }
}

/// Three significant figures or whole numbers, whichever is more readable.
fn short(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let sorted: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 500.0);
        assert_eq!(percentile(&sorted, 0.99), 990.0);
        assert_eq!(percentile(&sorted, 0.999), 999.0);
        assert_eq!(percentile(&[7.0], 0.999), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn stats_take_the_median_and_the_spread() {
        assert_eq!(Stat::of(&[3.0, 1.0, 2.0]), Some(Stat { median: 2.0, min: 1.0, max: 3.0 }));
        assert_eq!(Stat::of(&[4.0, 1.0]).unwrap().median, 2.5);
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn records_are_flat_json_and_markdown_rows() {
        let record = Record::new("commit_latency")
            .int("n", 3)
            .text("ring", "bi")
            .stat("p50_us", &[10.0, 30.0, 20.0])
            .num("ratio", f64::NAN);
        assert_eq!(
            record.json(),
            "{\"figure\":\"commit_latency\",\"n\":3,\"ring\":\"bi\",\"p50_us\":20.000,\
             \"p50_us_min\":10.000,\"p50_us_max\":30.000,\"ratio\":null}"
        );
        assert_eq!(record.get("p50_us"), Some(20.0));
        assert_eq!(record.label("ring"), Some("bi"));
        let table = markdown(std::slice::from_ref(&record), "commit_latency");
        assert!(table.starts_with("| n | ring | p50_us | ratio |\n|---|---|---|---|\n"), "{table}");
        assert!(table.contains("| 3 | bi | 20.0 [10.0–30.0] |"), "{table}");
        assert!(json_array(&[]).starts_with('['));
        let escaped = Record::new("x").text("label", "a\"b\\c\nd");
        let parsed: serde_json::Value = serde_json::from_str(&json_array(&[record, escaped])).unwrap();
        assert_eq!(parsed[0]["ratio"], serde_json::Value::Null);
        assert_eq!(parsed[1]["label"], "a\"b\\c\nd");
    }
}
