//! `harness node --slurm`: the member's id and the peer list from a Slurm job's environment.
//!
//! `SLURM_JOB_NODELIST` is Slurm's compressed host list: comma-separated entries, each a host
//! name with bracketed ranges, e.g. `node[01-04,07],login1,rack[1-2]-n[1-2]`. Ranges keep the
//! zero padding of their first number, and several bracket groups in one entry multiply. The
//! n-th host of the expanded list is member id n, so every task derives the same peer list. A
//! task's id is `SLURM_PROCID + 1` (run one task per node), or `SLURM_NODEID + 1` without it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::client::address::parse_address;
use crate::ids::NodeId;

/// Most hosts a list may expand to: member ids are u16.
pub const HOSTS_MAX: usize = u16::MAX as usize;

/// Expands a Slurm host list into host names, in order.
pub fn expand_nodelist(list: &str) -> Result<Vec<String>, String> {
    let list = list.trim();
    if list.is_empty() {
        return Err("the node list is empty".to_string());
    }
    let mut hosts = Vec::new();
    for entry in split_top_level(list)? {
        if entry.is_empty() {
            return Err(format!("{list:?} has an empty entry"));
        }
        let mut expanded = vec![String::new()];
        let mut rest = entry;
        while !rest.is_empty() {
            let (literal, ranges, after) = match rest.find('[') {
                None => (rest, None, ""),
                Some(open) => {
                    let close = rest[open..]
                        .find(']')
                        .map(|c| open + c)
                        .ok_or_else(|| format!("{entry:?} opens a bracket it does not close"))?;
                    (&rest[..open], Some(&rest[open + 1..close]), &rest[close + 1..])
                }
            };
            if literal.contains(']') {
                return Err(format!("{entry:?} closes a bracket it did not open"));
            }
            let suffixes = match ranges {
                Some(ranges) => expand_ranges(ranges).map_err(|problem| format!("{entry:?}: {problem}"))?,
                None => vec![String::new()],
            };
            if expanded.len().saturating_mul(suffixes.len()) + hosts.len() > HOSTS_MAX {
                return Err(format!("{list:?} expands to more than {HOSTS_MAX} hosts"));
            }
            expanded = expanded
                .iter()
                .flat_map(|head| suffixes.iter().map(move |suffix| format!("{head}{literal}{suffix}")))
                .collect();
            rest = after;
        }
        hosts.extend(expanded);
    }
    Ok(hosts)
}

/// Splits at commas outside brackets.
fn split_top_level(list: &str) -> Result<Vec<&str>, String> {
    let mut entries = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '[' if depth > 0 => return Err(format!("{list:?} nests brackets")),
            '[' => depth += 1,
            ']' if depth == 0 => return Err(format!("{list:?} closes a bracket it did not open")),
            ']' => depth -= 1,
            ',' if depth == 0 => {
                entries.push(list[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(format!("{list:?} opens a bracket it does not close"));
    }
    entries.push(list[start..].trim());
    Ok(entries)
}

/// Expands `01-04,07` into `01 02 03 04 07`.
fn expand_ranges(ranges: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for range in ranges.split(',').map(str::trim) {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let number = |text: &str| {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("range {range:?} is not N or N-M"));
            }
            text.parse::<u64>().map_err(|_| format!("range {range:?} has a number too large"))
        };
        let (low, high) = (number(first)?, number(last)?);
        if low > high {
            return Err(format!("range {range:?} runs backwards"));
        }
        if high - low >= HOSTS_MAX as u64 || out.len() + (high - low) as usize >= HOSTS_MAX {
            return Err(format!("range {range:?} has more than {HOSTS_MAX} hosts"));
        }
        let width = first.len();
        out.extend((low..=high).map(|n| format!("{n:0width$}")));
    }
    Ok(out)
}

