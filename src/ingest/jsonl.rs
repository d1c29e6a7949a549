//! The interim pipeline: append events and quarantined elements to two JSON-lines files.
//!
//! Each accepted event is written as its original bytes on one line of `events.jsonl`; each
//! invalid element as `{"index":N,"reason":"…","element":<original bytes>}` on one line of
//! `quarantine.jsonl`. An element's bytes can hold line breaks only as JSON whitespace (a raw
//! control character inside a string is invalid JSON and never gets here), so turning `\n` and
//! `\r` into spaces keeps the JSON equal and the line whole.
//!
//! All or nothing: a batch's lines are built in memory and written with one `write_all` per
//! file; if either write fails (a full disk, a file-size limit), both files are cut back to
//! their length before the batch, so a batch answered 503 leaves no line behind, whole or torn.
//!
//! Durability: a 200 means the lines were handed to the operating system, not that they reached
//! the disk; a power loss can lose the last seconds. The journal (a later issue) replaces this
//! pipeline and makes a 200 mean fsynced.
//!
//! The writes block the calling thread for the time of a write: acceptable for this stop-gap,
//! and the reason the journal uses group commit with may's own primitives instead.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{Pipeline, Refused, Taken};
use crate::{Batch, Element};

/// Seconds Egnyte is asked to wait after a failed write.
const RETRY_AFTER_SECS: u32 = 5;

/// Buffer capacity kept between batches; larger ones are released after use.
const RETAINED_BYTES: usize = 1 << 20;

/// Appends to `events.jsonl` and `quarantine.jsonl` in the data directory.
#[derive(Debug)]
pub struct JsonlPipeline {
    state: Mutex<State>,
    healthy: AtomicBool,
}

#[derive(Debug)]
struct State {
    events: Output,
    quarantine: Output,
}

/// One append-only file, its length as far as this process wrote it, and the lines of the batch
/// being written.
#[derive(Debug)]
struct Output {
    file: File,
    len: u64,
    pending: Vec<u8>,
}

impl Output {
    fn open(path: &Path) -> io::Result<Output> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(context)?;
        let len = file.metadata().map_err(context)?.len();
        Ok(Output { file, len, pending: Vec::new() })
    }

    /// Writes the pending lines; on failure cuts the file back to where it was.
    fn commit(&mut self) -> io::Result<()> {
        let written = self.file.write_all(&self.pending);
        if let Err(error) = written {
            self.rollback()?;
            return Err(error);
        }
        self.len += self.pending.len() as u64;
        Ok(())
    }

    fn rollback(&mut self) -> io::Result<()> {
        self.file.set_len(self.len)
    }

    fn reset(&mut self) {
        self.pending.clear();
        if self.pending.capacity() > RETAINED_BYTES {
            self.pending = Vec::new();
        }
    }
}

impl JsonlPipeline {
    /// Opens (creating if needed) both files in `data_dir`, which must exist.
    pub fn open(data_dir: &Path) -> io::Result<JsonlPipeline> {
        let state = State {
            events: Output::open(&data_dir.join("events.jsonl"))?,
            quarantine: Output::open(&data_dir.join("quarantine.jsonl"))?,
        };
        Ok(JsonlPipeline { state: Mutex::new(state), healthy: AtomicBool::new(true) })
    }

    /// Builds the batch's lines in memory.
    fn render(state: &mut State, batch: &Batch<'_>) -> Taken {
        let mut taken = Taken::default();
        for element in batch.elements() {
            match element {
                Element::Valid(event) => {
                    flat(&mut state.events.pending, event.raw());
                    state.events.pending.push(b'\n');
                    taken.accepted += 1;
                }
                Element::Invalid(invalid) => {
                    // Reasons are fixed ASCII texts (field names and words): no escaping needed.
                    let out = &mut state.quarantine.pending;
                    let _ = write!(
                        out,
                        "{{\"index\":{},\"reason\":\"{}\",\"element\":",
                        invalid.index(),
                        invalid.reason()
                    );
                    flat(out, invalid.raw());
                    out.extend_from_slice(b"}\n");
                    taken.quarantined += 1;
                }
            }
        }
        taken
    }

    /// Writes both files, or neither.
    fn commit(state: &mut State) -> io::Result<()> {
        state.events.commit()?;
        if let Err(error) = state.quarantine.commit() {
            state.events.len -= state.events.pending.len() as u64;
            state.events.rollback()?;
            return Err(error);
        }
        Ok(())
    }
}

/// Appends `raw` with its line breaks (only ever JSON whitespace there) turned into spaces.
fn flat(out: &mut Vec<u8>, raw: &[u8]) {
    let start = out.len();
    out.extend_from_slice(raw);
    for b in &mut out[start..] {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
}

impl Pipeline for JsonlPipeline {
    fn take(&self, batch: &Batch<'_>) -> Result<Taken, Refused> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = JsonlPipeline::render(&mut state, batch);
        let result = JsonlPipeline::commit(&mut state);
        state.events.reset();
        state.quarantine.reset();
        match result {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    log::info!("events are written again");
                }
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
