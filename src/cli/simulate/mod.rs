//! `egnyte-receiver simulate --url URL [OPTIONS]`: send Egnyte-shaped traffic to a receiver and
//! report what came back. It is the load generator of the project's end-to-end benchmark
//! (`benches/e2e.rs`), next to `wrk`.
//!
//! It behaves like Egnyte: each of `--connections` threads owns one keep-alive connection and
//! POSTs JSON arrays of realistic events (`events.rs`); only a 200 acknowledges a batch, and
//! anything else (another status, a network error, a timeout) is retried on the same batch
//! with delays that start at [`FIRST_RETRY_DELAY`] and double up to [`MAX_RETRY_DELAY`]
//! (Egnyte's delays grow "up to an hour"; these are compressed so a test or bench can watch
//! them) until `--retry-for` has passed since the first attempt, when the batch counts as
//! failed. A share of requests (`--duplicates`) re-sends an earlier acknowledged batch
//! verbatim, Egnyte's at-least-once redelivery, and the receiver must report its events as
//! duplicates.
//!
//! How a run ends (bounded): no new batch starts after `--duration` or once `--requests`
//! batches were started, whichever comes first; a batch already being retried goes on for at
//! most `--retry-for` (each attempt at most `--timeout`). So a run lasts at most duration +
//! retry-for + timeout, then `--verify-jsonl` adds at most `--verify-timeout`.
//!
//! Output: a progress line on stderr every `--progress` seconds, the summary on stdout (see
//! [`summary`] for its stable line format). Exit status 0, or 1 when a batch failed for good or
//! verification failed, or 2 ([`super::EXIT_USAGE`]) for a command line that cannot run.

mod client;
mod events;
mod stats;
mod verify;

use egnyte_receiver::time::now_ms;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use client::{Client, ClientError, Url};
use events::{Batch, BatchSize, Domain, Generator};
use stats::{Outcome, Stats};
use verify::{Acknowledged, Verdict, NOT_ACKNOWLEDGED};

use super::Command;

/// First pause before a retry; each later one doubles, up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between two attempts of one batch.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Most connections (each is a thread); more is refused as a usage error.
const MAX_CONNECTIONS: usize = 4096;
/// Most events per batch: the receiver's parser refuses larger arrays.
const MAX_BATCH_EVENTS: u32 = egnyte_receiver::parse::MAX_EVENTS as u32;
/// Most domains: verification keeps a domain index per event in one byte (255 = not acknowledged).
const MAX_DOMAINS: usize = NOT_ACKNOWLEDGED as usize;
/// Acknowledged batches each connection keeps to re-send as duplicates (the most recent ones:
/// old enough to be deduplicated, recent enough to be inside any receiver's dedup window).
const DUPLICATE_POOL: usize = 64;
/// Exit status when a batch failed for good or verification failed.
const EXIT_FAILED: u8 = 1;

/// Every option: (name, value placeholder, default shown in help, description).
const OPTIONS: [(&str, &str, &str, &str); 17] = [
    (
        "url",
        "URL",
        "required",
        "http://HOST[:PORT]/PATH of the receiver (https is not supported: use the plain-HTTP side)",
    ),
    ("connections", "N", "4", "keep-alive connections, one thread each, each with one request in flight"),
    ("batch-size", "N|MIN-MAX", "10", "events per request (a range draws each size uniformly)"),
    ("rate", "R", "as fast as possible", "new batches per second over all connections (retries come on top)"),
    ("duration", "SECS", "10 (none with --requests)", "start no new batch after this long"),
    ("requests", "N", "no limit", "start no new batch after this many (first attempts, duplicates included)"),
    ("duplicates", "FRACTION", "0.1", "share of requests that re-send an acknowledged batch verbatim"),
    ("unknown-types", "FRACTION", "0.02", "share of events with an undocumented type (storage:add_file, …)"),
    ("auth-token", "TOKEN", "none", "send this value in --auth-header with every request"),
    ("auth-token-file", "FILE", "none", "read the token from FILE (trailing newline removed)"),
    (
        "auth-header",
        "NAME",
        "Authorization",
        "the header that carries the token (Egnyte's docs say Authentication)",
    ),
    ("domain", "D[,D…]", "acme", "the Egnyte domain(s) of the events; each batch has one"),
    (
        "seed",
        "N",
        "from the clock (printed)",
        "fixes types, sizes, paths and duplicates; ids stay unique per run",
    ),
    ("timeout", "SECS", "10", "time for one request, connect to last byte of the answer"),
    ("retry-for", "SECS", "60", "how long a batch is retried before it counts as failed"),
    ("verify-jsonl", "FILE", "none", "afterwards, check every acknowledged event is in FILE exactly once"),
    ("verify-timeout", "SECS", "30", "how long to wait for delivery to FILE (it runs behind the 200)"),
];

