//! The flag walker shared by every binary of the crate (`harness`, `harness-sim`, `harness-check`,
//! `harness-bench`) and the typed parsing of flag values.
//!
//! Flags are `--name value` or `--name=value`; switches (`--json`) take none. Each flag may
//! appear once, so a typo repeated on a long command line is caught instead of silently
//! overriding. Every problem is one `CliError` line naming the flag; an unknown flag names the
//! program and points to `--help`. Everything here is a pure function of its input, hence
//! unit-tested.

use std::fmt::Display;
use std::str::FromStr;

use super::error::CliError;

/// One flag as given on the command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Given {
    /// The flag's name without dashes, as the command declared it.
    pub flag: &'static str,
    /// Its value; `None` for switches.
    pub value: Option<String>,
}

/// The flags of one command line, walked and checked against what the command declares.
#[derive(Debug, PartialEq, Eq)]
pub struct Flags {
    given: Vec<Given>,
}

impl Flags {
    /// Walks `args` of `program` (e.g. `harness node`, `harness-sim`): `valued` flags take a
    /// value, `switches` do not; anything else is an error.
    pub fn walk(
        program: &str,
        args: &[String],
        valued: &[&'static str],
        switches: &[&'static str],
    ) -> Result<Flags, CliError> {
        let mut given: Vec<Given> = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(CliError::Stray { argument: arg.clone() });
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (body, None),
            };
            let value = if let Some(&flag) = valued.iter().find(|f| **f == name) {
                let value = match inline {
                    Some(value) => value,
                    // A following flag is not a value: `--id --listen x` forgot the id.
                    None => match rest.next() {
                        Some(next) if !next.starts_with("--") => next.clone(),
                        _ => return Err(CliError::MissingValue { flag }),
                    },
                };
                Given { flag, value: Some(value) }
            } else if let Some(&flag) = switches.iter().find(|f| **f == name) {
                if inline.is_some() {
                    return Err(CliError::bad(flag, arg, "takes no value"));
                }
                Given { flag, value: None }
            } else {
                return Err(CliError::UnknownFlag {
                    program: program.to_string(),
                    flag: format!("--{name}"),
                });
            };
            if given.iter().any(|g| g.flag == value.flag) {
                return Err(CliError::Repeated { flag: value.flag });
            }
            given.push(value);
        }
        Ok(Flags { given })
    }

    /// Every flag, in command-line order.
    pub fn given(&self) -> &[Given] {
        &self.given
    }

    /// The value of `flag`, if given.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.given.iter().find(|g| g.flag == flag).and_then(|g| g.value.as_deref())
    }

    /// Whether the switch `flag` is given.
    pub fn switch(&self, flag: &str) -> bool {
        self.given.iter().any(|g| g.flag == flag && g.value.is_none())
    }

    /// `flag` as a whole number within `min..=max`, if given.
    pub fn number(&self, flag: &'static str, min: u64, max: u64) -> Result<Option<u64>, CliError> {
        self.value(flag).map(|text| parse_number(flag, text, min, max)).transpose()
    }

    /// `flag` parsed as a `T`, if given; the parser's own message says what is wrong.
    pub fn parse<T>(&self, flag: &'static str) -> Result<Option<T>, CliError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.value(flag)
            .map(|text| text.parse().map_err(|e: T::Err| CliError::bad(flag, text, e.to_string())))
            .transpose()
    }
}

/// Splits `args` into flags known to `harness command`: `valued` take a value, `switches` do not.
pub fn walk(
    command: &str,
    args: &[String],
    valued: &[&'static str],
    switches: &[&'static str],
) -> Result<Vec<Given>, CliError> {
    Ok(Flags::walk(&format!("harness {command}"), args, valued, switches)?.given)
}

/// Parses a whole number of `flag` within `min..=max`.
pub fn parse_number(flag: &'static str, value: &str, min: u64, max: u64) -> Result<u64, CliError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ if max == u64::MAX => Err(CliError::bad(flag, value, format!("must be a whole number from {min}"))),
        _ => Err(CliError::bad(flag, value, format!("must be a number in {min}..={max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn walk_accepts_both_spellings_and_switches() {
        let given =
            walk("demo", &strings(&["--nodes", "3", "--ring=uni", "--json"]), &["nodes", "ring"], &["json"])
                .unwrap();
        assert_eq!(given[0], Given { flag: "nodes", value: Some("3".into()) });
        assert_eq!(given[1], Given { flag: "ring", value: Some("uni".into()) });
        assert_eq!(given[2], Given { flag: "json", value: None });
    }

    #[test]
    fn walk_names_the_flag_at_fault() {
        let valued = &["id", "listen"];
        let check = |args: &[&str], expected: &str| {
            let error = walk("node", &strings(args), valued, &["json"]).unwrap_err();
            assert_eq!(error.to_string(), expected);
        };
        check(&["--idd", "1"], "unknown flag --idd for `harness node` (try --help)");
        check(&["--id"], "--id needs a value");
        check(&["--id", "--listen", "x"], "--id needs a value");
        check(&["--id", "1", "--id=2"], "--id is given twice");
        check(&["id"], "unexpected argument \"id\" (flags start with --)");
        check(&["--json=yes"], "bad --json \"--json=yes\": takes no value");
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(parse_number("nodes", "5", 1, 64).unwrap(), 5);
        assert_eq!(
            parse_number("nodes", "0", 1, 64).unwrap_err().to_string(),
            "bad --nodes \"0\": must be a number in 1..=64"
        );
        assert!(parse_number("nodes", "five", 1, 64).is_err());
        assert_eq!(
            parse_number("seed", "-1", 0, u64::MAX).unwrap_err().to_string(),
            "bad --seed \"-1\": must be a whole number from 0"
        );
    }

    #[test]
    fn flags_give_typed_values_and_name_the_program() {
        let flags = Flags::walk(
            "harness-sim",
            &strings(&["--nodes=7", "--ring", "uni", "--json"]),
            &["nodes", "ring", "seed"],
            &["json", "trace"],
        )
        .unwrap();
        assert_eq!(flags.number("nodes", 1, 256).unwrap(), Some(7));
        assert_eq!(flags.number("seed", 0, 9).unwrap(), None);
        assert_eq!(
            flags.parse::<crate::ids::RingMode>("ring").unwrap(),
            Some(crate::ids::RingMode::Unidirectional)
        );
        assert!(flags.switch("json") && !flags.switch("trace"));
        assert_eq!(flags.given().len(), 3);
        let bad = Flags::walk("harness-sim", &strings(&["--ring", "round"]), &["ring"], &[]).unwrap();
        assert!(bad
            .parse::<crate::ids::RingMode>("ring")
            .unwrap_err()
            .to_string()
            .starts_with("bad --ring \"round\": "));
        let unknown =
            Flags::walk("harness-sim cost", &strings(&["--seed", "1"]), &["nodes"], &[]).unwrap_err();
        assert_eq!(unknown.to_string(), "unknown flag --seed for `harness-sim cost` (try --help)");
    }
}
