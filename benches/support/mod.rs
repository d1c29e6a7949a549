//! A small interleaved benchmark harness: the machine is shared and noisy, so contenders are
//! compared inside the same rounds rather than one after the other.
//!
//! For each workload every contender is calibrated to fill one round slot (~30 ms), then the
//! rounds run: in round `r` each contender runs its calibrated iteration count once, starting
//! from contender `r mod n` so no contender always runs first or last. The time per iteration
//! of every slot is recorded; the table reports the **median** per contender, the spread between
//! the quartiles, and ratios of medians against the workload's named baseline. A burst of load
//! from a neighbour hits all contenders of a round alike and falls out of the median.
//!
//! The distance between CPU 0 and CPU 1 is probed before the first round and after each one
//! (`cores.rs`: on this project's VM it switches between two states), and every row keeps its
//! per-round times with each round's state, so a bench can give its ratios per state too.
//!
//! Invariant checked before timing: every contender returns the number of events it saw, and it
//! must equal the workload's event count, so no contender can win by doing less of the work.
//!
//! Command line: `cargo bench --bench parse -- [FILTER]` runs only the workloads whose name
//! contains FILTER (a trailing `$` anchors it at the end: `batch-10$` is not `batch-100`); arguments starting with `-` (cargo passes `--bench`) are ignored.
//! Environment: `BENCH_QUICK=1` for a smoke run (3 rounds of 10 ms slots), `BENCH_ROUNDS` and
//! `BENCH_SLOT_MS` to override the defaults, `BENCH_CONTENDER=TEXT` to run only the contenders
//! whose name contains TEXT (for profiling one of them under `perf`).

pub(crate) mod cores;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cores::Cores;

/// Rounds in a full run: enough for a stable median with a few noisy rounds thrown out.
const ROUNDS: usize = 21;
/// Rounds in a quick (smoke) run.
const QUICK_ROUNDS: usize = 3;
/// Target wall time of one contender's slot in one round.
const SLOT: Duration = Duration::from_millis(30);
/// Slot length in a quick run.
const QUICK_SLOT: Duration = Duration::from_millis(10);
/// Calibration stops doubling once a trial run lasts this fraction of a slot.
const CALIBRATION_FRACTION: u32 = 8;

/// How this run was asked to behave (command line and environment).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub rounds: usize,
    pub slot: Duration,
    pub quick: bool,
    filter: Option<String>,
    contender: Option<String>,
}

impl Settings {
    /// Reads the filter argument and the `BENCH_*` variables (see the module docs).
    pub(crate) fn from_env() -> Settings {
        let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let (default_rounds, default_slot) = if quick { (QUICK_ROUNDS, QUICK_SLOT) } else { (ROUNDS, SLOT) };
        let rounds = number("BENCH_ROUNDS").map_or(default_rounds, |n| n.max(1) as usize);
        let slot = number("BENCH_SLOT_MS").map_or(default_slot, |ms| Duration::from_millis(ms.max(1)));
        let contender = std::env::var("BENCH_CONTENDER").ok();
        Settings { rounds, slot, quick, filter, contender }
    }

    /// True when a workload of this name should run.
    pub(crate) fn wants(&self, workload: &str) -> bool {
        match self.filter.as_deref() {
            None => true,
            Some(f) => match f.strip_suffix('$') {
                Some(suffix) => workload.ends_with(suffix),
                None => workload.contains(f),
            },
        }
    }
}

/// One way of doing a workload's job. `run` does one iteration and returns how many events it
/// saw (the harness checks that count, and keeps the value alive with `black_box`).
pub(crate) struct Contender<'a> {
    name: &'static str,
    run: Box<dyn FnMut() -> usize + 'a>,
}

impl<'a> Contender<'a> {
    pub(crate) fn new(name: &'static str, run: impl FnMut() -> usize + 'a) -> Contender<'a> {
        Contender { name, run: Box::new(run) }
    }
}

/// One body and the contenders that process it.
pub(crate) struct Workload<'a> {
    pub name: String,
    /// Body length in bytes (for MB/s).
    pub bytes: usize,
    /// Events in the body (for events/s, and the count every contender must report).
    pub events: usize,
    /// Name of the contender the ratios are taken against.
    pub baseline: &'static str,
    pub contenders: Vec<Contender<'a>>,
}

/// The measured result of one contender on one workload.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub workload: String,
    pub contender: &'static str,
    /// Median seconds per iteration over the rounds.
    pub median: f64,
    /// Inter-quartile range of the per-round times, as a fraction of the median.
    pub spread: f64,
    pub mb_per_s: f64,
    pub events_per_s: f64,
    /// Baseline median / this median: above 1 means faster than the baseline. `None` when the
    /// baseline was filtered out (`BENCH_CONTENDER`).
    pub vs_baseline: Option<f64>,
    /// Seconds per iteration in each round, in round order.
    pub times: Vec<f64>,
    /// Where CPU 0 and CPU 1 stood during each round.
    pub cores: Vec<Cores>,
}

impl Row {
    /// Per core state: the median over that state's rounds of `baseline`'s time / this row's
    /// (above 1: faster than the baseline), and the number of rounds.
    pub(crate) fn ratio_when(&self, baseline: &Row, state: Cores) -> Option<(f64, usize)> {
        let ratios: Vec<f64> = (self.times.iter().zip(&baseline.times))
            .zip(&self.cores)
            .filter(|(_, &cores)| cores == state)
            .map(|((ours, theirs), _)| theirs / ours)
            .collect();
        (!ratios.is_empty()).then(|| (median(&ratios), ratios.len()))
    }
}

