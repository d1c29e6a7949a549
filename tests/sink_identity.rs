//! A sink's checkpoint follows the sink, not the spelling of its spec, through the real binary:
//! one file spelled relatively then absolutely, an entry an older version stored under another
//! spelling, a named sink whose path changes, and a data directory moved to another path each
//! deliver nothing twice; a sink that really is new is announced with a warning and the count of
//! the records it is about to receive, and with `--sink-start end` receives only new events.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::server::{self, batch, unique_id, Server, TempDir};

/// How long a test waits for a line or a file to show up.
const WITHIN: Duration = Duration::from_secs(10);

/// An executable script at `path` that appends the event on its stdin, as one line, to `log`
/// (`$(dirname "$0")/NAME` when `log` is relative, so it moves with the script).
fn appender(path: &Path, log: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let target =
        if log.starts_with('/') { format!("'{log}'") } else { format!("\"$(dirname \"$0\")/{log}\"") };
    std::fs::write(path, format!("#!/bin/sh\nline=$(cat)\nprintf '%s\\n' \"$line\" >> {target}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.to_path_buf()
}

/// `path` (absolute) spelled relative to the working directory the server inherits.
fn relative(path: &Path) -> String {
    let up = "../".repeat(std::env::current_dir().unwrap().components().count() - 1);
    format!("{up}{}", path.display().to_string().trim_start_matches('/'))
}

/// The eventIds of the lines of `path` (none when it does not exist).
fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            value["eventId"].as_str().expect("an eventId").to_owned()
        })
        .collect()
}

/// Waits (bounded) until `path` holds exactly the `expected` event ids, each once (in any order:
/// an exec sink delivers events of different paths in parallel), and says so.
fn assert_ids(path: &Path, expected: &[String]) {
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };
    let expected = sorted(expected.to_vec());
    let deadline = Instant::now() + WITHIN;
    while sorted(ids(path)) != expected && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sorted(ids(path)), expected, "{}", path.display());
}

/// Posts a batch of `n` fresh events; returns their ids.
fn post(server: &Server, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|_| unique_id("identity")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = server.post(batch(&refs).as_bytes(), &[]);
    assert_eq!(response.status, 200, "{response:?}");
    ids
}

/// The server's stderr has no line saying that a sink is new.
fn assert_no_new_sink(server: &Server) {
    let stderr = server.stderr_text();
    assert!(!stderr.contains(" is new"), "no sink may count as new:\n{stderr}");
}

/// A temporary directory and its real path (the names sinks get are canonical).
fn temp(tag: &str) -> (TempDir, PathBuf) {
    let temp = TempDir::new(tag);
    let root = std::fs::canonicalize(temp.path()).unwrap();
    (temp, root)
}

#[test]
fn the_same_files_spelled_relatively_then_absolutely_are_the_same_sinks() {
    let (temp, root) = temp("identity-spelling");
    let program = appender(&root.join("append.sh"), &root.join("exec.log").display().to_string());
    let jsonl = root.join("out").join("events.jsonl");
    std::fs::create_dir(root.join("out")).unwrap();
    let server = Server::builder()
        .args([
            "--sink",
            &format!("jsonl:{}", relative(&jsonl)),
            "--sink",
            &format!("exec:{}", relative(&program)),
        ])
        .temp_dir(temp)
        .start();
    let first = post(&server, 2);
    server.settle();
    let temp = server.kill_keeping_data();
    let checkpoint = std::fs::read_to_string(root.join("data/checkpoint")).unwrap();
    assert!(checkpoint.contains(&format!(" exec:{}\n", program.display())), "{checkpoint}");
    assert!(checkpoint.contains(&format!(" jsonl:{}\n", jsonl.display())), "{checkpoint}");

    // The same files, spelled absolutely (and once through `..`).
    let spelled = format!("jsonl:{}/out/../out/events.jsonl", root.display());
    let server = Server::builder()
        .args(["--sink", &spelled, "--sink", &format!("exec:{}", program.display())])
        .temp_dir(temp)
        .start();
    let second = post(&server, 1);
    server.settle();
    assert_no_new_sink(&server);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_ids(&root.join("exec.log"), &all);
    assert_ids(&jsonl, &all);
    let metrics = server.metrics();
    let label = format!("egnyte_receiver_sink_delivered_total{{sink=\"exec:{}\"}}", program.display());
    assert_eq!(metrics.get(&label), 1.0, "the metric label is the canonical name");
}

