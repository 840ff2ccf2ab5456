//! A history of client operations on per-key registers, as recorded by client processes, and
//! its text form (one operation a line), so that processes can hand their histories over.
//!
//! Each operation has a call time and, if its outcome is known, a return time; an operation
//! whose outcome is unknown (it timed out, or the client gave up) is *indeterminate*: it may
//! have taken effect at any time after its call, or never, so its return is open-ended
//! (Jepsen's `:info`, porcupine's infinite return time). Times are nanoseconds of one clock
//! that every recording process shares (`CLOCK_MONOTONIC`).
//!
//! ```text
//! <client> <call_ns> <return_ns|inf> put <key> <value> -> ok|?
//! <client> <call_ns> <return_ns|inf> get <key> -> <value>|nil|?
//! <client> <call_ns> <return_ns|inf> del <key> -> ok|nf|?
//! <client> <call_ns> <return_ns|inf> cas <key> <expected|nil> <new> -> ok|fail:<value>|fail:nil|?
//! ```
//! Keys and values are printable words (no spaces); `nil` is no value (a missing key).

use std::fmt;

/// What an operation asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Set the key.
    Put {
        /// The value written.
        value: String,
    },
    /// Read the key.
    Get,
    /// Remove the key.
    Delete,
    /// Set the key to `new` if it holds `expected` (`None`: if it is missing).
    Cas {
        /// The value required.
        expected: Option<String>,
        /// The value written if it holds.
        new: String,
    },
}

/// What an operation returned, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    /// A put, or a delete of an existing key, or a successful compare-and-set.
    Ok,
    /// A read: the value, or `None` for a missing key.
    Value(Option<String>),
    /// A delete of a missing key.
    NotFound,
    /// A compare-and-set whose comparison failed, with the value it found.
    Failed(Option<String>),
    /// Unknown: the operation may or may not have taken effect.
    Unknown,
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The client (process) that ran it; a client runs one operation at a time.
    pub client: u64,
    /// The key it touched.
    pub key: String,
    /// What it asked.
    pub call: Call,
    /// What it got.
    pub ret: Ret,
    /// When it was called (ns).
    pub call_ns: u64,
    /// When it returned (ns); `None` for an indeterminate operation.
    pub return_ns: Option<u64>,
}

impl Operation {
    /// Whether its outcome is unknown.
    pub fn indeterminate(&self) -> bool {
        self.ret == Ret::Unknown
    }

    /// Whether it can change the register.
    pub fn is_write(&self) -> bool {
        !matches!(self.call, Call::Get)
    }
}

fn word(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("nil")
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ret = match self.return_ns {
            Some(ns) => ns.to_string(),
            None => "inf".to_string(),
        };
        write!(f, "{} {} {ret} ", self.client, self.call_ns)?;
        match &self.call {
            Call::Put { value } => write!(f, "put {} {value}", self.key)?,
            Call::Get => write!(f, "get {}", self.key)?,
            Call::Delete => write!(f, "del {}", self.key)?,
            Call::Cas { expected, new } => write!(f, "cas {} {} {new}", self.key, word(expected))?,
        }
        let result = match &self.ret {
            Ret::Ok => "ok".to_string(),
            Ret::Value(v) => word(v).to_string(),
            Ret::NotFound => "nf".to_string(),
            Ret::Failed(v) => format!("fail:{}", word(v)),
            Ret::Unknown => "?".to_string(),
        };
        write!(f, " -> {result}")
    }
}

fn value_of(text: &str) -> Option<String> {
    (text != "nil").then(|| text.to_string())
}

/// A history line that is not one of the forms above.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line, cut to 120 characters.
    pub line: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad history line ({}): {:?}", self.why, self.line)
    }
}

impl std::error::Error for ParseError {}

/// Parses one line of the text form.
pub fn parse_line(line: &str) -> Result<Operation, ParseError> {
    let bad = |why| ParseError { line: line.chars().take(120).collect(), why };
    let (left, result) = line.split_once(" -> ").ok_or_else(|| bad("no ' -> '"))?;
    let words: Vec<&str> = left.split_whitespace().collect();
    if words.len() < 5 {
        return Err(bad("too few words"));
    }
    let client = words[0].parse().map_err(|_| bad("client"))?;
    let call_ns = words[1].parse().map_err(|_| bad("call time"))?;
    let return_ns = match words[2] {
        "inf" => None,
        ns => Some(ns.parse().map_err(|_| bad("return time"))?),
    };
    let key = words[4].to_string();
    let result = result.trim();
    let (call, ret) = match (words[3], &words[5..]) {
        ("put", [value]) => {
            let ret = match result {
                "ok" => Ret::Ok,
                "?" => Ret::Unknown,
                _ => return Err(bad("put result")),
            };
            (Call::Put { value: value.to_string() }, ret)
        }
        ("get", []) => {
            let ret = if result == "?" { Ret::Unknown } else { Ret::Value(value_of(result)) };
            (Call::Get, ret)
        }
        ("del", []) => {
            let ret = match result {
                "ok" => Ret::Ok,
                "nf" => Ret::NotFound,
                "?" => Ret::Unknown,
                _ => return Err(bad("del result")),
            };
            (Call::Delete, ret)
        }
        ("cas", [expected, new]) => {
            let ret = match result {
                "ok" => Ret::Ok,
                "?" => Ret::Unknown,
                other => match other.strip_prefix("fail:") {
                    Some(found) => Ret::Failed(value_of(found)),
                    None => return Err(bad("cas result")),
                },
            };
            (Call::Cas { expected: value_of(expected), new: new.to_string() }, ret)
        }
        _ => return Err(bad("unknown operation or wrong arguments")),
    };
    if return_ns.is_none() != (ret == Ret::Unknown) {
        return Err(bad("an unknown result goes with return time inf, and only it"));
    }
    if return_ns.is_some_and(|r| r < call_ns) {
        return Err(bad("returns before its call"));
    }
    Ok(Operation { client, key, call, ret, call_ns, return_ns })
}

/// Parses a whole text history; blank lines and `#` comments are skipped.
pub fn parse(text: &str) -> Result<Vec<Operation>, ParseError> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(parse_line)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_prints_and_parses_back() {
        let text = "\
1 10 20 put k a -> ok
2 11 inf put k b -> ?
3 12 30 get k -> a
3 31 40 get k -> nil
4 13 25 del k -> nf
4 26 27 del k -> ok
5 14 inf cas k nil c -> ?
5 15 35 cas k a d -> fail:nil
6 16 36 cas k d e -> ok";
        let ops = parse(text).unwrap();
        assert_eq!(ops.len(), 9);
        let printed: Vec<String> = ops.iter().map(|op| op.to_string()).collect();
        assert_eq!(printed.join("\n"), text);
        assert!(ops[1].indeterminate() && ops[1].is_write() && !ops[2].is_write());
    }

    #[test]
    fn bad_lines_are_errors_naming_what_is_wrong() {
        for (line, why) in [
            ("1 10 20 put k a", "no ' -> '"),
            ("x 10 20 put k a -> ok", "client"),
            ("1 10 inf put k a -> ok", "an unknown result goes with return time inf, and only it"),
            ("1 10 5 get k -> a", "returns before its call"),
            ("1 10 20 swap k a -> ok", "unknown operation or wrong arguments"),
            ("1 10 20 cas k a -> ok", "unknown operation or wrong arguments"),
        ] {
            assert_eq!(parse_line(line).unwrap_err().why, why, "{line}");
        }
    }
}
