//! Delivery through the real binary: sinks (jsonl, exec, stdout), order per path, retries and the
//! dead-letter file, the journal's disk budget and segment removal, SIGHUP, and a graceful stop
//! under load that loses nothing. (Crashes with SIGKILL are `tests/crash.rs`.)

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::server::{self, batch, event, post_request, sorted, unique_id, Client, Server, TempDir, PATH};

fn counts(accepted: usize) -> Value {
    json!({"accepted": accepted, "duplicates": 0, "quarantined": 0})
}

/// An executable shell script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Segment files and spare (removed, kept for reuse) segment files in the journal directory.
fn journal_files(server: &Server) -> (usize, usize) {
    let names: Vec<String> = std::fs::read_dir(server.data_file("journal"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let count = |suffix: &str| names.iter().filter(|name| name.ends_with(suffix)).count();
    assert_eq!(count(".seg") + count(".spare"), names.len(), "only segments and spares: {names:?}");
    (count(".seg"), count(".spare"))
}

/// An event with this id on this path.
fn event_on(id: &str, path: &str) -> Value {
    let mut value: Value = serde_json::from_str(&event(id)).unwrap();
    value["data"]["targetPath"] = json!(path);
    value
}

#[test]
fn events_of_one_path_reach_the_sink_in_the_order_they_were_accepted() {
    // Both kinds of routing: the jsonl sink writes one file, so one worker takes all its
    // deliveries; the exec sink's deliveries spread over the 4 workers by (domain, path), and a
    // slow delivery of another path must not let the watched path's events overtake each other.
    let temp = TempDir::new("delivery");
    let log = temp.path().join("exec.log");
    let program = script(
        temp.path(),
        "append.sh",
        &format!(
            "line=$(cat)\n\
             case \"$EGNYTE_PATH\" in */watched.txt) ;; *) sleep 0.0$(( $$ % 5 )) ;; esac\n\
             printf '%s\\n' \"$line\" >> \"{log}\"",
            log = log.display()
        ),
    );
    let events_file = temp.path().join("data").join("events.jsonl");
    let jsonl = format!("jsonl:{}", events_file.display());
    let exec = format!("exec:{}", program.display());
    let server =
        Server::builder().args(["--workers", "4", "--sink", &jsonl, "--sink", &exec]).temp_dir(temp).start();
    let mut accepted = Vec::new();
    for round in 0..40 {
        // Each batch mixes the watched path with others, so the workers really run in parallel.
        let batch: Vec<Value> = (0..5)
            .map(|i| {
                let path = if i % 2 == 0 {
                    "/Shared/watched.txt".to_string()
                } else {
                    format!("/Shared/{round}-{i}")
                };
                event_on(&unique_id("order"), &path)
            })
            .collect();
        let response = server.post(Value::Array(batch.clone()).to_string().as_bytes(), &[]);
        assert_eq!(response.json(), counts(5));
        accepted.extend(batch);
    }
    let watched = |events: &[Value]| -> Vec<Value> {
        events.iter().filter(|e| e["data"]["targetPath"] == "/Shared/watched.txt").cloned().collect()
    };
    server.settle();
    let events = server.events();
    assert_eq!(events, accepted, "one file, one worker: the jsonl sink has the journal order");
    let executed: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(watched(&executed), watched(&accepted), "one path: journal order through the exec sink");
    assert_eq!(sorted(executed), sorted(accepted));
}

#[test]
fn an_exec_sink_runs_the_program_once_per_event_with_its_environment() {
    let temp = TempDir::new("delivery");
    let out = temp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let program = script(
        temp.path(),
        "deliver.sh",
        &format!(
            "cat > \"{out}/$EGNYTE_EVENT_ID.json\"\n\
             printf '%s|%s|%s|%s|%s|%s' \"$EGNYTE_EVENT_TYPE\" \"$EGNYTE_DOMAIN\" \"$EGNYTE_PATH\" \
             \"$EGNYTE_IDEMPOTENCY_KEY\" \"$EGNYTE_JOURNAL_POSITION\" \"$EGNYTE_ATTEMPT\" > \"{out}/$EGNYTE_EVENT_ID.env\"",
            out = out.display()
        ),
    );
    let sink = format!("exec:{}", program.display());
    let server = Server::builder().args(["--sink", &sink, "--sink", "stdout"]).temp_dir(temp).start();
    let ids = [unique_id("exec"), unique_id("exec")];
    let body = batch(&[&ids[0], &ids[1]]);
    assert_eq!(server.post(body.as_bytes(), &[]).json(), counts(2));
    server.settle();
    for (position, id) in (1..).zip(&ids) {
        let stdin: Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{id}.json"))).unwrap()).unwrap();
        assert_eq!(
            stdin,
            serde_json::from_str::<Value>(&event(id)).unwrap(),
            "the event as received, on stdin"
        );
        let env = std::fs::read_to_string(out.join(format!("{id}.env"))).unwrap();
        // What a program needs to skip a repeat: the dedup key, the journal position (the
        // batch's two events are records 1 and 2), the attempt.
        let identity = format!("acme.egnyte.com:{id}|{position}|1");
        assert_eq!(env, format!("fs:add_file|acme.egnyte.com|/Shared/{id}.txt|{identity}"));
    }
    // The stdout sink printed one line per event, beside it.
    assert!(
        server.wait_stdout(Duration::from_secs(5), |text| text.lines().count() == 2),
        "{}",
        server.stdout_text()
    );
    let metrics = server.metrics();
    assert_eq!(metrics.get(&format!("egnyte_receiver_sink_delivered_total{{sink=\"{sink}\"}}")), 2.0);
    assert_eq!(metrics.get("egnyte_receiver_sink_delivered_total{sink=\"stdout\"}"), 2.0);
    assert!(!server.data_file("events.jsonl").exists(), "--sink replaces the default sink");
}

#[test]
fn a_failing_sink_retries_then_dead_letters_while_the_other_sinks_deliver() {
    let temp = TempDir::new("delivery");
    let program = script(temp.path(), "fail.sh", "cat > /dev/null\nexit 3");
    let sink = format!("exec:{}", program.display());
    let events_file = temp.path().join("data").join("events.jsonl");
    let jsonl = format!("jsonl:{}", events_file.display());
    let server = Server::builder()
        .args(["--sink", &sink, "--sink", &jsonl, "--delivery-attempts", "2"])
        .temp_dir(temp)
        .start();
    let id = unique_id("dead");
    assert_eq!(server.post(batch(&[&id]).as_bytes(), &[]).json(), counts(1));
    let settled = server.settle();
    assert_eq!(server.events(), [serde_json::from_str::<Value>(&event(&id)).unwrap()]);
    let dead = server.lines("dead-letter.jsonl");
    assert_eq!(dead.len(), 1, "{dead:?}");
    let line: Value = serde_json::from_str(&dead[0]).unwrap();
    assert_eq!(line["sink"], json!(sink));
    assert_eq!(line["reason"], json!("exit status 3"));
    assert_eq!(line["attempts"], json!(2));
    assert_eq!(line["event"], serde_json::from_str::<Value>(&event(&id)).unwrap());
    let get = |name: &str| settled.get(&format!("egnyte_receiver_sink_{name}{{sink=\"{sink}\"}}"));
    assert_eq!((get("failed_total"), get("retried_total"), get("dead_lettered_total")), (2.0, 1.0, 1.0));
    assert_eq!(get("delivered_total"), 0.0);
}

#[test]
fn quarantined_elements_never_reach_the_event_sinks() {
    let server = server::start(&["--sink", "stdout"]);
    let id = unique_id("q");
    let body = format!("[{},{{\"eventId\":\"\"}}]", event(&id));
    let response = server.post(body.as_bytes(), &[]);
    assert_eq!(response.json(), json!({"accepted": 1, "duplicates": 0, "quarantined": 1}));
    assert_eq!(server.quarantine().len(), 1);
    assert!(server.wait_stdout(Duration::from_secs(5), |t| t.lines().count() == 1));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.stdout_text().lines().count(), 1, "{}", server.stdout_text());
}

#[test]
fn delivered_segments_are_removed_and_the_disk_budget_answers_503() {
    // Small segments, no retention: delivered ones disappear.
    // 150 events; delivery settles every 25 (what is undelivered stays under 20000 bytes).
    let post_150 = |server: &Server| {
        for round in 0..30 {
            let ids: Vec<String> = (0..5).map(|_| unique_id("segment")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            assert_eq!(server.post(batch(&ids).as_bytes(), &[]).json(), counts(5));
            if round % 5 == 4 {
                server.settle();
            }
        }
        server.settle()
    };
    let server = server::start(&["--journal-segment-bytes", "4096", "--journal-retention", "0"]);
    let metrics = post_150(&server);
    let (segments, spares) = journal_files(&server);
    assert!(spares <= 2, "{spares} spare segment files");
    assert_eq!(metrics.get("egnyte_receiver_journal_records_total"), 150.0);
    assert!(segments <= 2, "{segments} segments kept after everything was delivered");
    assert!(metrics.get("egnyte_receiver_journal_bytes") <= 8192.0);

    // With retention (the default hour) they stay for replay, counted apart from the budget.
    let server = server::start(&["--journal-segment-bytes", "4096", "--max-journal-bytes", "20000"]);
    let metrics = post_150(&server);
    let (segments, _) = journal_files(&server);
    let (total, retained) =
        (metrics.get("egnyte_receiver_journal_bytes"), metrics.get("egnyte_receiver_journal_retained_bytes"));
    assert!(segments > 2 && retained > 0.0, "{segments} segments, {retained} retained bytes");
    assert!(total <= 20000.0 + 8192.0, "over the budget, delivered segments go however young: {total}");
    assert_eq!(
        server.post(batch(&[&unique_id("fits")]).as_bytes(), &[]).status,
        200,
        "retained bytes are no back-pressure"
    );

    // A sink that never succeeds keeps everything in the journal: past the budget, 503.
    let temp = TempDir::new("delivery");
    let program = script(temp.path(), "down.sh", "cat > /dev/null\nexit 1");
    let sink = format!("exec:{}", program.display());
    let server = Server::builder()
        .args([
            "--sink",
            &sink,
            "--delivery-attempts",
            "1000",
            "--max-journal-bytes",
            "6000",
            "--journal-retention",
            "0",
        ])
        .temp_dir(temp)
        .start();
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let ids: Vec<String> = (0..5).map(|_| unique_id("budget")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let response = server.post(batch(&ids).as_bytes(), &[]);
        if response.status == 503 {
            assert_eq!(response.header("Retry-After"), Some("30"), "{response:?}");
            assert!(response.text().contains("--max-journal-bytes"), "{response:?}");
        }
        statuses.push(response.status);
    }
    let first_503 = statuses.iter().position(|&s| s == 503).expect("the budget is reached");
    assert!(first_503 >= 2 && statuses[first_503..].iter().all(|&s| s == 503), "{statuses:?}");
    assert_eq!(server.get("/healthz").status, 200, "a full budget is back-pressure, not ill health");
}

#[test]
fn sighup_reopens_the_jsonl_file_after_logrotate_moved_it() {
    let server = server::start(&[]);
    let first = unique_id("before");
    assert_eq!(server.post(batch(&[&first]).as_bytes(), &[]).json(), counts(1));
    server.settle();
    let rotated = server.data_file("events.jsonl.1");
    std::fs::rename(server.data_file("events.jsonl"), &rotated).unwrap();
    server.signal(libc::SIGHUP);
    assert!(
        server.stderr_contains("sink files reopened", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
    let second = unique_id("after");
    assert_eq!(server.post(batch(&[&second]).as_bytes(), &[]).json(), counts(1));
    let events = server.events();
    assert_eq!(events, [serde_json::from_str::<Value>(&event(&second)).unwrap()]);
    let old = std::fs::read_to_string(rotated).unwrap();
    assert!(old.contains(&first) && !old.contains(&second));
}

/// Posts batches of 5 from `threads` keep-alive connections until `stop`, a refusal or a closed
/// connection (bounded: 20 s); returns the acknowledged event ids.
fn load(addr: SocketAddr, threads: usize, stop: &AtomicBool) -> Vec<String> {
    let acknowledged = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let Ok(mut client) = Client::try_connect(addr, Duration::from_secs(1)) else { return };
                client.set_timeout(Duration::from_secs(10));
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let ids: Vec<String> = (0..5).map(|_| unique_id("term")).collect();
                    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                    if client.send(&post_request(PATH, batch(&refs).as_bytes(), &[])).is_err() {
                        return;
                    }
                    match client.try_read_response() {
                        Ok(response) if response.status == 200 => {
                            assert_eq!(response.json(), counts(5));
                            acknowledged.lock().unwrap().extend(ids);
                            if response.closes() {
                                return;
                            }
                        }
                        Ok(response) => {
                            assert_eq!(response.status, 503, "{response:?}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    acknowledged.into_inner().unwrap()
}

#[test]
fn sigterm_under_load_exits_0_and_loses_no_acknowledged_event() {
    let mut server = server::start(&[]);
    let stop = AtomicBool::new(false);
    let addr = server.addr();
    let (status, acknowledged) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| load(addr, 4, &stop));
        std::thread::sleep(Duration::from_millis(700));
        server.signal(libc::SIGTERM);
        // The stop finishes the requests in flight; senders then see refusals or closed sockets.
        let status = server.wait_exit(Duration::from_secs(15));
        stop.store(true, Ordering::Relaxed);
        (status, sender.join().unwrap())
    });
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}\n{}", server.stderr_text());
    assert!(acknowledged.len() >= 50, "the load ran: {} events acknowledged", acknowledged.len());
    assert!(
        server.stderr_contains("every journaled event delivered", Duration::ZERO),
        "{}",
        server.stderr_text()
    );
    // Everything acknowledged is in the sink, exactly once, before any restart.
    let lines = server.lines("events.jsonl");
    let mut delivered: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["eventId"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    let mut expected = acknowledged.clone();
    expected.sort();
    let missing: Vec<&String> = expected.iter().filter(|id| delivered.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "{} acknowledged events missing, e.g. {:?}", missing.len(), missing.first());
    delivered.dedup();
    assert_eq!(delivered.len(), lines.len(), "an event delivered twice");
    // A restart resumes at the checkpoint: nothing is delivered again.
    let server = Server::builder().temp_dir(server.into_temp()).start();
    let id = unique_id("after-restart");
    assert_eq!(server.post(batch(&[&id]).as_bytes(), &[]).json(), counts(1));
    assert_eq!(server.events().len(), lines.len() + 1);
}

#[test]
fn a_stopped_receiver_refuses_connections_and_a_restart_continues_the_sequence() {
    let mut server = server::start(&["--durability", "none"]);
    let id = unique_id("none");
    assert_eq!(server.post(batch(&[&id]).as_bytes(), &[]).json(), counts(1));
    // With none durability the 200 comes before the write: wait until the writer has written it.
    let written = |m: &support::server::Metrics| m.get("egnyte_receiver_journal_next_record") == 2.0;
    assert!(written(&server.wait_metrics(Duration::from_secs(5), written)));
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", server.stderr_text());
    assert!(
        Client::try_connect(server.addr(), Duration::from_millis(500)).is_err(),
        "the listener is closed"
    );
    assert_eq!(server.lines("events.jsonl").len(), 1, "none mode flushes and delivers on a clean stop");
    let server = Server::builder().args(["--durability", "none"]).temp_dir(server.into_temp()).start();
    assert_eq!(server.metrics().get("egnyte_receiver_journal_next_record"), 2.0, "the sequence continues");
    let again = server.post(batch(&[&id]).as_bytes(), &[]);
    assert_eq!(
        again.json(),
        json!({"accepted": 0, "duplicates": 1, "quarantined": 0}),
        "dedup survived the stop"
    );
}

/// Waits (bounded) until `file` in the data directory holds `lines` lines.
fn wait_for_lines(server: &Server, file: &str, lines: usize, within: Duration) -> usize {
    let started = Instant::now();
    loop {
        let have = server.lines(file).len();
        if have >= lines || started.elapsed() >= within {
            return have;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failing_exec_sink_does_not_hold_up_a_jsonl_sink_beside_it() {
    let temp = TempDir::new("delivery");
    let failing = script(temp.path(), "fails.sh", "cat > /dev/null\nexit 1");
    let jsonl = temp.path().join("data").join("events.jsonl");
    let server = Server::builder()
        .args([
            "--sink".into(),
            format!("exec:{}", failing.display()),
            "--sink".into(),
            format!("jsonl:{}", jsonl.display()),
        ])
        .temp_dir(temp)
        .start();
    for n in 0..10 {
        let ids: Vec<String> = (0..10).map(|_| unique_id(&format!("beside-{n}"))).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(server.post(batch(&refs).as_bytes(), &[]).status, 200);
    }
    // The exec sink retries each event for about half a minute; the jsonl sink has its own
    // workers and takes all 100 at once.
    let have = wait_for_lines(&server, "events.jsonl", 100, Duration::from_secs(5));
    assert_eq!(have, 100, "the jsonl sink was held up by the failing exec sink");
    let metrics = server.metrics();
    assert!(
        metrics.get(&format!("egnyte_receiver_sink_failed_total{{sink=\"exec:{}\"}}", failing.display()))
            > 0.0
    );
}

#[test]
fn a_stdout_reader_that_stops_reading_does_not_stall_the_rest_nor_the_stop() {
    // The receiver's stdout is a pipe nobody reads (the test holds it open without reading):
    // once the pipe is full the stdout sink's worker blocks in write.
    let temp = TempDir::new("delivery");
    let jsonl = temp.path().join("data").join("events.jsonl");
    let mut server = Server::builder()
        .args(["--sink".into(), "stdout".into(), "--sink".into(), format!("jsonl:{}", jsonl.display())])
        .args(["--shutdown-timeout", "3"])
        .stdout_unread()
        .temp_dir(temp)
        .start();
    let padding = "p".repeat(2000);
    let mut sent = 0;
    for n in 0..40 {
        let events: Vec<Value> = (0..10)
            .map(|k| {
                let mut e: Value =
                    serde_json::from_str(&event(&unique_id(&format!("stall-{n}-{k}")))).unwrap();
                e["data"]["comment"] = json!(padding);
                e
            })
            .collect();
        assert_eq!(server.post(Value::Array(events).to_string().as_bytes(), &[]).status, 200);
        sent += 10;
    }
    // 800 KB of lines: far more than a pipe holds. The jsonl sink still gets everything.
    assert_eq!(wait_for_lines(&server, "events.jsonl", sent, Duration::from_secs(10)), sent);
    assert_eq!(server.get("/healthz").status, 200);
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.is_some(), "SIGTERM with --shutdown-timeout 3 must end the process");
    assert!(started.elapsed() < Duration::from_secs(8), "stopped after {:?}", started.elapsed());
}

#[test]
fn a_stop_whose_last_checkpoint_cannot_be_stored_says_so() {
    let mut server = Server::builder().start();
    assert_eq!(server.post(batch(&[&unique_id("before")]).as_bytes(), &[]).status, 200);
    server.settle();
    // The checkpoint is written to checkpoint.tmp and renamed: a directory there makes it fail.
    std::fs::create_dir(server.data_file("checkpoint.tmp")).unwrap();
    assert_eq!(server.post(batch(&[&unique_id("after")]).as_bytes(), &[]).status, 200);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    let log = server.stderr_text();
    assert!(log.contains("the last checkpoint could not be stored"), "{log}");
    assert!(!log.contains("every journaled event delivered and checkpointed"), "{log}");
    // The next start delivers nothing twice into the jsonl file.
    let temp = server.kill_keeping_data();
    std::fs::remove_dir(temp.path().join("data/checkpoint.tmp")).unwrap();
    let server = Server::builder().temp_dir(temp).start();
    assert_eq!(server.events().len(), 2);
}
