//! The flag walker and the number parser shared by every command's arguments.
//!
//! Flags are `--name value` or `--name=value`; switches (`--json`) take none. Each flag may
//! appear once, so a typo repeated on a long command line is caught instead of silently
//! overriding. Everything here is a pure function of its input, hence unit-tested.

use super::error::CliError;

/// One flag as given on the command line.
#[derive(Debug, PartialEq, Eq)]
pub struct Given {
    /// The flag's name without dashes, as the command declared it.
    pub flag: &'static str,
    /// Its value; `None` for switches.
    pub value: Option<String>,
}

/// Splits `args` into flags known to `command`: `valued` take a value, `switches` do not.
pub fn walk(
    command: &'static str,
    args: &[String],
    valued: &[&'static str],
    switches: &[&'static str],
) -> Result<Vec<Given>, CliError> {
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
        let unknown = || CliError::UnknownFlag { command, flag: format!("--{name}") };
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
            return Err(unknown());
        };
        if given.iter().any(|g| g.flag == value.flag) {
            return Err(CliError::Repeated { flag: value.flag });
        }
        given.push(value);
    }
    Ok(given)
}

/// Parses a whole number of `flag` within `min..=max`.
pub fn parse_number(flag: &'static str, value: &str, min: u64, max: u64) -> Result<u64, CliError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
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
    }
}
