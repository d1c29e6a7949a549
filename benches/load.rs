//! HTTP load benchmark: our HTTP layer with nothing behind it (the bare loop) and the real
//! receiver, in both durability modes, against the HTTP ceiling of this machine (may_minihttp)
//! and against adnanh/webhook, in the same run under the same load; then the fsync receiver's
//! latency at a steady 1,000 requests/s. Run with `cargo bench --bench load` (the receiver
//! binary is then built with the bench profile: release + line tables); `BENCH_QUICK=1` for a
//! smoke run (1 round of 2 s per target, no warm-up, fixed-rate runs of 3 s).
//!
//! The receiver serves HTTP with its own layer (`src/http/`: one `may` coroutine per connection,
//! heads parsed with httparse, framing and limits checked there), which replaced may_minihttp;
//! may_minihttp stays (a dev-dependency) as the ceiling: the fastest HTTP loop on `may` we know
//! of, doing the least a server can. The bare loop measures what our layer costs against it,
//! the receivers what the service behind it (gate, parse, dedup, journal) adds.
//!
//! ## What runs
//! * **Ceiling** (`load/ceiling.rs`): a bare may_minihttp server in this process that reads each
//!   body fully and answers 200 with the receiver's own 10-event answer, doing nothing else.
//!   Same `may` settings as the receiver: workers = `--io-threads`, the receiver's coroutine
//!   stack size, may's default worker pinning.
//! * **Bare loop** (`load/bare.rs`): our layer (`egnyte_receiver::http::Server`) in this
//!   process, with the receiver's default limits and a service that admits every request,
//!   gets its whole body from the layer and answers 200 with the ceiling's body and
//!   `Content-Type`: no routing, gate, parsing or journal. Beside the ceiling, on the same `may`
//!   scheduler: `may`'s settings are process-wide and set once (`bare::configure_may`, before
//!   anything touches `may`: the scheduler reads the worker count when it starts); each server
//!   listens on its own loopback port, both bound before the receivers' ports are chosen, and
//!   only one of the two is loaded at a time (the other's accept coroutine sleeps). Both are
//!   checked with one POST of the benchmark's request before any load (200, the expected body).
//! * **Receiver `--durability none`** and **receiver `--durability fsync`**: the real binary
//!   (`CARGO_BIN_EXE_egnyte-receiver`), two child processes started once and kept for the whole
//!   run, `serve --listen 127.0.0.1:PORT --data-dir TMP/MODE/data --io-threads N --durability
//!   MODE`, each on a fresh temporary directory, **with a token** (`EGNYTE_RECEIVER_AUTH_TOKEN`,
//!   sent by the generator as the `Authorization` value), every other option at its default:
//!   dedup capacity (2^20 ids), `--max-journal-bytes` (1 GiB), `--journal-segment-bytes`
//!   (64 MiB), `--workers` (4), the sink (`jsonl:DATA_DIR/events.jsonl`). That is the production
//!   configuration, so the gate's token check, the journal and the delivery to the sink are all
//!   in the measured path. fsync: a 200 means the batch's records were written to the journal
//!   and fdatasynced; none: a 200 means they were queued for the journal writer. Either way the
//!   events reach `events.jsonl` afterwards, through the dispatcher and the workers. Waited for
//!   on `/healthz`; killed by PID at the end (also on error).
//! * **Baseline `--durability none`** and **baseline `--durability fsync`** (only with
//!   `BENCH_BASELINE_BIN=PATH`): the same two receivers started the same way (options, token,
//!   io threads, fresh data directories) from another egnyte-receiver binary, typically one built
//!   from the code before a change, so that the change's cost is a ratio measured in the same run
//!   under the same load and machine state rather than against figures from another day. They
//!   are interleaved in every round like the others, checked like the receivers, and judged on
//!   nothing; the report adds, per mode, the median of the round-by-round ratios current/baseline
//!   (overall, near, far) with both sides' server CPU per request and p99.
//! * **adnanh/webhook** (`load/webhook.rs`, Debian package `webhook`): one hook on the same path
//!   answering 200 with the same JSON body, no command per request (see that file for how and
//!   why; `BENCH_WEBHOOK_COMMAND=/bin/true` runs one). webhook writes its answer before, and
//!   independently of, whatever its hook runs: it stores nothing and promises nothing, so it is
//!   the speed reference of a receiver that does nothing durable; the receiver's target is to be
//!   several times faster *while* storing every event. When `webhook` is not installed
//!   the bench says so (`apt-get install -y webhook`) and skips that target. One POST of the
//!   benchmark's own request must be answered 200 with the expected body before any load.
//! * **Load**: every request POSTs `tests/fixtures/batches/compact-10.json` (10 file events with
//!   the fields Egnyte always sends, ≈2.5 KB, the size of Egnyte's usual 10-event batches;
//!   `BENCH_FIXTURE=tests/fixtures/batches/batch-10.json` takes the richer 3.6 KB batch the tests
//!   and the parse bench use, heavier for the receiver than for the ceiling) with every `eventId`
//!   replaced by a UUID-shaped id unique across the run
//!   (`NONCE-INVOCATION-THREAD-8INDEX-COUNTER`, same length every time, so every body has the
//!   same size), over 64 keep-alive connections, no pipelining. Every target gets the same bytes,
//!   `Authorization` header included (webhook ignores it).
//! * **Rounds**: a warm-up run per target (3 s, unscored), then 5 rounds of 6 s per target,
//!   interleaved: round r starts at target r mod n and odd rounds run in reverse (C B N F W,
//!   C W F N B, N F W C B, …; the baseline's n f come after F), so that drift and a neighbour's
//!   burst hit all targets alike. The
//!   table gives the **median** over the rounds of requests/s (200 answers only), p50 and p99
//!   latency and CPU per request, the median of the round-by-round ratios to the ceiling (a
//!   target's run over the ceiling's run of the same round: pairs seconds apart), the per-round
//!   ratios; each run is also tagged with the state of CPU 0 and CPU 1 around it
//!   (`support/cores.rs`: on the project's VM the two vCPUs are sometimes on cores sharing a
//!   cache, "near", sometimes not, "far", and the receivers hand data between threads, so they
//!   lose more than the ceiling when the cores are apart), and the ratios are given per state as
//!   well; non-200 answers and socket errors are summed over every run (they must be 0: any
//!   makes the bench exit 1, keeping the receivers' data and logs). Then one verdict line per
//!   target, judged on the rounds in the near state (the far state's ratio and all rounds'
//!   are printed beside it): bare loop ≥ 1.0×, receiver none ≥ 0.60× and fsync ≥ 0.40× the
//!   ceiling's requests/s; the receivers' peak RSS ≤ 64 MiB; no non-200 answer; and the
//!   receivers' multiples of webhook's requests/s. `BENCH_TIME_LIMIT_SECS` (default 330, quick
//!   90) bounds the whole run: rounds that would not fit are skipped and the report says so;
//!   each `wrk` (and `perf`) process is killed if it overstays its duration by 20 s, and the
//!   wait after a receiver run for its deliveries is at most 30 s.
//! * **Fixed rate** (after the rounds): the fsync receiver, then the none one for comparison
//!   (what of fsync's latency is the disk's), at a steady 1,000 requests/s for 10 s each
//!   (quick: 3 s), from the built-in generator on a schedule (`PacedBuiltin` in
//!   `load/builtin.rs`: 16 keep-alive connections, request k of connection i due at
//!   (16k + i) / 1000 s, wrk2-style latency from the due time when a connection's previous answer
//!   held the send back). Its own section of the report: answered/s, p50, p90, p99, p99.9, max,
//!   held sends, fdatasync/s, the core state around each run, and the verdict fsync p99 ≤ 1 ms.
//!   The same bodies (unique eventIds, invocation numbers of their own), the same delivery check
//!   after each run.
//!
//! ## Peak RSS
//! `VmHWM` of `/proc/PID/status` of each child server (the receivers, webhook), read after all
//! of its scored runs: the most memory it ever had resident, load included. By then each
//! receiver has taken several million unique events, so its dedup table (2^20 ids, 24.5 MiB) is
//! full. The ceiling runs inside this process, so it has no process of its own: before each
//! ceiling run this process's `VmHWM` is reset (`/proc/self/clear_refs` ← 5), read after it, and
//! the table shows the largest reading less this process's RSS before the ceiling started,
//! marked "(Δ)": an upper bound of what the ceiling needs, as the bench's own buffers count too.
//! The bare loop, also in this process, is read the same way over its own runs.
//!
//! ## Generator: `wrk`, else a built-in one
//! On 2 cores the generator shares the CPUs with the server it measures, so every µs it spends
//! per request is taken from the server, and it takes proportionally more from the cheap ceiling
//! than from the receiver: a heavier generator lowers the ceiling more and *flatters* the ratio.
//! `wrk` (C, one epoll loop per thread, `-t 2 -c 64 --latency`, `load/post.lua` building each
//! request from precomputed pieces with a per-thread counter) costs ≈ 8 µs of CPU per request;
//! the built-in generator (`load/builtin.rs`: one std thread and blocking keep-alive socket per
//! connection, a log-linear histogram for p50/p99) costs ≈ 12-15 µs, every request being a
//! thread wake-up, and measured a ceiling 25-40% lower (≈ 90 k vs 130 k requests/s) on this
//! machine. So `wrk` is the default when installed; without it the bench says how to install it
//! (`apt-get install -y wrk`) and falls back to the built-in generator, whose ratios then read
//! high. `wrk` counts statuses above 399 as errors: the receiver answers only 200, 4xx and 5xx,
//! so that is the non-200 count. Latency is closed-loop (time from a request's send to its
//! answer, with 64 requests always outstanding): p50 is mostly queueing behind the other 63, and
//! p99 includes the generator's own threads waiting for a core.
//!
//! ## CPU columns
//! The server's CPU time around each run (the receivers' and webhook's from `/proc/PID/stat`,
//! the ceiling's and the bare loop's as this process's `getrusage`, less the built-in generator's
//! threads when those run here) and
//! the generator's (`wrk` as a waited-for child; the built-in one per thread), per request. Since
//! the generator shares the cores, the server-CPU ratio is the better guide to what a receiver
//! on its own cores could do; the report prints it next to the requests/s ratio.
//!
//! ## Page cache (why `events.jsonl` is punched while it is counted, and the journal is not)
//! A receiver writes every event twice: into a journal segment (`DATA_DIR/journal/*.seg`,
//! record header + payload, ≈ 410 bytes an event here) and, once delivered, into
//! `DATA_DIR/events.jsonl` (≈ 360 bytes): together ≈ 270 MB/s at 35 k requests/s. This machine is a
//! Firecracker VM whose memory is backed lazily and handed back to the host when free (free page
//! reporting), so a page-cache page the guest has not used recently costs a host fault:
//! appending to a growing file measured ≈400 MB/s there against ≈5 GB/s into recycled pages
//! (`dd`, 1 GB). Left to grow, `events.jsonl` made the receiver's CPU per request drift from
//! ≈15 µs to ≈30 µs within a run (measured before the journal) as recently freed memory ran out
//! — a property of the VM, not of the receiver, and not what a long-running instance sees once
//! memory is full of page cache (then new pages are reclaimed, already-backed ones). So during
//! each receiver run a thread of this process (`load/events.rs`) counts the complete lines
//! appended so far every 50 ms and punches the counted blocks out of the file
//! (`fallocate(PUNCH_HOLE)`, 1 MiB per call; the file keeps its size and the receiver keeps
//! appending): the page cache is recycled, memory and disk use stay bounded, and the rounds are
//! stationary. That thread costs a few % of one core during receiver runs only, so it
//! handicaps the receivers slightly; punching larger ranges less often (250 ms) stalled the
//! receiver's appends on the file lock long enough to double its p99. `BENCH_KEEP_EVENTS=1`
//! turns the punching off (lines are still counted): the VM's own behaviour for a growing file.
//!
//! The journal needs no such help and gets none: with the default settings it grows to
//! `--max-journal-bytes` (1 GiB: delivered segments are kept for `--journal-retention`), then
//! its oldest delivered segments go, their files kept as spares that the next segments
//! overwrite, so its disk and page cache stay bounded by the receiver itself, as in service.
//! The bench keeps the default 64 MiB segments. The per-run log below the table shows whether
//! the receivers' CPU per request drifts from round to round (for instance once the journal
//! reaches its budget and starts reusing files); it is where this would show.
//!
//! ## Every acknowledged event is written
//! Delivery to `events.jsonl` runs behind the journal, so after each receiver run the bench
//! waits (at most 30 s) until the lines counted in that receiver's `events.jsonl` match the
//! growth of its `/metrics` `events_accepted_total`, then requires: lines = accepted events ≥
//! 10 × (200 answers), and the surplus ≤ 10 × 64 (`wrk` abandons the requests in flight when its
//! time is up; the receiver still stores them; the built-in generator waits for them, so its
//! bound is 0). `quarantine.jsonl` must stay empty. The totals and the longest wait are printed
//! per receiver; any failure makes the bench exit with status 1, as does any non-200 answer or
//! socket error of any target.
//!
//! ## Where the journal's time goes
//! Each receiver run also records the growth of `journal_groups_total` and `journal_syncs_total`
//! (one write per group; one fdatasync per group with fsync); the report gives groups/s,
//! requests per group and fdatasync/s per mode over its scored runs.
//!
//! ## Settings (environment)
//! `BENCH_QUICK=1`; `BENCH_FIXTURE` (a path under the crate root); `BENCH_ROUNDS` (5);
//! `BENCH_RUN_SECS` (6), `BENCH_WARMUP_SECS` (3, 0 = none);
//! `BENCH_CONNECTIONS` (64); `BENCH_WRK_THREADS` (2); `BENCH_IO_THREADS` (the CPU count, the
//! receiver's own default: `--io-threads` for the receiver and `may` workers for the ceiling
//! and the bare loop); `BENCH_PACED_RATE` (1000 requests/s), `BENCH_PACED_SECS` (10, quick 3;
//! 0 = no fixed-rate run), `BENCH_PACED_CONNECTIONS` (16);
//! `BENCH_GENERATOR=wrk|builtin`; `BENCH_TIME_LIMIT_SECS`; `BENCH_KEEP_EVENTS=1` (see above);
//! `BENCH_KEEP_DATA=1` keeps the temporary directory; `BENCH_BASELINE_BIN=PATH` adds the
//! baseline targets (see above): another egnyte-receiver binary, to measure a change against the
//! code before it (its 2 more targets make a round 7/5 as long, ≈ 4 min in all with the
//! defaults and no fixed-rate run, which the default limit still holds; more rounds or longer
//! runs need a higher `BENCH_TIME_LIMIT_SECS`); `BENCH_WEBHOOK_COMMAND=PROGRAM` gives
//! webhook's hook a command (see `load/webhook.rs`); `BENCH_PERF_SECS=N` adds, after the
//! scored rounds, one unscored run per target with `perf record -F 999 -g` attached for N
//! seconds, and prints the top entries by self and by inclusive time (data kept under
//! `target/tmp/`; `apt-get install -y linux-perf` if `perf` is missing).

