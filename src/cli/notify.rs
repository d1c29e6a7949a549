//! systemd's notification protocol (`sd_notify(3)`), with std only: datagrams of `KEY=value`
//! lines sent to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract
//! namespace).
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing. A failed send is logged once
//! and otherwise ignored: notifications are advice to the service manager, never a reason to stop
//! serving.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub(super) struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    warned: AtomicBool,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; inert when it is unset or unusable (logged).
    pub(super) fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| match Notifier::open(&path) {
            Ok(target) => Some(target),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={path:?} is unusable: {e}; no notifications to systemd");
                None
            }
        });
        Notifier { target, warned: AtomicBool::new(false) }
    }

    fn open(path: &std::ffi::OsStr) -> io::Result<(UnixDatagram, SocketAddr)> {
        let bytes = path.as_encoded_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name)?
            }
            None => SocketAddr::from_pathname(path)?,
        };
        Ok((UnixDatagram::unbound()?, addr))
    }

    /// True when running under a service manager that listens.
    pub(super) fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (lines of `KEY=value`).
    pub(super) fn send(&self, message: &str) {
        let Some((socket, addr)) = &self.target else { return };
        if let Err(e) = socket.send_to_addr(message.as_bytes(), addr) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                log::warn!("cannot notify systemd: {e}");
            }
        }
    }

    /// `READY=1` with a status line: listening and recovered.
    pub(super) fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `STATUS=…`: a one-line summary shown by `systemctl status`.
    pub(super) fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`: still alive and healthy.
    pub(super) fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STOPPING=1` with a status line.
    pub(super) fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }
}

/// Half of `$WATCHDOG_USEC` when the watchdog is on for this process (`$WATCHDOG_PID` unset or
/// ours): how often to send `WATCHDOG=1`.
pub(super) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|&n| n > 0)?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

/// A status text without line breaks (a new line would start a new `KEY=value`).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_a_socket_in_the_protocol_format() {
        let temp = egnyte_receiver::test_dir::TempDir::new("notify");
        let dir = temp.path().to_path_buf();
        let path = dir.join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        manager.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let notifier = Notifier {
            target: Some(Notifier::open(path.as_os_str()).unwrap()),
            warned: AtomicBool::new(false),
        };
        assert!(notifier.enabled());
        notifier.ready("listening on 127.0.0.1:8080\nsecond line");
        notifier.watchdog();
        notifier.stopping("stopping");
        let mut buf = [0u8; 256];
        let mut next = || {
            let n = manager.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        assert_eq!(next(), "READY=1\nSTATUS=listening on 127.0.0.1:8080 second line");
        assert_eq!(next(), "WATCHDOG=1");
        assert_eq!(next(), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn abstract_names_are_supported_and_no_socket_means_no_op() {
        let name = format!("egnyte-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        manager.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let target = Notifier::open(std::ffi::OsStr::new(&format!("@{name}"))).unwrap();
        let notifier = Notifier { target: Some(target), warned: AtomicBool::new(false) };
        notifier.status("ok");
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=ok");
        let off = Notifier { target: None, warned: AtomicBool::new(false) };
        assert!(!off.enabled());
        off.ready("nobody listens"); // no panic, no effect
    }
}
