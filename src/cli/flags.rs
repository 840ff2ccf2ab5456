//! The flag walker and the address parser shared by every command's arguments.
//!
//! Flags are `--name value` or `--name=value`; switches (`--json`) take none. Each flag may
//! appear once, so a typo repeated on a long command line is caught instead of silently
//! overriding. Everything here is a pure function of its input, hence unit-tested.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::error::CliError;

/// The port a hostfile line without one means.
pub const DEFAULT_PORT: u16 = 7100;

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

/// Parses `HOST[:PORT]` (IPv6 in brackets when a port follows), resolving a host name.
/// `default_port` fills in a missing port. Port 0 is refused: peers must be reachable.
pub fn parse_address(text: &str, default_port: u16) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return nonzero_port(addr);
    }
    if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return nonzero_port(SocketAddr::new(ip, default_port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => {
            let port =
                port.parse::<u16>().map_err(|_| format!("port {port:?} is not a number in 1..=65535"))?;
            (host, port)
        }
        None => (text, default_port),
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if host.is_empty() || !host.chars().all(valid) {
        return Err("expected HOST:PORT".to_string());
    }
    let resolved: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    // Rings are usually configured over IPv4; take it when the name has both.
    let chosen = resolved.iter().find(|a| a.is_ipv4()).or(resolved.first()).copied();
    nonzero_port(chosen.ok_or_else(|| format!("{host} resolves to no address"))?)
}

fn nonzero_port(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.port() == 0 {
        return Err("port 0 is not a reachable address".to_string());
    }
    Ok(addr)
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
    fn addresses_take_ips_names_and_a_default_port() {
        assert_eq!(parse_address("10.0.0.1:7200", 7100), Ok("10.0.0.1:7200".parse().unwrap()));
        assert_eq!(parse_address("10.0.0.1", 7100), Ok("10.0.0.1:7100".parse().unwrap()));
        assert_eq!(parse_address("[::1]:9", 7100), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(parse_address("::1", 7100), Ok("[::1]:7100".parse().unwrap()));
        assert_eq!(parse_address("localhost:7300", 7100).unwrap().port(), 7300);
        assert!(parse_address("10.0.0.1:http", 7100).unwrap_err().contains("port \"http\""));
        assert!(parse_address("10.0.0.1:0", 7100).unwrap_err().contains("port 0"));
        assert_eq!(parse_address("a b:1", 7100).unwrap_err(), "expected HOST:PORT");
        assert_eq!(parse_address("", 7100).unwrap_err(), "expected HOST:PORT");
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
