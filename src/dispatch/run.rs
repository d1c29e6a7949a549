//! The dispatcher thread: reads committed records, hands each to the workers of the sinks that
//! take it, collects what they finished, and checkpoints.
//!
//! It never blocks on a full channel (see the capacity argument in `mod.rs`), waits only in one
//! `select!` (a commit's doorbell, a finished task, a stop request, or the next checkpoint's
//! time), and owns every file it writes (checkpoint, key file), so none needs a lock.

use crate::time::now_ms;
use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender};

use super::checkpoint::{self, Checkpoint};
use super::dead_letter::DeadLetter;
use super::keys::KeyFile;
use super::progress::{Progress, MAX_IN_FLIGHT, MAX_SINKS};
use super::resume;
use super::worker::{self, Context, Target, Task};
use super::{DispatchConfig, CHECKPOINT_INTERVAL};
use crate::dedup::{self, Dedup, Secret};
use crate::journal::{Journal, Kind, Reader, Record};

/// Shortest time between two turns (read, hand out) under load. Every commit rings the
/// doorbell, and a turn per commit would cost a wake-up of the dispatcher and of each worker it
/// hands work to, per group: thousands a second. Pacing the turns lets records gather, so each
/// turn hands out hundreds of records at the price of at most this much delivery latency; an
/// idle dispatcher still starts a turn at once. The window ([`MAX_IN_FLIGHT`] records per
/// turn) bounds the delivery rate at 2 M records/s.
const MIN_TURN_INTERVAL: Duration = Duration::from_millis(2);
/// Shortest time between two log lines about the same failing step.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What restoring the dedup ring found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRestore {
    /// Keys read from the key file.
    pub from_file: usize,
    /// Keys of journaled events after it.
    pub from_journal: usize,
}

/// Restores the dedup ring after a restart: the key file's keys (oldest first), then the keys
/// of every journaled event the key file does not cover yet.
///
/// With `rehash` (the secret was replaced, so the keys stored in the journal's records were made
/// with another one), each journaled event's key is computed again from its domain and eventId.
pub fn restore_keys(
    data_dir: &std::path::Path,
    checkpoint: &Checkpoint,
    journal: &Journal,
    dedup: &Dedup,
    rehash: Option<&Secret>,
) -> io::Result<(KeyFile, KeyRestore)> {
    let capacity = dedup.ring().capacity() as u64;
    let (file, keys) = KeyFile::open(data_dir, capacity, checkpoint.keys_count)?;
    let mut restore = KeyRestore { from_file: keys.len(), from_journal: 0 };
    // A key file that holds fewer keys than the checkpoint says (missing, or replaced by an older
    // copy) covers less than `keys_through`: every journaled record is read instead.
    let expected = checkpoint.keys_count.min(capacity);
    let from = if (keys.len() as u64) < expected {
        log::warn!(
            "{} holds {} of the {expected} dedup keys the checkpoint counts: rebuilding them from the \
             oldest journaled record",
            data_dir.join(super::KEYS_FILE).display(),
            keys.len()
        );
        1
    } else {
        checkpoint.keys_through.max(1)
    };
    for key in keys {
        dedup.remember(key);
    }
    let mut parser = crate::Parser::default();
    let mut reader = journal.reader(from);
    while let Some(record) = reader.next(journal.committed_seq())? {
        if record.meta.kind != Kind::Event {
            continue;
        }
        let key = match rehash {
            None => record.meta.key,
            Some(secret) => {
                let Ok(batch) = parser.parse(&record.payload) else { continue };
                let Some(crate::Element::Valid(event)) = batch.elements().next() else { continue };
                dedup::key(secret, event.domain(), event.event_id())
            }
        };
        dedup.remember(key);
        restore.from_journal += 1;
    }
    Ok((file, restore))
}

/// How delivery ended at a stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Records the furthest-behind sink had not delivered (delivered after the next start).
    pub undelivered: u64,
    /// Records delivered that the stored checkpoint does not cover, because storing it failed
    /// (delivered again after the next start, except into jsonl files).
    pub unchecked: u64,
}

/// The running dispatcher and its workers.
#[derive(Debug)]
pub struct Dispatcher {
    thread: Mutex<Option<JoinHandle<Stopped>>>,
    context: Arc<Context>,
    stop: Sender<Instant>,
    targets: Arc<[Target]>,
}