#[allow(dead_code)]
mod support;

use support::cores::{self, Cores};
use support::{median, quantile};

#[path = "load/bare.rs"]
mod bare;
#[path = "load/builtin.rs"]
mod builtin;
#[path = "load/ceiling.rs"]
mod ceiling;
#[path = "load/events.rs"]
mod events;
#[path = "load/receiver.rs"]
mod receiver;
#[path = "load/webhook.rs"]
mod webhook;
#[path = "load/wrk.rs"]
mod wrk;

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use egnyte_receiver::test_dir::{free_port, TempDir};
use egnyte_receiver::Parser;

use builtin::{Batch, Builtin, PacedBuiltin, PacedResult, RequestBytes};
use events::Tail;
use receiver::Receiver;
use webhook::Webhook;
use wrk::Wrk;

/// The fixture every request carries (eventIds made unique), unless `BENCH_FIXTURE` names another.
const FIXTURE: &str = "tests/fixtures/batches/compact-10.json";
/// The receiver's default webhook path.
const WEBHOOK_PATH: &str = "/egnyte/webhook";
/// The targets, judged on the rounds in the near core state: the bare loop at least this fraction
/// of the ceiling's requests/s,
const BARE_TARGET_RATIO: f64 = 1.0;
/// `--durability none` at least this one,
const NONE_TARGET_RATIO: f64 = 0.60;
/// `--durability fsync` at least this one,
const FSYNC_TARGET_RATIO: f64 = 0.40;
/// and a receiver's peak RSS under load at most this (KiB), with the default dedup capacity.
const RSS_LIMIT_KIB: u64 = 64 << 10;
/// The receiver's counter of events taken.
const ACCEPTED: &str = "egnyte_receiver_events_accepted_total";
/// Group commits of the journal (one write each).
const JOURNAL_GROUPS: &str = "egnyte_receiver_journal_groups_total";
/// Successful journal `fdatasync` calls.
const JOURNAL_SYNCS: &str = "egnyte_receiver_journal_syncs_total";
/// Longest wait after a receiver run for its deliveries to catch up with what it accepted.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// How often the events file is counted (and punched) during a receiver run.
const TAIL_PERIOD: Duration = Duration::from_millis(50);
/// The fixed-rate run's target: the fsync receiver's p99 at most this (µs).
const PACED_P99_LIMIT_US: f64 = 1000.0;
/// Targets in a round (webhook's place stays empty when it is not installed, the baseline's two
/// when `BENCH_BASELINE_BIN` is not set).
const TARGETS: usize = 7;

/// What one generator run measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Responses with status 200.
    pub ok: u64,
    /// Responses with any other status.
    pub non_ok: u64,
    /// Connect, read, write errors and timeouts.
    pub socket_errors: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Median latency, in microseconds.
    pub p50_us: f64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: f64,
    /// CPU time the generator itself used, in seconds.
    pub generator_cpu: f64,
}

// ---------------------------------------------------------------------------------------------
// Settings

/// How this run was asked to behave (environment; see the module docs).
struct Settings {
    quick: bool,
    rounds: usize,
    run: Duration,
    warmup: Option<Duration>,
    connections: usize,
    wrk_threads: usize,
    io_threads: usize,
    time_limit: Duration,
    generator: Option<String>,
    perf_secs: Option<u64>,
    keep_data: bool,
    keep_events: bool,
    /// The fixed-rate run: requests/s, duration (`None`: no such run), connections.
    paced_rate: f64,
    paced: Option<Duration>,
    paced_connections: usize,
    /// Another egnyte-receiver binary to run beside the current one (`BENCH_BASELINE_BIN`).
    baseline: Option<PathBuf>,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let number = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Err(_) => Ok(None),
                Ok(v) => {
                    v.trim().parse().map(Some).map_err(|_| format!("{name}: {v:?} is not a whole number"))
                }
            }
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (rounds, run, warmup, limit, paced) = if quick { (1, 2, 0, 90, 3) } else { (5, 6, 3, 330, 10) };
        let warmup = number("BENCH_WARMUP_SECS")?.unwrap_or(warmup);
        let paced = number("BENCH_PACED_SECS")?.unwrap_or(paced);
        Ok(Settings {
            quick,
            rounds: number("BENCH_ROUNDS")?.unwrap_or(rounds).max(1) as usize,
            run: Duration::from_secs(number("BENCH_RUN_SECS")?.unwrap_or(run).max(1)),
            warmup: (warmup > 0).then(|| Duration::from_secs(warmup)),
            connections: number("BENCH_CONNECTIONS")?.unwrap_or(64).max(1) as usize,
            wrk_threads: number("BENCH_WRK_THREADS")?.unwrap_or(2).max(1) as usize,
            io_threads: number("BENCH_IO_THREADS")?.unwrap_or(cpus as u64).max(1) as usize,
            time_limit: Duration::from_secs(number("BENCH_TIME_LIMIT_SECS")?.unwrap_or(limit)),
            generator: std::env::var("BENCH_GENERATOR").ok().filter(|g| !g.is_empty()),
            perf_secs: number("BENCH_PERF_SECS")?.filter(|&s| s > 0),
            keep_data: std::env::var("BENCH_KEEP_DATA").is_ok_and(|v| v == "1"),
            keep_events: std::env::var("BENCH_KEEP_EVENTS").is_ok_and(|v| v == "1"),
            paced_rate: number("BENCH_PACED_RATE")?.unwrap_or(1000).max(1) as f64,
            paced: (paced > 0).then(|| Duration::from_secs(paced)),
            paced_connections: number("BENCH_PACED_CONNECTIONS")?.unwrap_or(16).max(1) as usize,
            baseline: baseline_bin()?,
        })
    }
}

