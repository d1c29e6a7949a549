//! The README's backup and restore commands work on the layout systemd gives the service: with
//! `DynamicUser=yes`, `/var/lib/egnyte-receiver` is a symbolic link to
//! `/var/lib/private/egnyte-receiver`, and the unit passes the link as `--data-dir`.
//!
//! The layout is rebuilt in a temporary directory (`private/egnyte-receiver`, and `data` a link to
//! it, which the test server gets as `--data-dir`). A receiver takes a batch and is stopped as
//! `systemctl stop` does (SIGTERM); the [`BACKUP`] commands, paths substituted, archive the data;
//! the directory is wiped and the [`RESTORE`] commands bring it back; a receiver started on the
//! link again answers the same batch as duplicates from its restored key file, and the sink holds
//! each event once. The obvious `tar` of the link itself is shown to archive nothing but the link.
//! Every tar line in the README's "Backup and upgrade" must be one of the commands run here.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::server::{batch, unique_id, Server, TempDir};

/// Where systemd keeps the real directory, as the README writes it.
const PRIVATE: &str = "/var/lib/private";
/// The archive, as the README names it.
const ARCHIVE: &str = "egnyte-receiver-backup.tar.gz";

/// The README's backup, between `systemctl stop` and `systemctl start`.
const BACKUP: &str = "tar -C /var/lib/private -czf egnyte-receiver-backup.tar.gz egnyte-receiver";
/// The README's restore, between `systemctl stop` and `systemctl start`.
const RESTORE: [&str; 2] = [
    "rm -rf /var/lib/private/egnyte-receiver && install -d -m 0700 /var/lib/private",
    "tar -C /var/lib/private -xzf egnyte-receiver-backup.tar.gz",
];

/// Runs a README command with its paths moved into `root`.
fn run_documented(command: &str, root: &Path) {
    let private = root.join("private");
    let archive = root.join(ARCHIVE);
    let command = command
        .replace(PRIVATE, private.to_str().expect("a UTF-8 temp path"))
        .replace(ARCHIVE, archive.to_str().expect("a UTF-8 temp path"));
    let output = Command::new("sh").args(["-ec", &command]).output().expect("sh");
    assert!(output.status.success(), "{command}: {output:?}");
}

/// Stops the receiver as `systemctl stop` does, and waits for a clean exit.
fn stop(mut server: Server) -> TempDir {
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{}", server.stderr_text());
    server.into_temp()
}

#[test]
fn the_documented_backup_and_restore_keep_the_dedup_memory_through_the_symlink() {
    let temp = TempDir::new("backup");
    let real = temp.path().join("private").join("egnyte-receiver");
    std::fs::create_dir_all(&real).unwrap();
    // As systemd makes it: a relative link beside the private directory.
    std::os::unix::fs::symlink("private/egnyte-receiver", temp.path().join("data")).unwrap();

    let server = Server::builder().temp_dir(temp).start();
    assert!(std::fs::symlink_metadata(&server.data_dir).unwrap().file_type().is_symlink());
    let ids: Vec<String> = (0..5).map(|_| unique_id("backup")).collect();
    let body = batch(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let answer = server.post(body.as_bytes(), &[]);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json(), serde_json::json!({"accepted": 5, "duplicates": 0, "quarantined": 0}));
    assert_eq!(server.events().len(), 5);
    let temp = stop(server);
    let root = temp.path().to_owned();

    for state in ["dedup.key", "dedup.keys", "checkpoint", "events.jsonl", "journal"] {
        assert!(real.join(state).exists(), "{state} is in the real directory");
    }
    let secret = std::fs::read(real.join("dedup.key")).unwrap();
    let keys = std::fs::read(real.join("dedup.keys")).unwrap();

    run_documented(BACKUP, &root);
    // Archiving the link itself (the path the unit uses) would keep only the link.
    let naive = root.join("naive.tar");
    let output =
        Command::new("tar").arg("-C").arg(&root).args(["-cf"]).arg(&naive).arg("data").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let listing = Command::new("tar").arg("-tvf").arg(&naive).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(listing.starts_with('l') && listing.lines().count() == 1, "only the link: {listing}");

    // The data is lost; the link now points nowhere, as after a reinstall.
    std::fs::remove_dir_all(&real).unwrap();
    assert!(!root.join("data").exists());
    for command in RESTORE {
        run_documented(command, &root);
    }
    assert_eq!(std::fs::read(real.join("dedup.key")).unwrap(), secret, "the same secret");
    assert_eq!(std::fs::read(real.join("dedup.keys")).unwrap(), keys, "the same keys");

    let server = Server::builder().temp_dir(temp).start();
    assert!(
        server.stderr_contains("restored 5 keys from the key file", Duration::from_secs(5)),
        "the dedup memory comes back from dedup.keys: {}",
        server.stderr_text()
    );
    let again = server.post(body.as_bytes(), &[]);
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json(), serde_json::json!({"accepted": 0, "duplicates": 5, "quarantined": 0}));
    let next = unique_id("after-restore");
    let answer = server.post(batch(&[&next]).as_bytes(), &[]);
    assert_eq!(answer.json(), serde_json::json!({"accepted": 1, "duplicates": 0, "quarantined": 0}));
    let mut delivered: Vec<String> =
        server.events().iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect();
    delivered.sort();
    let mut expected = ids.clone();
    expected.push(next);
    expected.sort();
    assert_eq!(delivered, expected, "each event once in the sink, nothing delivered again");
}

/// The README's "Backup and upgrade" paragraph (up to the next list item or heading).
fn readme_backup_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("**Backup and upgrade**").expect("README: a Backup and upgrade item");
    let rest = &readme[start..];
    let end = rest[1..].find("\n- **").or_else(|| rest.find("\n## ")).map_or(rest.len(), |e| e + 1);
    rest[..end].to_owned()
}

#[test]
fn every_tar_command_in_the_readme_is_one_this_file_runs() {
    let section = readme_backup_section();
    let documented: Vec<&str> = section
        .lines()
        .map(|line| line.split(" #").next().unwrap_or(line).trim().trim_matches('`').trim())
        .filter(|line| line.starts_with("tar ") || line.starts_with("rm -rf "))
        .collect();
    if documented.is_empty() {
        eprintln!("note: README's Backup and upgrade has no tar command yet; this file proves:\n{BACKUP}");
        return;
    }
    for command in &documented {
        assert!(
            *command == BACKUP || RESTORE.contains(command),
            "README: {command:?} is not a command tests/backup.rs runs ({BACKUP:?}, {RESTORE:?})"
        );
    }
    for command in std::iter::once(BACKUP).chain(RESTORE) {
        assert!(documented.contains(&command), "README's Backup and upgrade lacks {command:?}");
    }
}