impl Dispatcher {
    /// Starts delivery from each target's checkpointed position (a new target: the oldest
    /// record in the journal).
    pub fn start(
        config: &DispatchConfig,
        journal: Arc<Journal>,
        targets: Vec<Target>,
        checkpoint: &Checkpoint,
        key_file: KeyFile,
    ) -> io::Result<Dispatcher> {
        if targets.is_empty() || targets.len() > MAX_SINKS {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("1 to {MAX_SINKS} sinks")));
        }
        let starts = resume::starts(&targets, checkpoint, &journal)?;
        let dead_lettered = resume::dead_lettered(&config.data_dir, &targets, &starts)?;
        for (name, _) in &checkpoint.sinks {
            if !targets.iter().any(|t| &t.name == name) {
                log::info!("{name} is no longer configured: its checkpoint is dropped");
            }
        }
        // Published before the first checkpoint, which stores (and publishes) only what changed:
        // after a restart with nothing new to deliver, the gauge must not read 0.
        for target in &targets {
            if let Some(position) = checkpoint.position(&target.name) {
                target.stats.checkpointed.store(position, Ordering::Relaxed);
            }
        }
        let targets: Arc<[Target]> = targets.into();
        let context = Arc::new(Context {
            targets: Arc::clone(&targets),
            dead_letter: DeadLetter::open(&config.data_dir)?,
            attempts: config.delivery_attempts.max(1),
        });
        let capacity = MAX_IN_FLIGHT * targets.len();
        let (done_tx, done) = bounded(capacity);
        let (halt, halt_rx) = bounded::<()>(0);
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        let mut lanes = Vec::with_capacity(targets.len());
        for (n, target) in targets.iter().enumerate() {
            // Workers of its own: a sink that fails, blocks or is slow holds up only itself.
            let count = if target.sink.serial() { 1 } else { config.workers.max(1) };
            let mut lane = Vec::with_capacity(count);
            for k in 0..count {
                let (tx, rx) = bounded(capacity);
                let (context, done_tx, halt_rx) = (Arc::clone(&context), done_tx.clone(), halt_rx.clone());
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("worker-{n}-{k}"))
                        .spawn(move || worker::run(context, rx, done_tx, halt_rx))?,
                );
                lane.push(senders.len());
                senders.push(tx);
            }
            lanes.push(lane);
        }
        let first = starts.iter().copied().min().unwrap_or(1);
        let keys_through = checkpoint.keys_through.max(1);
        let (stop, stop_rx) = bounded(1);
        let mut state = Loop {
            doorbell: journal.doorbell(),
            reader: journal.reader(first),
            progress: Progress::new(first),
            journal,
            targets: Arc::clone(&targets),
            starts,
            dead_lettered,
            outbox: senders.iter().map(|_| Vec::new()).collect(),
            senders,
            lanes,
            workers,
            done,
            halt: Some(halt),
            key_file,
            keys: Vec::new(),
            keys_through,
            stored: checkpoint.clone(),
            data_dir: config.data_dir.clone(),
            retention: config.retention,
            max_journal_bytes: config.max_journal_bytes,
            last_error: None,
        };
        // Store at once: a new sink's start and a resized key file must not depend on traffic.
        state.checkpoint();
        let thread =
            std::thread::Builder::new().name("dispatcher".into()).spawn(move || state.run(stop_rx))?;
        Ok(Dispatcher { thread: Mutex::new(Some(thread)), context, stop, targets })
    }

    /// False once the dispatcher thread has ended (stopped, or died of a bug).
    pub fn running(&self) -> bool {
        self.thread.lock().unwrap_or_else(PoisonError::into_inner).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The targets, for metrics.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// After SIGHUP: reopens every sink's files (logrotate).
    pub fn reopen_sinks(&self) {
        for target in self.targets.iter() {
            if let Err(e) = target.sink.reopen() {
                log::error!("{}: cannot reopen: {e}", target.name);
            }
        }
        if let Err(e) = self.context.dead_letter.reopen() {
            log::error!("cannot reopen the dead-letter file: {e}");
        }
    }

    /// Delivers what is committed until `deadline`, checkpoints and stops the workers; returns
    /// once done (waiting for a worker still inside a sink at most until the deadline) with what
    /// was left undelivered or unchecked.
    pub fn stop(&self, deadline: Instant) -> Stopped {
        let _ = self.stop.send(deadline);
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner).take();
        match thread.map(JoinHandle::join) {
            Some(Ok(stopped)) => stopped,
            _ => Stopped::default(),
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop(Instant::now());
    }
}