/// `BENCH_BASELINE_BIN`, checked now rather than after the warm-up: an existing executable file.
fn baseline_bin() -> Result<Option<PathBuf>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(path) = std::env::var_os("BENCH_BASELINE_BIN").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = PathBuf::from(path);
    let metadata =
        std::fs::metadata(&path).map_err(|e| format!("BENCH_BASELINE_BIN: {}: {e}", path.display()))?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "BENCH_BASELINE_BIN: {} is not an executable file (it should be an egnyte-receiver binary, e.g. \
             target/release/egnyte-receiver of a checkout of the code before the change)",
            path.display()
        ));
    }
    Ok(Some(path))
}

// ---------------------------------------------------------------------------------------------
// Generators and targets

enum Generator {
    Wrk(Wrk, String),
    Builtin(Builtin),
}

impl Generator {
    fn run(&self, addr: SocketAddr, duration: Duration, invocation: u16) -> io::Result<Outcome> {
        match self {
            Generator::Wrk(wrk, _) => wrk.run(addr, duration, invocation),
            Generator::Builtin(builtin) => builtin.run(addr, duration, invocation),
        }
    }

    fn describe(&self) -> String {
        match self {
            Generator::Wrk(wrk, version) => format!(
                "{version}, -t {} -c {} --latency, script benches/load/post.lua",
                wrk.threads, wrk.connections
            ),
            Generator::Builtin(builtin) => format!(
                "built-in (one blocking keep-alive connection per thread, {} connections, no pipelining)",
                builtin.connections
            ),
        }
    }

    fn is_builtin(&self) -> bool {
        matches!(self, Generator::Builtin(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Ceiling = 0,
    Bare = 1,
    None = 2,
    Fsync = 3,
    Webhook = 4,
    BaselineNone = 5,
    BaselineFsync = 6,
}

impl Target {
    /// In the order of the table and of a round before its rotation.
    const ALL: [Target; TARGETS] = [
        Target::Ceiling,
        Target::Bare,
        Target::None,
        Target::Fsync,
        Target::BaselineNone,
        Target::BaselineFsync,
        Target::Webhook,
    ];
    /// The receiver targets, in the order of [`Bench::receivers`].
    const RECEIVERS: [Target; 4] = [Target::None, Target::Fsync, Target::BaselineNone, Target::BaselineFsync];

    fn name(self) -> &'static str {
        match self {
            Target::Ceiling => "ceiling (bare may_minihttp)",
            Target::Bare => "bare loop (our HTTP layer)",
            Target::None => "receiver --durability none",
            Target::Fsync => "receiver --durability fsync",
            Target::Webhook => WEBHOOK_NAME.get().map_or("adnanh/webhook", String::as_str),
            Target::BaselineNone => "baseline --durability none",
            Target::BaselineFsync => "baseline --durability fsync",
        }
    }

    fn letter(self) -> &'static str {
        match self {
            Target::Ceiling => "C",
            Target::Bare => "B",
            Target::None => "N",
            Target::Fsync => "F",
            Target::Webhook => "W",
            Target::BaselineNone => "n",
            Target::BaselineFsync => "f",
        }
    }

    /// Index into [`Bench::receivers`] for the receiver targets.
    fn receiver(self) -> Option<usize> {
        Target::RECEIVERS.iter().position(|&t| t == self)
    }

    /// The baseline's run of the same receiver mode, for a current receiver target.
    fn baseline(self) -> Option<Target> {
        match self {
            Target::None => Some(Target::BaselineNone),
            Target::Fsync => Some(Target::BaselineFsync),
            _ => None,
        }
    }

    /// Its part of a perf data file's name (letters alone would tell the baseline's apart from
    /// the current receiver's by case only).
    fn slug(self) -> &'static str {
        match self {
            Target::Ceiling => "c",
            Target::Bare => "b",
            Target::None => "n",
            Target::Fsync => "f",
            Target::Webhook => "w",
            Target::BaselineNone => "baseline-n",
            Target::BaselineFsync => "baseline-f",
        }
    }

    /// Served from this process (the ceiling and the bare loop) rather than a child.
    fn in_process(self) -> bool {
        matches!(self, Target::Ceiling | Target::Bare)
    }

    /// The target: this fraction of the ceiling's requests/s (near state), and the verdict's
    /// name for it.
    fn target_ratio(self) -> Option<(f64, &'static str)> {
        match self {
            Target::Bare => Some((BARE_TARGET_RATIO, "bare loop")),
            Target::None => Some((NONE_TARGET_RATIO, "none")),
            Target::Fsync => Some((FSYNC_TARGET_RATIO, "fsync")),
            Target::Ceiling | Target::Webhook | Target::BaselineNone | Target::BaselineFsync => None,
        }
    }
}

/// The webhook target's name, which says what its hook runs (set once, before any report).
static WEBHOOK_NAME: OnceLock<String> = OnceLock::new();

/// One scored run.
#[derive(Debug, Clone, Copy)]
struct Sample {
    outcome: Outcome,
    /// CPU seconds the server used during the run.
    server_cpu: f64,
    /// Receivers: growth of (`journal_groups_total`, `journal_syncs_total`) during the run.
    journal: Option<(u64, u64)>,
    /// Where CPU 0 and CPU 1 stood around the run (`support/cores.rs`).
    cores: Cores,
}

impl Sample {
    fn requests_per_second(&self) -> f64 {
        self.outcome.ok as f64 / self.outcome.seconds
    }
    fn answered(&self) -> f64 {
        (self.outcome.ok + self.outcome.non_ok).max(1) as f64
    }
}

/// Counts over every run against one target, warm-up and profiling included.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    ok: u64,
    non_ok: u64,
    socket_errors: u64,
    runs: u64,
}

impl Totals {
    fn add(&mut self, outcome: &Outcome) {
        self.ok += outcome.ok;
        self.non_ok += outcome.non_ok;
        self.socket_errors += outcome.socket_errors;
        self.runs += 1;
    }
}

/// User + system CPU time of this process, in seconds.
fn own_cpu_seconds() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value; `getrusage` only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Resets this process's `VmHWM` to its current RSS (`clear_refs` value 5), so that the next
/// reading is the peak since now; false if the kernel refused.
fn reset_own_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Events written against events acknowledged, summed over one receiver's runs.
#[derive(Debug, Default)]
struct Ledger {
    /// Lines counted in `events.jsonl`.
    lines: u64,
    /// Events in the batches answered 200.
    acknowledged: u64,
    /// `events_accepted_total` from `/metrics`.
    accepted: u64,
    /// Most lines that may be written without an acknowledgement (requests in flight when a
    /// generator run stopped).
    in_flight_bound: u64,
    /// Longest wait after a run for `events.jsonl` to catch up with the accepted events.
    longest_settle: Duration,
    /// One line per run whose counts do not add up.
    problems: Vec<String>,
}

/// CPU seconds of the whole machine so far: (busy, steal), from `/proc/stat`.
fn machine_cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let tick = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user).
    let busy = tick(0) + tick(1) + tick(2) + tick(5) + tick(6);
    let hz = receiver::clock_ticks_per_second();
    (busy / hz, tick(7) / hz)
}

/// One receiver under test: the process, its events file and its count.
struct Served {
    receiver: Receiver,
    events_file: PathBuf,
    tail: Tail,
    ledger: Ledger,
    /// RSS right after start (idle), KiB.
    idle_rss_kib: u64,
}

/// Everything a run needs.
struct Bench {
    generator: Generator,
    ceiling: SocketAddr,
    bare: SocketAddr,
    /// `--durability none`, `--durability fsync`, then the baseline's two when it runs (the
    /// order of [`Target::RECEIVERS`]).
    receivers: Vec<Served>,
    webhook: Option<Webhook>,
    /// Events per request.
    events: u64,
    connections: u64,
    invocation: u16,
    totals: [Totals; TARGETS],
    /// Peak `VmHWM` of this process over the ceiling's runs, and over the bare loop's (reset
    /// before each run), KiB.
    own_peak_kib: [Option<u64>; TARGETS],
    /// One line per run, in order (warm-up and profile included).
    log: Vec<String>,
}

