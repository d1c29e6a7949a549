//! Damaged state files never keep the receiver from receiving: a garbage `checkpoint`, a garbage
//! `dedup.keys` and a `dedup.key` of the wrong size are each set aside (`NAME.damaged-<time>`),
//! reported, and rebuilt; the receiver starts, answers 200, delivers every acknowledged event,
//! and still recognises the journaled events Egnyte re-sends as duplicates.

mod support;

use std::collections::HashSet;
use std::path::Path;

use serde_json::json;
use support::server::{batch, unique_id, Server, TempDir};

/// The names in `dir` that start with `prefix`.
fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Runs a receiver, replaces `file` with `damage` while it is down, and checks the restart.
fn survives(file: &str, damage: &[u8], expected_aside: &[&str]) {
    survives_change(file, |_| damage.to_vec(), expected_aside);
}

/// Runs a receiver, changes `file` with `change` while it is down, and checks the restart.
fn survives_change(file: &str, change: impl FnOnce(Vec<u8>) -> Vec<u8>, expected_aside: &[&str]) {
    let first = Server::builder().start();
    let ids: Vec<String> = (0..5).map(|_| unique_id(file)).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = batch(&refs);
    assert_eq!(first.post(body.as_bytes(), &[]).status, 200);
    first.settle();
    let temp: TempDir = first.kill_keeping_data();
    let data = temp.path().join("data");
    let before = std::fs::read(data.join(file)).unwrap();
    std::fs::write(data.join(file), change(before)).unwrap();

    let server = Server::builder().temp_dir(temp).start();
    for name in expected_aside {
        let aside = names_starting(&server.data_dir, &format!("{name}.damaged-"));
        assert_eq!(
            aside.len(),
            1,
            "{file}: {name} must be set aside: {:?}",
            names_starting(&server.data_dir, "")
        );
    }
    assert!(server.stderr_text().contains("damaged; set aside as"), "{}", server.stderr_text());
    let metrics = server.metrics();
    assert_eq!(metrics.get("egnyte_receiver_state_files_set_aside"), expected_aside.len() as f64);
    // Egnyte re-sends the acknowledged batch: still recognised, from the journal.
    let again = server.post(body.as_bytes(), &[]);
    assert_eq!(again.json(), json!({"accepted": 0, "duplicates": 5, "quarantined": 0}), "{file}: {again:?}");
    // New events are taken and delivered, and every acknowledged one is in the sink.
    let fresh = unique_id("after");
    assert_eq!(server.post(batch(&[&fresh]).as_bytes(), &[]).status, 200);
    let delivered: HashSet<String> =
        server.events().iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect();
    for id in ids.iter().chain([&fresh]) {
        assert!(delivered.contains(id), "{file}: {id} not delivered");
    }
}

#[test]
fn a_garbage_checkpoint_is_set_aside_and_sinks_start_over() {
    survives("checkpoint", b"\x00\x01 not a checkpoint\n", &["checkpoint"]);
}

#[test]
fn a_garbage_key_file_is_set_aside_and_rebuilt_from_the_journal() {
    survives("dedup.keys", &[0x5a; 100], &["dedup.keys"]);
}

#[test]
fn a_secret_of_the_wrong_size_is_replaced_and_the_keys_rehashed() {
    survives("dedup.key", b"short", &["dedup.key", "dedup.keys"]);
}

#[test]
fn truncated_state_files_are_set_aside_and_rebuilt() {
    // The checkpoint cut inside its sink line, the key file inside its header and inside its
    // keys, the secret cut to half.
    let cut_in_sink_line = |text: Vec<u8>| {
        let at = text.windows(5).position(|w| w == b"sink ").expect("a sink line") + 6;
        text[..at].to_vec()
    };
    survives_change("checkpoint", cut_in_sink_line, &["checkpoint"]);
    survives_change("dedup.keys", |bytes| bytes[..10].to_vec(), &["dedup.keys"]);
    survives_change("dedup.keys", |bytes| bytes[..16 + 8 * 2 + 3].to_vec(), &["dedup.keys"]);
    survives_change("dedup.key", |bytes| bytes[..8].to_vec(), &["dedup.key", "dedup.keys"]);
}

