//! The member table of `harness status` and `harness members`: one row per configured member,
//! in the ring order of the newest view, with its role, view, revision and lag; and the same
//! rows as JSON. By default the rows come from one member's report: its member list carries every
//! member's role and received prefix as the token last brought them (docs/PROTOCOL.md §8), so
//! the table costs two requests whatever the size of the cluster; `--each` asks every member for
//! its own status instead (revision, commits and checkpoint of each).

use std::fmt::Write;

use crate::core::ChangeInProgress;
use crate::json::{self, Object};
use crate::wire::{MemberInfo, NodeStatus, StandbyRole};

/// One member as the table shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    /// Its configured id and address.
    pub info: MemberInfo,
    /// Its own status report, when it was asked: the member that answered, or every member with
    /// `--each`; `None` otherwise or if it did not answer.
    pub status: Option<NodeStatus>,
    /// Whether it takes part: in the primary view of the report, or (with `--each`) answering.
    pub reachable: bool,
    /// hot, warm, none (answering, in no primary view) or down (not in the view, or silent).
    pub role: &'static str,
    /// The view and whether it is primary, as the report gives them.
    pub view: Option<(u64, bool)>,
    /// Its received prefix as the token last carried it (one member's report only).
    pub received: Option<u64>,
    /// What it lacks relative to the most advanced member: received messages in a report,
    /// commits with `--each`.
    pub lag: Option<u64>,
}

fn role_of(role: StandbyRole) -> &'static str {
    match role {
        StandbyRole::None => "none",
        StandbyRole::Hot => "hot",
        StandbyRole::Warm => "warm",
        StandbyRole::Witness => "witness",
    }
}

/// Rows from one member's report (docs/PROTOCOL.md §8): its member list, which gives every
/// member's role and received prefix as the ring carried them, and its own status. Sorted into
/// the ring order of its view, members outside it last.
pub fn report_rows(members: &[MemberInfo], status: &NodeStatus) -> Vec<MemberRow> {
    let in_view = |info: &MemberInfo| status.primary && info.role != StandbyRole::None;
    let most = members.iter().filter(|m| in_view(m)).map(|m| m.received_upto).max().unwrap_or(0);
    let mut rows: Vec<MemberRow> = members
        .iter()
        .map(|info| {
            let own = info.id == status.member.id;
            let taking_part = in_view(info);
            let role = match (taking_part, own) {
                (true, _) => role_of(info.role),
                (false, true) => role_of(status.role),
                (false, false) => "down",
            };
            MemberRow {
                info: info.clone(),
                status: own.then(|| status.clone()),
                reachable: taking_part || own,
                role,
                view: (taking_part || own).then_some((status.view.0, status.primary)),
                received: taking_part.then_some(info.received_upto),
                lag: taking_part.then_some(most - info.received_upto),
            }
        })
        .collect();
    sort_by_ring(&mut rows, Some(status));
    rows
}

/// Rows for `members` with their own `statuses` (same order), as `--each` asks every member;
/// sorted into the ring order of the newest view any member reported, members outside it last.
pub fn member_rows(members: &[MemberInfo], statuses: Vec<Option<NodeStatus>>) -> Vec<MemberRow> {
    let newest = newest(&statuses).cloned();
    let most = statuses.iter().flatten().map(|s| s.committed_upto).max().unwrap_or(0);
    let mut rows: Vec<MemberRow> = members
        .iter()
        .zip(statuses)
        .map(|(info, status)| MemberRow {
            info: info.clone(),
            reachable: status.is_some(),
            role: status.as_ref().map_or("down", |s| role_of(s.role)),
            view: status.as_ref().map(|s| (s.view.0, s.primary)),
            received: None,
            lag: status.as_ref().map(|s| most - s.committed_upto),
            status,
        })
        .collect();
    sort_by_ring(&mut rows, newest.as_ref());
    rows
}

fn sort_by_ring(rows: &mut [MemberRow], view: Option<&NodeStatus>) {
    let position = |row: &MemberRow| {
        view.and_then(|s| s.ring.iter().position(|m| m.id == row.info.id)).unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|row| (position(row), row.info.id));
}

/// The status of the member with the newest view (primary preferred).
fn newest(statuses: &[Option<NodeStatus>]) -> Option<&NodeStatus> {
    statuses.iter().flatten().max_by_key(|s| (s.primary, s.view, s.committed_upto))
}