impl Bench {
    fn addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Ceiling => self.ceiling,
            Target::Bare => self.bare,
            Target::Webhook => self.webhook.as_ref().map_or(self.ceiling, |w| w.addr),
            _ => self.served(target).map_or(self.ceiling, |s| s.receiver.addr),
        }
    }

    /// The server process of `target` (this one for the ceiling and the bare loop).
    fn pid(&self, target: Target) -> u32 {
        match target {
            Target::Ceiling | Target::Bare => std::process::id(),
            Target::Webhook => self.webhook.as_ref().map_or(0, Webhook::pid),
            _ => self.served(target).map_or(0, |s| s.receiver.pid()),
        }
    }

    /// The receiver process of a receiver target, if it runs.
    fn served(&self, target: Target) -> Option<&Served> {
        self.receivers.get(target.receiver()?)
    }

    fn has(&self, target: Target) -> bool {
        match target {
            Target::Webhook => self.webhook.is_some(),
            _ if target.receiver().is_some() => self.served(target).is_some(),
            _ => true,
        }
    }

    /// CPU seconds used so far by the server of `target`.
    fn server_cpu(&self, target: Target) -> io::Result<f64> {
        match target {
            Target::Ceiling | Target::Bare => Ok(own_cpu_seconds()),
            _ => receiver::process_cpu_seconds(self.pid(target)),
        }
    }

    /// CPU seconds used so far by this process, by its waited-for children (`wrk`) and by the
    /// servers it spawned: everything the benchmark itself runs.
    fn bench_cpu_seconds(&self) -> f64 {
        // SAFETY: an all-zero `rusage` is a valid value; `getrusage` only writes into it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        let servers: f64 = Target::ALL
            .into_iter()
            .filter(|&t| !t.in_process())
            .filter(|&t| self.has(t))
            .map(|t| self.server_cpu(t).unwrap_or(0.0))
            .sum();
        own_cpu_seconds() + seconds(usage.ru_utime) + seconds(usage.ru_stime) + servers
    }

    /// `(journal_groups_total, journal_syncs_total)` of a receiver target.
    fn journal_counters(&self, target: Target) -> io::Result<Option<(u64, u64)>> {
        let Some(i) = target.receiver() else { return Ok(None) };
        let receiver = &self.receivers[i].receiver;
        Ok(Some((receiver.metric(JOURNAL_GROUPS)?, receiver.metric(JOURNAL_SYNCS)?)))
    }

    /// One run of the closed-loop generator against `target`, with the server's CPU time around
    /// it; for a receiver, the lines it appended are counted during and after the run.
    fn run(&mut self, target: Target, duration: Duration) -> io::Result<Sample> {
        let local = self.generator.is_builtin();
        self.run_with(target, "", local, |generator, addr, invocation| {
            generator.run(addr, duration, invocation)
        })
    }

    /// One run of `generate` (given the closed-loop generator, the target's address and a fresh
    /// invocation number) against `target`. `local`: the generator runs in this process (its CPU
    /// time is taken off an in-process server's) and waits for every answer (nothing is left in
    /// flight). `tag` follows the target's letter in the per-run log.
    fn run_with(
        &mut self,
        target: Target,
        tag: &str,
        local: bool,
        generate: impl FnOnce(&Generator, SocketAddr, u16) -> io::Result<Outcome>,
    ) -> io::Result<Sample> {
        self.invocation += 1;
        let accepted_before = match target.receiver() {
            Some(i) => self.receivers[i].receiver.metric(ACCEPTED)?,
            None => 0,
        };
        let journal_before = self.journal_counters(target)?;
        let lines_before = target.receiver().map_or(0, |i| self.receivers[i].tail.lines);
        let peak_reset = target.in_process() && reset_own_peak_rss();
        let cpu_before = self.server_cpu(target)?;
        let (addr, invocation, pid) = (self.addr(target), self.invocation, self.pid(target));
        let generator = &self.generator;
        let served = target.receiver().map(|i| &mut self.receivers[i]);
        let running = AtomicBool::new(true);
        let probe_before = cores::round_trip_ns();
        let (outcome, server_cpu_after) = std::thread::scope(|scope| {
            let tailer = served.map(|served| {
                let Served { tail, events_file, .. } = served;
                let running = &running;
                scope.spawn(move || {
                    while running.load(Ordering::Relaxed) {
                        std::thread::sleep(TAIL_PERIOD);
                        tail.advance(events_file)?;
                    }
                    Ok::<_, io::Error>(())
                })
            });
            let outcome = generate(generator, addr, invocation);
            // Read before the tailer's last pass, so that its work is not charged to anyone.
            let cpu = match target {
                Target::Ceiling | Target::Bare => Ok(own_cpu_seconds()),
                _ => receiver::process_cpu_seconds(pid),
            };
            running.store(false, Ordering::Relaxed);
            if let Some(tailer) = tailer {
                tailer.join().expect("tail thread panicked")?;
            }
            Ok::<_, io::Error>((outcome?, cpu?))
        })?;
        let cores = Cores::around(probe_before, cores::round_trip_ns());
        if peak_reset {
            let peak = receiver::process_status_kib(pid, "VmHWM").ok();
            let own = &mut self.own_peak_kib[target as usize];
            *own = (*own).max(peak);
        }
        let mut server_cpu = server_cpu_after - cpu_before;
        if target.in_process() && local {
            // The built-in generator's threads live in this process, next to the server.
            server_cpu -= outcome.generator_cpu;
        }
        self.totals[target as usize].add(&outcome);
        let answered = (outcome.ok + outcome.non_ok).max(1) as f64;
        self.log.push(format!(
            "{}{tag} {:.1}k/s p50 {} p99 {} cpu {:.1}+{:.1} µs, cores {}{}",
            target.letter(),
            outcome.ok as f64 / outcome.seconds / 1e3,
            latency(outcome.p50_us),
            latency(outcome.p99_us),
            server_cpu / answered * 1e6,
            outcome.generator_cpu / answered * 1e6,
            cores.name(),
            if outcome.non_ok + outcome.socket_errors > 0 {
                format!(" non-200 {} socket errors {}", outcome.non_ok, outcome.socket_errors)
            } else {
                String::new()
            },
        ));
        let journal = match (journal_before, self.journal_counters(target)?) {
            (Some((g0, s0)), Some((g1, s1))) => Some((g1 - g0, s1 - s0)),
            _ => None,
        };
        if let Some(i) = target.receiver() {
            let in_flight = if local { 0 } else { self.connections * self.events };
            let served = &mut self.receivers[i];
            if !served.receiver.alive() {
                return Err(io::Error::other(format!(
                    "the {} receiver died during the run; its log:\n{}",
                    target.name(),
                    served.receiver.log_tail()
                )));
            }
            served.settle(&outcome, accepted_before, lines_before, self.events, in_flight, invocation)?;
        }
        if let Some(webhook) = self.webhook.as_mut().filter(|_| target == Target::Webhook) {
            if !webhook.alive() {
                return Err(io::Error::other(format!(
                    "webhook died during the run; its log:\n{}",
                    webhook.log_tail()
                )));
            }
        }
        Ok(Sample { outcome, server_cpu: server_cpu.max(0.0), journal, cores })
    }
}

impl Served {
    /// After a run: waits until the events accepted during the run are delivered (the line count
    /// catches up with `events_accepted_total`; delivery is asynchronous, behind the journal),
    /// then checks this run's counts. `in_flight`: most events stored without an answer.
    fn settle(
        &mut self,
        outcome: &Outcome,
        accepted_before: u64,
        lines_before: u64,
        events: u64,
        in_flight: u64,
        invocation: u16,
    ) -> io::Result<()> {
        let started = Instant::now();
        let mut accepted = 0;
        while started.elapsed() < SETTLE_LIMIT {
            std::thread::sleep(Duration::from_millis(50));
            self.tail.advance(&self.events_file)?;
            accepted = self.receiver.metric(ACCEPTED)? - accepted_before;
            if accepted == self.tail.lines - lines_before {
                break;
            }
        }
        self.ledger.longest_settle = self.ledger.longest_settle.max(started.elapsed());
        let lines = self.tail.lines - lines_before;
        let acknowledged = outcome.ok * events;
        // wrk drops the requests in flight when its time is up (the receiver still stores them);
        // the built-in generator waits for their answers.
        if lines != accepted || lines < acknowledged || lines - acknowledged > in_flight {
            self.ledger.problems.push(format!(
                "run {invocation}: {lines} lines written, {accepted} events accepted (metrics), {acknowledged} \
                 acknowledged, at most {in_flight} in flight"
            ));
        }
        self.ledger.lines += lines;
        self.ledger.accepted += accepted;
        self.ledger.acknowledged += acknowledged;
        self.ledger.in_flight_bound += in_flight;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Main

fn main() {
    let passed = match bench() {
        Ok(passed) => passed,
        Err(error) => {
            eprintln!("load bench: {error}");
            false
        }
    };
    if !passed {
        std::process::exit(1);
    }
}

/// Starts one receiver (`program`) under `root` with `--durability MODE` and the production
/// defaults.
fn serve(program: &Path, root: &Path, settings: &Settings, token: &str, mode: &str) -> io::Result<Served> {
    let receiver =
        Receiver::spawn(program, root, free_port(), settings.io_threads, token, &["--durability", mode])?;
    let idle_rss_kib = receiver::process_status_kib(receiver.pid(), "VmRSS").unwrap_or(0);
    Ok(Served {
        events_file: receiver.data_dir().join("events.jsonl"),
        receiver,
        tail: Tail::new(!settings.keep_events),
        ledger: Ledger::default(),
        idle_rss_kib,
    })
}

/// Runs the benchmark; `Ok(false)` when a correctness check failed (non-200 from a receiver,
/// socket errors, events missing from a file). Its phases, in order: the load, the in-process
/// servers, the child servers (in a temporary directory), the checks of the in-process servers,
/// the header of the report, the warm-up and scored rounds, the fixed-rate runs, the profiles,
/// the delivery check, the report, the failures.
fn bench() -> Result<bool, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let settings = Settings::from_env()?;
    let budget = Budget { started, limit: settings.time_limit };
    let load = Load::prepare(&settings)?;
    let in_process = InProcess::start(&settings)?;
    // Declared after the in-process servers and before the child ones, as it always was: the
    // children are stopped before their directory is removed (or kept).
    let mut dir = TempDir::create(&std::env::temp_dir(), "bench-load")?;
    if settings.keep_data {
        dir.keep();
    }
    let receivers = start_receivers(&settings, &load.token, dir.path())?;
    let webhook = start_webhook(&load.batch, dir.path())?;
    in_process.check(&load.batch)?;
    print_setup(&settings, &load, &in_process, &receivers, webhook.as_ref());

    let Load { batch, events, generator, .. } = load;
    let mut bench = Bench {
        generator,
        ceiling: in_process.ceiling,
        bare: in_process.bare,
        receivers,
        webhook: webhook.map(|(w, _)| w),
        events: events as u64,
        connections: settings.connections as u64,
        invocation: 0,
        totals: [Totals::default(); TARGETS],
        own_peak_kib: [None; TARGETS],
        log: Vec::new(),
    };
    let targets: Vec<Target> = Target::ALL.into_iter().filter(|&t| bench.has(t)).collect();
    let rounds = run_rounds(&mut bench, &settings, &targets, budget)?;
    let fixed_rate = run_fixed_rate(&mut bench, &settings, &batch, budget)?;
    let profiles = run_profiles(&mut bench, &settings, &targets, budget);
    let check = verify(&bench);
    let results = Results { rounds, fixed_rate, profiles, check };
    report(&settings, &bench, &targets, &results, in_process.rss_before_ceiling, budget);
    let answered = no_failed_answers(&bench, &targets);
    let passed = results.check.passed && answered;
    // Kept for a look at the receivers' logs and data when something failed.
    if !passed {
        dir.keep();
    }
    Ok(passed)
}

/// The run's time budget: `BENCH_TIME_LIMIT_SECS` from the start of the bench.
#[derive(Debug, Clone, Copy)]
struct Budget {
    started: Instant,
    limit: Duration,
}

impl Budget {
    /// True when `runs` more runs of `run` still fit in the budget.
    fn fits(&self, runs: u32, run: Duration) -> bool {
        // A receiver run is followed by its settling (a few seconds at most).
        self.started.elapsed() + (run + Duration::from_secs(2)) * runs + Duration::from_secs(10) <= self.limit
    }
}

/// What every request carries and what sends it: the batch (fixture, token, nonce), checked,
/// and the closed-loop generator.
struct Load {
    batch: Batch,
    token: String,
    /// Events per request.
    events: usize,
    /// Body bytes per request.
    body_len: usize,
    generator: Generator,
}

impl Load {
    /// Reads the fixture, makes the run's nonce and token, checks that every element of the body
    /// a request carries is a valid event with an eventId of its own, and picks the generator
    /// (`wrk` when installed, unless `BENCH_GENERATOR` says otherwise; the missing `wrk` is said
    /// on stderr).
    fn prepare(settings: &Settings) -> Result<Load, Box<dyn std::error::Error>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let fixture = root.join(std::env::var("BENCH_FIXTURE").unwrap_or_else(|_| FIXTURE.to_owned()));
        let template = std::fs::read(&fixture).map_err(|e| format!("{}: {e}", fixture.display()))?;

        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let nonce = (nanos as u32) ^ std::process::id().rotate_left(16);
        let token = format!("load-bench-{nonce:08x}");
        let batch = Batch {
            template: template.clone(),
            path: WEBHOOK_PATH.to_owned(),
            token: Some(token.clone()),
            nonce,
        };

