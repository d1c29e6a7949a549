//! The receiver's files hold other people's data (file paths, user names, email addresses):
//! run with the usual umask 022, everything it creates is its user's alone (directories 0700,
//! files 0600), and an existing data directory other users can read gets a warning at start.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::server::{batch, unique_id, Server, TempDir};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Every directory and file under `dir`, with its mode.
fn modes(dir: &Path, out: &mut Vec<(String, bool, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_dir = path.is_dir();
        out.push((path.display().to_string(), is_dir, mode(&path)));
        if is_dir {
            modes(&path, out);
        }
    }
}

#[test]
fn everything_the_receiver_creates_is_private_whatever_the_umask() {
    let temp = TempDir::new("private");
    // A sink that always fails, so that dead-letter.jsonl is written too.
    let program = temp.path().join("fail.sh");
    std::fs::write(&program, "#!/bin/sh\ncat > /dev/null\nexit 3\n").unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let events = temp.path().join("data").join("events.jsonl");
    let server = Server::builder()
        .args(["--sink", &format!("exec:{}", program.display())])
        .args(["--sink", &format!("jsonl:{}", events.display()), "--delivery-attempts", "1"])
        .temp_dir(temp)
        .start();
    let id = unique_id("private");
    // One valid event (journal, sinks, dead letter) and one invalid element (quarantine).
    let body = format!("{},\"not an event\"]", batch(&[&id]).trim_end_matches(']'));
    assert_eq!(server.post(body.as_bytes(), &[]).status, 200);
    server.settle();
    let mut found = Vec::new();
    modes(&server.data_dir, &mut found);
    assert_eq!(mode(&server.data_dir), 0o700, "the data directory");
    for name in [
        "lock",
        "checkpoint",
        "dedup.key",
        "events.jsonl",
        "quarantine.jsonl",
        "dead-letter.jsonl",
        "journal",
    ] {
        assert!(found.iter().any(|(path, ..)| path.ends_with(name)), "{name} missing: {found:?}");
    }
    for (path, is_dir, mode) in &found {
        let want = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{path} has mode {mode:03o}");
    }
    assert!(!server.stderr_text().contains("other local users"), "{}", server.stderr_text());
}

#[test]
fn a_data_directory_others_can_read_is_warned_about_and_left_as_it_is() {
    let temp = TempDir::new("private");
    let data = temp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::builder().temp_dir(temp).start();
    assert!(
        server.stderr_contains(
            "has mode 755: other local users may read the events",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        server.stderr_text()
    );
    assert_eq!(mode(&server.data_dir), 0o755, "an existing directory is not changed");
    assert_eq!(mode(&server.data_dir.join("checkpoint").parent().unwrap().join("lock")), 0o600);
}
