//! The encoding of a member's status (`ClientReply::Status`), the one body whose layout differs
//! between protocol versions (docs/PROTOCOL.md §2.3): version 2 appends the software version and
//! the metrics to version 1's.

use super::body::{
    get_member, get_members, get_standby_role, get_vec, put_member, put_members, standby_role_byte,
};
use super::bytes::{invalid, put_bool, put_count, put_str_u16, put_u16, put_u32, put_u64, put_u8, Reader};
use super::frame::NodeStatus;
use crate::error::DecodeError;
use crate::ids::ViewId;
use crate::metrics::{Sample, SAMPLES_MAX};

/// Appends a status in protocol `version`: version 1 ends with the link counts.
pub(super) fn put_status(out: &mut Vec<u8>, version: u8, status: &NodeStatus) {
    put_member(out, &status.member);
    put_u64(out, status.view.0);
    put_bool(out, status.primary);
    put_members(out, &status.ring);
    put_u64(out, status.delivered);
    put_u64(out, status.committed_upto);
    put_u64(out, status.state_digest);
    put_u64(out, status.delivery_digest);
    put_u64(out, status.rotations);
    put_u64(out, status.revision);
    put_u64(out, status.rotation_millihertz);
    put_u8(out, standby_role_byte(status.role));
    put_u64(out, status.last_checkpoint);
    put_u16(out, status.replicas);
    put_u16(out, status.configured);
    put_u16(out, status.min_replicas);
    put_u64(out, status.max_step_us);
    put_u64(out, status.state_bytes);
    put_u32(out, status.links_up);
    put_u64(out, status.links_dialled);
    put_u64(out, status.links_accepted);
    if version < 2 {
        return;
    }
    put_str_u16(out, &status.version);
    put_count(out, status.metrics.len());
    for sample in &status.metrics {
        put_str_u16(out, &sample.name);
        put_str_u16(out, &sample.label);
        put_u64(out, sample.value);
    }
}

/// A sample's smallest encoding: two empty strings and the value.
const SAMPLE_BYTES_MIN: usize = 2 + 2 + 8;

fn get_sample(r: &mut Reader<'_>) -> Result<Sample, DecodeError> {
    Ok(Sample {
        name: r.str_u16("status.metrics.name")?.to_owned(),
        label: r.str_u16("status.metrics.label")?.to_owned(),
        value: r.u64("status.metrics.value")?,
    })
}

/// Reads a status of protocol `version`; a version-1 status has no software version (empty)
/// and no metrics.
pub(super) fn get_status(r: &mut Reader<'_>, version: u8) -> Result<NodeStatus, DecodeError> {
    let mut status = NodeStatus {
        member: get_member(r, "status.member")?,
        view: ViewId(r.u64("status.view")?),
        primary: r.bool("status.primary")?,
        ring: get_members(r, "status.ring")?,
        delivered: r.u64("status.delivered")?,
        committed_upto: r.u64("status.committed_upto")?,
        state_digest: r.u64("status.state_digest")?,
        delivery_digest: r.u64("status.delivery_digest")?,
        rotations: r.u64("status.rotations")?,
        revision: r.u64("status.revision")?,
        rotation_millihertz: r.u64("status.rotation_millihertz")?,
        role: get_standby_role(r, "status.role")?,
        last_checkpoint: r.u64("status.last_checkpoint")?,
        replicas: r.u16("status.replicas")?,
        configured: r.u16("status.configured")?,
        min_replicas: r.u16("status.min_replicas")?,
        max_step_us: r.u64("status.max_step_us")?,
        state_bytes: r.u64("status.state_bytes")?,
        links_up: r.u32("status.links_up")?,
        links_dialled: r.u64("status.links_dialled")?,
        links_accepted: r.u64("status.links_accepted")?,
        version: String::new(),
        metrics: Vec::new(),
    };
    if version < 2 {
        return Ok(status);
    }
    status.version = r.str_u16("status.version")?.to_owned();
    let metrics = get_vec(r, SAMPLE_BYTES_MIN, "status.metrics", get_sample)?;
    if metrics.len() > SAMPLES_MAX {
        return Err(invalid("status.metrics", format!("{} samples, more than {SAMPLES_MAX}", metrics.len())));
    }
    status.metrics = metrics;
    Ok(status)
}
