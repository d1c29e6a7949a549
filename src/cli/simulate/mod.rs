//! `egnyte-receiver simulate --url URL [OPTIONS]`: send Egnyte-shaped traffic to a receiver and
//! report what came back. It is the load generator of the project's end-to-end benchmark
//! (`benches/e2e.rs`), next to `wrk`.
//!
//! It behaves like Egnyte: each of `--connections` threads owns one keep-alive connection and
//! POSTs JSON arrays of realistic events (`events.rs`); only a 200 acknowledges a batch, and
//! anything else (another status, a network error, a timeout) is retried on the same batch
//! with delays that start at [`FIRST_RETRY_DELAY`](run::FIRST_RETRY_DELAY) and double up to
//! [`MAX_RETRY_DELAY`](run::MAX_RETRY_DELAY) (Egnyte's delays grow "up to an hour"; these are
//! compressed so a test or bench can watch them) until `--retry-for` has passed since the first
//! attempt, when the batch counts as failed. A share of requests (`--duplicates`) re-sends an
//! earlier acknowledged batch verbatim, Egnyte's at-least-once redelivery, and the receiver must
//! report its events as duplicates.
//!
//! How a run ends (bounded): no new batch starts after `--duration` or once `--requests`
//! batches were started, whichever comes first; a batch already being retried goes on for at
//! most `--retry-for` (each attempt at most `--timeout`). So a run lasts at most duration +
//! retry-for + timeout, then `--verify-jsonl` adds at most `--verify-timeout`.
//!
//! Output: a progress line on stderr every `--progress` seconds, the summary on stdout (see
//! [`summary`] for its stable line format). Exit status 0, or 1 when a batch failed for good or
//! verification failed, or 2 ([`super::EXIT_USAGE`]) for a command line that cannot run.
//!
//! The parts: `arguments.rs` (the options, their check, the help text), `run.rs` (the connection
//! threads, delivery with retries, the progress line), `events.rs` (the generated batches),
//! `client.rs` (one keep-alive HTTP/1.1 connection), `stats.rs` (the counters), `verify.rs`
//! (`--verify-jsonl`) and `summary.rs` (the report on stdout); here, the command's entry point,
//! which wires them together.

mod arguments;
mod client;
mod events;
mod run;
mod stats;
mod summary;
mod verify;

use std::sync::mpsc;
use std::sync::Arc;

pub(super) use arguments::Args;
use arguments::{clock_seed, Options};
use run::{connection, report_progress, Run};
use verify::Acknowledged;

/// Exit status when a batch failed for good or verification failed.
const EXIT_FAILED: u8 = 1;

/// Runs the simulation; the return value is the exit status.
pub(super) fn run(args: &Args) -> u8 {
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
                    print!("{}", summary::render(&run.options, &total, elapsed, None));
                    eprintln!("egnyte-receiver simulate: {error}");
                    return EXIT_FAILED;
                }
            }
        }
    };
    print!("{}", summary::render(&run.options, &total, elapsed, verdict.as_ref()));
    if total.batches_failed > 0 || verdict.is_some_and(|v| !v.passed()) {
        EXIT_FAILED
    } else {
        0
    }
}
