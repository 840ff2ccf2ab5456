//! The text form of a transaction, shared by `harness txn` (flags or stdin) and the C API.
//!
//! One clause a line; blank lines and lines starting with `#` are skipped:
//! ```text
//! if KEY = VALUE            the key holds exactly VALUE (the rest of the line)
//! if KEY version = N        also <, >; the key's version (puts since created, 0: missing)
//! if KEY mod = N            also <, >; the revision that last wrote the key (0: missing)
//! if KEY exists             / if KEY missing
//! then put KEY VALUE        VALUE is the rest of the line
//! then del KEY
//! then get KEY
//! then range PREFIX [LIMIT]
//! else ...                  the same ops, run when a guard fails
//! ```
//! Keys cannot contain whitespace in this form; the Rust API takes any bytes.

use crate::replication::{Check, Compare, Guard, Op};

/// A parsed transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnText {
    /// The guards (`if` lines).
    pub guards: Vec<Guard>,
    /// The ops run when every guard holds (`then` lines).
    pub then: Vec<Op>,
    /// The ops run otherwise (`else` lines).
    pub otherwise: Vec<Op>,
}

impl TxnText {
    /// Parses a whole text; the error names the line.
    pub fn parse(text: &str) -> Result<TxnText, String> {
        let mut txn = TxnText::default();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = split_word(line);
            let result = match word {
                "if" => parse_guard(rest).map(|guard| txn.guards.push(guard)),
                "then" => parse_op(rest).map(|op| txn.then.push(op)),
                "else" => parse_op(rest).map(|op| txn.otherwise.push(op)),
                other => Err(format!("starts with {other:?}, not if, then or else")),
            };
            result.map_err(|problem| format!("line {}: {problem}", index + 1))?;
        }
        if txn.guards.is_empty() && txn.then.is_empty() && txn.otherwise.is_empty() {
            return Err("the transaction is empty".to_string());
        }
        Ok(txn)
    }
}

/// The first whitespace-separated word and the trimmed rest.
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// Parses a guard clause (after `if`).
pub fn parse_guard(text: &str) -> Result<Guard, String> {
    let (key, rest) = split_word(text);
    if key.is_empty() {
        return Err("a guard needs a key".to_string());
    }
    let key = key.as_bytes().to_vec();
    let (word, number) = split_word(rest);
    let check = match word {
        "exists" if number.is_empty() => Check::Exists,
        "missing" if number.is_empty() => Check::Missing,
        "=" => Check::ValueEquals(number.as_bytes().to_vec()),
        "version" | "mod" => {
            let (operator, number) = split_word(number);
            let compare = match operator {
                "=" => Compare::Equal,
                "<" => Compare::Less,
                ">" => Compare::Greater,
                other => return Err(format!("{other:?} is not =, < or >")),
            };
            let number = number.parse::<u64>().map_err(|_| format!("{number:?} is not a whole number"))?;
            if word == "version" {
                Check::Version(compare, number)
            } else {
                Check::ModRevision(compare, number)
            }
        }
        _ => {
            return Err(format!(
                "guard {text:?} is not KEY = VALUE, KEY version|mod =|<|> N, KEY exists|missing"
            ))
        }
    };
    Ok(Guard { key, check })
}

/// Parses an op clause (after `then` or `else`).
pub fn parse_op(text: &str) -> Result<Op, String> {
    let (verb, rest) = split_word(text);
    let (key, tail) = split_word(rest);
    if key.is_empty() && verb != "range" {
        return Err(format!("{verb:?} needs a key"));
    }
    let key = key.as_bytes().to_vec();
    let op = match verb {
        "put" => Op::Put { key, value: tail.as_bytes().to_vec() },
        "del" | "delete" if tail.is_empty() => Op::Delete { key },
        "get" if tail.is_empty() => Op::Get { key },
        "range" => {
            let limit = if tail.is_empty() {
                0
            } else {
                tail.parse::<u32>().map_err(|_| format!("range limit {tail:?} is not a whole number"))?
            };
            Op::Range { prefix: key, limit }
        }
        _ => {
            return Err(format!("op {text:?} is not put KEY VALUE, del KEY, get KEY or range PREFIX [LIMIT]"))
        }
    };
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_transaction_parses() {
        let text = "# move a lock\nif lock = alice\nif lock version > 1\nif free missing\n\n\
                    then put lock bob smith\nthen get lock\nelse range jobs/ 5\nelse del stale\n";
        let txn = TxnText::parse(text).unwrap();
        assert_eq!(
            txn.guards,
            [
                Guard { key: b"lock".to_vec(), check: Check::ValueEquals(b"alice".to_vec()) },
                Guard { key: b"lock".to_vec(), check: Check::Version(Compare::Greater, 1) },
                Guard { key: b"free".to_vec(), check: Check::Missing },
            ]
        );
        assert_eq!(
            txn.then,
            [
                Op::Put { key: b"lock".to_vec(), value: b"bob smith".to_vec() },
                Op::Get { key: b"lock".to_vec() }
            ]
        );
        assert_eq!(
            txn.otherwise,
            [Op::Range { prefix: b"jobs/".to_vec(), limit: 5 }, Op::Delete { key: b"stale".to_vec() }]
        );
    }

    #[test]
    fn problems_name_the_line() {
        let cases = [
            ("if k version >= 3", "line 1: \">=\" is not =, < or >"),
            ("then put", "line 1: \"put\" needs a key"),
            ("\nwhen k exists", "line 2: starts with \"when\", not if, then or else"),
            ("if k mod = x", "line 1: \"x\" is not a whole number"),
            (
                "then get a b",
                "line 1: op \"get a b\" is not put KEY VALUE, del KEY, get KEY or range PREFIX [LIMIT]",
            ),
            ("# nothing\n", "the transaction is empty"),
        ];
        for (text, expected) in cases {
            assert_eq!(TxnText::parse(text).unwrap_err(), expected, "{text:?}");
        }
    }
}
