//! The operator tools against a real receiver on loopback: `journal stats`, `journal dump` with
//! its filters, `replay` (while the receiver runs, after a downstream outage, and once it has
//! stopped), the dead-letter redrive `replay --dead-letter` (after a stop without the journal,
//! and while the receiver runs and appends), and how the tools find the data directory.

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
        (
            &["replay", "--sink", "http://127.0.0.1:9/x", "--http-sign-secret-file", "/nonexistent-secret"][..],
            1,
            "--http-sign-secret-file /nonexistent-secret",
        ),
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

// ---------------------------------------------------------------------------------------------
// `replay --dead-letter`: the dead-letter redrive.

/// Runs the binary with `args` only (no `--data-dir` added), `EGNYTE_RECEIVER_DATA_DIR` as given.
fn tool_plain(args: &[&str], data_dir_env: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_egnyte-receiver"));
    command.args(args).env_remove("EGNYTE_RECEIVER_DATA_DIR");
    if let Some(dir) = data_dir_env {
        command.env("EGNYTE_RECEIVER_DATA_DIR", dir);
    }
    command.output().expect("run the binary")
}

/// `replay --dead-letter [extra]` on `data`: (exit status, stderr).
fn redrive(data: &Path, extra: &[&str]) -> (i32, String) {
    let output = tool(&[&["replay", "--dead-letter"], extra].concat(), data);
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The `eventId` of each line of a JSON-lines file (the event itself, or a dead-letter or
/// archive line's `event`), in order; none when the file does not exist.
fn event_ids(path: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    assert!(text.is_empty() || text.ends_with('\n'), "{}: a torn line", path.display());
    lines(&text)
        .iter()
        .map(|v| v.get("event").unwrap_or(v)["eventId"].as_str().expect("an eventId").to_string())
        .collect()
}

fn sorted_ids(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// A dead-letter line as the receiver writes it.
fn dead_letter_line(sink: &str, seq: u64, event: &Value) -> String {
    format!(
        "{{\"sink\":{},\"reason\":\"r\",\"attempts\":1,\"seq\":{seq},\"acceptedMs\":1,\"event\":{event}}}\n",
        json!(sink)
    )
}

#[test]
fn dead_letter_redrive_after_a_stop_even_without_the_journal() {
    let temp = TempDir::new("redrive-stopped");
    let down = script(temp.path(), "down.sh", "cat > /dev/null\nexit 7");
    let server = Server::builder().args(["--sink", &down, "--delivery-attempts", "1"]).temp_dir(temp).start();
    let ids: Vec<String> = (0..4).map(|_| unique_id("dead")).collect();
    post(&server, &ids.iter().map(|id| event(id, "fs:add_file", "acme")).collect::<Vec<_>>());
    server.settle();
    let mut server = server;
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(15)).is_some_and(|s| s.success()));
    let temp = server.into_temp();
    let data = temp.path().join("data");
    let dead_letter = data.join("dead-letter.jsonl");
    let archive = data.join("dead-letter.archived.jsonl");
    assert_eq!(sorted_ids(event_ids(&dead_letter)), sorted_ids(ids.clone()));

    // A target that fails keeps every line as it was.
    let before = std::fs::read(&dead_letter).unwrap();
    let failing = script(temp.path(), "fail.sh", "cat > /dev/null\nexit 3");
    let (status, report) = redrive(&data, &["--sink", &failing]);
    assert_eq!(status, 1, "{report}");
    assert!(
        report.contains("0 redelivered to exec:") && report.contains("4 still failing (kept), 0 skipped"),
        "{report}"
    );
    assert!(report.contains("still failing, kept: exit status 3"), "{report}");
    assert!(report.contains(&format!("data directory {} (from --data-dir)", data.display())), "{report}");
    assert_eq!(std::fs::read(&dead_letter).unwrap(), before);
    assert!(event_ids(&archive).is_empty());

    // The journal is gone (past retention); a handler's line and a malformed one are added.
    std::fs::remove_dir_all(data.join("journal")).unwrap();
    let handled = unique_id("handler");
    let mut file = std::fs::OpenOptions::new().append(true).open(&dead_letter).unwrap();
    use std::io::Write;
    file.write_all(dead_letter_line("handler:audit", 2, &event(&handled, "fs:add_file", "acme")).as_bytes())
        .unwrap();
    file.write_all(b"{\"sink\":\"stdout\",\"reason\":\"torn\n").unwrap();
    drop(file);
    let before = std::fs::read(&dead_letter).unwrap();

    // Without --sink each line goes to its own sink: the exec one still fails, the handler's
    // cannot be rebuilt here, the malformed line is reported; nothing changes.
    let (status, report) = redrive(&data, &[]);
    assert_eq!(status, 1, "{report}");
    assert!(
        report.contains("0 redelivered, 4 still failing (kept), 2 skipped (kept: 1 malformed, 1 sink not rebuildable here: give --sink)"),
        "{report}"
    );
    assert!(report.contains("sink handler:audit cannot be rebuilt by this tool"), "{report}");
    assert!(
        report.contains("dead-letter.jsonl line 6: skipped, kept: \"reason\" is not a JSON string"),
        "{report}"
    );
    assert_eq!(std::fs::read(&dead_letter).unwrap(), before);

    // Into a file: exactly the dead-lettered events, from the dead-letter file itself.
    let out = temp.path().join("redriven.jsonl");
    let to = format!("jsonl:{}", out.display());
    let (status, report) = redrive(&data, &["--sink", &to]);
    assert_eq!(status, 1, "the malformed line is still there: {report}");
    assert!(
        report.contains(&format!(
            "5 redelivered to {to}, 0 still failing (kept), 1 skipped (kept: 1 malformed)"
        )),
        "{report}"
    );
    let mut wanted = ids.clone();
    wanted.push(handled);
    assert_eq!(sorted_ids(event_ids(&out)), sorted_ids(wanted.clone()));
    assert_eq!(std::fs::read_to_string(&dead_letter).unwrap(), "{\"sink\":\"stdout\",\"reason\":\"torn\n");
    let archived = lines(&std::fs::read_to_string(&archive).unwrap());
    assert_eq!(sorted_ids(event_ids(&archive)), sorted_ids(wanted));
    assert!(archived.iter().all(|a| a["to"] == to.as_str() && a["redrivenMs"].is_u64()), "{archived:?}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!((mode(&dead_letter), mode(&archive)), (0o600, 0o600));

    // The operator deletes the malformed line; a second redrive does nothing, successfully.
    std::fs::write(&dead_letter, "").unwrap();
    let out_before = std::fs::read(&out).unwrap();
    let archive_before = std::fs::read(&archive).unwrap();
    let (status, report) = redrive(&data, &["--sink", &to]);
    assert_eq!(status, 0, "{report}");
    assert!(
        report.contains("0 redelivered to jsonl:") && report.contains("0 still failing (kept), 0 skipped"),
        "{report}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), out_before);
    assert_eq!(std::fs::read(&archive).unwrap(), archive_before);
}

#[test]
fn dead_letter_redrive_while_the_receiver_runs_loses_no_append_and_repeats_nothing() {
    let temp = TempDir::new("redrive-running");
    let tries = temp.path().join("tries");
    std::fs::create_dir(&tries).unwrap();
    // Always fails, and leaves a file per attempt.
    let down = script(
        temp.path(),
        "down.sh",
        &format!("cat > /dev/null\ntouch \"{}/$EGNYTE_EVENT_ID.$$\"\nexit 7", tries.display()),
    );
    let args = ["--sink", down.as_str(), "--delivery-attempts", "1"];
    let server = Server::builder().args(args).temp_dir(temp).start();
    let data = server.data_file("");
    let dead_letter = server.data_file("dead-letter.jsonl");
    let archive = server.data_file("dead-letter.archived.jsonl");
    let out = server.data_file("redriven.jsonl");
    let to = format!("jsonl:{}", out.display());
    let first: Vec<String> = (0..4).map(|_| unique_id("running")).collect();
    post(&server, &first.iter().map(|id| event(id, "fs:add_file", "acme")).collect::<Vec<_>>());
    server.settle();

    let (status, report) = redrive(&data, &["--sink", &to]);
    assert_eq!(status, 0, "{report}");
    assert!(report.contains("4 redelivered"), "{report}");
    assert_eq!(sorted_ids(event_ids(&out)), sorted_ids(first.clone()));
    assert!(event_ids(&dead_letter).is_empty());
    assert_eq!(sorted_ids(event_ids(&archive)), sorted_ids(first.clone()));

    // Events dead-lettered while redrives run: every one ends up in exactly one of the two files,
    // once (the receiver's appends wait for the redrive's lock and follow its new file).
    let more: Vec<String> = (0..24).map(|_| unique_id("racing")).collect();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for id in &more {
                post(&server, &[event(id, "fs:add_file", "acme")]);
                std::thread::sleep(Duration::from_millis(15));
            }
        });
        for _ in 0..6 {
            // Lines not yet checkpointed are left for the next run (status 1 then).
            let (status, report) = redrive(&data, &["--sink", &to]);
            assert!(status == 0 || report.contains("not yet past the receiver's checkpoint"), "{report}");
            std::thread::sleep(Duration::from_millis(40));
        }
    });
    server.settle();
    let (status, report) = redrive(&data, &["--sink", &to]);
    assert_eq!(status, 0, "{report}");
    let all = sorted_ids([first.clone(), more.clone()].concat());
    assert_eq!(sorted_ids(event_ids(&out)), all, "each redelivered once");
    assert_eq!(sorted_ids(event_ids(&archive)), all, "each archived once");
    assert!(event_ids(&dead_letter).is_empty());
    let tried = std::fs::read_dir(&tries).unwrap().count();
    assert_eq!(tried, all.len(), "the receiver tried each event once");

    // A restart on the same data delivers none of the redriven records again, and a new
    // failure is dead-lettered as before.
    let temp = server.kill_keeping_data();
    let server = Server::builder().args(args).temp_dir(temp).start();
    let late = unique_id("late");
    post(&server, &[event(&late, "fs:add_file", "acme")]);
    server.settle();
    assert_eq!(event_ids(&server.data_file("dead-letter.jsonl")), [late]);
    assert_eq!(std::fs::read_dir(&tries).unwrap().count(), all.len() + 1, "only the new event was tried");
    // A second redriver waits for nobody: the archive lock says another one runs.
    let holder = std::fs::File::open(server.data_file("dead-letter.archived.jsonl")).unwrap();
    holder.lock().unwrap();
    let (status, report) = redrive(&server.data_file(""), &["--sink", &to]);
    assert_eq!(status, 1, "{report}");
    assert!(report.contains("another replay --dead-letter is running"), "{report}");
}

