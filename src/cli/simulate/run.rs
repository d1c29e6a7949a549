//! One run of `simulate`: what the connection threads share ([`Run`]: options, counters, and
//! [`Run::claim`], which schedules each new batch under `--rate` and ends the run at
//! `--duration` or `--requests`), each connection's loop ([`connection`]), the delivery of one
//! batch with Egnyte's retries ([`deliver`]), the reading of the receiver's answer, and the
//! progress line.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use egnyte_receiver::time::now_ms;

use super::arguments::Options;
use super::client::{self, Client, ClientError};
use super::events::{Batch, Generator};
use super::stats::{Outcome, Stats};
use super::verify::NOT_ACKNOWLEDGED;

/// First pause before a retry; each later one doubles, up to [`MAX_RETRY_DELAY`].
pub(super) const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between two attempts of one batch.
pub(super) const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Acknowledged batches each connection keeps to re-send as duplicates (the most recent ones:
/// old enough to be deduplicated, recent enough to be inside any receiver's dedup window).
const DUPLICATE_POOL: usize = 64;

/// What every connection thread shares.
pub(super) struct Run {
    pub(super) options: Options,
    pub(super) nonce: u32,
    pub(super) start: Instant,
    /// No new batch starts at or after this instant.
    deadline: Option<Instant>,
    /// Batches claimed so far (the claim decides `--requests` and the `--rate` schedule).
    claimed: AtomicU64,
    /// Each connection's counters (its own lock: only the progress line reads it besides).
    stats: Vec<Mutex<Stats>>,
}

impl Run {
    pub(super) fn new(options: Options, nonce: u32) -> Run {
        let start = Instant::now();
        let deadline = options.duration.map(|d| start + d);
        let stats = (0..options.connections).map(|_| Mutex::new(Stats::default())).collect();
        Run { options, nonce, start, deadline, claimed: AtomicU64::new(0), stats }
    }

    /// Claims the next batch and waits for its slot under `--rate`; false when the run is over.
    fn claim(&self) -> bool {
        let k = self.claimed.fetch_add(1, Ordering::Relaxed);
        if self.options.requests.is_some_and(|n| k >= n) {
            return false;
        }
        let due = match self.options.rate {
            Some(rate) => self.start + Duration::from_secs_f64(k as f64 / rate),
            None => Instant::now(),
        };
        // A connection back from a long retry may find its slot (`due`) long past: the run's
        // deadline still counts from now, or a failing receiver would stretch the run by a
        // --retry-for per claimed batch.
        if self.deadline.is_some_and(|deadline| due >= deadline || Instant::now() >= deadline) {
            return false;
        }
        // Bounded: `due` is before the deadline, or within --requests / --rate of the start.
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        true
    }

    fn with_stats<T>(&self, connection: usize, f: impl FnOnce(&mut Stats) -> T) -> T {
        f(&mut self.stats[connection].lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every connection's counters, merged.
    pub(super) fn total(&self) -> Stats {
        let mut total = Stats::default();
        for stats in &self.stats {
            total.merge(&stats.lock().unwrap_or_else(PoisonError::into_inner));
        }
        total
    }
}

/// One connection's loop: claim, generate or pick a duplicate, deliver, count. Returns what it
/// acknowledged, per sequence number (see `verify.rs`), or nothing without `--verify-jsonl`.
pub(super) fn connection(run: &Run, index: usize) -> Vec<u8> {
    let options = &run.options;
    let auth = options.auth.as_ref().map(|(header, token)| (header.as_str(), token.as_str()));
    let mut client = Client::new(options.url.clone(), auth);
    let mut generator = Generator::new(
        options.seed,
        run.nonce,
        index as u16,
        options.domains.clone(),
        options.unknown_types,
        options.batch_size,
    );
    let mut pool: VecDeque<Arc<Batch>> = VecDeque::with_capacity(DUPLICATE_POOL);
    let mut acknowledged = Vec::new();
    while run.claim() {
        let resend = generator.rng().chance(options.duplicates) && !pool.is_empty();
        let batch = if resend {
            let pick = generator.rng().below(pool.len() as u64) as usize;
            Arc::clone(&pool[pick])
        } else {
            match generator.batch(now_ms()) {
                Some(batch) => Arc::new(batch),
                None => break,
            }
        };
        run.with_stats(index, |s| {
            s.batches += 1;
            s.events += u64::from(batch.events);
            if resend {
                s.duplicate_batches += 1;
                s.duplicates_sent += u64::from(batch.events);
            } else {
                s.events_unknown_type += u64::from(batch.unknown_types);
            }
        });
        let delivered = deliver(run, index, &mut client, &batch.body);
        run.with_stats(index, |s| match delivered {
            true => {
                s.batches_acknowledged += 1;
                s.events_acknowledged += u64::from(batch.events);
            }
            false => s.batches_failed += 1,
        });
        if delivered && !resend {
            if options.verify.is_some() {
                let end = (batch.first_sequence + u64::from(batch.events)) as usize;
                acknowledged.resize(generator.sequences_used() as usize, NOT_ACKNOWLEDGED);
                acknowledged[batch.first_sequence as usize..end].fill(batch.domain);
            }
            if pool.len() == DUPLICATE_POOL {
                pool.pop_front();
            }
            pool.push_back(batch);
        }
    }
    // Sequences used by batches that were never acknowledged are NOT_ACKNOWLEDGED.
    if options.verify.is_some() {
        acknowledged.resize(generator.sequences_used() as usize, NOT_ACKNOWLEDGED);
    }
    acknowledged
}

/// Sends `body` until it is answered 200 or `--retry-for` has passed since the first attempt,
/// counting every attempt; true when acknowledged.
fn deliver(run: &Run, index: usize, client: &mut Client, body: &[u8]) -> bool {
    let give_up = Instant::now() + run.options.retry_for;
    let mut delay = FIRST_RETRY_DELAY;
    for attempt in 0u64.. {
        let sent = Instant::now();
        let result = client.post(body, run.options.timeout);
        let latency = sent.elapsed();
        let acknowledged = run.with_stats(index, |s| {
            s.requests += 1;
            s.retries += u64::from(attempt > 0);
            count_attempt(s, &result, latency)
        });
        if acknowledged {
            return true;
        }
        // Bounded: each turn waits `delay` (≥ 100 ms) and stops once `give_up` would pass.
        if Instant::now() + delay > give_up {
            return false;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
    unreachable!("the loop returns")
}

/// Counts one attempt's outcome, latency and (for a 200) the receiver's answer; true on 200.
fn count_attempt(s: &mut Stats, result: &Result<client::Response, ClientError>, latency: Duration) -> bool {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            s.count_outcome(match error {
                ClientError::Timeout => Outcome::Timeout,
                ClientError::BadResponse(_) => Outcome::BadResponse,
                _ => Outcome::NetworkError,
            });
            return false;
        }
    };
    s.count_outcome(Outcome::Status(response.status));
    s.latency.record(latency);
    if response.status != 200 {
        return false;
    }
    match answer(&response.body) {
        Some((accepted, duplicates, quarantined)) => {
            s.accepted += accepted;
            s.duplicates_reported += duplicates;
            s.quarantined += quarantined;
        }
        None => s.unreadable_answers += 1,
    }
    true
}

/// Reads the receiver's `{"accepted":A,"duplicates":D,"quarantined":Q}` (any key order, any
/// whitespace); `None` when a field is missing or not a whole number.
fn answer(body: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    let field = |name: &str| -> Option<u64> {
        let after = &text[text.find(&format!("\"{name}\""))? + name.len() + 2..];
        let value = after.trim_start().strip_prefix(':')?.trim_start();
        let digits = value.bytes().take_while(u8::is_ascii_digit).count();
        value[..digits].parse().ok()
    };
    Some((field("accepted")?, field("duplicates")?, field("quarantined")?))
}

/// Prints a progress line every `every` until `finished` is closed (bounded by the run's end).
pub(super) fn report_progress(run: &Run, every: Duration, finished: &mpsc::Receiver<()>) {
    let mut last_requests = 0;
    let mut last = Instant::now();
    while let Err(mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(every) {
        let total = run.total();
        let interval = last.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "simulate: {:.1} s, requests {} ({:.0}/s), acknowledged {}, retries {}, failed {}, events acknowledged {}",
            run.start.elapsed().as_secs_f64(),
            total.requests,
            (total.requests - last_requests) as f64 / interval,
            total.batches_acknowledged,
            total.retries,
            total.batches_failed,
            total.events_acknowledged,
        );
        last_requests = total.requests;
        last = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(answer(br#"{"accepted":10,"duplicates":0,"quarantined":2}"#), Some((10, 0, 2)));
        assert_eq!(answer(br#"{ "quarantined" : 1 , "duplicates": 3, "accepted": 4 }"#), Some((4, 3, 1)));
        assert_eq!(answer(br#"{"accepted":10,"duplicates":0}"#), None);
        assert_eq!(answer(b"ok"), None);
    }
}