/// Seconds per iteration of `iters` back-to-back runs.
fn time_slot(run: &mut dyn FnMut() -> usize, iters: u64) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(run());
    }
    start.elapsed().as_secs_f64() / iters as f64
}

/// Iterations that make one slot last about `slot`.
fn calibrate(run: &mut dyn FnMut() -> usize, slot: Duration) -> u64 {
    let target = slot.as_secs_f64();
    let mut iters = 1u64;
    loop {
        let per_iter = time_slot(run, iters);
        if per_iter * iters as f64 >= target / f64::from(CALIBRATION_FRACTION) || iters >= 1 << 40 {
            return ((target / per_iter.max(1e-12)) as u64).max(1);
        }
        iters *= 2;
    }
}

/// The median of `values` (in any order; the mean of the two middle ones for an even count), NaN
/// when there are none. The one median of every bench (`journal.rs` and `load.rs` use it too).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Nearest-rank quantile of sorted data.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Checks, calibrates and runs every contender of `workload` in interleaved rounds.
pub(crate) fn run(settings: &Settings, mut workload: Workload<'_>) -> Vec<Row> {
    if let Some(wanted) = &settings.contender {
        workload.contenders.retain(|c| c.name.contains(wanted.as_str()));
    }
    if workload.contenders.is_empty() {
        return Vec::new();
    }
    let n = workload.contenders.len();
    eprint!("{} ", workload.name);
    for contender in &mut workload.contenders {
        let seen = (contender.run)();
        assert_eq!(
            seen, workload.events,
            "{} / {}: saw {seen} events, the body has {}",
            workload.name, contender.name, workload.events
        );
    }
    let iters: Vec<u64> =
        workload.contenders.iter_mut().map(|c| calibrate(&mut *c.run, settings.slot)).collect();
    // One discarded round: caches, branch predictors and the allocator settle.
    if !settings.quick {
        for (contender, &iters) in workload.contenders.iter_mut().zip(&iters) {
            time_slot(&mut *contender.run, iters);
        }
    }
    let mut times = vec![Vec::with_capacity(settings.rounds); n];
    let mut probe = cores::round_trip_ns();
    let mut states = Vec::with_capacity(settings.rounds);
    for round in 0..settings.rounds {
        for k in 0..n {
            let i = (round + k) % n;
            times[i].push(time_slot(&mut *workload.contenders[i].run, iters[i]));
        }
        let after = cores::round_trip_ns();
        states.push(Cores::around(probe, after));
        probe = after;
        eprint!(".");
    }
    eprintln!();

    let sorted: Vec<Vec<f64>> = times
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.sort_by(f64::total_cmp);
            t
        })
        .collect();
    let medians: Vec<f64> = sorted.iter().map(|t| median(t)).collect();
    let baseline = workload.contenders.iter().position(|c| c.name == workload.baseline).map(|i| medians[i]);
    workload
        .contenders
        .iter()
        .zip(sorted.iter().zip(&medians).zip(times))
        .map(|(contender, ((sorted, &median), times))| Row {
            workload: workload.name.clone(),
            contender: contender.name,
            median,
            spread: (quantile(sorted, 0.75) - quantile(sorted, 0.25)) / median,
            mb_per_s: workload.bytes as f64 / median / 1e6,
            events_per_s: workload.events as f64 / median,
            vs_baseline: baseline.map(|b| b / median),
            times,
            cores: states.clone(),
        })
        .collect()
}

/// `1234567.0` → `1.23 M`.
fn si(value: f64) -> String {
    let (scaled, unit) = match value {
        v if v >= 1e9 => (v / 1e9, " G"),
        v if v >= 1e6 => (v / 1e6, " M"),
        v if v >= 1e3 => (v / 1e3, " k"),
        v => (v, ""),
    };
    format!("{scaled:.2}{unit}")
}

/// `0.000_001_5` s → `1.50 µs`.
fn duration(seconds: f64) -> String {
    match seconds {
        s if s >= 1e-3 => format!("{:.2} ms", s * 1e3),
        s if s >= 1e-6 => format!("{:.2} µs", s * 1e6),
        s => format!("{:.0} ns", s * 1e9),
    }
}

/// The rows as a markdown table (MB = 10^6 bytes).
pub(crate) fn table(baseline: &str, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "| workload | contender | time/body | MB/s | events/s | × vs {baseline} | ±½ IQR |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {} | {} | ±{:.1}% |",
            row.workload,
            row.contender,
            duration(row.median),
            row.mb_per_s,
            si(row.events_per_s),
            row.vs_baseline.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×")),
            row.spread * 50.0,
        );
    }
    out
}

/// One line naming the machine: CPU model, cores, `detail` (what else the bench wants said:
/// simd-json's implementation, cache sizes), load.
pub(crate) fn machine(detail: &str) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim()))
        .unwrap_or("unknown CPU");
    let cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let usable = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("CPU: {model}, {cpus} logical CPUs ({usable} usable); {detail}; load average: {}", load_average())
}

/// The 1-minute load average, to show how busy the shared machine was.
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
