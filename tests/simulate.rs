//! `egnyte-receiver simulate`: driven through the real binary against the real receiver on
//! loopback, and against a fake receiver in this process that answers 503 for a while (to watch
//! the retries). Every child is waited for with a bound and killed by PID if it overstays.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::server::{Server, BIN, PATH};

/// Longest a simulate run may take in these tests before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `egnyte-receiver simulate ARGS` with the progress line off; kills it (by PID) after
/// [`RUN_LIMIT`].
fn simulate(args: &[&str]) -> Output {
    let mut child = Command::new(BIN)
        .arg("simulate")
        .args(["--progress", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start simulate");
    let deadline = Instant::now() + RUN_LIMIT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("simulate {args:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

/// The summary as (`topic`, `key`) → value text, from its `topic: key value, key value` lines.
fn summary(output: &Output) -> HashMap<(String, String), String> {
    let text = String::from_utf8_lossy(&output.stdout);
    let mut values = HashMap::new();
    for line in text.lines() {
        let Some((topic, rest)) = line.split_once(": ") else { continue };
        for pair in rest.split(", ") {
            if let Some((key, value)) = pair.split_once(' ') {
                values.insert((topic.to_owned(), key.to_owned()), value.to_owned());
            }
        }
    }
    values
}

/// One number of the summary; panics (showing the output) when it is missing.
fn number(output: &Output, topic: &str, key: &str) -> u64 {
    let values = summary(output);
    values
        .get(&(topic.to_owned(), key.to_owned()))
        .and_then(|v| v.split(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {topic}/{key} in the summary:\n{}", show(output))) as u64
}

fn show(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}{PATH}")
}

#[test]
fn a_real_receiver_acknowledges_everything_and_the_sink_holds_it_exactly_once() {
    let server = Server::builder().auth_token("Token s3cret").start();
    let sink = server.data_file("events.jsonl");
    let output = simulate(&[
        "--url",
        &url(server.addr()),
        "--auth-token",
        "Token s3cret",
        "--connections",
        "4",
        "--requests",
        "200",
        "--batch-size",
        "1-20",
        "--duplicates",
        "0.1",
        "--seed",
        "11",
        "--verify-jsonl",
        sink.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let n = |topic, key| number(&output, topic, key);
    assert_eq!((n("batches", "sent"), n("batches", "acknowledged"), n("batches", "failed")), (200, 200, 0));
    assert_eq!((n("requests", "sent"), n("requests", "retries")), (200, 0));
    assert!(n("batches", "duplicate") > 5, "some duplicates were re-sent:\n{}", show(&output));
    assert_eq!(n("duplicates", "reported"), n("duplicates", "sent"), "{}", show(&output));
    assert_eq!(n("answers", "accepted") + n("answers", "duplicates"), n("events", "acknowledged"));
    assert_eq!(n("answers", "quarantined"), 0);
    assert_eq!(n("status", "200"), 200);
    assert_eq!(n("verify", "found"), n("answers", "accepted"), "{}", show(&output));
    assert_eq!((n("verify", "missing"), n("verify", "duplicated"), n("verify", "unknown")), (0, 0, 0));

    let metrics = server.metrics();
    assert_eq!(metrics.get("egnyte_receiver_events_accepted_total") as u64, n("answers", "accepted"));
    assert_eq!(metrics.get("egnyte_receiver_events_duplicate_total") as u64, n("answers", "duplicates"));
    // The readiness probe and this scrape are 200s too.
    assert!(metrics.requests(200) as u64 >= 200);
    assert!(String::from_utf8_lossy(&output.stdout).ends_with("result: ok\n"), "{}", show(&output));
}

#[test]
fn a_wrong_token_is_retried_then_reported_failed() {
    let server = Server::builder().auth_token("right").start();
    let started = Instant::now();
    let output = simulate(&[
        "--url",
        &url(server.addr()),
        "--auth-token",
        "wrong",
        "--connections",
        "3",
        "--requests",
        "3",
        "--retry-for",
        "1",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let n = |topic, key| number(&output, topic, key);
    assert_eq!((n("batches", "acknowledged"), n("batches", "failed")), (0, 3));
    // 0, 0.1, 0.3 and 0.7 s: four attempts fit in one second, the next (1.5 s) would not.
    assert_eq!(n("requests", "retries"), 9, "{}", show(&output));
    assert_eq!(n("status", "401"), 12, "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("result: failed: 3 batches failed"),
        "{}",
        show(&output)
    );
    assert!(started.elapsed() < Duration::from_secs(20), "the run ends within --retry-for");
    assert_eq!(server.metrics().requests(401) as u64, 12);
}

/// One request the fake receiver saw: when, and the first eventId of its batch.
type Seen = Arc<Mutex<Vec<(Instant, String)>>>;

/// A fake receiver on loopback: answers 503 until `unavailable_for` has passed since it
/// started, then 200 with the receiver's body. Keep-alive; one thread per connection; every
/// loop stops when `stop` is set or after [`RUN_LIMIT`].
fn fake_receiver(
    unavailable_for: Duration,
    stop: Arc<AtomicBool>,
    seen: Seen,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let mut connections = Vec::new();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < RUN_LIMIT {
            match listener.accept() {
                Ok((stream, _)) => {
                    let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
                    connections.push(std::thread::spawn(move || {
                        serve_connection(stream, started, unavailable_for, &stop, &seen)
                    }));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        for connection in connections {
            let _ = connection.join();
        }
    });
    (addr, handle)
}

fn serve_connection(
    mut stream: TcpStream,
    started: Instant,
    unavailable_for: Duration,
    stop: &AtomicBool,
    seen: &Seen,
) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) && started.elapsed() < RUN_LIMIT {
        // A whole request in the buffer?
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .expect("the simulator sends Content-Length");
            if buffer.len() >= head_end + 4 + length {
                let body: Vec<u8> = buffer.drain(..head_end + 4 + length).skip(head_end + 4).collect();
                let body = String::from_utf8(body).unwrap();
                let events = body.matches("\"eventId\"").count();
                let first =
                    body.split("\"eventId\":\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
                seen.lock().unwrap().push((Instant::now(), first.to_owned()));
                let answer = if started.elapsed() < unavailable_for {
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n".to_owned()
                } else {
                    let body = format!("{{\"accepted\":{events},\"duplicates\":0,\"quarantined\":0}}");
                    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                };
                if stream.write_all(answer.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

#[test]
fn a_receiver_answering_503_for_a_while_is_retried_with_growing_delays() {
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Seen = Arc::default();
    let (addr, fake) = fake_receiver(Duration::from_millis(1500), Arc::clone(&stop), Arc::clone(&seen));
    let output = simulate(&[
        "--url",
        &url(addr),
        "--connections",
        "1",
        "--requests",
        "3",
        "--duplicates",
        "0",
        "--retry-for",
        "20",
    ]);
    stop.store(true, Ordering::Relaxed);
    fake.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let n = |topic, key| number(&output, topic, key);
    assert_eq!((n("batches", "acknowledged"), n("batches", "failed")), (3, 0));
    assert!(n("requests", "retries") >= 4, "{}", show(&output));
    assert_eq!(n("status", "503"), n("requests", "retries"));
    assert_eq!(n("status", "200"), 3);

    let seen = seen.lock().unwrap();
    let first_batch = &seen[0].1;
    let attempts: Vec<Instant> = seen.iter().filter(|(_, id)| id == first_batch).map(|(at, _)| *at).collect();
    assert!(
        attempts.len() >= 5,
        "the first batch was retried until the 503s stopped: {} attempts",
        attempts.len()
    );
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps[0] >= Duration::from_millis(90), "the first retry waits 100 ms: {gaps:?}");
    for pair in gaps.windows(2) {
        // Doubling delays; the margin absorbs a loaded machine's scheduling noise.
        assert!(pair[1].as_secs_f64() > pair[0].as_secs_f64() * 1.4, "delays grow: {gaps:?}");
    }
    // The other batches went through on the first attempt once the receiver was back.
    assert_eq!(seen.len(), attempts.len() + 2, "{seen:?}");
}

#[test]
fn the_rate_is_roughly_respected() {
    let server = Server::builder().start();
    let started = Instant::now();
    let output =
        simulate(&["--url", &url(server.addr()), "--rate", "50", "--duration", "2", "--connections", "4"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let sent = number(&output, "requests", "sent");
    assert!((80..=120).contains(&sent), "50/s for 2 s sent {sent}:\n{}", show(&output));
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_failing_receiver_does_not_stretch_a_rated_run_past_its_bound() {
    // A receiver that is never right (a wrong token): every batch is retried for --retry-for.
    let server = Server::builder().auth_token("right").start();
    let started = Instant::now();
    let output = simulate(&[
        "--url",
        &url(server.addr()),
        "--auth-token",
        "wrong",
        "--rate",
        "20",
        "--duration",
        "2",
        "--retry-for",
        "2",
        "--timeout",
        "1",
        "--connections",
        "2",
    ]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    // The documented bound: --duration + --retry-for + --timeout (5 s), plus start-up.
    assert!(took < Duration::from_secs(7), "took {took:?}:\n{}", show(&output));
    assert!(number(&output, "batches", "failed") >= 2, "{}", show(&output));
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    for (args, message) in [
        (&["--connections", "2"][..], "--url is required"),
        (&["--url", "https://127.0.0.1:8443/egnyte/webhook"], "https is not supported"),
        (&["--url", "http://127.0.0.1:9/h", "--duplicates", "1.5"], "--duplicates: 1.5 is not a fraction"),
        (&["--url", "http://127.0.0.1:9/h", "--no-such-option", "1"], "no-such-option"),
    ] {
        let output = simulate(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    let help = simulate(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for option in
        ["--url", "--connections", "--batch-size", "--rate", "--duplicates", "--verify-jsonl", "--retry-for"]
    {
        assert!(text.contains(option), "{option} missing from --help");
    }
}

/// The real receiver answering 503 for a while: a slow second sink keeps the journal over its
/// disk budget, so the receiver refuses (503, Retry-After) until delivery catches up; the
/// simulator must retry until every batch is taken, and the fast sink must hold each event once.
#[test]
fn the_real_receiver_over_its_journal_budget_is_retried_until_it_catches_up() {
    let temp = support::server::TempDir::new("simulate");
    let slow = temp.path().join("slow.sh");
    std::fs::write(&slow, "#!/bin/sh\ncat > /dev/null\nsleep 0.01\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let events = temp.path().join("data").join("events.jsonl");
    let (slow_sink, fast_sink) = (format!("exec:{}", slow.display()), format!("jsonl:{}", events.display()));
    let server = Server::builder()
        .args(["--sink", &slow_sink, "--sink", &fast_sink, "--workers", "1"])
        .args(["--max-journal-bytes", "12000", "--journal-retention", "0"])
        .temp_dir(temp)
        .start();
    let output = simulate(&[
        "--url",
        &url(server.addr()),
        "--connections",
        "2",
        "--requests",
        "40",
        "--batch-size",
        "5",
        "--duplicates",
        "0",
        "--retry-for",
        "50",
        "--verify-jsonl",
        &events.display().to_string(),
    ]);
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(number(&output, "batches", "acknowledged"), 40, "{}", show(&output));
    assert!(number(&output, "status", "503") > 0, "the budget was reached: {}", show(&output));
    assert!(number(&output, "requests", "retries") > 0, "{}", show(&output));
    assert_eq!(number(&output, "verify", "missing"), 0, "{}", show(&output));
    assert_eq!(number(&output, "verify", "duplicated"), 0, "{}", show(&output));
    assert!(server.metrics().requests(503) > 0.0);
}
