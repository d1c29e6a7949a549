//! A jsonl sink's file moved or deleted while the receiver runs, with no SIGHUP (a logrotate
//! whose reload failed, an operator's `mv` or `rm`): the receiver notices by itself, opens a
//! fresh `events.jsonl` within a second or two, says so once at WARN, and loses or repeats no
//! event across the two files; and with the SIGHUP that logrotate's reload sends, it says
//! nothing. (SIGHUP after logrotate alone is `tests/delivery.rs`.)

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::{batch, unique_id, Server};

/// The longest a test waits, after the move, for a line in a fresh `events.jsonl`.
const NOTICED_WITHIN: Duration = Duration::from_secs(2);

/// Posts one batch of these ids and checks that all of them were accepted.
fn post(server: &Server, ids: &[String]) {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = server.post(batch(&refs).as_bytes(), &[]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["accepted"], ids.len(), "{response:?}");
}

/// The `eventId` of each line of a data-directory file, in file order.
fn ids(server: &Server, name: &str) -> Vec<String> {
    server
        .lines(name)
        .iter()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}: {line}"));
            value["eventId"].as_str().unwrap_or_else(|| panic!("{name}: no eventId: {line}")).to_owned()
        })
        .collect()
}

fn fresh_ids(count: usize, prefix: &str) -> Vec<String> {
    (0..count).map(|_| unique_id(prefix)).collect()
}

/// Events before the move, then the move (`rm` when `deleted`), then one event every 100 ms
/// until one is in a fresh `events.jsonl` (bounded), then a last batch. Returns the server, the
/// ids posted before the move and those posted after it, in order.
fn move_then_post(deleted: bool) -> (Server, Vec<String>, Vec<String>) {
    let server = Server::builder().start();
    let before = fresh_ids(3, "before");
    post(&server, &before);
    server.settle();
    assert_eq!(ids(&server, "events.jsonl"), before);
    let moved_at = Instant::now();
    if deleted {
        std::fs::remove_file(server.data_file("events.jsonl")).unwrap();
    } else {
        std::fs::rename(server.data_file("events.jsonl"), server.data_file("events.jsonl.1")).unwrap();
    }
    let mut after = Vec::new();
    while ids(&server, "events.jsonl").is_empty() {
        assert!(
            moved_at.elapsed() < NOTICED_WITHIN,
            "no fresh events.jsonl within {NOTICED_WITHIN:?} of the move\n--- stderr:\n{}",
            server.stderr_text()
        );
        let id = fresh_ids(1, "after");
        post(&server, &id);
        after.extend(id);
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = fresh_ids(3, "last");
    post(&server, &last);
    after.extend(last);
    server.settle();
    (server, before, after)
}

/// The WARN line saying the file was reopened, exactly once; and no SIGHUP was involved.
fn assert_warned_once(server: &Server) {
    let reopened =
        "events.jsonl was moved or deleted: reopened (send SIGHUP after rotating to make it immediate)";
    assert!(server.stderr_contains(reopened, Duration::from_secs(5)), "{}", server.stderr_text());
    let stderr = server.stderr_text();
    let lines: Vec<&str> = stderr.lines().filter(|line| line.contains("was moved or deleted")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(!stderr.contains("sink files reopened"), "no SIGHUP was sent: {stderr}");
}

#[test]
fn a_renamed_events_file_is_followed_without_sighup_and_nothing_is_lost_or_repeated() {
    // Events posted in the first half second after the rename still go to the moved file (a
    // SIGHUP may be on its way); the later ones to the fresh file.
    let (server, before, after) = move_then_post(false);
    let old = ids(&server, "events.jsonl.1");
    let fresh = ids(&server, "events.jsonl");
    assert_eq!(
        [old.clone(), fresh.clone()].concat(),
        [before.clone(), after].concat(),
        "both files together: every event once, in the order posted"
    );
    assert_eq!(old[..before.len()], before, "the moved file keeps what it had");
    assert_warned_once(&server);
}

#[test]
fn a_deleted_events_file_is_followed_without_sighup_into_a_new_file() {
    let (server, before, after) = move_then_post(true);
    let fresh = ids(&server, "events.jsonl");
    assert_eq!(fresh, after, "every event posted after the rm in the new file, once, in order");
    assert!(before.iter().all(|id| !fresh.contains(id)), "nothing from before the rm written again");
    assert_warned_once(&server);
}

#[test]
fn logrotate_with_its_reload_gets_no_warning() {
    let server = Server::builder().start();
    let first = fresh_ids(2, "first");
    post(&server, &first);
    server.settle();
    std::fs::rename(server.data_file("events.jsonl"), server.data_file("events.jsonl.1")).unwrap();
    // Delivered (and synced, which sees the file moved) before the SIGHUP: into the moved file.
    let second = fresh_ids(2, "second");
    post(&server, &second);
    server.settle();
    server.signal(libc::SIGHUP);
    assert!(
        server.stderr_contains("sink files reopened", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
    // More than the grace later, more events: the sink looks again and finds PATH in place.
    let third = fresh_ids(2, "third");
    post(&server, &third);
    std::thread::sleep(Duration::from_millis(700));
    let fourth = fresh_ids(2, "fourth");
    post(&server, &fourth);
    server.settle();
    assert_eq!(ids(&server, "events.jsonl.1"), [first, second].concat());
    assert_eq!(ids(&server, "events.jsonl"), [third, fourth].concat());
    let stderr = server.stderr_text();
    assert!(!stderr.contains("was moved or deleted"), "{stderr}");
}
