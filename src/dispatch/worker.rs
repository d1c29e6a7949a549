//! A worker thread: takes (sink, record) tasks from its own channel, delivers each with retries
//! and exponential backoff, dead-letters it after the last attempt, and reports it finished.
//!
//! Workers are plain threads (a sink may block: a file write, a child process), so blocking is
//! fine here. A task is reported finished only once it was delivered or dead-lettered (and the
//! dead-letter line synced); a task abandoned at shutdown is not reported, so its sink's
//! checkpoint stays before it and it is delivered again after the restart.
//!
//! Isolation: a worker serves one sink only (each sink has workers of its own), so a delivery
//! that fails, blocks or is slow holds up that sink alone.
//!
//! Ordering: the dispatcher sends every record of one (sink, order key) to the same worker, and
//! a worker finishes a task (retries included) before it starts the next, so those records reach
//! the sink in journal order. The price is head-of-line blocking: a record being retried holds
//! up the other records queued on its worker.
//!
//! Batches: a sink that takes several events at once (an `http:` sink, [`Sink::batch_limit`])
//! is handed up to that many consecutive tasks of the worker in one
//! [`Sink::deliver_batch`] call, all or nothing: the batch is retried as one, and dead-lettered
//! event by event after the last attempt. Consecutive tasks of one worker keep the order per
//! key. While a batch is short of the limit, the worker takes the turns the dispatcher queued
//! meanwhile (a slow POST lets the next turns gather) before it delivers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::dead_letter::DeadLetter;
use crate::journal::{Kind, Record};
use crate::sink::{Batched, Delivery, Failure, Sink};
use crate::{Element, Parser};

/// Default `--delivery-attempts`: attempts per (sink, event) before it is dead-lettered.
pub const DEFAULT_DELIVERY_ATTEMPTS: u32 = 8;
/// Wait before the first retry; each further retry waits twice as long.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// One sink and the records it takes.
#[derive(Debug)]
pub struct Target {
    /// Its name in checkpoints, metrics and the dead-letter file.
    pub name: String,
    /// The sink.
    pub sink: Sink,
    /// The kind of record it takes: events for the configured sinks, quarantined elements for
    /// the quarantine file.
    pub accepts: Kind,
    /// Its counters.
    pub stats: SinkStats,
}

/// Per-sink counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records delivered.
    pub delivered: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
    /// Attempts that failed (retried or not).
    pub failed: AtomicU64,
    /// Records written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Records accepted and not yet delivered (updated by the dispatcher).
    pub lag_events: AtomicU64,
    /// Age in seconds of the oldest record in flight not yet delivered.
    pub lag_seconds: AtomicU64,
    /// Seconds the position has not moved while records wait (0 when none wait).
    pub stalled_seconds: AtomicU64,
    /// The position in the last stored checkpoint: every record below it is delivered and
    /// durable in the sink.
    pub checkpointed: AtomicU64,
}

impl SinkStats {
    /// True while records have waited for the sink and none was delivered for
    /// [`STUCK_AFTER`](super::STUCK_AFTER).
    pub fn stuck(&self) -> bool {
        self.stalled_seconds.load(Ordering::Relaxed) >= super::STUCK_AFTER.as_secs()
    }
}

/// One delivery to do.
#[derive(Debug)]
pub(super) struct Task {
    /// Index of the target.
    pub target: usize,
    /// The record (its payload shared with the journal reader's buffer and the other sinks' tasks).
    pub record: Record,
}

/// What every worker shares.
#[derive(Debug)]
pub(super) struct Context {
    /// Every target, by index.
    pub targets: Arc<[Target]>,
    /// Where failed deliveries go.
    pub dead_letter: DeadLetter,
    /// Attempts before dead-lettering.
    pub attempts: u32,
}