fn rate(status: &NodeStatus) -> f64 {
    status.rotation_millihertz as f64 / 1000.0
}

/// The human table; with `summary`, a first line about the cluster as a whole.
pub fn render_table(rows: &[MemberRow], summary: bool) -> String {
    let mut text = String::new();
    let statuses: Vec<Option<NodeStatus>> = rows.iter().map(|r| r.status.clone()).collect();
    if summary {
        match newest(&statuses) {
            Some(s) => {
                let ring: Vec<String> = s.ring.iter().map(|m| m.id.0.to_string()).collect();
                let state = if s.primary {
                    "primary"
                } else if s.replicas > 0 && s.replicas < s.min_replicas {
                    "NOT PRIMARY (not enough replicas)"
                } else {
                    "NOT PRIMARY (no quorum)"
                };
                let _ = writeln!(
                    text,
                    "view {} {}, ring [{}], replicas {} of {} (W {}), revision {}, committed {}, token {:.1} rotations/s",
                    // "4", or "1.2" for view 2 of the first forced epoch (docs/PROTOCOL.md §5.8).
                    s.view.to_string().trim_start_matches('v'),
                    state,
                    ring.join(" "),
                    s.replicas,
                    s.configured,
                    s.min_replicas,
                    s.revision,
                    s.committed_upto,
                    rate(s)
                );
            }
            None => text.push_str("no member answered\n"),
        }
    }
    let header = [
        "ID",
        "ADDRESS",
        "ROLE",
        "VIEW",
        "PRIMARY",
        "REVISION",
        "COMMITTED",
        "RECEIVED",
        "LAG",
        "CHECKPOINT",
        "STATE",
        "MAX STEP",
        "VERSION",
    ];
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for row in rows {
        let dash = || "-".to_string();
        let number = |value: Option<u64>| value.map_or_else(dash, |v| v.to_string());
        let s = row.status.as_ref();
        lines.push(vec![
            row.info.id.0.to_string(),
            row.info.addr.clone(),
            row.role.to_string(),
            number(row.view.map(|(view, _)| view)),
            row.view.map_or_else(dash, |(_, primary)| if primary { "yes" } else { "no" }.to_string()),
            number(s.map(|s| s.revision)),
            number(s.map(|s| s.committed_upto)),
            number(row.received),
            number(row.lag),
            s.map_or_else(dash, |s| {
                if s.last_checkpoint == 0 {
                    "none".into()
                } else {
                    s.last_checkpoint.to_string()
                }
            }),
            s.map_or_else(dash, |s| format!("{:.1} MB", s.state_bytes as f64 / 1e6)),
            s.map_or_else(dash, |s| format!("{:.1} ms", s.max_step_us as f64 / 1e3)),
            // A member of protocol version 1 does not report its software version (§2.3).
            s.filter(|s| !s.version.is_empty()).map_or_else(dash, |s| s.version.clone()),
        ]);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|c| lines.iter().map(|l| l[c].len()).max().unwrap_or(0)).collect();
    for line in lines {
        let cells: Vec<String> =
            line.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        let _ = writeln!(text, "{}", cells.join("  ").trim_end());
    }
    // `members` ends with the universe's epoch and any change in progress (§5.9).
    if let (false, (Some(epoch), changes)) = (summary, changes_in_progress(rows)) {
        if changes.is_empty() {
            let _ = writeln!(text, "universe epoch {epoch}: no change in progress");
        } else {
            let list: Vec<String> =
                changes.iter().map(|(id, change)| format!("member {id} {change}")).collect();
            let _ = writeln!(text, "universe epoch {epoch}: in progress: {}", list.join(", "));
        }
    }
    text
}

