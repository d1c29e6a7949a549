//! The operator tools against a real receiver on loopback: `journal stats`, `journal dump` with
//! its filters, and `replay` (while the receiver runs, after a downstream outage, and once it has
//! stopped).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};
use support::server::{self, unique_id, Server, TempDir};

fn tool(args: &[&str], data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egnyte-receiver"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("EGNYTE_RECEIVER_DATA_DIR")
        .output()
        .expect("run the binary")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn event(id: &str, event_type: &str, domain: &str) -> Value {
    json!({"eventId": id, "domain": domain, "timestamp": 1_732_780_800_123_u64, "actionSource": "WebUI",
           "eventType": event_type, "data": {"targetPath": format!("/Shared/{id}.txt")}})
}

/// Posts these events as one batch; all must be accepted.
fn post(server: &Server, events: &[Value]) {
    let response = server.post(Value::Array(events.to_vec()).to_string().as_bytes(), &[]);
    assert_eq!(response.json()["accepted"], json!(events.len()), "{response:?}");
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("exec:{}", path.display())
}

#[test]
fn stats_and_dump_read_a_running_receivers_journal() {
    let server = server::start(&[]);
    let (a, b, c) = (unique_id("a"), unique_id("b"), unique_id("c"));
    let events = [
        event(&a, "fs:add_file", "acme"),
        event(&b, "link:create_download_link", "acme"),
        event(&c, "fs:delete_file", "globex"),
    ];
    post(&server, &events);
    let quarantined = server.post(br#"[{"eventId":""}]"#, &[]);
    assert_eq!(quarantined.json()["quarantined"], json!(1));
    server.settle();
    let data = server.data_file("");

    let stats = stdout(&tool(&["journal", "stats"], &data));
    assert!(stats.contains(": 1 segments, 4 records (3 events, 1 quarantined)"), "{stats}");
    assert!(stats.contains("next record 5"), "{stats}");
    assert!(stats.contains("records 1-4"), "{stats}");
    assert!(stats.contains("sink quarantine: position 5, lag 0 records"), "{stats}");
    assert!(
        stats.contains(&format!("sink jsonl:{}events.jsonl: position 5, lag 0 records", data.display())),
        "{stats}"
    );
    assert!(stats.contains("dedup: 3 of 1048576 keys in dedup.keys"), "{stats}");

    let dump = |filters: &[&str]| lines(&stdout(&tool(&[&["journal", "dump"], filters].concat(), &data)));
    assert_eq!(dump(&[]), events, "every event, in order, as received");
    assert_eq!(dump(&["--type", "fs:*"]), [events[0].clone(), events[2].clone()]);
    assert_eq!(dump(&["--type", "fs:add_file", "--domain", "acme"]), [events[0].clone()]);
    assert_eq!(dump(&["--domain", "globex"]), [events[2].clone()]);
    assert_eq!(dump(&["--from", "2"]), events[1..]);
    assert_eq!(dump(&["--since", "1h"]), events);
    assert!(dump(&["--since", "2099-01-01"]).is_empty());
    assert_eq!(
        dump(&["--quarantined"]),
        [json!({"index": 0, "reason": "eventId is empty", "element": {"eventId": ""}})]
    );
}

#[test]
fn replay_delivers_dead_lettered_events_while_the_receiver_runs() {
    let temp = TempDir::new("tools");
    let down = script(temp.path(), "down.sh", "cat > /dev/null\nexit 7");
    let delivered = temp.path().join("delivered");
    std::fs::create_dir(&delivered).unwrap();
    let up =
        script(temp.path(), "up.sh", &format!("cat > \"{}/$EGNYTE_EVENT_ID.json\"", delivered.display()));
    let server = Server::builder().args(["--sink", &down, "--delivery-attempts", "1"]).temp_dir(temp).start();
    let ids: Vec<String> = (0..4).map(|_| unique_id("outage")).collect();
    let events: Vec<Value> = ids.iter().map(|id| event(id, "fs:add_file", "acme")).collect();
    post(&server, &events);
    server.settle();
    let dead: Vec<Value> =
        server.lines("dead-letter.jsonl").iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 4);
    assert!(dead.iter().all(|d| d["reason"] == "exit status 7"));
    let first_seq = dead.iter().map(|d| d["seq"].as_u64().unwrap()).min().unwrap();

    // The downstream is back: replay from the first dead letter, the receiver still running.
    let data = server.data_file("");
    let output = tool(&["replay", "--sink", &up, "--from", &first_seq.to_string()], &data);
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("replayed 4 events to exec:"), "{report}");
    for (id, event) in ids.iter().zip(&events) {
        let text = std::fs::read_to_string(delivered.join(format!("{id}.json"))).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), *event);
    }
    // The receiver's own checkpoint is untouched by a replay.
    let stats = stdout(&tool(&["journal", "stats"], &data));
    assert!(stats.contains("position 5, lag 0 records"), "{stats}");
}

