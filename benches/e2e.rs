//! End-to-end benchmark: the real receiver in its production configuration, loaded by
//! the project's own Egnyte simulator (`egnyte-receiver simulate`), once per durability mode.
//! Run with `cargo bench --bench e2e` (binary built with the bench profile); `BENCH_QUICK=1`
//! for a smoke run (3 s per mode instead of 10 s).
//!
//! ## What runs
//! * **Receiver**: `serve --listen 127.0.0.1:PORT --data-dir TMP/MODE/data --durability MODE`
//!   with a token (`EGNYTE_RECEIVER_AUTH_TOKEN`) and every other option at its default: fsync
//!   group commit (or `none`), the default dedup ring, the default sink
//!   (`jsonl:DATA_DIR/events.jsonl`). Waited for on `/healthz` (at most [`START_TIMEOUT`]);
//!   killed by PID when its run is over, also on error.
//! * **Load**: `simulate --connections 64 --batch-size 10 --duplicates 0.1` for the run's
//!   duration, as fast as the receiver answers (closed loop: one request in flight per
//!   connection), realistic events of all 34 types with 2% unknown ones, the token in
//!   `Authorization`, then `--verify-jsonl DATA_DIR/events.jsonl`: every acknowledged event
//!   must be in the sink file exactly once (the bench fails otherwise). The simulator is killed
//!   by PID if it overstays its duration by [`RUN_GRACE`].
//! * **Report**: both summaries as the simulator prints them, then one comparison line
//!   (requests/s, events/s, p50/p99 of each mode, and none's multiple of fsync), with the
//!   machine line above. The generator shares the CPUs with the receiver, so these are
//!   figures of the whole pipeline on one machine, not of the receiver alone (`benches/load.rs`
//!   with `wrk` measures that).
//!
//! The temporary directory is removed at the end, and kept (its path printed) when a run fails.

#[allow(dead_code)]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egnyte_receiver::test_dir::{free_port, TempDir};

/// The receiver binary, built with the bench profile.
const BIN: &str = env!("CARGO_BIN_EXE_egnyte-receiver");
/// Load duration per mode.
const DURATION: Duration = Duration::from_secs(10);
/// Load duration per mode with `BENCH_QUICK=1`.
const QUICK_DURATION: Duration = Duration::from_secs(3);
/// Simulated Egnyte connections.
const CONNECTIONS: &str = "64";
/// Events per request: 10, Egnyte's usual batch.
const BATCH_SIZE: &str = "10";
/// Share of requests re-sending an acknowledged batch.
const DUPLICATES: &str = "0.1";
/// Longest wait for a started receiver to answer `/healthz`.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a simulator run gets beyond its duration (retries, then delivery and verification)
/// before it is killed.
const RUN_GRACE: Duration = Duration::from_secs(120);
/// The token the receiver wants and the simulator sends.
const TOKEN: &str = "Token e2e-bench-token";

/// A child process killed (by PID) and waited for on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let duration = if quick { QUICK_DURATION } else { DURATION };
    let mut root = TempDir::new("bench-e2e");
    println!("{}", support::machine("receiver and simulator share the CPUs"));
    println!(
        "load: simulate --connections {CONNECTIONS} --batch-size {BATCH_SIZE} --duplicates {DUPLICATES} for {} s per mode, --verify-jsonl",
        duration.as_secs()
    );
    let mut results = Vec::new();
    for mode in ["fsync", "none"] {
        match run_mode(&root.path().join(mode), mode, duration) {
            Ok(summary) => {
                println!("\n## --durability {mode}\n{summary}");
                results.push((mode, summary));
            }
            Err(error) => {
                // Kept for a look (`exit` runs no destructor: this line is the one saying where).
                root.keep();
                eprintln!(
                    "e2e bench, --durability {mode}: {error}\n(data kept in {})",
                    root.path().display()
                );
                std::process::exit(1);
            }
        }
    }
    println!("\n{}", comparison(&results));
    drop(root); // every run passed: the directory goes
}

/// Starts a receiver in `mode` under `dir`, runs the simulator against it, stops it; returns the
/// simulator's summary, or why the run failed.
fn run_mode(dir: &Path, mode: &str, duration: Duration) -> Result<String, String> {
    let data = dir.join("data");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let addr = free_port();
    let log = std::fs::File::create(dir.join("receiver.log")).map_err(|e| e.to_string())?;
    let receiver = Command::new(BIN)
        .args(["serve", "--listen", &addr.to_string(), "--durability", mode])
        .arg("--data-dir")
        .arg(&data)
        .env("EGNYTE_RECEIVER_AUTH_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the receiver: {e}"))?;
    let receiver = Guard(receiver);
    wait_healthy(addr)?;
    let summary = simulate(addr, &data.join("events.jsonl"), duration)?;
    drop(receiver);
    Ok(summary)
}

/// Runs the simulator to its end (bounded); its summary when it exited 0.
fn simulate(addr: SocketAddr, sink: &Path, duration: Duration) -> Result<String, String> {
    let mut child = Command::new(BIN)
        .arg("simulate")
        .args(["--url", &format!("http://{addr}/egnyte/webhook"), "--auth-token", TOKEN])
        .args(["--connections", CONNECTIONS, "--batch-size", BATCH_SIZE, "--duplicates", DUPLICATES])
        .args(["--duration", &duration.as_secs().to_string(), "--progress", "0", "--retry-for", "10"])
        .arg("--verify-jsonl")
        .arg(sink)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let mut child = Guard(child);
    let deadline = Instant::now() + duration + RUN_GRACE;
    let status = loop {
        if let Some(status) = child.0.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() > deadline {
            return Err(format!("the simulator ran longer than {:?}", duration + RUN_GRACE));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let summary = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(format!("the simulator exited with {status}:\n{summary}"));
    }
    Ok(summary)
}

/// One value from a summary line `topic: key value, …`.
fn value(summary: &str, topic: &str, key: &str) -> f64 {
    summary
        .lines()
        .find_map(|line| line.strip_prefix(topic)?.strip_prefix(": "))
        .and_then(|rest| rest.split(", ").find_map(|pair| pair.strip_prefix(key)?.strip_prefix(' ')))
        .and_then(|v| v.split(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `e2e: fsync 1234 req/s, 12340 events/s, p50 … ms, p99 … ms | none … | none/fsync 1.8× req/s`.
fn comparison(results: &[(&str, String)]) -> String {
    let mut parts: Vec<String> = results
        .iter()
        .map(|(mode, s)| {
            format!(
                "{mode} {:.0} req/s, {:.0} events/s, p50 {:.3} ms, p99 {:.3} ms",
                value(s, "requests", "per-second"),
                value(s, "events", "per-second"),
                value(s, "latency", "p50"),
                value(s, "latency", "p99"),
            )
        })
        .collect();
    if let [(_, fsync), (_, none)] = results {
        parts.push(format!(
            "none/fsync {:.2}× req/s",
            value(none, "requests", "per-second") / value(fsync, "requests", "per-second")
        ));
    }
    format!("e2e: {}", parts.join(" | "))
}

/// Waits (bounded) until `GET /healthz` answers 200.
fn wait_healthy(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if healthz(addr).is_ok_and(|ok| ok) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("the receiver did not answer /healthz within {START_TIMEOUT:?}"))
}

fn healthz(addr: SocketAddr) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(&head == b"HTTP/1.1 200")
}
