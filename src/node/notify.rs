//! systemd's readiness protocol (`Type=notify`, sd_notify(3)): a few text datagrams to the Unix
//! socket named by `NOTIFY_SOCKET`, written here rather than pulled in as a crate since it is
//! one `send_to` (README "Running under systemd").
//!
//! The protocol thread sends `READY=1` once this member is first in a primary view, a `STATUS=`
//! line on every view change, `WATCHDOG=1` every half `WATCHDOG_USEC` (so a hung protocol thread
//! stops them and systemd restarts the member), and `STOPPING=1` when it starts to leave. A
//! datagram that cannot be sent is logged once and otherwise ignored: readiness reporting never
//! stops a member.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The shortest watchdog interval taken from `WATCHDOG_USEC`: a smaller one would have the
/// protocol thread wake only to ping.
const WATCHDOG_MIN: Duration = Duration::from_millis(10);

/// Where the notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyTarget {
    /// A socket path in the file system.
    Path(PathBuf),
    /// A Linux abstract socket name (`@name` in `NOTIFY_SOCKET`), without the `@`.
    Abstract(Vec<u8>),
}

/// The systemd settings of this process: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyConfig {
    /// The notification socket, when systemd gave one.
    pub target: Option<NotifyTarget>,
    /// How often systemd expects `WATCHDOG=1` at the latest.
    pub watchdog: Option<Duration>,
}

impl NotifyConfig {
    /// Reads the settings from `env`; `pid` is this process's, which `WATCHDOG_PID` must name
    /// when it is set (otherwise the watchdog is another process's).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, pid: u32) -> NotifyConfig {
        let target =
            env("NOTIFY_SOCKET").filter(|s| !s.is_empty()).map(|socket| match socket.strip_prefix('@') {
                Some(name) => NotifyTarget::Abstract(name.as_bytes().to_vec()),
                None => NotifyTarget::Path(PathBuf::from(socket)),
            });
        let ours = env("WATCHDOG_PID").is_none_or(|p| p.trim().parse::<u32>() == Ok(pid));
        let watchdog = env("WATCHDOG_USEC")
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(|usec| Duration::from_micros(usec).max(WATCHDOG_MIN));
        NotifyConfig { target, watchdog }
    }
}

/// Sends the notifications; does nothing without a socket.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, NotifyTarget)>,
    watchdog: Option<Duration>,
    next_watchdog: Option<Instant>,
    ready: bool,
    /// Whether a failed send was logged already.
    complained: bool,
}

impl Notifier {
    /// A notifier for `config`; one that sends nothing when there is no socket.
    pub fn new(config: &NotifyConfig) -> Notifier {
        let socket = config.target.as_ref().and_then(|target| match UnixDatagram::unbound() {
            Ok(socket) => Some((socket, target.clone())),
            Err(e) => {
                log::warn!("systemd notify: cannot create a datagram socket ({e}); not notifying");
                None
            }
        });
        let watchdog = config.watchdog.filter(|_| socket.is_some());
        Notifier {
            socket,
            watchdog,
            next_watchdog: watchdog.map(|_| Instant::now()),
            ready: false,
            complained: false,
        }
    }

    /// Sends one notification: `KEY=value` lines.
    fn send(&mut self, text: &str) {
        let Some((socket, target)) = &self.socket else { return };
        let sent = match target {
            NotifyTarget::Path(path) => socket.send_to(text.as_bytes(), path),
            NotifyTarget::Abstract(name) => abstract_send(socket, name, text.as_bytes()),
        };
        if let Err(e) = sent {
            if !self.complained {
                log::warn!("systemd notify: cannot send {text:?} ({e}); further failures are not logged");
                self.complained = true;
            }
        }
    }

    /// A view was installed: `READY=1` the first time it is primary, and its status line.
    pub fn on_view(&mut self, status: &str, primary: bool) {
        if primary && !self.ready {
            self.ready = true;
            self.send(&format!("READY=1\nSTATUS={status}"));
        } else {
            self.send(&format!("STATUS={status}"));
        }
    }

    /// The member starts to leave.
    pub fn on_leave(&mut self) {
        self.send("STOPPING=1\nSTATUS=leaving");
    }

    /// Sends `WATCHDOG=1` when due; returns when the next one is due, so the protocol thread's
    /// wait never outlasts it.
    pub fn on_tick(&mut self, now: Instant) -> Option<Instant> {
        let (Some(interval), Some(due)) = (self.watchdog, self.next_watchdog) else { return None };
        if now >= due {
            self.send("WATCHDOG=1");
            // Half the interval, as sd_watchdog_enabled(3) advises, so a late wake-up is no kill.
            self.next_watchdog = Some(now + interval / 2);
        }
        self.next_watchdog
    }
}

/// Sends to a Linux abstract socket address.
#[cfg(target_os = "linux")]
fn abstract_send(socket: &UnixDatagram, name: &[u8], bytes: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(bytes, &addr)
}

/// Abstract socket names exist only on Linux.
#[cfg(not(target_os = "linux"))]
fn abstract_send(_: &UnixDatagram, _: &[u8], _: &[u8]) -> std::io::Result<usize> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "abstract socket names need Linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_environment_names_socket_and_watchdog() {
        let config =
            NotifyConfig::from_env(&env_of(&[("NOTIFY_SOCKET", "/run/n"), ("WATCHDOG_USEC", "3000000")]), 7);
        assert_eq!(config.target, Some(NotifyTarget::Path("/run/n".into())));
        assert_eq!(config.watchdog, Some(Duration::from_secs(3)));
        let other = NotifyConfig::from_env(
            &env_of(&[("NOTIFY_SOCKET", "@sd"), ("WATCHDOG_USEC", "3000000"), ("WATCHDOG_PID", "8")]),
            7,
        );
        assert_eq!(other.target, Some(NotifyTarget::Abstract(b"sd".to_vec())));
        assert_eq!(other.watchdog, None, "another process's watchdog");
        assert_eq!(NotifyConfig::from_env(&env_of(&[]), 7), NotifyConfig::default());
    }

    #[test]
    fn ready_once_then_status_watchdog_and_stopping() {
        let dir = std::env::temp_dir().join(format!("harness-notify-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let config =
            NotifyConfig { target: Some(NotifyTarget::Path(path)), watchdog: Some(Duration::from_secs(2)) };
        let mut notifier = Notifier::new(&config);
        let received = || {
            let mut buffer = [0u8; 512];
            let n = listener.recv(&mut buffer).unwrap();
            String::from_utf8_lossy(&buffer[..n]).into_owned()
        };
        notifier.on_view("view 1 not primary", false);
        assert_eq!(received(), "STATUS=view 1 not primary");
        notifier.on_view("view 2 primary", true);
        assert_eq!(received(), "READY=1\nSTATUS=view 2 primary");
        notifier.on_view("view 3 primary", true);
        assert_eq!(received(), "STATUS=view 3 primary");
        let start = Instant::now();
        assert_eq!(notifier.on_tick(start), Some(start + Duration::from_secs(1)));
        assert_eq!(received(), "WATCHDOG=1");
        assert_eq!(
            notifier.on_tick(start + Duration::from_millis(500)),
            Some(start + Duration::from_secs(1))
        );
        notifier.on_leave();
        assert_eq!(received(), "STOPPING=1\nSTATUS=leaving", "no watchdog before it was due");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