/// The dispatcher thread's state.
struct Loop {
    journal: Arc<Journal>,
    doorbell: Receiver<()>,
    reader: Reader,
    progress: Progress,
    targets: Arc<[Target]>,
    /// Per target: records below this were delivered before the start.
    starts: Vec<u64>,
    /// (target, record) pairs dead-lettered before the start, past the target's start.
    dead_lettered: HashSet<(usize, u64)>,
    /// Per worker.
    senders: Vec<Sender<Vec<Task>>>,
    /// Per target: its workers (indices into `senders`), which serve no other target.
    lanes: Vec<Vec<usize>>,
    /// Per worker: tasks of this turn, sent together once the turn's reading is done.
    outbox: Vec<Vec<Task>>,
    workers: Vec<JoinHandle<()>>,
    done: Receiver<Vec<(usize, u64)>>,
    /// Dropped at the shutdown deadline: wakes workers sleeping between retries.
    halt: Option<Sender<()>>,
    key_file: KeyFile,
    /// Keys read and not yet written to the key file.
    keys: Vec<u64>,
    /// Every event below this has its key in `keys` or the key file.
    keys_through: u64,
    stored: Checkpoint,
    data_dir: PathBuf,
    retention: Duration,
    max_journal_bytes: u64,
    last_error: Option<Instant>,
}

impl Loop {
    /// Returns what the furthest-behind sink had not delivered or checkpointed at the end.
    fn run(mut self, stop: Receiver<Instant>) -> Stopped {
        let mut deadline: Option<Instant> = None;
        let mut next_checkpoint = Instant::now() + CHECKPOINT_INTERVAL;
        let mut last_turn = Instant::now().checked_sub(MIN_TURN_INTERVAL).unwrap_or_else(Instant::now);
        loop {
            if deadline.is_none() {
                let since = last_turn.elapsed();
                if since < MIN_TURN_INTERVAL {
                    std::thread::sleep(MIN_TURN_INTERVAL - since);
                }
            }
            last_turn = Instant::now();
            while let Ok(finished) = self.done.try_recv() {
                self.finish(&finished);
            }
            self.read();
            self.update_lag();
            if let Some(deadline) = deadline {
                let caught_up =
                    self.progress.is_empty() && self.reader.next_seq() >= self.journal.committed_seq();
                if caught_up || Instant::now() >= deadline {
                    if !caught_up {
                        log::warn!(
                            "shutdown deadline: {} records not yet delivered; they are delivered after the restart",
                            self.progress.len()
                        );
                    }
                    break;
                }
            }
            if Instant::now() >= next_checkpoint {
                self.checkpoint();
                next_checkpoint = Instant::now() + CHECKPOINT_INTERVAL;
            }
            let wake = deadline.map_or(next_checkpoint, |d| d.min(next_checkpoint));
            let timeout = wake.saturating_duration_since(Instant::now());
            select! {
                recv(self.done) -> finished => if let Ok(finished) = finished {
                    self.finish(&finished);
                },
                recv(self.doorbell) -> _ => {},
                recv(stop) -> at => deadline = Some(at.unwrap_or_else(|_| Instant::now())),
                default(timeout) => {},
            }
        }
        self.checkpoint();
        let committed = self.journal.committed_seq();
        let undelivered =
            (0..self.targets.len()).map(|n| committed.saturating_sub(self.position(n))).max().unwrap_or(0);
        // Delivered records the stored checkpoint does not cover (its last store failed).
        let unchecked = (0..self.targets.len())
            .map(|n| {
                let stored = self.stored.position(&self.targets[n].name).unwrap_or(self.starts[n]);
                self.position(n).saturating_sub(stored)
            })
            .max()
            .unwrap_or(0);
        self.stop_workers(deadline.unwrap_or_else(Instant::now));
        Stopped { undelivered, unchecked }
    }

    fn finish(&mut self, finished: &[(usize, u64)]) {
        for &(target, seq) in finished {
            self.progress.finish(target, seq);
        }
    }

    /// Reads committed records into the window while it has room, then hands each worker its
    /// share in one message.
    fn read(&mut self) {
        let limit = self.journal.committed_seq();
        while self.progress.has_room() {
            match self.reader.next(limit) {
                Ok(Some(record)) => self.dispatch(record),
                Ok(None) => break,
                Err(e) => {
                    self.log_error(&format!("cannot read the journal: {e}"));
                    break;
                }
            }
        }
        self.progress.skip_to(self.reader.next_seq());
        for (sender, tasks) in self.senders.iter().zip(&mut self.outbox) {
            if !tasks.is_empty() {
                // Cannot block: no channel holds more than the window (see `mod.rs`).
                let _ = sender.send(std::mem::take(tasks));
            }
        }
    }

