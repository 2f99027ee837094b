//! The systemd notification protocol (`sd_notify(3)`), spoken by the daemon itself so that
//! `Type=notify` means what it says: systemd (and nginx, ordered after the daemon) see the
//! service ready only once the HSM is logged in, the entropy self-test has run (a failure
//! leaves key generation refused until a re-check passes; `lemur-entropy.service` keeps a
//! failing machine from starting the daemon at all) and the listener is bound; `WatchdogSec=` restarts a daemon whose runtime stopped turning; `STOPPING`
//! tells systemd a shutdown is under way while requests in flight finish.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// The process's notifier, read from the environment once.
pub fn manager() -> Option<&'static Notifier> {
    static MANAGER: OnceLock<Option<Notifier>> = OnceLock::new();
    MANAGER.get_or_init(Notifier::from_environment).as_ref()
}

/// The service manager's notification socket, when there is one.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// The socket `NOTIFY_SOCKET` names (a path, or `@name` in the abstract namespace); none
    /// outside systemd, or when the socket cannot be reached (logged: systemd then times the
    /// start out and says so).
    fn from_environment() -> Option<Self> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::connect(&name) {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                log::error!(
                    "NOTIFY_SOCKET={} is unusable ({error}); systemd will not hear that the daemon is ready",
                    name.to_string_lossy()
                );
                None
            }
        }
    }

    fn connect(name: &std::ffi::OsStr) -> std::io::Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(abstract_name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(abstract_name)?
            }
            None => SocketAddr::from_pathname(name)?,
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            address,
        })
    }

    /// Sends one notification (`KEY=value` lines); a failure is logged, never fatal: the
    /// daemon serves whether or not its manager hears it.
    fn send(&self, state: &str) {
        if let Err(error) = self.socket.send_to_addr(state.as_bytes(), &self.address) {
            log::warn!("sd_notify: cannot tell systemd {state:?}: {error}");
        }
    }

    /// What the daemon is doing, shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Start-up is complete.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: finishing requests in flight");
    }

    /// Start-up failed: the reason, for `systemctl status`, before the process exits.
    pub fn failed(&self, reason: &str) {
        self.send(&format!("STATUS=failed: {}", one_line(reason)));
    }

    /// The keep-alive `WatchdogSec=` waits for.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`), when it is meant for this
/// process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_for(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval_for(usec: Option<&str>, pid: Option<&str>, ours: u32) -> Option<Duration> {
    let usec: u64 = usec?.parse().ok()?;
    let for_us = pid.is_none_or(|pid| pid.parse() == Ok(ours));
    (for_us && usec > 0).then(|| Duration::from_micros(usec))
}

/// A status is one line of the protocol: a newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_watchdog_is_ours_only_when_systemd_says_so() {
        let interval = Some(Duration::from_secs(30));
        assert_eq!(watchdog_interval_for(Some("30000000"), None, 7), interval);
        assert_eq!(
            watchdog_interval_for(Some("30000000"), Some("7"), 7),
            interval
        );
        assert_eq!(watchdog_interval_for(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_for(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_for(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_for(None, None, 7), None);
    }

    #[test]
    fn notifications_reach_an_abstract_socket_one_line_each() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("lemur-notify-test-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        let notifier = Notifier::connect(format!("@{name}").as_ref()).unwrap();
        notifier.status("line one\nREADY=1");
        let mut buffer = [0u8; 256];
        let length = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"STATUS=line one READY=1");
    }
}