#[test]
fn an_entry_an_older_version_stored_under_another_spelling_is_adopted() {
    let (temp, root) = temp("identity-adopt");
    let program = appender(&root.join("append.sh"), &root.join("exec.log").display().to_string());
    let exec = format!("exec:{}", program.display());
    let server = Server::builder().args(["--sink", &exec]).temp_dir(temp).start();
    let first = post(&server, 2);
    server.settle();
    let temp = server.kill_keeping_data();
    // What an older version stored: the path as it was given on its command line.
    let path = root.join("data/checkpoint");
    let old = format!("exec:{}", relative(&root.join("./append.sh")));
    let text = std::fs::read_to_string(&path).unwrap().replace(&format!(" {exec}\n"), &format!(" {old}\n"));
    assert!(text.contains(&old), "{text}");
    std::fs::write(&path, text).unwrap();

    let server = Server::builder().args(["--sink", &exec]).temp_dir(temp).start();
    assert!(
        server.stderr_contains(
            &format!("{exec}: the checkpoint entry stored as {old} (the same file)"),
            WITHIN
        ),
        "{}",
        server.stderr_text()
    );
    assert_no_new_sink(&server);
    let second = post(&server, 1);
    server.settle();
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_ids(&root.join("exec.log"), &all);
    // From then on the entry is stored under the sink's name.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!(" {exec}\n")) && !text.contains(&old), "{text}");
}

#[test]
fn a_named_sink_keeps_its_position_when_its_path_changes() {
    let (temp, root) = temp("identity-named");
    let before = appender(&root.join("before.sh"), &root.join("before.log").display().to_string());
    let after = appender(&root.join("after.sh"), &root.join("after.log").display().to_string());
    let server =
        Server::builder().args(["--sink", &format!("hook=exec:{}", before.display())]).temp_dir(temp).start();
    let first = post(&server, 2);
    server.settle();
    assert_eq!(server.metrics().get("egnyte_receiver_sink_delivered_total{sink=\"hook\"}"), 2.0);
    let temp = server.kill_keeping_data();
    let checkpoint = std::fs::read_to_string(root.join("data/checkpoint")).unwrap();
    assert!(checkpoint.contains("sink 3 hook\n"), "{checkpoint}");

    let server =
        Server::builder().args(["--sink", &format!("hook=exec:{}", after.display())]).temp_dir(temp).start();
    let second = post(&server, 1);
    server.settle();
    assert_no_new_sink(&server);
    assert_ids(&root.join("after.log"), &second);
    assert_ids(&root.join("before.log"), &first);
}

#[test]
fn a_data_directory_moved_to_another_path_delivers_nothing_twice() {
    let (temp, root) = temp("identity-moved");
    let data = root.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    // An exec program inside the data directory, writing beside itself: it moves with it.
    appender(&data.join("hooks/append.sh"), "exec.log");
    let sinks = |dir: &Path| {
        [
            "--sink".to_string(),
            format!("jsonl:{}/events.jsonl", dir.display()),
            "--sink".to_string(),
            format!("exec:{}/hooks/append.sh", dir.display()),
        ]
    };
    let server = Server::builder().args(sinks(&data)).temp_dir(temp).start();
    let first = post(&server, 2);
    server.settle();
    let temp = server.kill_keeping_data();
    let checkpoint = std::fs::read_to_string(data.join("checkpoint")).unwrap();
    assert!(checkpoint.contains(" jsonl:$DATA_DIR/events.jsonl\n"), "{checkpoint}");
    assert!(checkpoint.contains(" exec:$DATA_DIR/hooks/append.sh\n"), "{checkpoint}");

    let moved = root.join("restored");
    std::fs::rename(&data, &moved).unwrap();
    let server = Server::builder()
        .args(sinks(&moved))
        .args(["--data-dir".to_string(), moved.display().to_string()])
        .temp_dir(temp)
        .start();
    let second = post(&server, 1);
    server.settle();
    assert_no_new_sink(&server);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_ids(&moved.join("events.jsonl"), &all);
    assert_ids(&moved.join("hooks/exec.log"), &all);
}

