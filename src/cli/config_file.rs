//! `harness node --config FILE`: every node flag as a `key = value` line, so a site keeps one
//! file per cluster instead of long command lines (README "Config file").
//!
//! ```text
//! # /etc/harness/harness.conf
//! cluster-name = prod        # keys are the node flags without the dashes
//! hostfile = /etc/harness/hosts
//! key-file = /etc/harness/key
//! encrypt = true              # switches take true or false
//! ```
//! Blank lines and lines starting with `#` are skipped; ` #` starts a comment after a value; a
//! value may be wrapped in double quotes (to keep a `#` or edge spaces). A flag given on the
//! command line wins over the file. Every problem, found here or by the flag's own parsing
//! later, names the file and the line. Pure functions of the text, hence unit-tested.

use super::error::CliError;
use super::flags::Given;

/// One setting of a config file, with the line it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Setting {
    /// The flag it sets, as the node declares it; `value` is `None` for a switch set to true.
    pub given: Given,
    /// Its line number, from 1.
    pub line: usize,
}

/// Parses a config file's `text` against the node's `valued` flags and `switches`. A switch
/// set to `false` yields no setting (as if absent). `config` itself is refused: one file only.
pub fn parse_config(
    text: &str,
    valued: &[&'static str],
    switches: &[&'static str],
) -> Result<Vec<Setting>, (usize, String)> {
    let mut settings: Vec<Setting> = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, rest)) = trimmed.split_once('=') else {
            return Err((line, format!("{trimmed:?} is not KEY = VALUE")));
        };
        let key = key.trim();
        let value = unquote(rest).map_err(|problem| (line, format!("{key}: {problem}")))?;
        let key = key.strip_prefix("--").unwrap_or(key);
        if key == "config" {
            return Err((line, "a config file cannot name another (config)".to_string()));
        }
        let given = if let Some(&flag) = valued.iter().find(|f| **f == key) {
            if value.is_empty() {
                return Err((line, format!("{key} has no value")));
            }
            Some(Given { flag, value: Some(value) })
        } else if let Some(&flag) = switches.iter().find(|f| **f == key) {
            match value.as_str() {
                "true" | "yes" | "on" => Some(Given { flag, value: None }),
                "false" | "no" | "off" => None,
                _ => return Err((line, format!("{key} is a switch: true or false, not {value:?}"))),
            }
        } else {
            return Err((
                line,
                format!("unknown key {key:?} (keys are harness node's flags without the dashes)"),
            ));
        };
        let flag = given.as_ref().map_or(key, |g| g.flag);
        if seen.contains(&flag) {
            return Err((line, format!("{key} is set twice")));
        }
        if let Some(&flag) = valued.iter().chain(switches).find(|f| **f == key) {
            seen.push(flag);
        }
        if let Some(given) = given {
            settings.push(Setting { given, line });
        }
    }
    Ok(settings)
}

/// The value after `=`: trimmed, a ` #` comment cut off, or the inside of double quotes.
fn unquote(rest: &str) -> Result<String, String> {
    let rest = rest.trim();
    if let Some(inner) = rest.strip_prefix('"') {
        let Some((value, after)) = inner.split_once('"') else {
            return Err("the closing quote is missing".to_string());
        };
        let after = after.trim();
        if !after.is_empty() && !after.starts_with('#') {
            return Err(format!("unexpected {after:?} after the quoted value"));
        }
        return Ok(value.to_string());
    }
    let value = match rest.find(" #").or_else(|| rest.find("\t#")) {
        Some(at) => &rest[..at],
        None => rest,
    };
    Ok(value.trim().to_string())
}

/// Merges `settings` under the command line's `given`: a flag on the command line wins. Returns
/// the merged flags and, for each, the config line it came from (`None`: the command line).
pub fn merge(given: Vec<Given>, settings: Vec<Setting>) -> (Vec<Given>, Vec<Option<usize>>) {
    let mut lines: Vec<Option<usize>> = given.iter().map(|_| None).collect();
    let mut merged = given;
    for setting in settings {
        if !merged.iter().any(|g| g.flag == setting.given.flag) {
            merged.push(setting.given);
            lines.push(Some(setting.line));
        }
    }
    (merged, lines)
}

/// The flag an error is about, so an error caused by a config line can name that line.
pub fn flag_of(error: &CliError) -> Option<&'static str> {
    match error {
        CliError::BadValue { flag, .. } | CliError::MissingValue { flag } | CliError::Repeated { flag } => {
            Some(flag)
        }
        CliError::Needs { flag, .. } => Some(flag),
        CliError::Conflict { second, .. } => Some(second),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUED: &[&str] = &["id", "hot", "cluster-name", "data-dir"];
    const SWITCHES: &[&str] = &["encrypt", "slurm"];

    fn parse(text: &str) -> Result<Vec<Setting>, (usize, String)> {
        parse_config(text, VALUED, SWITCHES)
    }

    #[test]
    fn keys_values_comments_quotes_and_switches() {
        let text = "# a comment\n\n  id = 3\nhot=2   # two hot\n--cluster-name = \"prod # a\"\n\
                    encrypt = true\nslurm = false\n";
        let settings = parse(text).unwrap();
        let pairs: Vec<(&str, Option<&str>, usize)> =
            settings.iter().map(|s| (s.given.flag, s.given.value.as_deref(), s.line)).collect();
        assert_eq!(
            pairs,
            vec![
                ("id", Some("3"), 3),
                ("hot", Some("2"), 4),
                ("cluster-name", Some("prod # a"), 5),
                ("encrypt", None, 6)
            ]
        );
    }

    #[test]
    fn every_bad_line_is_named() {
        for (text, expected) in [
            ("id = 1\nhot 2\n", (2, "\"hot 2\" is not KEY = VALUE")),
            (
                "\n\nport = 7100\n",
                (3, "unknown key \"port\" (keys are harness node's flags without the dashes)"),
            ),
            ("id = 1\nid = 2\n", (2, "id is set twice")),
            ("hot =\n", (1, "hot has no value")),
            ("encrypt = maybe\n", (1, "encrypt is a switch: true or false, not \"maybe\"")),
            ("encrypt = false\nencrypt = true\n", (2, "encrypt is set twice")),
            ("config = other.conf\n", (1, "a config file cannot name another (config)")),
            ("data-dir = \"/a\n", (1, "data-dir: the closing quote is missing")),
            ("data-dir = \"/a\" b\n", (1, "data-dir: unexpected \"b\" after the quoted value")),
        ] {
            assert_eq!(parse(text).unwrap_err(), (expected.0, expected.1.to_string()), "{text:?}");
        }
    }

    #[test]
    fn the_command_line_wins() {
        let cli = vec![Given { flag: "hot", value: Some("3".into()) }];
        let settings = parse("hot = 1\nid = 4\n").unwrap();
        let (merged, lines) = merge(cli, settings);
        assert_eq!(
            merged,
            vec![
                Given { flag: "hot", value: Some("3".into()) },
                Given { flag: "id", value: Some("4".into()) }
            ]
        );
        assert_eq!(lines, vec![None, Some(2)]);
    }
}
