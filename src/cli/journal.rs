//! Log lines for the systemd journal: when stderr is the journal (`JOURNAL_STREAM` names its
//! device and inode), each line starts with its syslog priority (`<3>` error ... `<7>` debug), so
//! `journalctl -p warning` finds the warnings, and carries no timestamp (the journal adds one).

use std::os::unix::fs::MetadataExt;

/// The syslog priority of a log level (sd-daemon(3)).
pub fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// Whether `journal_stream` (`JOURNAL_STREAM`, "DEVICE:INODE" in decimal) names the file
/// `(device, inode)`: systemd sets it for the service, but a child whose stderr was redirected
/// inherits it, hence the comparison.
pub fn names_stream(journal_stream: &str, device: u64, inode: u64) -> bool {
    match journal_stream.trim().split_once(':') {
        Some((dev, ino)) => dev.parse() == Ok(device) && ino.parse() == Ok(inode),
        None => false,
    }
}

/// Whether this process's stderr is the journal.
pub fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    match std::fs::metadata("/proc/self/fd/2").or_else(|_| std::fs::metadata("/dev/stderr")) {
        Ok(meta) => names_stream(&stream, meta.dev(), meta.ino()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_must_match_device_and_inode() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346));
        assert!(!names_stream("8", 8, 12345));
        assert!(!names_stream("x:y", 8, 12345));
        assert_eq!(syslog_priority(log::Level::Warn), 4);
    }
}