/// `journal verify --data-dir DIR`: (exit status, stdout).
fn verify(data_dir: &Path) -> (i32, String) {
    let output = std::process::Command::new(support::server::BIN)
        .args(["journal", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("journal verify runs");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_journal_costs_its_record_only_and_is_reported_as_damage() {
    let first = Server::builder().start();
    let ids: Vec<String> = (0..40).map(|_| unique_id("middle")).collect();
    for chunk in ids.chunks(4) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        assert_eq!(first.post(batch(&refs).as_bytes(), &[]).status, 200);
    }
    first.settle();
    let temp: TempDir = first.kill_keeping_data();
    let data = temp.path().join("data");
    assert_eq!(verify(&data).0, 0, "sound before the damage: {}", verify(&data).1);
    // One byte of the payload of the record holding the 15th event (a third of the way in).
    let segment = data.join("journal").join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.windows(ids[14].len()).position(|w| w == ids[14].as_bytes()).expect("the 15th event");
    bytes[at] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();

    let (status, report) = verify(&data);
    assert_eq!(status, 1, "{report}");
    assert!(report.contains("DAMAGED") && report.contains("record 15 lost"), "{report}");
    assert!(!report.contains("TORN"), "{report}");

    // A second sink, new, starts at the oldest record: it gets every event but the damaged one.
    let other = data.join("other.jsonl");
    let server = Server::builder()
        .args(["--sink".into(), format!("jsonl:{}", other.display())])
        .temp_dir(temp)
        .start();
    let log = server.stderr_text();
    assert!(log.contains("damage on disk: record 15 lost"), "{log}");
    assert!(!log.contains("torn write"), "nothing is called a torn write: {log}");
    assert_eq!(server.metrics().get("egnyte_receiver_journal_corrupt_records_total"), 1.0);
    assert_eq!(names_starting(&data.join("corrupt"), "").len(), 1, "the damaged bytes are kept");
    server.settle();
    let lines = std::fs::read_to_string(&other).unwrap();
    let delivered: Vec<&str> = ids.iter().map(String::as_str).filter(|id| lines.contains(id)).collect();
    let expected: Vec<&str> = ids.iter().map(String::as_str).filter(|id| *id != ids[14]).collect();
    assert_eq!(delivered, expected, "every record before and after the damaged one");
    // Re-sent events are still duplicates, the lost one too: its key was in the key file.
    let again = server.post(batch(&[&ids[13], &ids[14], &ids[15]]).as_bytes(), &[]);
    assert_eq!(again.json(), json!({"accepted": 0, "duplicates": 3, "quarantined": 0}), "{again:?}");
    let temp = server.kill_keeping_data();
    let (status, report) = verify(&temp.path().join("data"));
    assert_eq!(status, 0, "stepped over for good: {report}");
    assert!(report.contains("record 15 lost to damage found at an earlier start"), "{report}");
    let stats = std::process::Command::new(support::server::BIN)
        .args(["journal", "stats", "--data-dir"])
        .arg(temp.path().join("data"))
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.contains("1 spans of journal bytes saved in corrupt/"), "{stats}");
}

#[test]
fn a_missing_key_file_is_rebuilt_from_the_oldest_journaled_record() {
    let first = Server::builder().start();
    let ids: Vec<String> = (0..6).map(|_| unique_id("keys-missing")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let body = batch(&refs);
    assert_eq!(first.post(body.as_bytes(), &[]).status, 200);
    first.settle();
    let temp = first.kill_keeping_data();
    std::fs::remove_file(temp.path().join("data/dedup.keys")).unwrap();
    let server = Server::builder().temp_dir(temp).start();
    let log = server.stderr_text();
    assert!(log.contains("restored 0 keys from the key file and 6 from the journal"), "{log}");
    let again = server.post(body.as_bytes(), &[]);
    assert_eq!(again.json(), json!({"accepted": 0, "duplicates": 6, "quarantined": 0}), "{again:?}");
    assert_eq!(server.events().len(), 6, "nothing delivered twice");
}