        // The body every request carries, checked: all its elements are valid events, one eventId each.
        let sample = RequestBytes::new(&batch, "127.0.0.1:1".parse()?, 0, 0);
        let body = &sample.bytes[sample.bytes.len() - sample.body_len()..];
        let events = {
            let mut parser = Parser::default();
            let parsed = parser.parse(body).map_err(|e| format!("the generated body does not parse: {e}"))?;
            assert_eq!(parsed.valid_count(), parsed.len(), "every element of the fixture must be valid");
            parsed.len()
        };
        assert_eq!(events, sample.events(), "one eventId per event");

        let wrk_version = wrk::version();
        let use_wrk = match settings.generator.as_deref() {
            None | Some("wrk") if wrk_version.is_some() => true,
            Some("wrk") => {
                return Err("BENCH_GENERATOR=wrk but wrk cannot be run: apt-get install -y wrk".into())
            }
            None | Some("builtin") => false,
            Some(other) => {
                return Err(format!("BENCH_GENERATOR: {other:?} is neither wrk nor builtin").into())
            }
        };
        if wrk_version.is_none() {
            eprintln!(
                "wrk is not installed (on Debian: `apt-get install -y wrk`); using the built-in generator, \
                 whose own CPU use (≈ 12-15 µs a request against wrk's ≈ 8) takes more from the ceiling than from \
                 the receiver, so its ratios read higher than wrk's"
            );
        }
        let generator = if use_wrk {
            Generator::Wrk(
                Wrk {
                    script: root.join("benches/load/post.lua"),
                    fixture: fixture.clone(),
                    path: WEBHOOK_PATH.to_owned(),
                    token: Some(token.clone()),
                    nonce,
                    connections: settings.connections,
                    threads: settings.wrk_threads.min(settings.connections),
                },
                wrk_version.unwrap_or_default(),
            )
        } else {
            Generator::Builtin(Builtin { batch: batch.clone(), connections: settings.connections })
        };
        Ok(Load { batch, token, events, body_len: sample.body_len(), generator })
    }
}

/// The two servers in this process, the ceiling and the bare loop, on one `may` scheduler.
struct InProcess {
    ceiling: SocketAddr,
    bare: SocketAddr,
    /// The ceiling's coroutine and the bare loop's server: both serve until the process exits.
    _servers: (may::coroutine::JoinHandle<()>, egnyte_receiver::http::Server),
    /// `may`'s (workers, coroutine stack words) as configured.
    may_config: (usize, usize),
    /// Threads `may`'s scheduler started.
    may_threads: usize,
    /// This process's RSS before the ceiling started, KiB.
    rss_before_ceiling: u64,
}

impl InProcess {
    /// Configures `may` once for the process, then starts both servers. Nothing here has touched
    /// `may` yet, and its scheduler (started by the first socket or coroutine handed to it) reads
    /// the worker count once. Both are bound before the receivers' ports are chosen.
    fn start(settings: &Settings) -> Result<InProcess, Box<dyn std::error::Error>> {
        let rss_before_ceiling = receiver::process_status_kib(std::process::id(), "VmRSS").unwrap_or(0);
        let threads_before = own_threads();
        let may_config = bare::configure_may(settings.io_threads);
        if may_config != (settings.io_threads.max(1), egnyte_receiver::serve::STACK_WORDS) {
            return Err(
                format!("may reports (workers, stack words) = {may_config:?} after configuration").into()
            );
        }
        let ceiling = free_port();
        let ceiling_server = ceiling::start(ceiling)?;
        let bare_server = bare::start()?;
        let bare = bare_server.local_addr();
        // may starts its workers and one timer thread with its scheduler, and no other thread.
        let may_threads = own_threads().saturating_sub(threads_before);
        if may_threads != may_config.0 + 1 {
            eprintln!(
                "warning: may's scheduler started {may_threads} threads, not {} workers + its timer: was it \
                 started before its configuration?",
                may_config.0
            );
        }
        if bare == ceiling {
            return Err(format!("the bare loop and the ceiling both on {ceiling}").into());
        }
        Ok(InProcess {
            ceiling,
            bare,
            _servers: (ceiling_server, bare_server),
            may_config,
            may_threads,
            rss_before_ceiling,
        })
    }

