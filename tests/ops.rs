//! Running under systemd: the notification protocol against a fake notify socket (READY, STATUS,
//! WATCHDOG only while healthy, STOPPING).

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use support::server::{Server, TempDir};

/// Every datagram received within `within` (stops early once `enough` holds).
fn collect(socket: &UnixDatagram, within: Duration, enough: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !enough(&messages) {
        socket
            .set_read_timeout(Some(
                deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)),
            ))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    messages
}

#[test]
fn notifies_ready_status_watchdog_and_stopping() {
    let temp = TempDir::new();
    let path = temp.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path).unwrap();
    let mut server =
        Server::builder().env("NOTIFY_SOCKET", &path).env("WATCHDOG_USEC", "200000").temp_dir(temp).start();
    let messages =
        collect(&manager, Duration::from_secs(5), |m| m.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3);
    let ready = &messages[0];
    assert!(ready.starts_with("READY=1\nSTATUS=listening on 127.0.0.1:"), "{messages:?}");
    assert!(ready.contains("healthy: 0 events accepted"), "{ready}");
    assert!(messages.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3, "every 100 ms: {messages:?}");

    server.signal(libc::SIGTERM);
    let messages =
        collect(&manager, Duration::from_secs(5), |m| m.iter().any(|m| m.starts_with("STOPPING=1")));
    assert!(messages.iter().any(|m| m == "STOPPING=1\nSTATUS=SIGTERM: stopping"), "{messages:?}");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn a_poisoned_journal_stops_the_watchdog() {
    let temp = TempDir::new();
    let path = temp.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path).unwrap();
    let server = Server::builder()
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "100000")
        .args(["--dedup-capacity", "64"])
        .file_size_limit(4096)
        .temp_dir(temp)
        .start();
    let before =
        collect(&manager, Duration::from_secs(5), |m| m.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2);
    assert!(before.iter().any(|m| m == "WATCHDOG=1"), "{before:?}");
    let big = std::fs::read(support::fixtures::root().join("batches/batch-100.json")).unwrap();
    assert_eq!(server.post(&big, &[]).status, 503, "the write fails: the journal is poisoned");
    // Drain what was sent before the poison, then listen: no more WATCHDOG=1.
    let _ = collect(&manager, Duration::from_millis(150), |_| false);
    let after = collect(&manager, Duration::from_millis(600), |_| false);
    assert!(
        !after.iter().any(|m| m == "WATCHDOG=1"),
        "a poisoned receiver must let systemd restart it: {after:?}"
    );
}