/// `simulate --help`: the text above, then every option from [`OPTIONS`] (so none is missed).
pub fn help() -> String {
    let mut text = String::from(
        "Send Egnyte-shaped webhook traffic to a receiver and report what came back.\n\n\
         Usage: egnyte-receiver simulate --url URL [OPTIONS]\n\n\
         Each connection POSTs JSON arrays of realistic events of all 34 types (and a share of\n\
         unknown ones). Like Egnyte, only a 200 acknowledges a batch: any other status, a network\n\
         error or a timeout is retried with delays from 100 ms doubling up to 5 s (Egnyte's grow\n\
         to an hour; compressed here) for --retry-for, then the batch counts as failed. No new\n\
         batch starts after --duration or --requests; retries in flight go on for at most\n\
         --retry-for.\n\nOptions:\n",
    );
    for (name, value, default, meaning) in OPTIONS {
        let _ = writeln!(text, "  --{name} {value}\n      {meaning} [default: {default}]");
    }
    text.push_str(
        "  --progress SECS\n      progress line on stderr every SECS, 0 for none [default: 1]\n\
         \x20 -h, --help\n      print this help\n\n\
         Output: a progress line on stderr while running; the summary on stdout, one `name: key value, …`\n\
         line per topic (run, batches, requests, events, answers, duplicates, status, latency, verify,\n\
         result). Exit status: 0 every batch acknowledged (and verified); 1 some batch failed after\n\
         --retry-for, or verification found a missing or duplicated event; 2 usage error.\n",
    );
    text
}

/// The raw option values, checked by [`Options::from_args`] when the command runs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    values: Vec<(&'static str, OsString)>,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut values = Vec::new();
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(help())),
                Long("progress") => values.push(("progress", parser.value()?)),
                Long(name) => match OPTIONS.iter().find(|(option, ..)| *option == name) {
                    Some(&(option, ..)) => values.push((option, parser.value()?)),
                    None => return Err(arg.unexpected()),
                },
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Command::Simulate(Args { values }))
    }

    /// The last value given for `name`, as text.
    fn text(&self, name: &str) -> Result<Option<String>, String> {
        let value = self.values.iter().rev().find(|(option, _)| *option == name).map(|(_, v)| v.clone());
        value.map(|v| v.into_string().map_err(|_| format!("--{name}: not valid UTF-8"))).transpose()
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.text(name)? {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| format!("--{name}: {v:?} is not a valid number")),
        }
    }

    fn seconds(&self, name: &str, default: f64) -> Result<Duration, String> {
        let seconds = self.number(name, default)?;
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("--{name}: {seconds} is not a duration in seconds"))
    }

    fn fraction(&self, name: &str, default: f64) -> Result<f64, String> {
        let value = self.number(name, default)?;
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("--{name}: {value} is not a fraction between 0.0 and 1.0"));
        }
        Ok(value)
    }
}

/// The checked options of one run.
#[derive(Debug, Clone)]
struct Options {
    url: Url,
    connections: usize,
    batch_size: BatchSize,
    rate: Option<f64>,
    duration: Option<Duration>,
    requests: Option<u64>,
    duplicates: f64,
    unknown_types: f64,
    /// (header name, token)
    auth: Option<(String, String)>,
    domains: Vec<Domain>,
    seed: u64,
    timeout: Duration,
    retry_for: Duration,
    verify: Option<PathBuf>,
    verify_timeout: Duration,
    progress: Option<Duration>,
}