    /// Both up, and answering the benchmark's own request as expected (its eventIds, of
    /// invocation 0, are never sent to a receiver).
    fn check(&self, batch: &Batch) -> Result<(), Box<dyn std::error::Error>> {
        let check = RequestBytes::new(batch, "127.0.0.1:1".parse()?, 0, 0);
        for (name, addr) in [("ceiling", self.ceiling), ("bare loop", self.bare)] {
            wait_until_serving(addr)?;
            let reply = builtin::send(addr, &check.bytes)?;
            if reply.status != 200 || reply.body != ceiling::BODY.as_bytes() {
                return Err(format!(
                    "the {name} answered the benchmark's request {} {:?}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                )
                .into());
            }
        }
        Ok(())
    }
}

/// The receivers, each in a directory of its own under `dir`: the current binary's `none` and
/// `fsync`, then the baseline's when `BENCH_BASELINE_BIN` is set (the order of
/// [`Target::RECEIVERS`]).
fn start_receivers(settings: &Settings, token: &str, dir: &Path) -> io::Result<Vec<Served>> {
    let current = Path::new(receiver::CURRENT);
    let mut receivers = vec![
        serve(current, &dir.join("none"), settings, token, "none")?,
        serve(current, &dir.join("fsync"), settings, token, "fsync")?,
    ];
    if let Some(baseline) = &settings.baseline {
        receivers.push(serve(baseline, &dir.join("baseline-none"), settings, token, "none")?);
        receivers.push(serve(baseline, &dir.join("baseline-fsync"), settings, token, "fsync")?);
    }
    Ok(receivers)
}

/// adnanh/webhook under `dir/webhook`, checked with one request, and its version; `None` (said on
/// stderr) when it is not installed.
fn start_webhook(batch: &Batch, dir: &Path) -> Result<Option<(Webhook, String)>, Box<dyn std::error::Error>> {
    let Some(version) = webhook::version() else {
        eprintln!("adnanh/webhook is not installed (on Debian: `apt-get install -y webhook`); its target is skipped");
        return Ok(None);
    };
    // The check request's eventIds (invocation 0) are never sent to a receiver.
    let check = RequestBytes::new(batch, "127.0.0.1:1".parse()?, 0, 0);
    let command = std::env::var("BENCH_WEBHOOK_COMMAND").ok().filter(|c| !c.is_empty());
    let _ = WEBHOOK_NAME.set(match &command {
        None => "adnanh/webhook (no command)".to_owned(),
        Some(command) => format!("adnanh/webhook (runs {command})"),
    });
    let webhook = Webhook::spawn(
        &dir.join("webhook"),
        free_port(),
        WEBHOOK_PATH,
        ceiling::BODY,
        command,
        &check.bytes,
    )?;
    Ok(Some((webhook, version)))
}

/// The report's header: the machine, every server (addresses, PIDs, settings), the generator and
/// the load.
fn print_setup(
    settings: &Settings,
    load: &Load,
    in_process: &InProcess,
    receivers: &[Served],
    webhook: Option<&(Webhook, String)>,
) {
    let simd = simd_json::Deserializer::algorithm().to_string();
    println!("{}", support::machine(&format!("simd-json implementation: {simd}")));
    println!(
        "servers: ceiling (may_minihttp) on {} and bare loop (our HTTP layer, the receiver's default \
         limits) on {}, both in this process on one may scheduler ({} workers, coroutine stack {} words, \
         may's default worker pinning; set once before the scheduler started, which then started {} \
         threads); receivers `serve --io-threads {} --durability none|fsync`, token required \
         (sent in Authorization), every other option default (dedup capacity {}, journal segments {} MiB, \
         {} workers, sink jsonl:DATA_DIR/events.jsonl): none pid {} on {}, fsync pid {} on {}",
        in_process.ceiling,
        in_process.bare,
        in_process.may_config.0,
        in_process.may_config.1,
        in_process.may_threads,
        settings.io_threads,
        egnyte_receiver::dedup::DEFAULT_CAPACITY,
        egnyte_receiver::journal::DEFAULT_SEGMENT_BYTES >> 20,
        egnyte_receiver::serve::DEFAULT_WORKERS,
        receivers[0].receiver.pid(),
        receivers[0].receiver.addr,
        receivers[1].receiver.pid(),
        receivers[1].receiver.addr,
    );
    if let (Some(baseline), [_, _, none, fsync]) = (&settings.baseline, receivers) {
        println!(
            "baseline (BENCH_BASELINE_BIN): {}, started the same way on its own data directories: none pid {} on \
             {}, fsync pid {} on {}",
            baseline.display(),
            none.receiver.pid(),
            none.receiver.addr,
            fsync.receiver.pid(),
            fsync.receiver.addr,
        );
    }
    if let Some((webhook, version)) = webhook {
        println!(
            "webhook: {version}, pid {} on {}, one hook answering 200 with the receiver's answer, {} (checked \
             with one POST of the same request before any load)",
            webhook.pid(),
            webhook.addr,
            match &webhook.command {
                None => "no execute-command: no process per request".to_owned(),
                Some(command) => format!("execute-command {command} (run after the answer, not waited for)"),
            }
        );
    }
    println!("generator: {}", load.generator.describe());
    let present = TARGETS - usize::from(webhook.is_none()) - if settings.baseline.is_none() { 2 } else { 0 };
    println!(
        "load: POST {WEBHOOK_PATH}, {} body bytes, {} events with eventIds unique across the run; \
         {} round(s) × {} s per target{}, {present} targets interleaved (order rotates and alternates){}\n",
        load.body_len,
        load.events,
        settings.rounds,
        settings.run.as_secs(),
        settings.warmup.map_or(String::new(), |w| format!(" after a {} s warm-up each", w.as_secs())),
        if settings.quick { " (quick mode)" } else { "" },
    );
}

/// What the warm-up and the scored rounds gave.
struct Rounds {
    /// Each target's scored runs, in round order.
    samples: [Vec<Sample>; TARGETS],
    /// Rounds were skipped: they would not have fitted in `BENCH_TIME_LIMIT_SECS`.
    cut_short: bool,
    /// Shares of the machine's CPU time over the warm-up and rounds: busy outside this bench,
    /// and stolen by the hypervisor.
    others: f64,
    stolen: f64,
    /// Peak RSS (`VmHWM`, KiB) of each child server after all its scored runs.
    peaks: [Option<u64>; TARGETS],
}

/// A warm-up run per target (unscored), then the scored rounds, interleaved: round r starts at
/// target r mod n and odd rounds run backwards, so every target is first, last and next to every
/// other one as the rounds go. Rounds that would not fit in the budget are skipped. The
/// machine's CPU time is read around it all (what else ran), the child servers' peak RSS after.
fn run_rounds(
    bench: &mut Bench,
    settings: &Settings,
    targets: &[Target],
    budget: Budget,
) -> Result<Rounds, Box<dyn std::error::Error>> {
    let machine_before = (machine_cpu_seconds(), bench.bench_cpu_seconds(), Instant::now());
    if let Some(warmup) = settings.warmup {
        eprint!("warm-up ");
        for &target in targets {
            if budget.fits(1, warmup) {
                bench.run(target, warmup)?;
                eprint!(".");
            }
        }
        eprintln!();
    }

    let mut samples: [Vec<Sample>; TARGETS] = Default::default();
    let mut cut_short = false;
    eprint!("rounds ");
    for round in 0..settings.rounds {
        if !budget.fits(targets.len() as u32, settings.run) {
            cut_short = true;
            break;
        }
        // Round r starts at target r mod n, and odd rounds run backwards: every target is
        // first, last and next to every other one as the rounds go.
        let mut order: Vec<Target> = targets.to_vec();
        order.rotate_left(round % targets.len());
        if round % 2 == 1 {
            order.reverse();
        }
        for target in order {
            samples[target as usize].push(bench.run(target, settings.run)?);
            eprint!("{}", target.letter());
        }
    }
    eprintln!();
    let ((busy_before, steal_before), ours_before, since) = machine_before;
    let ((busy, steal), ours) = (machine_cpu_seconds(), bench.bench_cpu_seconds());
    let capacity =
        since.elapsed().as_secs_f64() * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let others = ((busy - busy_before) - (ours - ours_before)).max(0.0) / capacity;
    let stolen = (steal - steal_before) / capacity;
    if samples[0].is_empty() {
        return Err("the time limit (BENCH_TIME_LIMIT_SECS) allowed no round".into());
    }
    // Peak RSS of the child servers, now that all their scored runs are done.
    let peaks: [Option<u64>; TARGETS] = Target::ALL.map(|t| match t {
        Target::Ceiling | Target::Bare => None,
        _ if !bench.has(t) => None,
        _ => receiver::process_status_kib(bench.pid(t), "VmHWM").ok(),
    });
    Ok(Rounds { samples, cut_short, others, stolen, peaks })
}

/// The fixed-rate runs and whether the budget cut them short.
struct FixedRate {
    runs: Vec<(Target, Sample, PacedResult)>,
    skipped: bool,
}

/// The receivers at a steady rate (after the rounds: it scores nothing in them). fsync is the one
/// with a target; none, run right after it, shows what of its latency is the disk's. No run
/// without `BENCH_PACED_SECS`, or past the budget.
fn run_fixed_rate(
    bench: &mut Bench,
    settings: &Settings,
    batch: &Batch,
    budget: Budget,
) -> Result<FixedRate, Box<dyn std::error::Error>> {
    let mut skipped = false;
    let mut runs = Vec::new();
    if let Some(duration) = settings.paced {
        let generator = PacedBuiltin {
            batch: batch.clone(),
            connections: settings.paced_connections,
            rate: settings.paced_rate,
        };
        let tag = format!("@{:.0}/s", settings.paced_rate);
        eprint!("fixed rate ");
        for target in [Target::Fsync, Target::None] {
            if !budget.fits(1, duration) {
                skipped = true;
                break;
            }
            let mut result = None;
            let sample = bench.run_with(target, &tag, true, |_, addr, invocation| {
                let run = generator.run(addr, duration, invocation)?;
                let outcome = run.outcome;
                result = Some(run);
                Ok(outcome)
            })?;
            eprint!("{}", target.letter());
            runs.extend(result.map(|result| (target, sample, result)));
        }
        eprintln!();
    }
    Ok(FixedRate { runs, skipped })
}

/// With `BENCH_PERF_SECS`, one profiled run per target (see [`profile`]), or why it was skipped.
fn run_profiles(
    bench: &mut Bench,
    settings: &Settings,
    targets: &[Target],
    budget: Budget,
) -> Vec<Result<String, Box<dyn std::error::Error>>> {
    let mut profiles = Vec::new();
    if let Some(secs) = settings.perf_secs {
        for &target in targets {
            profiles.push(if budget.fits(1, Duration::from_secs(secs + 3)) {
                profile(bench, target, secs)
            } else {
                Err("skipped: not enough time left under BENCH_TIME_LIMIT_SECS".into())
            });
        }
    }
    profiles
}

/// Everything measured and checked, for the report.
struct Results {
    rounds: Rounds,
    fixed_rate: FixedRate,
    profiles: Vec<Result<String, Box<dyn std::error::Error>>>,
    check: Check,
}

/// The report on stdout: the rounds ([`print_rounds`]), the verdicts ([`print_verdicts`]), the
/// costs ([`print_costs`]), the delivery check, the machine's other load, the fixed-rate
/// section, the profiles, the end.
fn report(
    settings: &Settings,
    bench: &Bench,
    targets: &[Target],
    results: &Results,
    rss_before_ceiling: u64,
    budget: Budget,
) {
    let Results { rounds, fixed_rate, profiles, check } = results;
    let Rounds { samples, others, stolen, .. } = rounds;
    let events = bench.events as usize;
    print_rounds(settings, bench, targets, rounds, rss_before_ceiling);
    print_verdicts(settings, bench, targets, rounds);
    print_costs(bench, targets, samples);
    println!("{}", check.text);
    println!(
        "other load during warm-up and rounds: {:.1}% of the machine's CPU time busy outside this bench \
         (wrk, servers; kernel work they cause on other tasks' time counts here too), {:.1}% stolen by the \
         hypervisor",
        others * 100.0,
        stolen * 100.0
    );
    if !fixed_rate.runs.is_empty() {
        println!("{}", paced_report(settings, &fixed_rate.runs, events));
    }
    if fixed_rate.skipped {
        println!("fixed-rate runs cut short: not enough time left under BENCH_TIME_LIMIT_SECS");
    }
    for profile in profiles {
        match profile {
            Ok(text) => println!("{text}"),
            Err(error) => println!("profile: {error}"),
        }
    }
    println!(
        "load average at the end: {}; wall time {:.0} s",
        support::load_average(),
        budget.started.elapsed().as_secs_f64()
    );
}

/// The rounds: the table, peak RSS, each target's ratios to the ceiling round by round and by
/// core state, and every run in order.
fn print_rounds(
    settings: &Settings,
    bench: &Bench,
    targets: &[Target],
    rounds: &Rounds,
    rss_before_ceiling: u64,
) {
    let Rounds { samples, peaks, .. } = rounds;
    let events = bench.events as usize;
    let own_peaks = bench.own_peak_kib.map(|peak| peak.map(|p| p.saturating_sub(rss_before_ceiling)));
    println!("{}", table(samples, &bench.totals, events, peaks, &own_peaks));
    println!(
        "peak RSS: VmHWM of each server process after all its runs; receivers idle at start: none {:.1} MiB, \
         fsync {:.1} MiB{}. Ceiling and bare loop: they run inside this process, so their figure is this \
         process's VmHWM during their runs (reset before each with clear_refs) less its RSS before they \
         started ({:.1} MiB): an upper bound, since the bench's own buffers count too",
        mib(bench.receivers[0].idle_rss_kib),
        mib(bench.receivers[1].idle_rss_kib),
        match &bench.receivers[..] {
            [_, _, none, fsync] => format!(
                " (baseline: none {:.1} MiB, fsync {:.1} MiB)",
                mib(none.idle_rss_kib),
                mib(fsync.idle_rss_kib)
            ),
            _ => String::new(),
        },
        mib(rss_before_ceiling),
    );
    for &target in &targets[1..] {
        let ratios: Vec<String> = samples[0]
            .iter()
            .zip(&samples[target as usize])
            .map(|(c, x)| format!("{:.2}", x.requests_per_second() / c.requests_per_second()))
            .collect();
        println!("{} / ceiling, round by round: {}", target.name(), ratios.join(", "));
    }
    println!("{}", by_core_state(samples, targets));
    println!(
        "every run in order (C ceiling, B bare loop, N receiver none, F receiver fsync, {}W webhook, \
         @RATE the fixed-rate runs; requests/s, latency, CPU µs/request server+generator):\n  {}",
        if settings.baseline.is_some() { "n baseline none, f baseline fsync, " } else { "" },
        bench.log.join("\n  ")
    );
}

/// One verdict line per target, then webhook's and the baseline's comparisons, and whether the
/// rounds were cut short.
fn print_verdicts(settings: &Settings, bench: &Bench, targets: &[Target], rounds: &Rounds) {
    let Rounds { samples, cut_short, peaks, .. } = rounds;
    let rps = |target: Target| median_of(&samples[target as usize], Sample::requests_per_second);
    println!(
        "\nverdicts (judged on the rounds whose ceiling run and target run were both in the near core state; \
         far and all rounds shown beside): bare loop ≥ {BARE_TARGET_RATIO:.1}×, none ≥ {NONE_TARGET_RATIO:.2}×, \
         fsync ≥ {FSYNC_TARGET_RATIO:.2}× the ceiling's requests/s; receivers' peak RSS ≤ {} MiB; no non-200 \
         answer:",
        RSS_LIMIT_KIB >> 10
    );
    for &target in targets {
        println!("  {}", verdict(samples, target, bench.totals[target as usize], peaks[target as usize]));
    }
    if bench.has(Target::Webhook) {
        println!(
            "  against webhook: none {:.1}×, fsync {:.1}× its requests/s",
            rps(Target::None) / rps(Target::Webhook),
            rps(Target::Fsync) / rps(Target::Webhook)
        );
    }
    if settings.baseline.is_some() {
        println!(
            "\nagainst the baseline (BENCH_BASELINE_BIN): current's requests/s over the baseline's, median of the \
             round-by-round ratios (runs of one round are seconds apart); near and far: the rounds whose two runs \
             were both in that core state; then each one's median server CPU per request and p99:"
        );
        for target in [Target::None, Target::Fsync] {
            println!("  {}", against_baseline(samples, target));
        }
    }
    if *cut_short {
        println!("  rounds cut short by BENCH_TIME_LIMIT_SECS");
    }
}

/// Each target's server CPU per request against the ceiling's, and each receiver's journal
/// groups and fdatasyncs over its scored runs.
fn print_costs(bench: &Bench, targets: &[Target], samples: &[Vec<Sample>; TARGETS]) {
    let cpu = |target: Target| median_of(&samples[target as usize], |x| x.server_cpu / x.answered() * 1e6);
    let ceiling_cpu = cpu(Target::Ceiling);
    for &target in &targets[1..] {
        println!(
            "server CPU per request, {}: {:.1} µs, {:.2}× the ceiling's {ceiling_cpu:.1} µs: CPU-bound on cores of \
             its own, it would reach about {:.0}% of the ceiling's requests/s",
            target.name(),
            cpu(target),
            cpu(target) / ceiling_cpu,
            ceiling_cpu / cpu(target) * 100.0
        );
    }
    for target in Target::RECEIVERS.into_iter().filter(|&t| bench.has(t)) {
        let s = &samples[target as usize];
        let seconds: f64 = s.iter().map(|x| x.outcome.seconds).sum();
        let requests: u64 = s.iter().map(|x| x.outcome.ok + x.outcome.non_ok).sum();
        let (groups, syncs) =
            s.iter().filter_map(|x| x.journal).fold((0, 0), |(g, y), (dg, dy)| (g + dg, y + dy));
        println!(
            "journal of {} over its scored runs: {:.0} groups/s ({:.1} requests per group), {:.0} fdatasync/s{}",
            target.name(),
            groups as f64 / seconds,
            requests as f64 / groups.max(1) as f64,
            syncs as f64 / seconds,
            if syncs > 0 { format!(" (one every {:.2} ms of loaded time)", seconds / syncs as f64 * 1e3) } else { String::new() },
        );
    }
}

/// Prints a FAILURE line for every target that gave a non-200 answer or a socket error in any
/// run (warm-up and profile included); true when none did.
fn no_failed_answers(bench: &Bench, targets: &[Target]) -> bool {
    let mut passed = true;
    for &target in targets {
        let totals = bench.totals[target as usize];
        if totals.non_ok > 0 || totals.socket_errors > 0 {
            let log = match target.receiver() {
                Some(i) => format!("; its log: {}", bench.receivers[i].receiver.log_path().display()),
                None => String::new(),
            };
            println!(
                "FAILURE: {} gave {} non-200 answer(s) and {} socket error(s){log}",
                target.name(),
                totals.non_ok,
                totals.socket_errors
            );
            passed = false;
        }
    }
    passed
}

/// One target's verdict line: its ratio to the ceiling judged on the near-state rounds (the far
/// state's and all rounds' beside it), a receiver's peak RSS, and its non-200 answers.
fn verdict(samples: &[Vec<Sample>; TARGETS], target: Target, totals: Totals, peak: Option<u64>) -> String {
    let all = median(&paired_ratios(samples, target, None));
    let rounds = |n: usize| if n == 1 { "1 round".to_owned() } else { format!("{n} rounds") };
    let far = state_ratio(samples, target, Cores::Far)
        .map_or("far –".to_owned(), |(ratio, n)| format!("far {ratio:.2}× ({})", rounds(n)));
    let rss = match target.receiver() {
        None => String::new(),
        Some(_) => format!(
            "; peak RSS ≤ {} MiB: {} ({})",
            RSS_LIMIT_KIB >> 10,
            peak.map_or("unknown", |p| met(p <= RSS_LIMIT_KIB)),
            peak.map_or("n/a".to_owned(), |p| format!("{:.1} MiB", mib(p)))
        ),
    };
    let errors = totals.non_ok + totals.socket_errors;
    let Some((goal, short)) = target.target_ratio() else {
        if target.receiver().is_none() {
            return format!("{}: reference ({all:.2}× the ceiling)", target.name());
        }
        // The baseline: the code before a change, for comparison, not judged.
        let near = state_ratio(samples, target, Cores::Near)
            .map_or("near –".to_owned(), |(ratio, n)| format!("near {ratio:.2}× ({})", rounds(n)));
        return format!(
            "{}: for comparison ({near}; {far}; all rounds {all:.2}× the ceiling){rss}; non-200 answers and \
             socket errors: {errors} ({})",
            target.name(),
            met(errors == 0)
        );
    };
    let goal_text = if goal >= 1.0 { format!("{goal:.1}") } else { format!("{goal:.2}") };
    let near = match state_ratio(samples, target, Cores::Near) {
        Some((ratio, n)) => format!("{} ({ratio:.2}×, near, {})", met(ratio >= goal), rounds(n)),
        None => "undecided (no round in the near state)".to_owned(),
    };
    format!(
        "{short} ≥ {goal_text}× ceiling: {near}; {far}; all rounds {all:.2}× ({}){rss}; non-200 answers and \
         socket errors: {errors} ({})",
        met(all >= goal),
        met(errors == 0)
    )
}

/// The fixed-rate runs' section of the report, with the fsync receiver's verdict.
fn paced_report(settings: &Settings, runs: &[(Target, Sample, PacedResult)], events: usize) -> String {
    let held: u64 = runs.iter().map(|(_, _, result)| result.held).sum();
    let sent: u64 =
        runs.iter().map(|(_, _, r)| r.outcome.ok + r.outcome.non_ok + r.outcome.socket_errors).sum();
    let mut out = format!(
        "\n### the receivers at a steady {rate:.0} requests/s ({secs} s each, open loop)\n\n\
         generator: built-in, paced: {connections} keep-alive connections, request k of connection i due at \
         start + ({connections}k + i) / {rate:.0} s, {events} events a request (eventIds unique across the run); \
         latency from the due time when the connection's previous answer came after it (wrk2's correction for \
         coordinated omission: {held} of {sent} sends were held so), else from the send. Server CPU per request \
         includes what the receiver spends idle between requests (its threads' wake-ups)\n\n\
         | target | offered | answered/s | p50 | p90 | p99 | p99.9 | max | server CPU/request | fdatasync/s | \
         requests per group | cores | non-200 | socket errors |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n",
        rate = settings.paced_rate,
        secs = settings.paced.map_or(0, |d| d.as_secs()),
        connections = settings.paced_connections,
    );
    for (target, sample, result) in runs {
        let outcome = &result.outcome;
        let seconds = outcome.seconds.max(1e-9);
        let (groups, syncs) = sample.journal.unwrap_or((0, 0));
        let quantile = |q: f64| latency(result.histogram.quantile(q));
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} µs | {:.0} | {:.1} | {} | {} | {} |",
            target.name(),
            settings.paced_rate,
            outcome.ok as f64 / seconds,
            quantile(0.50),
            quantile(0.90),
            quantile(0.99),
            quantile(0.999),
            quantile(1.0),
            sample.server_cpu / sample.answered() * 1e6,
            syncs as f64 / seconds,
            sample.answered() / groups.max(1) as f64,
            sample.cores.name(),
            outcome.non_ok,
            outcome.socket_errors,
        );
    }
    if let Some((_, sample, result)) = runs.iter().find(|(target, ..)| *target == Target::Fsync) {
        let p99 = result.histogram.quantile(0.99);
        let _ = write!(
            out,
            "\nverdict: fsync p99 ≤ {} at {:.0} requests/s: {} (p99 {}, cores {}{})",
            latency(PACED_P99_LIMIT_US),
            settings.paced_rate,
            met(p99 <= PACED_P99_LIMIT_US),
            latency(p99),
            sample.cores.name(),
            if sample.cores == Cores::Near { "" } else { ": not the near state the targets are judged on" },
        );
    }
    out
}