#[test]
fn replay_after_a_stop_and_its_failures_and_usage_errors() {
    let mut server = server::start(&[]);
    let events: Vec<Value> = (0..3)
        .map(|i| event(&unique_id("stopped"), if i == 1 { "fs:add_folder" } else { "fs:add_file" }, "acme"))
        .collect();
    post(&server, &events);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(15)).is_some_and(|s| s.success()));
    let temp = server.into_temp();
    let data = temp.path().join("data");

    let copy = temp.path().join("copy.jsonl");
    let output =
        tool(&["replay", "--sink", &format!("jsonl:{}", copy.display()), "--type", "fs:add_file"], &data);
    assert!(output.status.success(), "{output:?}");
    let replayed = lines(&std::fs::read_to_string(&copy).unwrap());
    assert_eq!(replayed, [events[0].clone(), events[2].clone()]);

    let failing = script(temp.path(), "fail.sh", "cat > /dev/null\nexit 1");
    let output = tool(&["replay", "--sink", &failing], &data);
    let report = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("record 1: exit status 1") && report.contains("3 failed"), "{report}");

    for (args, status, message) in [
        (&["replay"][..], 2, "replay needs --sink"),
        (&["replay", "--sink", "nowhere:x"], 2, "unknown sink"),
        (&["replay", "--sink", "stdout", "--since", "1h", "--from", "3"], 2, "not both"),
        (&["journal", "dump", "--since", "soon"], 2, "is not a time"),
        (&["journal", "stats"][..], 1, "no journal here"),
    ] {
        let dir = if status == 1 { temp.path().join("missing") } else { data.clone() };
        let output = tool(args, &dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn replay_refuses_the_file_a_running_receiver_writes_and_leaves_it_whole() {
    let server = Server::builder().start();
    let ids: Vec<String> = (0..5).map(|_| unique_id("live")).collect();
    post(&server, &ids.iter().map(|id| event(id, "fs:add_file", "acme")).collect::<Vec<_>>());
    server.settle();
    let live = server.data_file("events.jsonl");
    let before = std::fs::read(&live).unwrap();
    let sink = format!("jsonl:{}", live.display());
    let output = tool(&["replay", "--sink", &sink], &server.data_file(""));
    let report = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("a running receiver writes this file"), "{report}");
    assert_eq!(std::fs::read(&live).unwrap(), before, "the live file is untouched");
    // Into another file it goes, and the receiver keeps writing its own.
    let other = format!("jsonl:{}", server.data_file("replayed.jsonl").display());
    assert!(tool(&["replay", "--sink", &other], &server.data_file("")).status.success());
    assert_eq!(server.lines("replayed.jsonl").len(), 5);
    let more = unique_id("live-after");
    post(&server, &[event(&more, "fs:add_file", "acme")]);
    assert_eq!(server.events().len(), 6);
}