/// The worker loop; returns when `tasks` is closed or `halt` is (at the shutdown deadline).
/// Tasks come in batches (what the dispatcher read in one turn) and are reported finished in
/// batches: one wake-up each way per turn instead of one per event.
pub(super) fn run(
    context: Arc<Context>,
    tasks: Receiver<Vec<Task>>,
    done: Sender<Vec<(usize, u64)>>,
    halt: Receiver<()>,
) {
    let mut parser = Parser::default();
    for mut batch in tasks.iter() {
        // A worker serves one sink: its first task says which.
        let limit = batch.first().map_or(1, |task| context.targets[task.target].sink.batch_limit());
        while batch.len() < limit {
            match tasks.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let mut finished = Vec::with_capacity(batch.len());
        let mut rest = batch.as_slice();
        while !rest.is_empty() {
            let n = if limit > 1 { same_target(rest).min(limit) } else { 1 };
            let (now, later) = rest.split_at(n);
            let delivered = if n > 1 {
                deliver_batch(&context, now, &mut parser, &halt)
            } else {
                deliver(&context, &now[0], &mut parser, &halt)
            };
            if !delivered {
                let _ = done.send(finished);
                return;
            }
            finished.extend(now.iter().map(|task| (task.target, task.record.meta.seq)));
            rest = later;
        }
        // The dispatcher outlives its workers' channels; a closed `done` means it is gone.
        if done.send(finished).is_err() {
            return;
        }
    }
}

/// Delivers one task with retries, dead-lettering after the last attempt (a failure of the sink's
/// medium is retried until it succeeds, see [`Failure::medium`]); false when the shutdown
/// deadline cut it short (not finished).
fn deliver(context: &Context, task: &Task, parser: &mut Parser, halt: &Receiver<()>) -> bool {
    let target = &context.targets[task.target];
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1;
    loop {
        let delivery = Delivery { position: task.record.meta.seq, attempt };
        let failure = match attempt_once(&target.sink, &task.record, parser, &delivery) {
            Ok(()) => {
                target.stats.delivered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(failure) => failure,
        };
        target.stats.failed.fetch_add(1, Ordering::Relaxed);
        if attempt >= context.attempts && !failure.medium {
            return dead_letter(context, target, task, &failure.reason, attempt, halt);
        }
        if failure.medium && attempt == context.attempts {
            log::error!(
                "{}: record {} still cannot be written after {attempt} attempts ({}); retrying every \
                 {MAX_RETRY_DELAY:?} at most until it can (the journal keeps it)",
                target.name,
                task.record.meta.seq,
                failure.reason
            );
        }
        log::debug!(
            "{}: record {} failed ({}); retrying in {delay:?}",
            target.name,
            task.record.meta.seq,
            failure.reason
        );
        target.stats.retried.fetch_add(1, Ordering::Relaxed);
        if !sleep(halt, delay) {
            return false;
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
        attempt = attempt.saturating_add(1);
    }
}

/// How many tasks at the start of `tasks` are for its first task's target.
fn same_target(tasks: &[Task]) -> usize {
    tasks.iter().take_while(|task| task.target == tasks[0].target).count()
}

/// Delivers consecutive tasks of one target as batches with retries, each batch all or nothing;
/// false when the shutdown deadline cut it short. A task whose record is not a valid event (never
/// so for a journaled event) is delivered alone, so it fails alone, with the batch before it sent
/// first and the one after it next: the order holds.
fn deliver_batch(context: &Context, tasks: &[Task], parser: &mut Parser, halt: &Receiver<()>) -> bool {
    let mut keys = Vec::with_capacity(tasks.len());
    let mut start = 0;
    for (n, task) in tasks.iter().enumerate() {
        match event_key(task, parser) {
            Some(key) => keys.push(key),
            None => {
                if !deliver_keyed(context, &tasks[start..n], &keys, halt)
                    || !deliver(context, task, parser, halt)
                {
                    return false;
                }
                keys.clear();
                start = n + 1;
            }
        }
    }
    deliver_keyed(context, &tasks[start..], &keys, halt)
}

/// The `DOMAIN:EVENT_ID` of a task's event; `None` when it is not one valid event.
fn event_key(task: &Task, parser: &mut Parser) -> Option<String> {
    if task.record.meta.kind != Kind::Event {
        return None;
    }
    let batch = parser.parse(&task.record.payload).ok()?;
    let key = match batch.elements().next() {
        Some(Element::Valid(event)) => Some(Delivery::idempotency_key(&event)),
        _ => None,
    };
    key
}

/// Delivers `tasks` (their events' keys in `keys`) in one batch with retries, dead-lettering
/// every task after the last attempt; false when the shutdown deadline cut it short.
fn deliver_keyed(context: &Context, tasks: &[Task], keys: &[String], halt: &Receiver<()>) -> bool {
    let Some(first) = tasks.first() else { return true };
    let target = &context.targets[first.target];
    let events: Vec<Batched<'_>> =
        tasks.iter().zip(keys).map(|(task, key)| Batched { payload: &task.record.payload, key }).collect();
    let count = tasks.len() as u64;
    let (low, high) = (first.record.meta.seq, tasks[tasks.len() - 1].record.meta.seq);
    let mut delay = FIRST_RETRY_DELAY;
    let mut attempt = 1;
    loop {
        let failure = match target.sink.deliver_batch(&events) {
            Ok(()) => {
                target.stats.delivered.fetch_add(count, Ordering::Relaxed);
                return true;
            }
            Err(failure) => failure,
        };
        target.stats.failed.fetch_add(count, Ordering::Relaxed);
        if attempt >= context.attempts && !failure.medium {
            return tasks
                .iter()
                .all(|task| dead_letter(context, target, task, &failure.reason, attempt, halt));
        }
        log::debug!(
            "{}: records {low}..={high} ({count}) failed ({}); retrying in {delay:?}",
            target.name,
            failure.reason
        );
        target.stats.retried.fetch_add(count, Ordering::Relaxed);
        if !sleep(halt, delay) {
            return false;
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
        attempt = attempt.saturating_add(1);
    }
}

/// One attempt at handing the record to the sink.
fn attempt_once(
    sink: &Sink,
    record: &Record,
    parser: &mut Parser,
    delivery: &Delivery,
) -> Result<(), Failure> {
    match record.meta.kind {
        // A line sink writes the payload as it is: no parse needed (it was validated at ingest).
        Kind::Quarantined => sink.deliver_line(&record.payload, delivery.position),
        Kind::Event if !sink.needs_event() => sink.deliver_line(&record.payload, delivery.position),
        Kind::Event => {
            let batch = parser
                .parse(&record.payload)
                .map_err(|e| Failure::event(format!("journaled event does not parse: {e}")))?;
            let delivered = match batch.elements().next() {
                Some(Element::Valid(event)) => sink.deliver(&record.payload, &event, delivery),
                _ => Err(Failure::event("journaled event is not a valid event")),
            };
            delivered
        }
    }
}

/// Writes the dead-letter line, retrying with backoff until it is durable; false when the
/// shutdown deadline came first.
fn dead_letter(
    context: &Context,
    target: &Target,
    task: &Task,
    reason: &str,
    attempts: u32,
    halt: &Receiver<()>,
) -> bool {
    let name = &target.name;
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match context.dead_letter.write(name, reason, attempts, &task.record) {
            Ok(()) => {
                log::warn!(
                    "{name}: record {} dead-lettered after {attempts} attempts: {reason}",
                    task.record.meta.seq
                );
                target.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            Err(e) => log::error!("cannot write the dead-letter file: {e}; retrying in {delay:?}"),
        }
        if !sleep(halt, delay) {
            return false;
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// Sleeps `delay`, or less when `halt` closes; false if it did.
fn sleep(halt: &Receiver<()>, delay: Duration) -> bool {
    matches!(halt.recv_timeout(delay), Err(RecvTimeoutError::Timeout) | Ok(()))
}