/// Starts a receiver on the default sink, posts 3 events and kills it once they are delivered;
/// returns its directory, its real path and the events.
fn journal_of_three(tag: &str) -> (TempDir, PathBuf, Vec<String>) {
    let (temp, root) = temp(tag);
    let server = Server::builder().temp_dir(temp).start();
    let first = post(&server, 3);
    server.settle();
    (server.kill_keeping_data(), root, first)
}

#[test]
fn a_new_sink_is_announced_with_the_records_it_will_receive() {
    let (temp, root, first) = journal_of_three("identity-new");
    let program = appender(&root.join("append.sh"), &root.join("exec.log").display().to_string());
    let exec = format!("exec:{}", program.display());
    let events = format!("jsonl:{}", root.join("data/events.jsonl").display());
    let server = Server::builder().args(["--sink", &events, "--sink", &exec]).temp_dir(temp).start();
    let warning = format!(
        "{exec} is new: it will receive the 3 records still in the journal (from record 1); \
         --sink-start end starts new sinks at the end instead"
    );
    assert!(server.stderr_contains(&warning, WITHIN), "{}", server.stderr_text());
    let stderr = server.stderr_text();
    let line = stderr.lines().find(|line| line.contains(&warning)).unwrap();
    assert!(line.contains("WARN"), "logged as a warning: {line}");
    // The sink that was there goes on where it stood.
    assert!(!stderr.contains(&format!("{events} is new")), "{stderr}");
    assert_ids(&root.join("exec.log"), &first);
    server.settle();
    assert_ids(&root.join("data/events.jsonl"), &first);
}

#[test]
fn with_sink_start_end_a_new_sink_receives_only_new_events() {
    let (temp, root, first) = journal_of_three("identity-end");
    let program = appender(&root.join("append.sh"), &root.join("exec.log").display().to_string());
    let exec = format!("exec:{}", program.display());
    let events = format!("jsonl:{}", root.join("data/events.jsonl").display());
    let server = Server::builder()
        .args(["--sink", &events, "--sink", &exec, "--sink-start", "end"])
        .temp_dir(temp)
        .start();
    let announced =
        format!("{exec} is new: it starts at the journal's next record (4), as --sink-start end asks");
    assert!(server.stderr_contains(&announced, WITHIN), "{}", server.stderr_text());
    assert!(!server.stderr_text().contains("will receive"), "{}", server.stderr_text());
    let second = post(&server, 1);
    server.settle();
    assert_ids(&root.join("exec.log"), &second);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_ids(&root.join("data/events.jsonl"), &all);
}

/// Runs `serve` with these arguments on a fresh data directory until it exits (bounded);
/// returns its exit code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let (_temp, root) = temp("identity-refused");
    let mut command = Command::new(server::BIN);
    command
        .arg("serve")
        .arg("--listen")
        .arg(server::free_port().to_string())
        .arg("--data-dir")
        .arg(root.join("data"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EGNYTE_RECEIVER_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args.iter().map(|a| a.replace("ROOT", &root.display().to_string())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let deadline = Instant::now() + WITHIN;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (code, stderr)
}

#[test]
fn bad_names_values_and_two_spellings_of_one_file_are_refused_at_start() {
    let (code, stderr) = refused(&["--sink-start", "never"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(r#"--sink-start: "never": expected oldest or end"#), "{stderr}");
    let (code, stderr) = refused(&["--sink", "quarantine=jsonl:ROOT/q.jsonl"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a NAME is 1 to 64 letters"), "{stderr}");
    let (code, stderr) = refused(&["--sink", "jsonl:ROOT/e.jsonl", "--sink", "jsonl:ROOT/./e.jsonl"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("configured twice"), "{stderr}");
}