/// This task's id and the peer list, from the Slurm variables `env` returns; hosts listen on
/// `port`. Errors name the variable.
pub fn slurm_membership(
    env: &dyn Fn(&str) -> Option<String>,
    port: u16,
) -> Result<(NodeId, BTreeMap<NodeId, SocketAddr>), String> {
    let list = env("SLURM_JOB_NODELIST")
        .or_else(|| env("SLURM_NODELIST"))
        .ok_or("SLURM_JOB_NODELIST is not set (not inside a Slurm job?)")?;
    let hosts = expand_nodelist(&list).map_err(|problem| format!("SLURM_JOB_NODELIST: {problem}"))?;
    let (variable, index) = match (env("SLURM_PROCID"), env("SLURM_NODEID")) {
        (Some(text), _) => ("SLURM_PROCID", text),
        (None, Some(text)) => ("SLURM_NODEID", text),
        (None, None) => return Err("neither SLURM_PROCID nor SLURM_NODEID is set".to_string()),
    };
    let index = index.trim().parse::<usize>().map_err(|_| format!("{variable} {index:?} is not a number"))?;
    if index >= hosts.len() {
        return Err(format!(
            "{variable} {index} has no host: SLURM_JOB_NODELIST lists {} (run one task per node)",
            hosts.len()
        ));
    }
    let mut peers = BTreeMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let addr = parse_address(host, port)
            .map_err(|problem| format!("SLURM_JOB_NODELIST host {host}: {problem}"))?;
        peers.insert(NodeId(i as u16 + 1), addr);
    }
    Ok((NodeId(index as u16 + 1), peers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &str) -> Vec<String> {
        expand_nodelist(list).unwrap()
    }

    #[test]
    fn bracket_ranges_expand_in_order_with_padding() {
        assert_eq!(hosts("node[01-04,07]"), ["node01", "node02", "node03", "node04", "node07"]);
        assert_eq!(hosts("login1"), ["login1"]);
        assert_eq!(hosts("a[1-2],b,c[9-10]"), ["a1", "a2", "b", "c9", "c10"]);
        assert_eq!(hosts("n[8-11]"), ["n8", "n9", "n10", "n11"]);
        assert_eq!(hosts("rack[1-2]-n[1-2]"), ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]);
        assert_eq!(hosts("gpu[007]x"), ["gpu007x"]);
        assert_eq!(hosts("10.0.0.[1-3]"), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        assert_eq!(hosts(" a , b "), ["a", "b"]);
    }

    #[test]
    fn bad_lists_say_what_is_wrong() {
        let cases = [
            ("", "the node list is empty"),
            ("node[01-04", "\"node[01-04\" opens a bracket it does not close"),
            ("node01-04]", "\"node01-04]\" closes a bracket it did not open"),
            ("node[4-1]", "\"node[4-1]\": range \"4-1\" runs backwards"),
            ("node[a-b]", "\"node[a-b]\": range \"a-b\" is not N or N-M"),
            ("node[1-]", "\"node[1-]\": range \"1-\" is not N or N-M"),
            ("a,,b", "\"a,,b\" has an empty entry"),
            ("n[[1]]", "\"n[[1]]\" nests brackets"),
            ("n[0-99999]", "\"n[0-99999]\": range \"0-99999\" has more than 65535 hosts"),
            ("a[1-300]b[1-300]", "\"a[1-300]b[1-300]\" expands to more than 65535 hosts"),
        ];
        for (list, expected) in cases {
            assert_eq!(expand_nodelist(list).unwrap_err(), expected, "{list:?}");
        }
    }

    #[test]
    fn membership_takes_the_id_from_procid_or_nodeid() {
        let vars = |procid: Option<&'static str>, nodeid: Option<&'static str>| {
            move |name: &str| match name {
                "SLURM_JOB_NODELIST" => Some("127.0.0.[1-3]".to_string()),
                "SLURM_PROCID" => procid.map(str::to_string),
                "SLURM_NODEID" => nodeid.map(str::to_string),
                _ => None,
            }
        };
        let (id, peers) = slurm_membership(&vars(Some("2"), Some("0")), 7300).unwrap();
        assert_eq!(id, NodeId(3));
        assert_eq!(peers[&NodeId(1)], "127.0.0.1:7300".parse().unwrap());
        assert_eq!(peers.len(), 3);
        assert_eq!(slurm_membership(&vars(None, Some("1")), 7300).unwrap().0, NodeId(2));
        assert!(slurm_membership(&vars(Some("3"), None), 7300)
            .unwrap_err()
            .contains("SLURM_PROCID 3 has no host"));
        assert!(slurm_membership(&vars(Some("x"), None), 7300).unwrap_err().contains("SLURM_PROCID \"x\""));
        assert!(slurm_membership(&vars(None, None), 7300).unwrap_err().contains("neither"));
        assert!(slurm_membership(&|_| None, 7300).unwrap_err().contains("SLURM_JOB_NODELIST is not set"));
    }
}
