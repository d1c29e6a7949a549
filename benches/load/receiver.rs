//! The real receiver as a child process: spawned with a fresh data directory, waited for on
//! `/healthz`, measured through `/proc`, and killed (by PID) when dropped. Also the `/proc`
//! readings the other child server (adnanh/webhook) shares.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::builtin;

/// Time the receiver gets to answer `/healthz` after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The receiver binary cargo built for this bench: the code being measured.
pub(crate) const CURRENT: &str = env!("CARGO_BIN_EXE_egnyte-receiver");

/// A running `egnyte-receiver serve`.
pub(crate) struct Receiver {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Receiver {
    /// Spawns `program` (an egnyte-receiver binary: [`CURRENT`], or a baseline built from other
    /// code) on `addr` with `--data-dir ROOT/data`, the `extra` options, and its stderr in
    /// `ROOT/receiver.log`. The token goes through the environment (`EGNYTE_RECEIVER_AUTH_TOKEN`),
    /// not the command line.
    pub(crate) fn spawn(
        program: &Path,
        root: &Path,
        addr: SocketAddr,
        io_threads: usize,
        token: &str,
        extra: &[&str],
    ) -> io::Result<Receiver> {
        std::fs::create_dir_all(root)?;
        let data_dir = root.join("data");
        let log = root.join("receiver.log");
        let child = Command::new(program)
            .arg("serve")
            .args(["--listen", &addr.to_string(), "--io-threads", &io_threads.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .env("EGNYTE_RECEIVER_AUTH_TOKEN", token)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()?;
        let mut receiver = Receiver { child, addr, log };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = receiver.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "the receiver exited ({status}) before answering /healthz; its log:\n{}",
                    receiver.log_tail()
                )));
            }
            if builtin::get(addr, "/healthz").is_ok_and(|reply| reply.status == 200) {
                return Ok(receiver);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "the receiver did not answer /healthz within {START_TIMEOUT:?}; its log:\n{}",
                    receiver.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The receiver's data directory.
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.log.with_file_name("data")
    }

    /// The value of one un-labelled counter in `/metrics`.
    pub(crate) fn metric(&self, name: &str) -> io::Result<u64> {
        let reply = builtin::get(self.addr, "/metrics")?;
        let text = String::from_utf8_lossy(&reply.body);
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("no {name} in /metrics")))
    }

    /// The last lines of the receiver's stderr.
    pub(crate) fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The receiver's stderr log file.
    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // `Child::kill` signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system CPU time of process `pid` so far, in seconds (clock-tick resolution).
pub(crate) fn process_cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start with field 3, the state.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15.
    Ok((ticks(11) + ticks(12)) / clock_ticks_per_second())
}

/// A `kB` field of `/proc/PID/status` (`VmHWM`, `VmRSS`), in KiB.
pub(crate) fn process_status_kib(pid: u32, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()
        })
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

pub(crate) fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}
