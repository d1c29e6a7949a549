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
use super::lane::{Lane, Stuck, STUCK_AFTER};
use super::progress::{MAX_IN_FLIGHT, MAX_SINKS};
use super::resume;
use super::worker::{self, Context, Target, Task};
use super::{DispatchConfig, CHECKPOINT_INTERVAL};
use crate::dedup::{self, Dedup, Secret};
use crate::journal::{Journal, Kind, Reader, Record};

/// Shortest time between two turns (read, hand out) under load. Every commit rings the
/// doorbell, and a turn per commit would cost a wake-up of the dispatcher and of each worker it
/// hands work to, per group: thousands a second. Pacing the turns lets records gather, so each
/// turn hands out hundreds of records at the price of at most this much delivery latency; an
/// idle dispatcher still starts a turn at once. The window ([`MAX_IN_FLIGHT`] records per sink
/// per turn) bounds each sink's delivery rate at 2 M records/s.
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
    /// Starts delivery from each target's checkpointed position, found by its name or adopted
    /// from an older spelling (a new target: the oldest record in the journal, or with
    /// [`SinkStart::End`](super::SinkStart::End) its next record).
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
        // Entries stored under an older name are given to their sinks here; `stored` below
        // keeps the names as read, so the first checkpoint stores the new ones.
        let (identified, adopted) =
            resume::identify(&targets, &config.identity, &config.data_dir, checkpoint);
        let starts = resume::starts(&targets, &identified, &journal, config.identity.start)?;
        let dead_lettered = resume::dead_lettered(&config.data_dir, &targets, &adopted, &starts)?;
        for (name, position) in &identified.sinks {
            if !targets.iter().any(|t| &t.name == name) {
                log::info!(
                    "{name} is no longer configured: its checkpoint entry (position {position}) is dropped"
                );
            }
        }
        // Published before the first checkpoint, which stores (and publishes) only what changed:
        // after a restart with nothing new to deliver, the gauge must not read 0.
        for target in &targets {
            if let Some(position) = identified.position(&target.name) {
                target.stats.checkpointed.store(position, Ordering::Relaxed);
            }
        }
        let targets: Arc<[Target]> = targets.into();
        let context = Arc::new(Context {
            targets: Arc::clone(&targets),
            dead_letter: DeadLetter::open(&config.data_dir)?,
            attempts: config.delivery_attempts.max(1),
        });
        let counts: Vec<usize> =
            targets.iter().map(|t| if t.sink.serial() { 1 } else { config.workers.max(1) }).collect();
        // Each message on `done` reports at least one finished record, except one last (possibly
        // empty) message per worker cut short at the deadline.
        let (done_tx, done) = bounded(MAX_IN_FLIGHT * targets.len() + counts.iter().sum::<usize>());
        let (halt, halt_rx) = bounded::<()>(0);
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        let mut lanes = Vec::with_capacity(targets.len());
        for (n, &count) in counts.iter().enumerate() {
            // Workers of its own: a sink that fails, blocks or is slow holds up only itself.
            let mut lane = Vec::with_capacity(count);
            for k in 0..count {
                let (tx, rx) = bounded(MAX_IN_FLIGHT);
                let (context, done_tx, halt_rx) = (Arc::clone(&context), done_tx.clone(), halt_rx.clone());
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("worker-{n}-{k}"))
                        .spawn(move || worker::run(context, rx, done_tx, halt_rx))?,
                );
                lane.push(senders.len());
                senders.push(tx);
            }
            lanes.push(Lane::new(starts[n], lane));
        }
        let first = starts.iter().copied().min().unwrap_or(1);
        let keys_through = checkpoint.keys_through.max(1);
        let (stop, stop_rx) = bounded(1);
        let mut state = Loop {
            doorbell: journal.doorbell(),
            reader: journal.reader(first),
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
    /// The shared reader: every attached lane takes its records from it.
    reader: Reader,
    targets: Arc<[Target]>,
    /// Per target: records below this were delivered before the start.
    starts: Vec<u64>,
    /// (target, record) pairs dead-lettered before the start, past the target's start.
    dead_lettered: HashSet<(usize, u64)>,
    /// Per worker.
    senders: Vec<Sender<Vec<Task>>>,
    /// Per target: its window, workers and (while detached) reader.
    lanes: Vec<Lane>,
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
                let caught_up = self.reader.next_seq() >= self.journal.committed_seq()
                    && self.lanes.iter().all(|lane| lane.attached() && lane.window.is_empty());
                if caught_up || Instant::now() >= deadline {
                    if !caught_up {
                        log::warn!(
                            "shutdown deadline: {} records not yet delivered to every sink; they are \
                             delivered after the restart",
                            self.undelivered()
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
        let undelivered = self.undelivered();
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
            self.lanes[target].window.finish(seq);
        }
    }

    /// Records the furthest-behind sink has not delivered.
    fn undelivered(&self) -> u64 {
        let committed = self.journal.committed_seq();
        (0..self.targets.len()).map(|n| committed.saturating_sub(self.position(n))).max().unwrap_or(0)
    }

    /// Fills every window that has room (detached lanes from their own readers first, then the
    /// attached ones from the shared reader), then hands each worker its share in one message.
    fn read(&mut self) {
        for n in 0..self.lanes.len() {
            if !self.lanes[n].attached() {
                self.catch_up(n);
            }
        }
        let limit = self.journal.committed_seq();
        while self.lanes.iter().any(|lane| lane.attached() && lane.window.has_room()) {
            match self.reader.next(limit) {
                Ok(Some(record)) => self.dispatch(record),
                Ok(None) => break,
                Err(e) => {
                    self.log_error(&format!("cannot read the journal: {e}"));
                    break;
                }
            }
        }
        let next = self.reader.next_seq();
        for lane in &mut self.lanes {
            if lane.attached() {
                lane.window.skip_to(next);
            }
        }
        for (sender, tasks) in self.senders.iter().zip(&mut self.outbox) {
            if !tasks.is_empty() {
                // Cannot block: no channel holds more than a window (see `mod.rs`).
                let _ = sender.send(std::mem::take(tasks));
            }
        }
    }

    /// A detached lane reads on with its own reader while its window has room, up to where the
    /// shared reader stands, and rejoins it there.
    fn catch_up(&mut self, n: usize) {
        let Some(mut reader) = self.lanes[n].behind.take() else { return };
        let limit = self.reader.next_seq();
        while self.lanes[n].window.has_room() {
            match reader.next(limit) {
                Ok(Some(record)) => {
                    if self.takes(n, &record.meta) && !self.dead_lettered(n, record.meta.seq) {
                        self.hand(n, record);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.log_error(&format!("{}: cannot read the journal: {e}", self.targets[n].name));
                    break;
                }
            }
        }
        self.lanes[n].window.skip_to(reader.next_seq());
        if reader.next_seq() < limit {
            self.lanes[n].behind = Some(reader);
        } else {
            log::debug!("{} caught up with the other sinks at record {limit}", self.targets[n].name);
        }
    }

    /// Hands one record from the shared reader to every attached sink that takes it. A sink
    /// that takes it but has no room detaches here and reads on by itself from this record.
    fn dispatch(&mut self, record: Record) {
        let meta = record.meta;
        if meta.kind == Kind::Event && meta.seq >= self.keys_through {
            self.keys.push(meta.key);
        }
        self.keys_through = self.keys_through.max(meta.seq + 1);
        let mut takers = 0u64;
        for n in 0..self.lanes.len() {
            if !self.lanes[n].attached() || !self.takes(n, &meta) {
                continue;
            }
            if !self.lanes[n].window.has_room() {
                log::debug!(
                    "{} is {} records behind: it reads on by itself",
                    self.targets[n].name,
                    MAX_IN_FLIGHT
                );
                let lane = &mut self.lanes[n];
                lane.window.skip_to(meta.seq);
                lane.behind = Some(self.journal.reader(meta.seq));
                continue;
            }
            if !self.dead_lettered(n, meta.seq) {
                takers |= 1 << n;
            }
        }
        // The last sink gets the record itself, the others a clone: a clone and its drop are two
        // locked instructions on the payload's shared buffer, whose count the workers change too.
        let mut record = Some(record);
        while takers != 0 {
            let n = takers.trailing_zeros() as usize;
            takers &= takers - 1;
            let record =
                if takers == 0 { record.take() } else { record.clone() }.expect("taken only once, last");
            self.hand(n, record);
        }
    }

    /// True if target `n` delivers this record: its kind, at or past the target's start.
    fn takes(&self, n: usize, meta: &crate::journal::Meta) -> bool {
        self.targets[n].accepts == meta.kind && meta.seq >= self.starts[n]
    }

    /// True (once) if target `n` dead-lettered record `seq` before the start.
    fn dead_lettered(&mut self, n: usize, seq: u64) -> bool {
        !self.dead_lettered.is_empty() && self.dead_lettered.remove(&(n, seq))
    }

    /// Puts the record in target `n`'s window and its worker's outbox.
    fn hand(&mut self, n: usize, record: Record) {
        let lane = &mut self.lanes[n];
        lane.window.enter(record.meta.seq, record.meta.accepted_ms, record.payload.len() as u64);
        let worker = lane.worker(record.meta.order);
        self.outbox[worker].push(Task { target: n, record });
    }

    /// Publishes each sink's lag and stuck state, and logs when one gets stuck or moves again.
    fn update_lag(&mut self) {
        let committed = self.journal.committed_seq();
        let (now, at) = (now_ms(), Instant::now());
        for (n, target) in self.targets.iter().enumerate() {
            let position = self.position(n);
            let lag = committed.saturating_sub(position);
            target.stats.lag_events.store(lag, Ordering::Relaxed);
            let lane = &mut self.lanes[n];
            let age = lane.window.oldest_accepted_ms().map_or(0, |at| now.saturating_sub(at) / 1000);
            target.stats.lag_seconds.store(age, Ordering::Relaxed);
            let (still, change) = lane.observe(position, lag > 0, at);
            target.stats.stalled_seconds.store(still.as_secs(), Ordering::Relaxed);
            match change {
                Some(Stuck::Began) => log::warn!(
                    "{}: stuck: no record delivered for {} s, {lag} records behind (the other sinks go \
                     on; the journal keeps its records)",
                    target.name,
                    STUCK_AFTER.as_secs()
                ),
                Some(Stuck::Ended) => log::info!("{}: delivering again, {lag} records behind", target.name),
                None => {}
            }
        }
    }

    fn position(&self, target: usize) -> u64 {
        self.lanes[target].window.position().max(self.starts[target])
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
        let checkpoint = checkpoint(spec.name());
        start_with(dir, Arc::new(journal), &[spec], 1, &checkpoint)
    }

    /// Starts a dispatcher on `journal` delivering to `specs`, `workers` per parallel sink.
    fn start_with(
        dir: &std::path::Path,
        journal: Arc<Journal>,
        specs: &[SinkSpec],
        workers: usize,
        checkpoint: &Checkpoint,
    ) -> Dispatcher {
        let targets = specs
            .iter()
            .map(|spec| Target {
                name: spec.name(),
                sink: Sink::open(spec, &SinkOptions::default()).unwrap(),
                accepts: Kind::Event,
                stats: SinkStats::default(),
            })
            .collect();
        let (key_file, _) = KeyFile::open(dir, 16, 0).unwrap();
        let config = DispatchConfig {
            data_dir: dir.to_path_buf(),
            workers,
            delivery_attempts: 1,
            retention: Duration::ZERO,
            max_journal_bytes: u64::MAX,
            identity: super::super::SinkIdentity::default(),
        };
        Dispatcher::start(&config, journal, targets, checkpoint, key_file).unwrap()
    }

    /// Polls `done` every 10 ms for up to 20 s.
    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A handler that holds every delivery until it is opened, and notes each position it was
    /// handed, by order key.
    #[derive(Default)]
    struct Held {
        open: Mutex<bool>,
        opened: std::sync::Condvar,
        seen: Mutex<Vec<(u64, u64)>>,
    }

    impl crate::sink::Handler for Held {
        fn handle(
            &self,
            event: &crate::Event<'_>,
            delivery: &crate::sink::Delivery,
        ) -> Result<(), crate::sink::Failure> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            let order = event.event_id().trim_start_matches("e-").parse::<u64>().unwrap() % 7;
            self.seen.lock().unwrap().push((order, delivery.position));
            Ok(())
        }
    }

    #[test]
    fn a_sink_that_blocks_holds_up_only_itself_however_far_behind_it_falls() {
        let temp = crate::test_dir::TempDir::new("dispatch-isolated");
        let dir = temp.path();
        let config = JournalConfig { segment_bytes: 256 << 10, ..JournalConfig::default() };
        let (journal, _) = Journal::open(Arc::new(MemStorage::new()), &config).unwrap();
        // Three windows' worth and a bit, so the held sink falls behind the shared reader.
        let count = 3 * MAX_IN_FLIGHT as u64 + 5;
        for chunk in (1..=count).collect::<Vec<_>>().chunks(1000) {
            let mut bytes = Vec::new();
            for &n in chunk {
                let meta =
                    crate::journal::Meta { kind: Kind::Event, seq: 0, accepted_ms: 1, key: n, order: n % 7 };
                let event = format!(
                    r#"{{"eventId":"e-{n}","domain":"acme","timestamp":1,"data":{{"targetPath":"/a"}},"actionSource":"WebUI","eventType":"fs:add_file","webhookId":"w"}}"#
                );
                crate::journal::format::push_record(&mut bytes, &meta, &[event.as_bytes()]);
            }
            assert_eq!(journal.append(bytes), crate::journal::Append::Committed);
        }
        let held = Arc::new(Held::default());
        let specs = [
            SinkSpec::Jsonl(dir.join("events.jsonl")),
            SinkSpec::Handler {
                name: "held".into(),
                handler: Arc::clone(&held) as Arc<dyn crate::sink::Handler>,
            },
        ];
        let journal = Arc::new(journal);
        let dispatcher = start_with(dir, Arc::clone(&journal), &specs, 3, &Checkpoint::default());
        let lines = || {
            std::fs::read(dir.join("events.jsonl")).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        };
        wait_for("every line in events.jsonl", || lines() == count as usize);
        wait_for("a checkpoint past every record", || {
            dispatcher.targets()[0].stats.checkpointed.load(Ordering::Relaxed) == count + 1
        });
        let stats = &dispatcher.targets()[1].stats;
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 0);
        wait_for("the held sink's lag", || stats.lag_events.load(Ordering::Relaxed) == count);
        // Released, it catches up by itself, each order key in journal order, once each.
        *held.open.lock().unwrap() = true;
        held.opened.notify_all();
        wait_for("every record in the held sink", || held.seen.lock().unwrap().len() == count as usize);
        let seen = held.seen.lock().unwrap().clone();
        let mut positions: Vec<u64> = seen.iter().map(|&(_, p)| p).collect();
        positions.sort_unstable();
        assert_eq!(positions, (1..=count).collect::<Vec<_>>(), "each record once");
        for order in 0..7 {
            let of_key: Vec<u64> = seen.iter().filter(|&&(o, _)| o == order).map(|&(_, p)| p).collect();
            assert!(of_key.windows(2).all(|w| w[0] < w[1]), "order key {order} delivered out of order");
        }
        assert_eq!(dispatcher.stop(Instant::now() + Duration::from_secs(5)), Stopped::default());
        assert_eq!(lines(), count as usize, "nothing written twice");
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