#[test]
fn the_tools_say_which_data_directory_they_use_and_help_tells_how_it_is_found() {
    let server = server::start(&[]);
    server.settle();
    let data = server.data_file("");
    let output = tool_plain(&["journal", "stats"], Some(&data));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("data directory {} (from $EGNYTE_RECEIVER_DATA_DIR)", data.display())),
        "{stderr}"
    );
    let stats = String::from_utf8_lossy(&output.stdout);
    assert!(stats.contains("dead letters: 0 lines in"), "{stats}");
    let output = tool_plain(&["replay", "--dead-letter", "--sink", "stdout"], Some(&data));
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("(from $EGNYTE_RECEIVER_DATA_DIR)"));

    for (command, wanted) in [
        (
            &["replay", "--help"][..],
            &["--dead-letter", "dead-letter.archived.jsonl", "/etc/egnyte-receiver/env"][..],
        ),
        (
            &["journal", "--help"],
            &["/etc/egnyte-receiver/env", "/var/lib/private/egnyte-receiver", "replay --dead-letter"],
        ),
    ] {
        let help = String::from_utf8(tool_plain(command, None).stdout).unwrap();
        for text in wanted {
            assert!(help.contains(text), "{command:?} --help lacks {text:?}:\n{help}");
        }
    }
    let output = tool(&["replay", "--dead-letter", "--type", "fs:*"], &data);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("takes no"));
}
