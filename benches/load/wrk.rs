//! Runs `wrk` with `post.lua` and reads back the one `LOAD_RESULT` line its `done` prints.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Outcome;

/// Extra time a `wrk` run may take beyond its duration before it is killed.
const GRACE: Duration = Duration::from_secs(20);

/// `wrk --version`'s first line when `wrk` can be run, else `None`.
pub(crate) fn version() -> Option<String> {
    let output = Command::new("wrk").arg("--version").stdin(Stdio::null()).output().ok()?;
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    Some(text.lines().next().unwrap_or("wrk").split(" Copyright").next().unwrap_or("wrk").trim().to_owned())
}

/// How to run `wrk`.
pub(crate) struct Wrk {
    pub script: PathBuf,
    pub fixture: PathBuf,
    pub path: String,
    /// `None`: no `Authorization` header.
    pub token: Option<String>,
    pub nonce: u32,
    pub connections: usize,
    pub threads: usize,
}

/// CPU time (user + system) of this process's waited-for children, in seconds.
fn children_cpu_seconds() -> f64 {
    // SAFETY: an all-zero `rusage` is a valid value; `getrusage` only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

impl Wrk {
    /// One `wrk` run of `duration` against `addr`; killed (by PID) if it overstays.
    pub(crate) fn run(&self, addr: SocketAddr, duration: Duration, invocation: u16) -> io::Result<Outcome> {
        let url = format!("http://{addr}{}", self.path);
        let cpu_before = children_cpu_seconds();
        let mut child = Command::new("wrk")
            .args(["-c", &self.connections.to_string(), "-t", &self.threads.to_string()])
            .args(["-d", &format!("{}s", duration.as_secs().max(1)), "--timeout", "10s", "--latency"])
            .arg("-s")
            .arg(&self.script)
            .arg(&url)
            .arg("--")
            .arg(&self.fixture)
            .arg(&self.path)
            .arg(self.token.as_deref().unwrap_or("-"))
            .arg(self.nonce.to_string())
            .arg(invocation.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + duration + GRACE;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(io::ErrorKind::TimedOut, "wrk overstayed its duration; killed"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let generator_cpu = children_cpu_seconds() - cpu_before;
        // wrk's output is a few hundred bytes: it fits the pipes, so reading after exit is safe.
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stdout.take() {
            pipe.read_to_string(&mut stdout)?;
        }
        if let Some(mut pipe) = child.stderr.take() {
            pipe.read_to_string(&mut stderr)?;
        }
        let line = stdout.lines().find_map(|l| l.strip_prefix("LOAD_RESULT "));
        let Some(line) = line.filter(|_| status.success()) else {
            return Err(io::Error::other(format!("wrk failed ({status}):\n{stdout}{stderr}")));
        };
        let field = |name: &str| -> io::Result<f64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| io::Error::other(format!("wrk result has no {name}: {line}")))
        };
        let requests = field("requests")? as u64;
        let status_errors = field("status_errors")? as u64;
        Ok(Outcome {
            ok: requests - status_errors.min(requests),
            non_ok: status_errors,
            socket_errors: (field("connect")? + field("read")? + field("write")? + field("timeout")?) as u64,
            seconds: field("duration_us")? * 1e-6,
            p50_us: field("p50_us")?,
            p99_us: field("p99_us")?,
            generator_cpu,
        })
    }
}