    /// Hands one record to the worker of each sink that takes it.
    fn dispatch(&mut self, record: Record) {
        let meta = record.meta;
        if meta.kind == Kind::Event && meta.seq >= self.keys_through {
            self.keys.push(meta.key);
        }
        self.keys_through = self.keys_through.max(meta.seq + 1);
        let mut pending = 0u64;
        for (n, target) in self.targets.iter().enumerate() {
            if target.accepts == meta.kind
                && meta.seq >= self.starts[n]
                && (self.dead_lettered.is_empty() || !self.dead_lettered.remove(&(n, meta.seq)))
            {
                pending |= 1 << n;
            }
        }
        self.progress.enter(meta.seq, meta.accepted_ms, record.payload.len() as u64, pending);
        // The last sink gets the record itself, the others a clone: a clone and its drop are two
        // locked instructions on the payload's shared buffer, whose count the workers change too.
        let mut record = Some(record);
        let mut left = pending;
        while left != 0 {
            let n = left.trailing_zeros() as usize;
            left &= left - 1;
            let record =
                if left == 0 { record.take() } else { record.clone() }.expect("taken only once, last");
            let lane = &self.lanes[n];
            let worker = lane[pick_worker(meta.order, lane.len())];
            self.outbox[worker].push(Task { target: n, record });
        }
    }

    fn update_lag(&self) {
        let committed = self.journal.committed_seq();
        let now = now_ms();
        for (n, target) in self.targets.iter().enumerate() {
            let position = self.position(n);
            target.stats.lag_events.store(committed.saturating_sub(position), Ordering::Relaxed);
            let age = self.progress.oldest_accepted_ms(n).map_or(0, |at| now.saturating_sub(at) / 1000);
            target.stats.lag_seconds.store(age, Ordering::Relaxed);
        }
    }

    fn position(&self, target: usize) -> u64 {
        self.progress.position(target).max(self.starts[target])
    }

    /// Makes progress durable: sinks synced, keys written, checkpoint stored, old segments
    /// removed. A step that fails keeps the old value and is logged.
    fn checkpoint(&mut self) {
        let mut next = Checkpoint {
            keys_count: self.stored.keys_count,
            keys_through: self.stored.keys_through,
            sinks: Vec::new(),
            marks: Vec::new(),
        };
        let targets = Arc::clone(&self.targets);
        for (n, target) in targets.iter().enumerate() {
            let position = self.position(n);
            let stored = self.stored.position(&target.name);
            let stored_mark = self.stored.mark(&target.name);
            let (kept, mark) = if stored.is_some_and(|stored| stored >= position) {
                (stored.unwrap_or(position), stored_mark)
            } else {
                match target.sink.sync() {
                    // A file sink's lines may already cover records past `position` (see
                    // `Synced::next`); the mark describes the file at the later of the two.
                    Ok(Some(synced)) => (position.max(synced.next), Some(synced.mark)),
                    Ok(None) => (position, None),
                    Err(e) => {
                        self.log_error(&format!("{}: cannot sync: {e}", target.name));
                        (stored.unwrap_or(self.starts[n]), stored_mark)
                    }
                }
            };
            next.sinks.push((target.name.clone(), kept));
            if let Some(mark) = mark {
                next.marks.push((target.name.clone(), mark));
            }
        }
        if self.keys_through != self.stored.keys_through || next.keys_count != self.key_file.count() {
            match self.key_file.append(&self.keys).and_then(|()| self.key_file.sync()) {
                Ok(()) => {
                    self.keys.clear();
                    next.keys_count = self.key_file.count();
                    next.keys_through = self.keys_through;
                }
                Err(e) => self.log_error(&format!("cannot write the dedup key file: {e}")),
            }
        }
        if next == self.stored {
            return;
        }
        if let Err(e) = checkpoint::store(&self.data_dir, &next) {
            self.log_error(&format!("cannot store the checkpoint: {e}"));
            return;
        }
        let floor = next.sinks.iter().map(|&(_, p)| p).chain([next.keys_through]).min().unwrap_or(0);
        match self.journal.remove_delivered(floor, self.retention, self.max_journal_bytes) {
            Ok(0) => {}
            Ok(n) => log::debug!("removed {n} delivered journal segments"),
            Err(e) => self.log_error(&format!("cannot remove delivered journal segments: {e}")),
        }
        // Published last: whoever sees a position here also sees its segments gone.
        for (target, &(_, position)) in self.targets.iter().zip(&next.sinks) {
            target.stats.checkpointed.store(position, Ordering::Relaxed);
        }
        self.stored = next;
    }

    fn log_error(&mut self, message: &str) {
        let now = Instant::now();
        if self.last_error.is_none_or(|at| now.duration_since(at) >= ERROR_LOG_INTERVAL) {
            log::error!("{message}");
            self.last_error = Some(now);
        }
    }