impl Options {
    fn from_args(args: &Args) -> Result<Options, String> {
        let url = Url::parse(
            &args
                .text("url")?
                .ok_or("--url is required (for example --url http://127.0.0.1:8080/egnyte/webhook)")?,
        )?;
        let connections = args.number("connections", 4usize)?;
        if !(1..=MAX_CONNECTIONS).contains(&connections) {
            return Err(format!("--connections: between 1 and {MAX_CONNECTIONS}"));
        }
        let batch_size = batch_size(&args.text("batch-size")?.unwrap_or_else(|| "10".into()))?;
        let rate = args.text("rate")?.map(|_| args.number("rate", 0.0)).transpose()?;
        if rate.is_some_and(|r: f64| !(r > 0.0 && r.is_finite())) {
            return Err("--rate: a positive number of batches per second".into());
        }
        let requests = args.text("requests")?.map(|_| args.number("requests", 0u64)).transpose()?;
        let duration = match (args.text("duration")?, requests) {
            (None, Some(_)) => None,
            _ => Some(args.seconds("duration", 10.0)?),
        };
        let domains: Vec<Domain> = args
            .text("domain")?
            .unwrap_or_else(|| "acme".into())
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(Domain::new)
            .collect();
        if domains.is_empty() || domains.len() > MAX_DOMAINS {
            return Err(format!("--domain: between 1 and {MAX_DOMAINS} comma-separated names"));
        }
        let progress = args.seconds("progress", 1.0)?;
        Ok(Options {
            url,
            connections,
            batch_size,
            rate,
            duration,
            requests,
            duplicates: args.fraction("duplicates", 0.1)?,
            unknown_types: args.fraction("unknown-types", 0.02)?,
            auth: auth(args)?,
            domains,
            seed: args.number("seed", clock_seed())?,
            timeout: args.seconds("timeout", 10.0)?.max(Duration::from_millis(1)),
            retry_for: args.seconds("retry-for", 60.0)?,
            verify: args.text("verify-jsonl")?.map(PathBuf::from),
            verify_timeout: args.seconds("verify-timeout", 30.0)?,
            progress: (!progress.is_zero()).then_some(progress),
        })
    }
}

/// `N` or `MIN-MAX`.
fn batch_size(text: &str) -> Result<BatchSize, String> {
    let bad =
        || format!("--batch-size: {text:?} is not N or MIN-MAX with 1 ≤ MIN ≤ MAX ≤ {MAX_BATCH_EVENTS}");
    let (min, max) = text.split_once('-').unwrap_or((text, text));
    let min: u32 = min.trim().parse().map_err(|_| bad())?;
    let max: u32 = max.trim().parse().map_err(|_| bad())?;
    if min == 0 || min > max || max > MAX_BATCH_EVENTS {
        return Err(bad());
    }
    Ok(BatchSize { min, max })
}

/// The token header, from `--auth-token` or `--auth-token-file`, and `--auth-header`.
fn auth(args: &Args) -> Result<Option<(String, String)>, String> {
    let header = args.text("auth-header")?.unwrap_or_else(|| "Authorization".into());
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if header.is_empty() || !header.bytes().all(tchar) {
        return Err(format!("--auth-header: {header:?} is not a valid header name"));
    }
    let token = match (args.text("auth-token")?, args.text("auth-token-file")?) {
        (Some(_), Some(_)) => return Err("give --auth-token or --auth-token-file, not both".into()),
        (Some(token), None) => token,
        (None, Some(file)) => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("--auth-token-file {file}: {e}"))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        }
        (None, None) => return Ok(None),
    };
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_control()) {
        return Err(
            "the auth token is empty or holds control characters (it goes verbatim into a header)".into()
        );
    }
    Ok(Some((header, token)))
}

fn clock_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Runs the simulation; the return value is the exit status.
pub fn run(args: &Args) -> u8 {
    let options = match Options::from_args(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("egnyte-receiver simulate: {message}\nTry 'egnyte-receiver simulate --help' for more information.");
            return super::EXIT_USAGE;
        }
    };
    // The nonce differs per run even with a fixed --seed: ids never collide across runs.
    let nonce =
        events::Rng::new(clock_seed() ^ u64::from(std::process::id()).rotate_left(32)).next_u64() as u32;
    let run = Arc::new(Run::new(options, nonce));
    let (done, finished) = mpsc::channel::<()>();
    let progress = run.options.progress.map(|every| {
        let run = Arc::clone(&run);
        std::thread::spawn(move || report_progress(&run, every, &finished))
    });
    let workers: Vec<_> = (0..run.options.connections)
        .map(|index| {
            let run = Arc::clone(&run);
            std::thread::spawn(move || connection(&run, index))
        })
        .collect();
    let acknowledged: Vec<Vec<u8>> = workers
        .into_iter()
        .map(|w| w.join().unwrap_or_else(|_| panic!("a connection thread panicked")))
        .collect();
    let elapsed = run.start.elapsed();
    drop(done);
    if let Some(progress) = progress {
        let _ = progress.join();
    }
    let total = run.total();
    let verdict = match &run.options.verify {
        None => None,
        Some(path) => {
            let acknowledged = Acknowledged {
                nonce,
                domains: run.options.domains.iter().map(|d| d.name.clone()).collect(),
                connections: acknowledged,
            };
            match verify::verify(path, &acknowledged, run.options.verify_timeout) {
                Ok(verdict) => Some(verdict),
                Err(error) => {
                    print!("{}", summary(&run.options, &total, elapsed, None));
                    eprintln!("egnyte-receiver simulate: {error}");
                    return EXIT_FAILED;
                }
            }
        }
    };
    print!("{}", summary(&run.options, &total, elapsed, verdict.as_ref()));
    if total.batches_failed > 0 || verdict.is_some_and(|v| !v.passed()) {
        EXIT_FAILED
    } else {
        0
    }
}

