//! The writer thread: appends the lines of many batches to the two files with one write each
//! (group commit), and tells every batch's coroutine how it went.
//!
//! Why a thread: a file write blocks, and blocking a may worker thread stalls every coroutine
//! scheduled on it. So a request coroutine renders its lines, hands them over with a non-blocking
//! `try_send` on a bounded crossbeam channel, and waits on a may channel, which parks only the
//! coroutine. The thread takes the first waiting job, then everything else already queued (up to
//! [`MAX_GROUP`]), writes each file once, and answers every job of the group.
//!
//! All or nothing per group: if a write fails (full disk, file-size limit), both files are cut
//! back to their length before the group, and every job in it is told so (503). A full queue is
//! refused at once ([`Submit::Busy`]): no queue here grows without bound.
//!
//! For the next maintainer: the journal (a later issue) replaces the files with segments and
//! adds `fdatasync` to the group; the hand-off and the wake-up stay as they are.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError};

/// Batches waiting for the writer; beyond it, a batch is refused with 503 at once.
pub const QUEUE_CAPACITY: usize = 4096;

/// Most batches written together in one group.
pub const MAX_GROUP: usize = 256;

/// Group buffer capacity kept between groups; larger ones are released after use.
const RETAINED_BYTES: usize = 4 << 20;

/// One batch's rendered lines and the way back to its coroutine.
#[derive(Debug)]
pub struct Job {
    /// Lines for `events.jsonl`.
    pub events: Vec<u8>,
    /// Lines for `quarantine.jsonl`.
    pub quarantine: Vec<u8>,
    done: may::sync::mpsc::Sender<Result<(), ()>>,
}

/// What became of a submitted batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Submit {
    /// Written (both files).
    Written,
    /// The write failed; nothing of the batch is in the files.
    Failed,
    /// The queue is full (or the writer is gone); nothing was written.
    Busy,
}

/// The sending side, shared by every connection.
#[derive(Debug)]
pub struct Writer {
    jobs: Sender<Job>,
    healthy: Arc<AtomicBool>,
}

impl Writer {
    /// Opens both files in `data_dir` and starts the writer thread.
    pub fn start(data_dir: &Path) -> io::Result<(Writer, JoinHandle<()>)> {
        let mut files = Files {
            events: Output::open(&data_dir.join("events.jsonl"))?,
            quarantine: Output::open(&data_dir.join("quarantine.jsonl"))?,
        };
        let (jobs, queue) = crossbeam_channel::bounded(QUEUE_CAPACITY);
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&healthy);
        let thread = std::thread::Builder::new()
            .name("events-writer".into())
            .spawn(move || files.run(&queue, &flag))?;
        Ok((Writer { jobs, healthy }, thread))
    }

    /// Hands the lines over and waits (parking only the calling coroutine) until they are
    /// written or refused.
    pub fn submit(&self, events: Vec<u8>, quarantine: Vec<u8>) -> Submit {
        let (done, outcome) = may::sync::mpsc::channel();
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.jobs.try_send(Job { events, quarantine, done })
        {
            return Submit::Busy;
        }
        match outcome.recv() {
            Ok(Ok(())) => Submit::Written,
            Ok(Err(())) => Submit::Failed,
            // The writer thread ended without answering: nothing is known to be written.
            Err(_) => Submit::Failed,
        }
    }

    /// False from a failed write until the next successful one.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// One append-only file and its length as far as this process wrote it.
#[derive(Debug)]
struct Output {
    file: File,
    len: u64,
    group: Vec<u8>,
}

impl Output {
    fn open(path: &Path) -> io::Result<Output> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(context)?;
        let len = file.metadata().map_err(context)?.len();
        Ok(Output { file, len, group: Vec::new() })
    }

    /// Writes the group's bytes; on failure cuts the file back to where it was.
    fn commit(&mut self) -> io::Result<()> {
        if let Err(error) = self.file.write_all(&self.group) {
            self.file.set_len(self.len)?;
            return Err(error);
        }
        self.len += self.group.len() as u64;
        Ok(())
    }

    fn uncommit(&mut self, bytes: u64) -> io::Result<()> {
        self.len -= bytes;
        self.file.set_len(self.len)
    }

    fn reset(&mut self) {
        self.group.clear();
        if self.group.capacity() > RETAINED_BYTES {
            self.group = Vec::new();
        }
    }
}

struct Files {
    events: Output,
    quarantine: Output,
}

impl Files {
    /// The writer thread's loop; ends when every [`Writer`] is gone.
    fn run(&mut self, queue: &Receiver<Job>, healthy: &AtomicBool) {
        let mut group: Vec<Job> = Vec::with_capacity(MAX_GROUP);
        while let Ok(first) = queue.recv() {
            group.push(first);
            group.extend(queue.try_iter().take(MAX_GROUP - 1));
            for job in &group {
                self.events.group.extend_from_slice(&job.events);
                self.quarantine.group.extend_from_slice(&job.quarantine);
            }
            let result = self.commit();
            match &result {
                Ok(()) if !healthy.swap(true, Ordering::Relaxed) => log::info!("events are written again"),
                Err(error) if healthy.swap(false, Ordering::Relaxed) => {
                    log::error!("cannot write events: {error}; answering 503 until a write succeeds");
                }
                _ => {}
            }
            for job in group.drain(..) {
                // A coroutine that gave up waiting is gone: nothing to tell it.
                let _ = job.done.send(result.as_ref().map(|_| ()).map_err(|_| ()));
            }
            self.events.reset();
            self.quarantine.reset();
        }
    }

    /// Writes both files, or neither.
    fn commit(&mut self) -> io::Result<()> {
        self.events.commit()?;
        if let Err(error) = self.quarantine.commit() {
            self.events.uncommit(self.events.group.len() as u64)?;
            return Err(error);
        }
        Ok(())
    }
}
