//! Where clients find a cluster: member addresses as operators write them, and the defaults a
//! client assumes (the port, the cluster name), shared by the command line, the C API and
//! embedders.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// The port an address without one means (hostfiles, `--cluster`, the C API).
pub const DEFAULT_PORT: u16 = 7100;
/// The cluster name members and clients use unless told otherwise (`--cluster-name`).
pub const DEFAULT_CLUSTER: &str = "harness";

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

/// Parses the addresses of `--cluster` or `HARNESS_CLUSTER`: `HOST[:PORT]` or `ID=HOST[:PORT]`,
/// comma separated (port 7100 if omitted).
pub fn parse_cluster(list: &str) -> Result<Vec<SocketAddr>, String> {
    let mut addrs = Vec::new();
    for entry in list.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(format!("{list:?} has an empty entry"));
        }
        let address = entry.split_once('=').map_or(entry, |(_, address)| address);
        let addr = parse_address(address, DEFAULT_PORT).map_err(|problem| format!("{entry:?}: {problem}"))?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cluster_lists_take_ids_and_drop_repeats() {
        let addrs = parse_cluster("1=127.0.0.1:7101, 127.0.0.1:7102,127.0.0.1:7101").unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:7101".parse().unwrap(), "127.0.0.1:7102".parse().unwrap()]);
        assert_eq!(parse_cluster("127.0.0.1").unwrap()[0].port(), DEFAULT_PORT);
        assert!(parse_cluster("127.0.0.1:1,,").unwrap_err().contains("empty entry"));
    }
}