/// The target's requests/s over the ceiling's, round by round (the two runs of a round are
/// seconds apart, so drift and the VM's state changes hit them alike), keeping only the rounds
/// whose two runs were both in `state` when one is given.
fn paired_ratios(samples: &[Vec<Sample>; TARGETS], target: Target, state: Option<Cores>) -> Vec<f64> {
    paired(samples, target, Target::Ceiling, state, Sample::requests_per_second)
}

/// `f` of the target's run over `f` of the reference's run of the same round, for the rounds
/// whose two runs were both in `state` (all rounds when `None`).
fn paired(
    samples: &[Vec<Sample>; TARGETS],
    target: Target,
    reference: Target,
    state: Option<Cores>,
    f: impl Fn(&Sample) -> f64,
) -> Vec<f64> {
    samples[reference as usize]
        .iter()
        .zip(&samples[target as usize])
        .filter(|(r, x)| state.is_none_or(|state| r.cores == state && x.cores == state))
        .map(|(r, x)| f(x) / f(r))
        .collect()
}

/// The median of the target's paired ratios over the rounds in `state`, and their number;
/// `None` when no round was.
fn state_ratio(samples: &[Vec<Sample>; TARGETS], target: Target, state: Cores) -> Option<(f64, usize)> {
    state_ratio_to(samples, target, Target::Ceiling, state)
}

