//! The dead-letter file: events a sink could not take after every attempt, with the reason, so
//! that nothing acknowledged is dropped in silence. An operator fixes the sink and re-delivers
//! them (each line carries the event exactly as received).
//!
//! `DATA_DIR/dead-letter.jsonl`, one line per (sink, event):
//! `{"sink":"exec:/usr/local/bin/x","reason":"exit status 1","attempts":8,"seq":42,"acceptedMs":1732780800123,"event":{…}}`
//! Each line is synced before the event counts as finished for that sink.
//!
//! # Sharing the file with `replay --dead-letter`
//! The redrive tool (`src/cli/replay.rs`) re-delivers lines and then removes them by writing the
//! lines it keeps to a new file and renaming that over `dead-letter.jsonl`. So that no line
//! appended meanwhile is lost, both sides follow one protocol:
//! * every append here holds an exclusive `flock` on the file it appends to, from before it looks
//!   at the file until the line is synced;
//! * the tool reads and replaces the file only while holding that lock on the file the path
//!   names, and renames its new file over the path before it lets go;
//! * once this writer holds the lock, it checks that its file still has a name (`st_nlink` > 0):
//!   a file replaced by the tool (or deleted) has none, and the writer opens the path afresh
//!   (the tool's new file) and locks that instead. A file that logrotate merely renamed keeps its
//!   name and is written until SIGHUP, as before.
//!
//! So every line is appended either before the tool read the file under the lock (and the tool
//! keeps it in the new file) or after the rename (into the new file). The tool holds the lock
//! for a read and for a rewrite only, never while it delivers. A line is also never glued to a
//! torn last line a crash left behind: an append to a file that does not end with `\n` starts
//! with one.

use std::fmt::Write as _;
use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::journal::Record;
use crate::json::write_json_string;

/// File name in the data directory.
pub const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";

/// The open dead-letter file, shared by the workers.
#[derive(Debug)]
pub(super) struct DeadLetter {
    file: Mutex<File>,
    path: PathBuf,
}

impl DeadLetter {
    /// Opens (creating) `DATA_DIR/dead-letter.jsonl` for appending.
    pub(super) fn open(data_dir: &Path) -> io::Result<DeadLetter> {
        let path = data_dir.join(DEAD_LETTER_FILE);
        Ok(DeadLetter { file: Mutex::new(open_append(&path)?), path })
    }

    /// Opens the path afresh (SIGHUP, after logrotate moved the file away); lines written before
    /// stay in the old file, which every line was synced to.
    pub(super) fn reopen(&self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = file;
        Ok(())
    }

    /// Appends and syncs one line.
    pub(super) fn write(&self, sink: &str, reason: &str, attempts: u32, record: &Record) -> io::Result<()> {
        let mut head = String::with_capacity(128);
        head.push_str("{\"sink\":");
        let _ = write_json_string(&mut head, sink);
        head.push_str(",\"reason\":");
        let _ = write_json_string(&mut head, reason);
        let _ = write!(
            head,
            ",\"attempts\":{attempts},\"seq\":{},\"acceptedMs\":{},\"event\":",
            record.meta.seq, record.meta.accepted_ms
        );
        let mut line = head.into_bytes();
        line.extend_from_slice(&record.payload);
        line.extend_from_slice(b"}\n");
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let locked = lock_current(&mut file, &self.path)?;
        let result = append(&file, &line, locked.1);
        if locked.0 {
            let _ = file.unlock();
        }
        result.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

/// Most times in a row a locked file is found replaced before the writer gives up for this
/// attempt (the worker retries): one replacement per redrive, so never more than one or two.
const MAX_REPLACED: usize = 8;

/// Takes the exclusive `flock` on the file at `path` (see the module documentation), moving
/// `file` to the path's current file when the one it has was replaced. Returns whether the lock
/// is held (a file system without `flock` is written unlocked, with a warning) and the file's
/// length.
fn lock_current(file: &mut File, path: &Path) -> io::Result<(bool, u64)> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    for _ in 0..MAX_REPLACED {
        let locked = match file.try_lock() {
            Ok(()) => true,
            Err(TryLockError::WouldBlock) => {
                log::info!(
                    "{}: waiting for the lock another process holds (egnyte-receiver replay --dead-letter)",
                    path.display()
                );
                file.lock().map_err(context)?;
                true
            }
            Err(TryLockError::Error(e)) => {
                log::warn!("{}: cannot lock ({e}); appending without the lock", path.display());
                false
            }
        };
        let metadata = file.metadata().map_err(context)?;
        if metadata.nlink() > 0 || !locked {
            return Ok((locked, metadata.len()));
        }
        // Replaced by a redrive (or deleted): the lines go to the file at the path now.
        let _ = file.unlock();
        *file = open_append(path)?;
    }
    Err(io::Error::other(format!(
        "{}: replaced {MAX_REPLACED} times while waiting to append",
        path.display()
    )))
}

/// Appends and syncs `line` to `file`, whose length is `len`, first ending a torn last line.
fn append(file: &File, line: &[u8], len: u64) -> io::Result<()> {
    let mut last = [b'\n'];
    if len > 0 {
        file.read_exact_at(&mut last, len - 1)?;
    }
    if last[0] != b'\n' {
        let mut whole = Vec::with_capacity(line.len() + 1);
        whole.push(b'\n');
        whole.extend_from_slice(line);
        (&*file).write_all(&whole)?;
    } else {
        (&*file).write_all(line)?;
    }
    file.sync_data()
}

fn open_append(path: &Path) -> io::Result<File> {
    crate::private_files::options()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Kind, Meta};
    use std::sync::Arc;
    use std::time::Duration;

