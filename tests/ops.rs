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
    let temp = TempDir::new("ops");
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
    let temp = TempDir::new("ops");
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

#[test]
fn the_token_comes_from_the_systemd_credential_and_sighup_rereads_it() {
    let temp = TempDir::new("ops");
    let credentials = temp.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("token"), "first-token\n").unwrap();
    let server = Server::builder().env("CREDENTIALS_DIRECTORY", &credentials).temp_dir(temp).start();
    let body = support::server::batch(&[&support::server::unique_id("token")]);
    let post = |token: &str| server.post(body.as_bytes(), &[("Authorization", token)]).status;
    assert_eq!(post("wrong"), 401);
    assert_eq!(post("first-token"), 200);
    std::fs::write(credentials.join("token"), "second-token\n").unwrap();
    assert_eq!(post("first-token"), 200, "only SIGHUP re-reads it");
    server.signal(libc::SIGHUP);
    assert!(
        server.stderr_contains("token changed: re-read from", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
    assert_eq!(post("first-token"), 401);
    assert_eq!(post("second-token"), 200);
    server.signal(libc::SIGHUP);
    assert!(server.stderr_contains("token unchanged", Duration::from_secs(5)), "{}", server.stderr_text());
    // An unreadable file keeps the token in force.
    std::fs::write(credentials.join("token"), "").unwrap();
    server.signal(libc::SIGHUP);
    assert!(server.stderr_contains("the old one stays in force", Duration::from_secs(5)));
    assert_eq!(post("second-token"), 200);
    assert!(!server.stderr_text().contains("second-token"), "a token is never logged");
}

/// `deploy/egnyte-receiver.service` with `ExecStart` pointing at the binary under test (verify
/// checks that the program exists).
fn unit_for_test(dir: &std::path::Path) -> std::path::PathBuf {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/egnyte-receiver.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/egnyte-receiver serve\n"), "the unit runs the packaged binary");
    let path = dir.join("egnyte-receiver.service");
    std::fs::write(&path, unit.replace("/usr/bin/egnyte-receiver", env!("CARGO_BIN_EXE_egnyte-receiver")))
        .unwrap();
    path
}

/// Runs systemd-analyze; `None` when it is not installed (CI installs it: there a missing one fails).
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    match std::process::Command::new("systemd-analyze").args(args).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() => {
            eprintln!("systemd-analyze is not installed (apt-get install systemd): unit file checks skipped");
            None
        }
        Err(e) => panic!("systemd-analyze: {e}"),
    }
}

#[test]
fn the_unit_file_verifies_and_rates_ok_or_better() {
    let temp = TempDir::new("ops");
    let unit = unit_for_test(temp.path());
    let Some(verify) = systemd_analyze(&["verify".as_ref(), unit.as_os_str()]) else { return };
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        verify.status,
        String::from_utf8_lossy(&verify.stderr)
    );
    let security =
        systemd_analyze(&["security".as_ref(), "--offline=true".as_ref(), unit.as_os_str()]).unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    let overall =
        text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let rating =
        overall.split_whitespace().rev().find(|w| w.chars().all(|c| c.is_ascii_uppercase())).unwrap();
    eprintln!("systemd-analyze security: {}", overall.trim_start_matches('→').trim());
    assert!(["PERFECT", "SAFE", "OK"].contains(&rating), "{overall}");
}

#[test]
fn rejected_requests_are_logged_at_most_once_a_second_per_reason() {
    let server = Server::builder().auth_token("s3cret-token-value").start();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(server.post(b"[]", &[("Authorization", "wrong")]).status, 401);
        assert_eq!(server.get("/nope").status, 404);
    }
    let burst = started.elapsed();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.post(b"[]", &[("Authorization", "wrong")]).status, 401);
    assert!(server.stderr_contains("(and ", Duration::from_secs(5)), "{}", server.stderr_text());
    let stderr = server.stderr_text();
    // Each logged line stands for itself and the "(and N more …)" it carries; there are no more
    // lines than seconds the requests spanned (plus the first).
    let tally = |needle: &str| {
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(needle)).collect();
        let more: u64 = lines
            .iter()
            .filter_map(|l| l.split("(and ").nth(1)?.split(' ').next()?.parse::<u64>().ok())
            .sum();
        (lines.len() as u64, lines.len() as u64 + more)
    };
    let (lines_401, requests_401) = tally("rejected with 401: missing or wrong token");
    let (lines_404, requests_404) = tally("rejected with 404: not found");
    // The last 401 comes after a quiet second, so its line reports every one suppressed before it;
    // the 404s suppressed after the last 404 line are never reported (no later 404 carries them).
    assert_eq!(requests_401, 21, "{stderr}");
    assert!((1..=20).contains(&requests_404), "{stderr}");
    let most = burst.as_secs() + 2;
    assert!(lines_401 >= 2 && lines_401 <= most + 1, "{lines_401} lines in {burst:?}: {stderr}");
    assert!(lines_404 >= 1 && lines_404 <= most, "{lines_404} lines in {burst:?}: {stderr}");
    if burst < Duration::from_millis(900) {
        // The usual case: the whole burst inside one second.
        assert!(stderr.contains("(and 19 more since the last line)"), "{stderr}");
        assert_eq!((lines_401, lines_404), (2, 1), "{stderr}");
    }
    assert!(!stderr.contains("s3cret") && !stderr.contains("wrong\""), "no token in the log");
}

#[test]
fn under_journald_lines_carry_syslog_priorities_instead_of_timestamps() {
    use std::os::unix::fs::MetadataExt;
    let temp = TempDir::new("ops");
    let log_path = temp.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let addr = support::server::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_egnyte-receiver"))
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(temp.path().join("data"))
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log_path).unwrap().contains("listening on") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("<6>egnyte_receiver::serve::start: listening on")), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("<4>egnyte_receiver::serve::start: no --auth-token")),
        "{text}"
    );
    assert!(lines.iter().all(|l| l.starts_with('<')), "every line has a priority, none a timestamp: {text}");
}

#[test]
fn a_stop_and_continue_logs_no_error() {
    let server = Server::builder().start();
    // Stopped for longer than may's 1 s event-loop timeout, so each io thread's epoll_wait is
    // interrupted by the continue.
    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(1500));
    server.signal(libc::SIGCONT);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.get("/healthz").status, 200);
    let stderr = server.stderr_text();
    assert!(!stderr.contains("ERROR"), "{stderr}");
}