    /// Stops the workers: closes their channels, wakes any that waits to retry, and joins them
    /// until `deadline`.
    fn stop_workers(mut self, deadline: Instant) {
        self.senders.clear();
        self.halt = None;
        let targets = Arc::clone(&self.targets);
        for worker in self.workers.drain(..) {
            while !worker.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if worker.is_finished() {
                let _ = worker.join();
            }
        }
        // A worker still inside a sink at the deadline: an exec run is killed with its group
        // (its event was not reported finished, so it is delivered again after the restart).
        for target in targets.iter() {
            target.sink.halt();
        }
    }
}

/// Which of a target's `workers` takes records of `order` key: the same key always maps to the
/// same worker (that is the ordering guarantee). A `serial` target (one stream: see
/// `Sink::serial`) has one worker.
fn pick_worker(order: u64, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let mixed = order.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    ((mixed >> 32) % workers as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::SinkStats;
    use crate::journal::memory::MemStorage;
    use crate::journal::JournalConfig;
    use crate::sink::{Sink, SinkOptions, SinkSpec};

    /// Starts a dispatcher on `journal` with one jsonl sink, `DIR/events.jsonl`, and the
    /// checkpoint `checkpoint` makes from the sink's name.
    fn start(
        dir: &std::path::Path,
        journal: Journal,
        checkpoint: impl FnOnce(String) -> Checkpoint,
    ) -> Dispatcher {
        let spec = SinkSpec::Jsonl(dir.join("events.jsonl"));
        let target = Target {
            name: spec.name(),
            sink: Sink::open(&spec, &SinkOptions::default()).unwrap(),
            accepts: Kind::Event,
            stats: SinkStats::default(),
        };
        let (key_file, _) = KeyFile::open(dir, 16, 0).unwrap();
        let config = DispatchConfig {
            data_dir: dir.to_path_buf(),
            workers: 1,
            delivery_attempts: 1,
            retention: Duration::ZERO,
            max_journal_bytes: u64::MAX,
        };
        let checkpoint = checkpoint(spec.name());
        Dispatcher::start(&config, Arc::new(journal), vec![target], &checkpoint, key_file).unwrap()
    }

    #[test]
    fn a_restart_with_nothing_to_deliver_publishes_the_stored_positions() {
        let temp = crate::test_dir::TempDir::new("dispatch-start");
        let journal_config = JournalConfig { first_seq: 8, ..JournalConfig::default() };
        let (journal, _) = Journal::open(Arc::new(MemStorage::new()), &journal_config).unwrap();
        let dispatcher = start(temp.path(), journal, |name| Checkpoint {
            keys_count: 0,
            keys_through: 8,
            sinks: vec![(name, 8)],
            marks: Vec::new(),
        });
        // Nothing moved, so the start-up checkpoint stored nothing; the gauge still says 8.
        assert_eq!(dispatcher.targets()[0].stats.checkpointed.load(Ordering::Relaxed), 8);
        drop(dispatcher);
    }

    #[test]
    fn a_record_dead_lettered_before_a_crash_is_not_delivered_again() {
        let temp = crate::test_dir::TempDir::new("dispatch-dead-lettered");
        let dir = temp.path();
        let (journal, _) = Journal::open(Arc::new(MemStorage::new()), &JournalConfig::default()).unwrap();
        let mut bytes = Vec::new();
        for n in 1..=3u64 {
            let meta = crate::journal::Meta { kind: Kind::Event, seq: 0, accepted_ms: 1, key: n, order: n };
            crate::journal::format::push_record(&mut bytes, &meta, &[format!("{{\"n\":{n}}}").as_bytes()]);
        }
        assert_eq!(journal.append(bytes), crate::journal::Append::Committed);
        let name = SinkSpec::Jsonl(dir.join("events.jsonl")).name();
        // Record 2 was dead-lettered, then the receiver was killed before the checkpoint moved.
        std::fs::write(
            dir.join(super::super::DEAD_LETTER_FILE),
            format!("{{\"sink\":\"{name}\",\"reason\":\"r\",\"attempts\":1,\"seq\":2,\"acceptedMs\":1,\"event\":{{}}}}\n"),
        )
        .unwrap();
        let dispatcher =
            start(dir, journal, |name| Checkpoint { sinks: vec![(name, 1)], ..Checkpoint::default() });
        assert_eq!(dispatcher.stop(Instant::now() + Duration::from_secs(5)), Stopped::default());
        assert_eq!(std::fs::read_to_string(dir.join("events.jsonl")).unwrap(), "{\"n\":1}\n{\"n\":3}\n");
    }
}
