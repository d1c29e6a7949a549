//! The interim pipeline: append events and quarantined elements to two JSON-lines files.
//!
//! Each accepted event is written as its original bytes on one line of `events.jsonl`; each
//! invalid element as `{"index":N,"reason":"…","element":<original bytes>}` on one line of
//! `quarantine.jsonl`. An element's bytes can hold line breaks only as JSON whitespace (a raw
//! control character inside a string is invalid JSON and never gets here), so turning `\n` and
//! `\r` into spaces keeps the JSON equal and the line whole.
//!
//! Durability: a 200 means the lines were handed to the operating system (written and flushed),
//! not that they reached the disk; a power loss can lose the last seconds. The journal (a later
//! issue) replaces this pipeline and makes a 200 mean fsynced.
//!
//! The writes block the calling thread for the time of a buffered write: acceptable for this
//! stop-gap, and the reason the journal uses group commit with may's own primitives instead.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Pipeline, Refused, Taken};
use crate::{Batch, Element};

/// Seconds Egnyte is asked to wait after a failed write.
const RETRY_AFTER_SECS: u32 = 5;

/// Appends to `events.jsonl` and `quarantine.jsonl` in the data directory.
#[derive(Debug)]
pub struct JsonlPipeline {
    files: Mutex<Files>,
    healthy: AtomicBool,
}

#[derive(Debug)]
struct Files {
    events: BufWriter<File>,
    quarantine: BufWriter<File>,
}

impl JsonlPipeline {
    /// Opens (creating if needed) both files in `data_dir`, which must exist.
    pub fn open(data_dir: &Path) -> io::Result<JsonlPipeline> {
        let open = |name: &str| -> io::Result<BufWriter<File>> {
            let path: PathBuf = data_dir.join(name);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
            Ok(BufWriter::new(file))
        };
        let files = Files { events: open("events.jsonl")?, quarantine: open("quarantine.jsonl")? };
        Ok(JsonlPipeline { files: Mutex::new(files), healthy: AtomicBool::new(true) })
    }

    fn write(files: &mut Files, batch: &Batch<'_>, taken: &mut Taken) -> io::Result<()> {
        for element in batch.elements() {
            match element {
                Element::Valid(event) => {
                    write_flat(&mut files.events, event.raw())?;
                    files.events.write_all(b"\n")?;
                    taken.accepted += 1;
                }
                Element::Invalid(invalid) => {
                    // Reasons are fixed ASCII texts (field names and words): no escaping needed.
                    let out = &mut files.quarantine;
                    write!(
                        out,
                        "{{\"index\":{},\"reason\":\"{}\",\"element\":",
                        invalid.index(),
                        invalid.reason()
                    )?;
                    write_flat(out, invalid.raw())?;
                    out.write_all(b"}\n")?;
                    taken.quarantined += 1;
                }
            }
        }
        files.events.flush()?;
        files.quarantine.flush()
    }
}

/// Writes `raw` without its line breaks (only ever JSON whitespace there) turned into spaces.
fn write_flat(out: &mut impl Write, raw: &[u8]) -> io::Result<()> {
    let mut rest = raw;
    while let Some(at) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
        out.write_all(&rest[..at])?;
        out.write_all(b" ")?;
        rest = &rest[at + 1..];
    }
    out.write_all(rest)
}

impl Pipeline for JsonlPipeline {
    fn take(&self, batch: &Batch<'_>) -> Result<Taken, Refused> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken = Taken::default();
        match JsonlPipeline::write(&mut files, batch, &mut taken) {
            Ok(()) => {
                self.healthy.store(true, Ordering::Relaxed);
                Ok(taken)
            }
            Err(error) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    log::error!("cannot write events: {error}; answering 503 until a write succeeds");
                }
                Err(Refused { retry_after_secs: RETRY_AFTER_SECS, reason: "events cannot be stored now" })
            }
        }
    }

    fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}
