//! One receiver per data directory and per port: a second `serve` on the same data directory or
//! the same address exits at once with status 1 and one line saying why, and the first one goes
//! on losing and repeating nothing. A lock held by a receiver killed with SIGKILL is gone with it.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::{self, batch, unique_id, Server, TempDir};

/// Longest a refused second start may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// Runs a second `serve` on `listen` and `data_dir`; returns its exit code (`None`: it was still
/// running after [`EXIT_WITHIN`], and was killed) and its stderr.
fn second_serve(listen: SocketAddr, data_dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(server::BIN)
        .arg("serve")
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let deadline = Instant::now() + EXIT_WITHIN;
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child.stderr.take().expect("piped").read_to_string(&mut stderr);
    (code, stderr)
}

/// Posts `count` one-event batches, each on a new connection; every one must be taken.
fn post_fresh(server: &Server, prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let id = unique_id(prefix);
            let response = server.post(batch(&[&id]).as_bytes(), &[]);
            assert_eq!(response.status, 200, "{response:?}");
            assert_eq!(response.json()["accepted"], 1, "{response:?}");
            id
        })
        .collect()
}

/// Every id is in `events.jsonl` exactly once, and nothing else is.
fn assert_delivered_once(server: &Server, ids: &[String]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for event in server.events() {
        let id = event["eventId"].as_str().expect("eventId").to_owned();
        *seen.entry(id).or_default() += 1;
    }
    for id in ids {
        assert_eq!(seen.get(id), Some(&1), "{id} must be delivered exactly once");
    }
    assert_eq!(seen.len(), ids.len(), "no other event in events.jsonl");
    assert!(seen.values().all(|&n| n == 1), "an event delivered twice: {seen:?}");
}

fn assert_refused_for_data_dir(code: Option<i32>, stderr: &str, first: &Server) {
    assert_eq!(code, Some(1), "the second receiver must exit 1; stderr:\n{stderr}");
    let line = format!("PID {}", first.pid());
    assert!(stderr.contains(&first.data_dir.display().to_string()), "{stderr}");
    assert!(stderr.contains(&line), "the holder's PID in: {stderr}");
    assert!(stderr.contains("in use by another egnyte-receiver"), "{stderr}");
    assert_eq!(problem_lines(stderr), 1, "one line besides the configuration: {stderr}");
}

#[test]
fn same_port_and_same_data_dir_is_refused() {
    let first = server::start(&[]);
    let mut ids = post_fresh(&first, "before", 20);
    let (code, stderr) = second_serve(first.addr, &first.data_dir);
    assert_refused_for_data_dir(code, &stderr, &first);
    ids.extend(post_fresh(&first, "after", 20));
    assert_delivered_once(&first, &ids);
    server::assert_still_healthy(&first);
}

#[test]
fn same_data_dir_on_another_port_is_refused_and_delivers_nothing_again() {
    let first = server::start(&[]);
    let mut ids = post_fresh(&first, "before", 20);
    first.settle();
    let other = server::free_port();
    let (code, stderr) = second_serve(other, &first.data_dir);
    assert_refused_for_data_dir(code, &stderr, &first);
    assert!(std::net::TcpStream::connect(other).is_err(), "the refused receiver must not listen");
    ids.extend(post_fresh(&first, "after", 20));
    assert_delivered_once(&first, &ids);
    // The read-only tools keep working beside it.
    let stats = Command::new(server::BIN)
        .args(["journal", "stats", "--data-dir"])
        .arg(&first.data_dir)
        .output()
        .expect("journal stats");
    assert!(stats.status.success(), "journal stats beside a running receiver: {stats:?}");
}

#[test]
fn same_port_with_another_data_dir_is_refused() {
    let first = server::start(&[]);
    let temp = TempDir::new("instances");
    let data_dir = temp.path().join("data");
    let (code, stderr) = second_serve(first.addr, &data_dir);
    assert_eq!(code, Some(1), "the second receiver must exit 1; stderr:\n{stderr}");
    assert!(stderr.contains("address already in use by another process"), "{stderr}");
    assert!(stderr.contains(&first.addr.to_string()), "{stderr}");
    assert_eq!(problem_lines(&stderr), 1, "one line besides the configuration: {stderr}");
    // Every connection still reaches the first receiver: none were shared with the second.
    let ids = post_fresh(&first, "only-first", 40);
    assert_delivered_once(&first, &ids);
    assert!(!data_dir.join("journal").exists(), "the refused receiver must not create its journal");
}

#[test]
fn a_lock_left_by_sigkill_is_gone() {
    let first = server::start(&[]);
    let ids = post_fresh(&first, "killed", 10);
    let temp = first.kill_keeping_data();
    let started = Instant::now();
    let again = Server::builder().temp_dir(temp).start();
    let took = started.elapsed();
    assert!(!again.stderr_text().contains("in use"), "{}", again.stderr_text());
    eprintln!("restart after SIGKILL took {took:?}");
    let events: Vec<Value> = again.events();
    for id in &ids {
        assert!(events.iter().any(|e| e["eventId"] == id.as_str()), "{id} lost across SIGKILL");
    }
}

/// Lines of a refused start's stderr besides the configuration line every start logs first.
fn problem_lines(stderr: &str) -> usize {
    stderr.trim().lines().filter(|line| !line.contains("] configuration: ")).count()
}