/// [`state_ratio`] against another reference than the ceiling.
fn state_ratio_to(
    samples: &[Vec<Sample>; TARGETS],
    target: Target,
    reference: Target,
    state: Cores,
) -> Option<(f64, usize)> {
    let ratios = paired(samples, target, reference, Some(state), Sample::requests_per_second);
    let n = ratios.len();
    (n > 0).then(|| (median(&ratios), n))
}

/// A current receiver against the baseline's run of the same mode: the median of the
/// round-by-round requests/s ratios, over all rounds and per core state, then both sides'
/// median server CPU per request and p99.
fn against_baseline(samples: &[Vec<Sample>; TARGETS], target: Target) -> String {
    let Some(baseline) = target.baseline() else { return String::new() };
    let mode = if target == Target::None { "none" } else { "fsync" };
    let all = median(&paired(samples, target, baseline, None, Sample::requests_per_second));
    let rounds = |n: usize| if n == 1 { "1 round".to_owned() } else { format!("{n} rounds") };
    let state = |state: Cores| match state_ratio_to(samples, target, baseline, state) {
        Some((ratio, n)) => format!("{}: {ratio:.2}×, {}", state.name(), rounds(n)),
        None => format!("{}: –", state.name()),
    };
    let cpu = |t: Target| median_of(&samples[t as usize], |x| x.server_cpu / x.answered() * 1e6);
    let p99 = |t: Target| median_of(&samples[t as usize], |x| x.outcome.p99_us);
    let cpu_ratio = median(&paired(samples, target, baseline, None, |x| x.server_cpu / x.answered()));
    format!(
        "current/baseline, {mode}: {all:.2}× ({}; {}); server CPU/request {:.1} µs vs {:.1} µs ({cpu_ratio:.2}×, \
         median of the round ratios); p99 {} vs {}",
        state(Cores::Near),
        state(Cores::Far),
        cpu(target),
        cpu(baseline),
        latency(p99(target)),
        latency(p99(baseline)),
    )
}

/// Each receiver's ratio to the ceiling over the rounds in which both runs had CPU 0 and CPU 1
/// near (sharing a cache), and over those in which both had them far apart (`support/cores.rs`).
fn by_core_state(samples: &[Vec<Sample>; TARGETS], targets: &[Target]) -> String {
    let mut out = format!(
        "by CPU 0 ↔ CPU 1 round trip around the runs (far: ≥ {:.0} ns before and after; a round counts when \
         its ceiling run and the target's run were both in one state):",
        cores::FAR_NS
    );
    for &target in &targets[1..] {
        let mut parts = Vec::new();
        for state in [Cores::Near, Cores::Far] {
            parts.push(match state_ratio(samples, target, state) {
                None => format!("{} –", state.name()),
                Some((ratio, n)) => format!("{} {ratio:.2} ({n} rounds)", state.name()),
            });
        }
        out.push_str(&format!("\n  {} / ceiling: {}", target.name(), parts.join(", ")));
    }
    out
}

fn met(yes: bool) -> &'static str {
    if yes {
        "met"
    } else {
        "NOT met"
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Threads of this process now.
fn own_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, Iterator::count)
}

/// Waits until an in-process server (the ceiling, the bare loop) answers.
fn wait_until_serving(addr: SocketAddr) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match builtin::get(addr, "/") {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checks and profile

struct Check {
    passed: bool,
    text: String,
}

/// For each receiver: every acknowledged event must be in its `events.jsonl`, and every line
/// there must be an event it counted as accepted; the surplus over the acknowledged ones is
/// bounded by the requests in flight when the runs stopped.
fn verify(bench: &Bench) -> Check {
    let mut passed = true;
    let mut text = String::new();
    for (target, served) in Target::RECEIVERS.into_iter().zip(&bench.receivers) {
        let ledger = &served.ledger;
        let quarantine = served.events_file.with_file_name("quarantine.jsonl");
        let quarantined = std::fs::metadata(&quarantine).map_or(0, |m| m.len());
        let ok = ledger.problems.is_empty() && quarantined == 0;
        passed &= ok;
        let _ = write!(
            text,
            "{}events written, {} (all its runs): events.jsonl got {} lines; {} events in 200-answered \
             batches; /metrics events_accepted_total grew by {}; written but not acknowledged (in flight when a \
             run stopped; at most {}): {}; quarantine.jsonl: {quarantined} bytes; longest wait after a run for \
             delivery to catch up: {:.1} s: {}",
            if text.is_empty() { "" } else { "\n" },
            target.name(),
            ledger.lines,
            ledger.acknowledged,
            ledger.accepted,
            ledger.in_flight_bound,
            ledger.lines as i64 - ledger.acknowledged as i64,
            ledger.longest_settle.as_secs_f64(),
            if ok { "OK" } else { "FAILURE" },
        );
        for problem in &ledger.problems {
            let _ = write!(text, "\n  {problem}");
        }
    }
    Check { passed, text }
}

/// One extra, unscored run against `target` with `perf record -g` attached to its server process
/// for `secs` seconds after a one-second start; returns perf's top entries (self time, then
/// inclusive time). The ceiling's process is this one (its other threads are idle meanwhile).
fn profile(bench: &mut Bench, target: Target, secs: u64) -> Result<String, Box<dyn std::error::Error>> {
    let name = target.name();
    let pid = bench.pid(target);
    let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("load-{}.perf.data", target.slug()));
    let pid = pid.to_string();
    let run = Duration::from_secs(secs + 3);
    let (status, sample) = std::thread::scope(|scope| {
        let load = scope.spawn(|| bench.run(target, run));
        std::thread::sleep(Duration::from_secs(1));
        let status = Command::new("perf")
            .args(["record", "-F", "999", "-g", "-p", &pid, "-o"])
            .arg(&data)
            .args(["--", "sleep", &secs.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("perf: {e} (on Debian: apt-get install -y linux-perf)"))
            })
            .and_then(|mut child| wait_bounded(&mut child, Duration::from_secs(secs + 30)));
        (status, load.join().expect("load thread panicked"))
    });
    let sample = sample?;
    let status = status?;
    if !status.success() {
        return Err(format!("perf record failed ({status})").into());
    }
    let mut text = format!(
        "\n### profile of the {name} (perf record -F 999 -g -p {pid}, {secs} s inside an extra {} s run at \
         {:.0} requests/s, not scored)\n\nperf data: {}\n",
        run.as_secs(),
        sample.requests_per_second(),
        data.display()
    );
    for (title, mode) in [("self time", "--no-children"), ("inclusive time (self + callees)", "--children")] {
        let output = Command::new("perf")
            .args([
                "report",
                "--stdio",
                mode,
                "-g",
                "none",
                "--sort",
                "dso,symbol",
                "--percent-limit",
                "1",
                "-i",
            ])
            .arg(&data)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let report = String::from_utf8_lossy(&output.stdout);
        let _ = writeln!(text, "\ntop entries by {title}:\n```");
        for line in report.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).take(25) {
            let _ = writeln!(text, "{}", line.trim_end_matches([' ', '-']));
        }
        let _ = writeln!(text, "```");
    }
    Ok(text)
}

/// Waits for `child`, killing it (by PID) after `limit`.
fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> io::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("overstayed its time; killed"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Table

/// The median of `f` over the samples (`support::median`).
fn median_of(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    median(&samples.iter().map(f).collect::<Vec<_>>())
}

/// Half the inter-quartile range of `f` over the samples, as a fraction of its median.
fn half_iqr(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    let mut values: Vec<f64> = samples.iter().map(f).collect();
    values.sort_by(f64::total_cmp);
    (quantile(&values, 0.75) - quantile(&values, 0.25)) / 2.0 / median(&values)
}

/// `12345.6` → `12.3 k`.
fn si(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

/// Microseconds as `850 µs` or `1.25 ms`.
fn latency(micros: f64) -> String {
    if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.0} µs")
    }
}

/// The markdown table: medians over the scored rounds; non-200 and socket errors over every run
/// (warm-up and profile included); peak RSS per server process (KiB).
fn table(
    samples: &[Vec<Sample>; TARGETS],
    totals: &[Totals; TARGETS],
    events: usize,
    peaks: &[Option<u64>; TARGETS],
    own_peaks: &[Option<u64>; TARGETS],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| target | requests/s | ±½ IQR | × ceiling | events/s | p50 | p99 | server CPU/request | \
         generator CPU/request | non-200 | socket errors | peak RSS |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for target in Target::ALL {
        let s = &samples[target as usize];
        if s.is_empty() {
            continue;
        }
        let rps = median_of(s, Sample::requests_per_second);
        let Totals { non_ok, socket_errors: errors, .. } = totals[target as usize];
        let peak = match target {
            Target::Ceiling | Target::Bare => {
                own_peaks[target as usize].map_or("n/a".to_owned(), |p| format!("≤ {:.1} MiB (Δ)", mib(p)))
            }
            _ => peaks[target as usize].map_or("n/a".to_owned(), |p| format!("{:.1} MiB", mib(p))),
        };
        let _ = writeln!(
            out,
            "| {} | {} | ±{:.1}% | {:.2}× | {} | {} | {} | {:.1} µs | {:.1} µs | {non_ok} | {errors} | {peak} |",
            target.name(),
            si(rps),
            half_iqr(s, Sample::requests_per_second) * 100.0,
            median(&paired_ratios(samples, target, None)),
            si(rps * events as f64),
            latency(median_of(s, |x| x.outcome.p50_us)),
            latency(median_of(s, |x| x.outcome.p99_us)),
            median_of(s, |x| x.server_cpu / x.answered() * 1e6),
            median_of(s, |x| x.outcome.generator_cpu / x.answered() * 1e6),
        );
    }
    out
}