/// What every connection thread shares.
struct Run {
    options: Options,
    nonce: u32,
    start: Instant,
    /// No new batch starts at or after this instant.
    deadline: Option<Instant>,
    /// Batches claimed so far (the claim decides `--requests` and the `--rate` schedule).
    claimed: AtomicU64,
    /// Each connection's counters (its own lock: only the progress line reads it besides).
    stats: Vec<Mutex<Stats>>,
}

impl Run {
    fn new(options: Options, nonce: u32) -> Run {
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

    fn total(&self) -> Stats {
        let mut total = Stats::default();
        for stats in &self.stats {
            total.merge(&stats.lock().unwrap_or_else(PoisonError::into_inner));
        }
        total
    }
}

/// One connection's loop: claim, generate or pick a duplicate, deliver, count. Returns what it
/// acknowledged, per sequence number (see `verify.rs`), or nothing without `--verify-jsonl`.
fn connection(run: &Run, index: usize) -> Vec<u8> {
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
fn report_progress(run: &Run, every: Duration, finished: &mpsc::Receiver<()>) {
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

/// The summary: one line per topic, `topic: key value, key value, …`, keys fixed, numbers
/// plain (latencies in ms with 3 decimals), so scripts and tests can read it:
///
/// ```text
/// run: url http://127.0.0.1:8080/egnyte/webhook, seconds 10.012, connections 4, seed 42
/// batches: sent 1000, acknowledged 1000, failed 0, duplicate 100
/// requests: sent 1003, retries 3, per-second 100.2
/// events: sent 10000, acknowledged 10000, unknown-type 180, per-second 998.8
/// answers: accepted 9000, duplicates 1000, quarantined 0, unreadable 0
/// duplicates: sent 1000, reported 1000
/// status: 200 1000, 503 3
/// latency: p50 0.412 ms, p90 0.630 ms, p99 2.100 ms, max 9.800 ms
/// verify: acknowledged 9000, found 9000, missing 0, duplicated 0, unacknowledged 0, unknown 0, unreadable 0
/// result: ok
/// ```
///
/// `verify:` appears only with `--verify-jsonl`; `result:` is `ok` or `failed` followed by why.
fn summary(options: &Options, s: &Stats, elapsed: Duration, verdict: Option<&Verdict>) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run: url {}, seconds {seconds:.3}, connections {}, seed {}",
        options.url, options.connections, options.seed
    );
    let _ = writeln!(
        out,
        "batches: sent {}, acknowledged {}, failed {}, duplicate {}",
        s.batches, s.batches_acknowledged, s.batches_failed, s.duplicate_batches
    );
    let _ = writeln!(
        out,
        "requests: sent {}, retries {}, per-second {:.1}",
        s.requests,
        s.retries,
        s.requests as f64 / seconds
    );
    let _ = writeln!(
        out,
        "events: sent {}, acknowledged {}, unknown-type {}, per-second {:.1}",
        s.events,
        s.events_acknowledged,
        s.events_unknown_type,
        s.events_acknowledged as f64 / seconds
    );
    let _ = writeln!(
        out,
        "answers: accepted {}, duplicates {}, quarantined {}, unreadable {}",
        s.accepted, s.duplicates_reported, s.quarantined, s.unreadable_answers
    );
    let _ = writeln!(out, "duplicates: sent {}, reported {}", s.duplicates_sent, s.duplicates_reported);
    let statuses: Vec<String> = s.outcomes.iter().map(|(o, n)| format!("{} {n}", o.label())).collect();
    let _ =
        writeln!(out, "status: {}", if statuses.is_empty() { "none".into() } else { statuses.join(", ") });
    let _ = writeln!(
        out,
        "latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(s.latency.quantile(0.5)),
        ms(s.latency.quantile(0.9)),
        ms(s.latency.quantile(0.99)),
        ms(s.latency.max_latency())
    );
    if let Some(v) = verdict {
        let _ = writeln!(
            out,
            "verify: acknowledged {}, found {}, missing {}, duplicated {}, unacknowledged {}, unknown {}, unreadable {}",
            v.acknowledged, v.found, v.missing, v.duplicated, v.unacknowledged, v.unknown, v.unreadable
        );
    }
    let mut why = Vec::new();
    if s.batches_failed > 0 {
        why.push(format!("{} batches failed after --retry-for", s.batches_failed));
    }
    if verdict.is_some_and(|v| !v.passed()) {
        why.push("verification found missing or duplicated events".to_owned());
    }
    let _ = writeln!(
        out,
        "result: {}",
        if why.is_empty() { "ok".to_owned() } else { format!("failed: {}", why.join("; ")) }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Result<Options, String> {
        let mut parser = lexopt::Parser::from_args(args.iter().map(OsString::from));
        match Args::parse(&mut parser).map_err(|e| e.to_string())? {
            Command::Simulate(args) => Options::from_args(&args),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_checks() {
        let o = options(&["--url", "http://127.0.0.1:9/h"]).unwrap();
        assert_eq!(
            (o.connections, o.batch_size, o.rate, o.duration),
            (4, BatchSize { min: 10, max: 10 }, None, Some(Duration::from_secs(10)))
        );
        assert_eq!((o.duplicates, o.unknown_types, o.auth.is_none()), (0.1, 0.02, true));
        assert_eq!(
            (o.timeout, o.retry_for, o.progress),
            (Duration::from_secs(10), Duration::from_secs(60), Some(Duration::from_secs(1)))
        );
        let o = options(&[
            "--url",
            "http://127.0.0.1:9/h",
            "--requests",
            "5",
            "--batch-size",
            "1-7",
            "--auth-token",
            "T",
            "--domain",
            "a, b",
        ])
        .unwrap();
        assert_eq!((o.requests, o.duration, o.batch_size), (Some(5), None, BatchSize { min: 1, max: 7 }));
        assert_eq!(o.auth, Some(("Authorization".into(), "T".into())));
        assert_eq!(o.domains, vec![Domain::new("a"), Domain::new("b")]);
        for (args, message) in [
            (&["--connections", "2"][..], "--url is required"),
            (&["--url", "https://127.0.0.1/h"], "https is not supported"),
            (&["--url", "http://127.0.0.1/h", "--duplicates", "1.5"], "not a fraction"),
            (&["--url", "http://127.0.0.1/h", "--unknown-types", "x"], "not a valid number"),
            (&["--url", "http://127.0.0.1/h", "--batch-size", "0"], "--batch-size"),
            (&["--url", "http://127.0.0.1/h", "--batch-size", "5-2"], "--batch-size"),
            (&["--url", "http://127.0.0.1/h", "--connections", "0"], "--connections"),
            (&["--url", "http://127.0.0.1/h", "--rate", "0"], "--rate"),
            (&["--url", "http://127.0.0.1/h", "--auth-header", "a b", "--auth-token", "t"], "--auth-header"),
            (&["--url", "http://127.0.0.1/h", "--auth-token", "a\nb"], "control characters"),
            (&["--url", "http://127.0.0.1/h", "--duration", "-1"], "--duration"),
        ] {
            let error = options(args).expect_err(&format!("{args:?}"));
            assert!(error.contains(message), "{args:?}: {error}");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(answer(br#"{"accepted":10,"duplicates":0,"quarantined":2}"#), Some((10, 0, 2)));
        assert_eq!(answer(br#"{ "quarantined" : 1 , "duplicates": 3, "accepted": 4 }"#), Some((4, 3, 1)));
        assert_eq!(answer(br#"{"accepted":10,"duplicates":0}"#), None);
        assert_eq!(answer(b"ok"), None);
    }

    #[test]
    fn the_summary_has_its_fixed_lines() {
        let o = options(&["--url", "http://127.0.0.1:9/h", "--seed", "3"]).unwrap();
        let mut s = Stats { batches_failed: 1, ..Stats::default() };
        s.count_outcome(Outcome::Status(401));
        s.count_outcome(Outcome::NetworkError);
        let text = summary(&o, &s, Duration::from_secs(2), None);
        let topics: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            topics,
            ["run", "batches", "requests", "events", "answers", "duplicates", "status", "latency", "result"]
        );
        assert!(text.contains("status: 401 1, network-error 1\n"), "{text}");
        assert!(text.contains("result: failed: 1 batches failed after --retry-for\n"), "{text}");
    }
}
