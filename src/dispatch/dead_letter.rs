//! The dead-letter file: events a sink could not take after every attempt, with the reason, so
//! that nothing acknowledged is dropped in silence. An operator fixes the sink and re-delivers
//! them (each line carries the event exactly as received).
//!
//! `DATA_DIR/dead-letter.jsonl`, one line per (sink, event):
//! `{"sink":"exec:/usr/local/bin/x","reason":"exit status 1","attempts":8,"seq":42,"acceptedMs":1732780800123,"event":{…}}`
//! Each line is synced before the event counts as finished for that sink.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
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
        let file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        (&*file)
            .write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    crate::private_files::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Kind, Meta};

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