    fn record(seq: u64) -> Record {
        Record {
            meta: Meta { kind: Kind::Event, seq, accepted_ms: 7, key: 1, order: 2 },
            payload: format!("{{\"eventId\":\"e{seq}\"}}").into_bytes().into(),
            disk_len: 0,
        }
    }

    fn seqs(path: &Path) -> Vec<u64> {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| {
                let at = l.find("\"seq\":").unwrap() + 6;
                l[at..].split(',').next().unwrap().parse().unwrap()
            })
            .collect()
    }

    /// What `replay --dead-letter` does: under the lock, read the file, write the lines it keeps
    /// to a new file and rename it over the path, then let go.
    fn redrive(path: &Path, keep: impl Fn(&str) -> bool, while_locked: impl FnOnce()) {
        let old = File::open(path).unwrap();
        old.lock().unwrap();
        while_locked();
        let text = std::fs::read_to_string(path).unwrap();
        let kept: String = text.lines().filter(|l| keep(l)).map(|l| format!("{l}\n")).collect();
        let new = path.with_extension("new");
        std::fs::write(&new, kept).unwrap();
        std::fs::rename(&new, path).unwrap();
        old.unlock().unwrap();
    }

    #[test]
    fn an_append_waits_for_a_redrive_and_goes_to_the_file_it_leaves() {
        let temp = crate::test_dir::TempDir::new("dead-letter-redrive");
        let path = temp.path().join(DEAD_LETTER_FILE);
        let dead = Arc::new(DeadLetter::open(temp.path()).unwrap());
        dead.write("stdout", "r", 1, &record(1)).unwrap();
        dead.write("stdout", "r", 1, &record(2)).unwrap();
        // While the redrive holds the lock, a worker's append waits; it lands in the new file.
        let (tx, rx) = std::sync::mpsc::channel();
        redrive(
            &path,
            |l| !l.contains("\"seq\":1,"),
            || {
                let dead = Arc::clone(&dead);
                std::thread::spawn(move || {
                    dead.write("stdout", "r", 1, &record(3)).unwrap();
                    tx.send(()).unwrap();
                });
                assert!(
                    rx.recv_timeout(Duration::from_millis(300)).is_err(),
                    "the append must wait for the lock"
                );
            },
        );
        rx.recv_timeout(Duration::from_secs(10)).expect("the append finishes once the lock is free");
        assert_eq!(seqs(&path), [2, 3], "line 1 redriven, line 3 appended after the rewrite");
        // And the writer stays on the new file.
        dead.write("stdout", "r", 1, &record(4)).unwrap();
        assert_eq!(seqs(&path), [2, 3, 4]);
        // A rename by logrotate is not a replacement: the old file is written until a reopen.
        std::fs::rename(&path, temp.path().join("rotated")).unwrap();
        dead.write("stdout", "r", 1, &record(5)).unwrap();
        assert_eq!(seqs(&temp.path().join("rotated")), [2, 3, 4, 5]);
        assert!(!path.exists());
        // A deleted file is: the next line goes to a new file at the path.
        std::fs::remove_file(temp.path().join("rotated")).unwrap();
        dead.write("stdout", "r", 1, &record(6)).unwrap();
        assert_eq!(seqs(&path), [6]);
    }

    #[test]
    fn a_torn_last_line_is_ended_before_the_next_one() {
        let temp = crate::test_dir::TempDir::new("dead-letter-torn");
        let path = temp.path().join(DEAD_LETTER_FILE);
        std::fs::write(&path, "{\"sink\":\"std").unwrap();
        let dead = DeadLetter::open(temp.path()).unwrap();
        dead.write("stdout", "r", 1, &record(9)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"sink\":\"std\n{\"sink\":\"stdout\""), "{text:?}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn lines_are_json_with_the_event_as_received() {
        let temp = crate::test_dir::TempDir::new("dead-letter");
        let dir = temp.path().to_path_buf();
        let dead = DeadLetter::open(&dir).unwrap();
        let record = Record {
            meta: Meta { kind: Kind::Event, seq: 42, accepted_ms: 7, key: 1, order: 2 },
            payload: br#"{"eventId":"e"}"#.to_vec().into(),
            disk_len: 0,
        };
        dead.write("exec:/bin/a \"b\"", "exit status 1\n\u{1}", 8, &record).unwrap();
        // logrotate moves the file away; after a reopen the next line goes to a new file.
        std::fs::rename(dir.join(DEAD_LETTER_FILE), dir.join("rotated")).unwrap();
        dead.reopen().unwrap();
        dead.write("stdout", "later", 1, &record).unwrap();
        assert!(std::fs::read_to_string(dir.join(DEAD_LETTER_FILE))
            .unwrap()
            .starts_with("{\"sink\":\"stdout\""));
        let text = std::fs::read_to_string(dir.join("rotated")).unwrap();
        assert_eq!(
            text,
            "{\"sink\":\"exec:/bin/a \\\"b\\\"\",\"reason\":\"exit status 1\\n\\u0001\",\"attempts\":8,\
             \"seq\":42,\"acceptedMs\":7,\"event\":{\"eventId\":\"e\"}}\n"
        );
    }
}