/// The universe's epoch and the changes in progress, as the newest answering member reports them
/// in its `universe_epoch` and `universe_change` samples (docs/PROTOCOL.md §5.9): `joining` (added,
/// not yet admitted) or `leaving` (removed, still counted in the view's quorum), by id. `None`
/// when no member answered, or one too old to say.
pub fn changes_in_progress(rows: &[MemberRow]) -> (Option<u64>, Vec<(u16, &'static str)>) {
    let statuses: Vec<Option<NodeStatus>> = rows.iter().map(|r| r.status.clone()).collect();
    let Some(status) = newest(&statuses) else { return (None, Vec::new()) };
    let epoch = status.metrics.iter().find(|m| m.name == "universe_epoch").map(|m| m.value);
    let changes = status
        .metrics
        .iter()
        .filter(|m| m.name == "universe_change")
        .filter_map(|m| {
            let change = match m.value {
                1 => ChangeInProgress::Joining,
                2 => ChangeInProgress::Leaving,
                _ => return None,
            };
            Some((m.label.parse::<u16>().ok()?, change.name()))
        })
        .collect();
    (epoch, changes)
}

/// The JSON form: with `summary` the cluster fields first, then `members`.
pub fn render_json_rows(rows: &[MemberRow], summary: bool) -> String {
    let members = json::array(rows.iter().map(|row| {
        let s = row.status.as_ref();
        Object::new()
            .uint("id", u64::from(row.info.id.0))
            .str("addr", &row.info.addr)
            .str("role", row.role)
            .bool("reachable", row.reachable)
            .opt_uint("view", row.view.map(|(view, _)| view))
            .raw("primary", row.view.map_or("null", |(_, primary)| if primary { "true" } else { "false" }))
            .opt_uint("revision", s.map(|s| s.revision))
            .opt_uint("committed", s.map(|s| s.committed_upto))
            .opt_uint("received", row.received)
            .opt_uint("lag", row.lag)
            .opt_uint("last_checkpoint", s.and_then(|s| (s.last_checkpoint > 0).then_some(s.last_checkpoint)))
            .opt_uint("state_bytes", s.map(|s| s.state_bytes))
            .opt_uint("max_step_us", s.map(|s| s.max_step_us))
            .raw(
                "version",
                &s.filter(|s| !s.version.is_empty())
                    .map_or_else(|| "null".to_string(), |s| json::string(&s.version)),
            )
            .raw(
                "metrics",
                &s.map_or_else(|| "null".to_string(), |s| crate::metrics::render_json(&s.metrics)),
            )
            .finish()
    }));
    if !summary {
        let (epoch, changes) = changes_in_progress(rows);
        let changes = json::array(
            changes
                .iter()
                .map(|(id, change)| Object::new().uint("id", u64::from(*id)).str("change", change).finish()),
        );
        return Object::new()
            .raw("members", &members)
            .opt_uint("universe_epoch", epoch)
            .raw("changes_in_progress", &changes)
            .finish();
    }
    let statuses: Vec<Option<NodeStatus>> = rows.iter().map(|r| r.status.clone()).collect();
    let newest = newest(&statuses);
    Object::new()
        .opt_uint("view", newest.map(|s| s.view.0))
        .bool("primary", newest.is_some_and(|s| s.primary))
        .opt_uint("replicas", newest.map(|s| u64::from(s.replicas)))
        .opt_uint("configured", newest.map(|s| u64::from(s.configured)))
        .opt_uint("min_replicas", newest.map(|s| u64::from(s.min_replicas)))
        .opt_uint("revision", newest.map(|s| s.revision))
        .opt_uint("committed", newest.map(|s| s.committed_upto))
        .raw("rotation_rate", &newest.map_or_else(|| "null".to_string(), |s| json::fixed(rate(s), 3)))
        .raw("members", &members)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Member, NodeId, ViewId};

    fn status(id: u16, committed: u64, ring: &[u16]) -> NodeStatus {
        NodeStatus {
            member: Member { id: NodeId(id), incarnation: 1 },
            view: ViewId(4),
            primary: true,
            ring: ring.iter().map(|&id| Member { id: NodeId(id), incarnation: 1 }).collect(),
            delivered: committed,
            committed_upto: committed,
            state_digest: 0,
            delivery_digest: 0,
            rotations: 10,
            revision: committed / 2,
            rotation_millihertz: 3900,
            role: StandbyRole::Hot,
            last_checkpoint: 0,
            replicas: ring.len() as u16,
            configured: 3,
            min_replicas: 2,
            max_step_us: 0,
            state_bytes: 0,
            links_up: 2,
            links_dialled: 3,
            links_accepted: 1,
            version: "0.1.0".into(),
            metrics: Vec::new(),
        }
    }

    fn info(id: u16, role: StandbyRole, received_upto: u64) -> MemberInfo {
        MemberInfo { id: NodeId(id), addr: format!("127.0.0.1:710{id}"), incarnation: 1, role, received_upto }
    }

    #[test]
    fn rows_follow_the_ring_and_show_lag_and_down_members() {
        let members =
            [info(1, StandbyRole::Hot, 0), info(2, StandbyRole::Hot, 0), info(3, StandbyRole::None, 0)];
        let rows =
            member_rows(&members, vec![Some(status(1, 40, &[2, 1])), Some(status(2, 38, &[2, 1])), None]);
        let ids: Vec<u16> = rows.iter().map(|r| r.info.id.0).collect();
        assert_eq!(ids, [2, 1, 3]);
        assert_eq!(rows.iter().map(|r| r.lag).collect::<Vec<_>>(), [Some(2), Some(0), None]);
        let table = render_table(&rows, true);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "view 4 primary, ring [2 1], replicas 2 of 3 (W 2), revision 20, committed 40, token 3.9 rotations/s"
        );
        assert_eq!(
            lines[1],
            "ID  ADDRESS         ROLE  VIEW  PRIMARY  REVISION  COMMITTED  RECEIVED  LAG  CHECKPOINT  STATE   MAX STEP  VERSION"
        );
        assert_eq!(
            lines[2],
            "2   127.0.0.1:7102  hot   4     yes      19        38         -         2    none        0.0 MB  0.0 ms    0.1.0"
        );
        assert_eq!(
            lines[4],
            "3   127.0.0.1:7103  down  -     -        -         -          -         -    -           -       -         -"
        );
        let json = render_json_rows(&rows, true);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["members"][2]["reachable"], false);
        let members: serde_json::Value = serde_json::from_str(&render_json_rows(&rows, false)).unwrap();
        assert_eq!(members["members"].as_array().unwrap().len(), 3);
        let none: serde_json::Value = serde_json::from_str(&render_json_rows(&[], true)).unwrap();
        assert!(none["view"].is_null() && none["rotation_rate"].is_null());
        assert!(json.starts_with("{\"view\":4,\"primary\":true,\"replicas\":2,\"configured\":3,\"min_replicas\":2,\"revision\":20,\"committed\":40,\"rotation_rate\":3.900,\"members\":[{\"id\":2,\"addr\":\"127.0.0.1:7102\",\"role\":\"hot\""), "{json}");
        assert!(json.ends_with("{\"id\":3,\"addr\":\"127.0.0.1:7103\",\"role\":\"down\",\"reachable\":false,\"view\":null,\"primary\":null,\"revision\":null,\"committed\":null,\"received\":null,\"lag\":null,\"last_checkpoint\":null,\"state_bytes\":null,\"max_step_us\":null,\"version\":null,\"metrics\":null}]}"), "{json}");
    }

    #[test]
    fn one_members_report_gives_every_members_role_and_lag_from_the_token() {
        // Member 2 answers; the ring is [2 1 3] and member 4 is not in the view.
        let members = [
            info(1, StandbyRole::Hot, 40),
            info(2, StandbyRole::Hot, 38),
            info(3, StandbyRole::Warm, 35),
            info(4, StandbyRole::None, 0),
        ];
        let rows = report_rows(&members, &status(2, 37, &[2, 1, 3]));
        let ids: Vec<u16> = rows.iter().map(|r| r.info.id.0).collect();
        assert_eq!(ids, [2, 1, 3, 4]);
        assert_eq!(rows.iter().map(|r| r.role).collect::<Vec<_>>(), ["hot", "hot", "warm", "down"]);
        assert_eq!(rows.iter().map(|r| r.lag).collect::<Vec<_>>(), [Some(2), Some(0), Some(5), None]);
        assert!(rows[0].status.is_some() && rows[1].status.is_none());
        let table = render_table(&rows, true);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[2],
            "2   127.0.0.1:7102  hot   4     yes      18        37         38        2    none        0.0 MB  0.0 ms    0.1.0"
        );
        assert_eq!(
            lines[4],
            "3   127.0.0.1:7103  warm  4     yes      -         -          35        5    -           -       -         -"
        );
        assert_eq!(
            lines[5],
            "4   127.0.0.1:7104  down  -     -        -         -          -         -    -           -       -         -"
        );
        let json = render_json_rows(&rows, false);
        assert_eq!(json.matches("\"reachable\":true").count(), 3, "{json}");
    }
}
