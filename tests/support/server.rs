//! The real `egnyte-receiver serve` binary in a guard, and raw-socket HTTP/1.1 helpers to talk to
//! it.
//!
//! * [`Server`] (built with [`ServerBuilder`]) starts the binary on a free loopback port with a
//!   fresh data directory under the system temp dir, waits (bounded) until `/healthz` answers,
//!   collects stdout and stderr, and on drop kills the child by its PID, waits for it and removes
//!   the directory, so a failed assertion still stops the server.
//! * [`Client`] is one TCP connection: send bytes, read one full response (status, headers, body
//!   by `Content-Length`) with a bounded wait, or check that the server closed the connection.
//! * Every loop here is bounded in count and time: nothing waits more than [`READ_TIMEOUT`] for
//!   one read or [`START_TIMEOUT`] for the server to come up.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_egnyte-receiver");

/// The default webhook path.
pub(crate) const PATH: &str = "/egnyte/webhook";

/// Longest wait for one response (generous: a loaded 2-core machine).
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for a started server to answer `/healthz`.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts at starting a server when the free port was taken between probe and bind.
const START_ATTEMPTS: usize = 5;

pub(crate) use egnyte_receiver::test_dir::TempDir;

/// How a test wants its server started.
#[derive(Debug, Default)]
pub(crate) struct ServerBuilder {
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    listen_via_env: bool,
    data_dir_via_env: bool,
    path: Option<String>,
    file_size_limit: Option<u64>,
    open_files_limit: Option<u64>,
    temp: Option<TempDir>,
    token: Option<(String, String)>,
    ipv6: bool,
    stdout_unread: bool,
}

impl ServerBuilder {
    /// Keeps the server's stdout a pipe that nobody reads (a stalled reader): once the pipe is
    /// full, writes to it block. `Server::stdout_text` is then empty.
    pub(crate) fn stdout_unread(mut self) -> Self {
        self.stdout_unread = true;
        self
    }

    /// Listens on `[::1]` instead of `127.0.0.1`.
    pub(crate) fn ipv6(mut self) -> Self {
        self.ipv6 = true;
        self
    }

    /// Runs with `--auth-token TOKEN`; [`assert_still_healthy`] then sends it in `Authorization`.
    pub(crate) fn auth_token(mut self, token: &str) -> Self {
        self.args.push("--auth-token".into());
        self.args.push(token.into());
        self.token = Some(("Authorization".into(), token.into()));
        self
    }

    /// Tells the helpers which header and token authenticate (the test passes the options).
    pub(crate) fn credentials(mut self, header: &str, token: &str) -> Self {
        self.token = Some((header.into(), token.into()));
        self
    }

    /// Adds command-line arguments after `serve` (the builder adds `--listen` and `--data-dir`).
    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server (every `EGNYTE_RECEIVER_*` and `RUST_LOG` of
    /// the test process itself is removed first).
    pub(crate) fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Passes the listen address as `EGNYTE_RECEIVER_LISTEN` instead of `--listen`.
    pub(crate) fn listen_via_env(mut self) -> Self {
        self.listen_via_env = true;
        self
    }

    /// Passes the data directory as `EGNYTE_RECEIVER_DATA_DIR` instead of `--data-dir`.
    pub(crate) fn data_dir_via_env(mut self) -> Self {
        self.data_dir_via_env = true;
        self
    }

    /// The webhook path the helpers ([`Server::post`]) use; the test passes the option itself.
    pub(crate) fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    /// Limits the size of files the server may write (`RLIMIT_FSIZE`, soft limit only) and makes
    /// it ignore `SIGXFSZ`, so a write past the limit fails with `EFBIG` instead of killing it.
    /// [`Server::lift_file_size_limit`] lifts it again. Pipes (stdout, stderr) are not affected.
    pub(crate) fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    /// Limits the descriptors the server may hold (`RLIMIT_NOFILE`, soft and hard, so the
    /// server's raise of its soft limit to the hard one changes nothing).
    pub(crate) fn open_files_limit(mut self, descriptors: u64) -> Self {
        self.open_files_limit = Some(descriptors);
        self
    }

    /// Uses this directory (for example one holding a token file) instead of a fresh one; the
    /// data directory is `data/` inside it.
    pub(crate) fn temp_dir(mut self, temp: TempDir) -> Self {
        self.temp = Some(temp);
        self
    }

    /// Starts the server and waits until `/healthz` answers; panics (with the server's stderr)
    /// when it does not come up.
    pub(crate) fn start(mut self) -> Server {
        let temp = self.temp.take().unwrap_or_else(|| TempDir::new("receiver"));
        let data_dir = temp.path().join("data");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let addr = if self.ipv6 { free_port_v6().expect("[::1] is available") } else { free_port() };
            let mut child = match self.spawn(addr, &data_dir) {
                Ok(child) => child,
                Err(e) => panic!("cannot start {BIN}: {e}"),
            };
            let stdout = Arc::new(Mutex::new(Vec::new()));
            let stderr = Arc::new(Mutex::new(Vec::new()));
            let child_stdout = child.stdout.take().expect("piped stdout");
            let (unread_stdout, mut readers) = if self.stdout_unread {
                (Some(child_stdout), Vec::new())
            } else {
                (None, vec![collect(child_stdout, Arc::clone(&stdout))])
            };
            readers.push(collect(child.stderr.take().expect("piped stderr"), Arc::clone(&stderr)));
            let mut server = Server {
                child,
                addr,
                data_dir: data_dir.clone(),
                path: self.path.clone().unwrap_or_else(|| PATH.to_owned()),
                token: self.token.clone(),
                stdout,
                stderr,
                readers,
                temp: None,
                _unread_stdout: unread_stdout,
            };
            match server.wait_ready() {
                Ok(()) => {
                    server.temp = Some(temp);
                    return server;
                }
                Err(e) => {
                    last_error = format!("{e}\n--- stderr:\n{}", server.stderr_text());
                    let in_use = last_error.to_ascii_lowercase().contains("address already in use");
                    drop(server);
                    if !in_use {
                        break;
                    }
                }
            }
        }
        panic!("the server did not start: {last_error}");
    }

    fn spawn(&self, addr: SocketAddr, data_dir: &Path) -> io::Result<Child> {
        let mut command = Command::new(BIN);
        command.arg("serve");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("EGNYTE_RECEIVER_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        if self.listen_via_env {
            command.env("EGNYTE_RECEIVER_LISTEN", addr.to_string());
        } else {
            command.arg("--listen").arg(addr.to_string());
        }
        if self.data_dir_via_env {
            command.env("EGNYTE_RECEIVER_DATA_DIR", data_dir);
        } else {
            command.arg("--data-dir").arg(data_dir);
        }
        command.args(&self.args);
        for (name, value) in &self.env {
            command.env(name, value);
        }
        if let Some(limit) = self.file_size_limit {
            limit_file_size(&mut command, limit);
        }
        if let Some(limit) = self.open_files_limit {
            limit_open_files(&mut command, limit);
        }
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()
    }
}

/// Makes the child ignore `SIGXFSZ` and sets its soft `RLIMIT_FSIZE` (hard limit unlimited).
fn limit_file_size(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls (signal, setrlimit) are made,
    // on values owned by the closure; no allocation, no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::signal(libc::SIGXFSZ, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(io::Error::last_os_error());
            }
            let rlimit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: libc::RLIM_INFINITY };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sets the child's `RLIMIT_NOFILE`, soft and hard (so the server cannot raise it).
fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls (getrlimit, setrlimit) are
    // made, on values owned by the closure; no allocation, no lock.
    unsafe {
        command.pre_exec(move || {
            let mut rlimit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) != 0 {
                return Err(io::Error::last_os_error());
            }
            rlimit.rlim_cur = (limit as libc::rlim_t).min(rlimit.rlim_max);
            rlimit.rlim_max = rlimit.rlim_cur;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

// A loopback port nobody listens on right now (the server may still lose a race for it: the
// builder retries), and its `[::1]` variant.
pub(crate) use egnyte_receiver::test_dir::{free_port, free_port_v6};

/// Copies everything `from` produces into `into` until end of file.
fn collect(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// Starts a server with these extra arguments.
pub(crate) fn start(args: &[&str]) -> Server {
    ServerBuilder::default().args(args).start()
}

/// A running `egnyte-receiver serve`; killed (by PID) and waited for on drop.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The webhook path the helpers post to.
    pub path: String,
    /// The header and token that authenticate, when the server wants one.
    pub token: Option<(String, String)>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    temp: Option<TempDir>,
    /// The read end of stdout, held open unread ([`ServerBuilder::stdout_unread`]).
    _unread_stdout: Option<std::process::ChildStdout>,
}

impl Server {
    /// A builder for a server with options.
    pub(crate) fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The child's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited at start with {status}"));
            }
            match Client::try_connect(self.addr, Duration::from_millis(500)) {
                Ok(mut client) => {
                    client.set_timeout(Duration::from_secs(2));
                    let sent = client.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                    match sent.map_err(ReadError::Io).and_then(|()| client.try_read_response()) {
                        // Answered, and still alive: the port is ours (a server that lost the
                        // bind race exits at once).
                        Ok(_) if matches!(self.child.try_wait(), Ok(None)) => return Ok(()),
                        Ok(_) => {}
                        Err(e) => last = format!("{e:?}"),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("no answer on /healthz within {START_TIMEOUT:?}: {last}"))
    }

    /// True while the process runs.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the server wrote to stdout so far.
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Everything the server wrote to stderr so far.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Waits (bounded) until `done(stdout)` holds; returns whether it did.
    pub(crate) fn wait_stdout(&self, within: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(&self.stdout_text()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (bounded) until stderr contains `text` (output is collected by a thread, so a line
    /// the server wrote may show up a little later); returns whether it did.
    pub(crate) fn stderr_contains(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.stderr_text().contains(text) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Raises the soft `RLIMIT_FSIZE` of the running server to unlimited.
    pub(crate) fn lift_file_size_limit(&self) {
        let rlimit = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
        // SAFETY: plain FFI call with a live rlimit value; the old value is not asked for.
        let rc = unsafe {
            libc::prlimit(self.pid() as libc::pid_t, libc::RLIMIT_FSIZE, &rlimit, std::ptr::null_mut())
        };
        assert_eq!(rc, 0, "prlimit: {}", io::Error::last_os_error());
    }

    /// The server's resident set size (`VmRSS` in `/proc/PID/status`), in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let line =
            status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_else(|| panic!("no VmRSS in {path}"));
        let kib = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim();
        kib.parse().unwrap_or_else(|_| panic!("{path}: {line:?}"))
    }

    /// CPU time the server has used so far, user and system together (`/proc/PID/stat`).
    pub(crate) fn cpu_time(&self) -> Duration {
        let path = format!("/proc/{}/stat", self.pid());
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let after_name = &stat[stat.rfind(')').unwrap_or_else(|| panic!("{path}: {stat:?}")) + 1..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // Fields 14 (utime) and 15 (stime), in clock ticks; fields[0] is field 3.
        let ticks: u64 = fields[11..13].iter().map(|f| f.parse::<u64>().expect("a tick count")).sum();
        // SAFETY: sysconf reads a constant; no memory is passed.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_micros(ticks * 1_000_000 / per_second)
    }

    /// Descriptors the server holds now (entries of `/proc/PID/fd`).
    pub(crate) fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |entries| entries.count())
    }

    /// A new connection to the server.
    pub(crate) fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Sends one request on a fresh connection and reads its answer.
    pub(crate) fn send(&self, request: &[u8]) -> Response {
        let mut client = self.connect();
        client.send(request).expect("send the request");
        client.read_response()
    }

    /// `GET path` on a fresh connection (with `Connection: close`).
    pub(crate) fn get(&self, path: &str) -> Response {
        self.send(&request("GET", path, &[("Connection", "close")], b""))
    }

    /// `POST` of `body` to the webhook path with `Content-Length` and the extra `headers`, on a
    /// fresh connection.
    pub(crate) fn post(&self, body: &[u8], headers: &[(&str, &str)]) -> Response {
        self.send(&post_request(&self.path, body, headers))
    }

    /// `POST` with the server's credentials (if any) added to `headers`.
    pub(crate) fn post_authorized(&self, body: &[u8], headers: &[(&str, &str)]) -> Response {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some((name, token)) = &self.token {
            all.push((name, token));
        }
        self.post(body, &all)
    }

    /// The current `/metrics`, by series (name with labels) → value.
    pub(crate) fn metrics(&self) -> Metrics {
        let response = self.get("/metrics");
        assert_eq!(response.status, 200, "GET /metrics: {response:?}");
        Metrics::parse(&response.text())
    }

    /// Waits (bounded) until `/metrics` satisfies `done`; returns the last scrape.
    pub(crate) fn wait_metrics(&self, within: Duration, done: impl Fn(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + within;
        loop {
            let metrics = self.metrics();
            if done(&metrics) || Instant::now() >= deadline {
                return metrics;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Path of a file in the data directory.
    pub(crate) fn data_file(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// The lines of a data-directory file (empty when it does not exist).
    pub(crate) fn lines(&self, name: &str) -> Vec<String> {
        match std::fs::read(self.data_file(name)) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("{name} is not UTF-8: {e}"));
                assert!(text.is_empty() || text.ends_with('\n'), "{name} ends in a torn line");
                text.lines().map(str::to_owned).collect()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("{name}: {e}"),
        }
    }

    /// Waits (bounded, 10 s) until every sink has delivered and checkpointed every journaled
    /// record, so the sink files hold everything acknowledged so far; returns the last scrape.
    pub(crate) fn settle(&self) -> Metrics {
        let settled = |m: &Metrics| {
            let next = m.get("egnyte_receiver_journal_next_record");
            m.series("egnyte_receiver_sink_checkpoint_position{").all(|(_, position)| position >= next)
        };
        let metrics = self.wait_metrics(Duration::from_secs(10), settled);
        assert!(settled(&metrics), "delivery did not settle within 10 s: {metrics:?}");
        metrics
    }

    /// `events.jsonl` once delivery settled, each line read as JSON (panics on a line that is
    /// not one JSON value).
    pub(crate) fn events(&self) -> Vec<Value> {
        self.settle();
        json_lines(&self.lines("events.jsonl"), "events.jsonl")
    }

    /// `quarantine.jsonl` once delivery settled, each line read as JSON.
    pub(crate) fn quarantine(&self) -> Vec<Value> {
        self.settle();
        json_lines(&self.lines("quarantine.jsonl"), "quarantine.jsonl")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server.
    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is passed.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({}, {signal})", self.child.id());
    }

    /// Waits (bounded) for the server to exit by itself; `None` if it is still running.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Hands back the directory of a server that has exited (see [`Server::wait_exit`]), to
    /// start another server on the same data.
    pub(crate) fn into_temp(mut self) -> TempDir {
        self.kill();
        self.temp.take().expect("a started server owns its directory")
    }

    /// Kills the server (SIGKILL) and hands back its directory, to start another server on the
    /// same data (`Server::builder().temp_dir(temp)`).
    pub(crate) fn kill_keeping_data(mut self) -> TempDir {
        self.kill();
        self.temp.take().expect("a started server owns its directory")
    }

    /// Kills the server now (also done on drop); returns its exit status.
    pub(crate) fn kill(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn json_lines(lines: &[String], name: &str) -> Vec<Value> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{name} line {}: {e}: {line:?}", i + 1))
        })
        .collect()
}

/// JSON values in a canonical order: sinks deliver events of different paths in parallel, so
/// tests compare what was delivered as a multiset.
pub(crate) fn sorted(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_cached_key(|v| v.to_string());
    values
}

/// `/metrics` scraped into series → value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics(pub HashMap<String, f64>);

impl Metrics {
    /// Reads the Prometheus text format (comments skipped).
    pub(crate) fn parse(text: &str) -> Metrics {
        let mut series = HashMap::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("metrics line {line:?}"));
            let value = value.parse().unwrap_or_else(|_| panic!("metrics value in {line:?}"));
            series.insert(name.to_owned(), value);
        }
        Metrics(series)
    }

    /// One series; panics when it is missing.
    pub(crate) fn get(&self, series: &str) -> f64 {
        *self.0.get(series).unwrap_or_else(|| panic!("no series {series} in {:?}", self.0.keys()))
    }

    /// Every series whose name (with labels) starts with `prefix`.
    pub(crate) fn series<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        self.0.iter().filter(move |(name, _)| name.starts_with(prefix)).map(|(name, &v)| (name.as_str(), v))
    }

    /// `egnyte_receiver_requests_total{status="…"}`.
    pub(crate) fn requests(&self, status: u16) -> f64 {
        self.get(&format!("egnyte_receiver_requests_total{{status=\"{status}\"}}"))
    }
}

/// One parsed HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// Header names and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`; empty for 1xx and answers to HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub(crate) fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// True when the answer says `Connection: close`.
    pub(crate) fn closes(&self) -> bool {
        self.headers_named("connection")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON: {e}: {self:?}"))
    }

    /// The media type (before any `;`) of `Content-Type`.
    pub(crate) fn media_type(&self) -> Option<&str> {
        self.header("content-type").map(|v| v.split(';').next().unwrap_or("").trim())
    }
}

/// Why a response could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Nothing complete arrived within the timeout; holds what did arrive.
    Timeout(Vec<u8>),
    /// The server closed the connection (end of stream); holds what arrived before.
    Closed(Vec<u8>),
    /// The connection was reset; holds what arrived before.
    Reset(Vec<u8>),
    /// Bytes that are not an HTTP/1.1 response.
    Malformed(String),
    /// Any other I/O error.
    Io(io::Error),
}

/// What [`Client::wait_closed`] saw.
#[derive(Debug)]
pub(crate) struct Closing {
    /// The server ended the connection (end of stream or reset) within the wait.
    pub closed: bool,
    /// The end was a reset (RST) rather than an orderly end of stream.
    pub reset: bool,
    /// Bytes that arrived before the end (not counting those already read as responses).
    pub data: Vec<u8>,
    /// Time from the call to the end (or to giving up).
    pub after: Duration,
}

/// One TCP connection to the server, with the bytes received but not yet consumed.
#[derive(Debug)]
pub(crate) struct Client {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Client {
    /// Connects (bounded) to `addr`; panics on failure.
    pub(crate) fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// Connects with a bound on the wait.
    pub(crate) fn try_connect(addr: SocketAddr, within: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, within)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(READ_TIMEOUT))?;
        Ok(Client { stream, buf: Vec::new(), timeout: READ_TIMEOUT })
    }

    /// Sets the longest wait of [`Client::read_response`].
    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Writes all of `bytes`.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Closes the sending half (the server reads end of stream after what was sent).
    pub(crate) fn half_close(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Bytes received and not consumed by a read of a response.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// Reads one full response; panics (with what arrived) when there is none.
    pub(crate) fn read_response(&mut self) -> Response {
        self.try_read_response().unwrap_or_else(|e| panic!("no complete response: {}", show_error(&e)))
    }

    /// Reads one response to a HEAD request (no body whatever `Content-Length` says).
    pub(crate) fn read_head_response(&mut self) -> Response {
        self.read(true).unwrap_or_else(|e| panic!("no complete response: {}", show_error(&e)))
    }

    /// Reads one full response, or says why not.
    pub(crate) fn try_read_response(&mut self) -> Result<Response, ReadError> {
        self.read(false)
    }

    fn read(&mut self, head_only: bool) -> Result<Response, ReadError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some((response, used)) = parse_response(&self.buf, head_only)? {
                self.buf.drain(..used);
                return Ok(response);
            }
            match self.fill(deadline) {
                Ok(0) => return Err(ReadError::Closed(std::mem::take(&mut self.buf))),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => return Err(ReadError::Timeout(std::mem::take(&mut self.buf))),
                Err(e) if is_reset(&e) => return Err(ReadError::Reset(std::mem::take(&mut self.buf))),
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// One read into the buffer, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline"));
        }
        self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let mut chunk = [0u8; 65536];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Waits at most `within` for the server to end the connection, collecting what arrives.
    pub(crate) fn wait_closed(&mut self, within: Duration) -> Closing {
        let start = Instant::now();
        let deadline = start + within;
        let mut data = std::mem::take(&mut self.buf);
        loop {
            let before = self.buf.len();
            match self.fill(deadline) {
                Ok(0) => return Closing { closed: true, reset: false, data, after: start.elapsed() },
                Ok(_) => data.extend(self.buf.drain(before..)),
                Err(e) if is_reset(&e) => {
                    return Closing { closed: true, reset: true, data, after: start.elapsed() }
                }
                Err(_) => return Closing { closed: false, reset: false, data, after: start.elapsed() },
            }
        }
    }

    /// True when the connection is still open after `quiet` (nothing arrives, no end).
    pub(crate) fn still_open_after(&mut self, quiet: Duration) -> bool {
        let closing = self.wait_closed(quiet);
        assert!(closing.data.is_empty() || closing.closed, "unexpected bytes: {:?}", show(&closing.data));
        !closing.closed
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe
    )
}

/// Bytes shown for a failure message (text, cut to a readable length).
pub(crate) fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() > 600 {
        format!("{:?}… ({} bytes)", text.chars().take(600).collect::<String>(), bytes.len())
    } else {
        format!("{text:?}")
    }
}

fn show_error(e: &ReadError) -> String {
    match e {
        ReadError::Timeout(b) => format!("timed out after receiving {}", show(b)),
        ReadError::Closed(b) => format!("closed after receiving {}", show(b)),
        ReadError::Reset(b) => format!("reset after receiving {}", show(b)),
        ReadError::Malformed(m) => format!("malformed: {m}"),
        ReadError::Io(e) => format!("I/O error: {e}"),
    }
}

/// Parses one response at the start of `buf`: `Ok(None)` while incomplete, with the number of
/// bytes it took.
fn parse_response(buf: &[u8], head_only: bool) -> Result<Option<(Response, usize)>, ReadError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 1 << 20 {
            return Err(ReadError::Malformed(format!("no end of head in {}", show(buf))));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ReadError::Malformed(show(&buf[..end])))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(ReadError::Malformed(format!("status line {status_line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Malformed(format!("status line {status_line:?}")));
    }
    let status: u16 =
        code.parse().map_err(|_| ReadError::Malformed(format!("status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) =
            line.split_once(':').ok_or_else(|| ReadError::Malformed(format!("header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut response = Response { status, reason, headers, body: Vec::new() };
    let start = end + 4;
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((response, start)));
    }
    let length = match response.header("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| ReadError::Malformed(format!("Content-Length {v:?}")))?,
        None => return Err(ReadError::Malformed(format!("no Content-Length in {head:?}"))),
    };
    if buf.len() < start + length {
        return Ok(None);
    }
    response.body = buf[start..start + length].to_vec();
    Ok(Some((response, start + length)))
}

/// Every complete response at the start of `bytes`, and the bytes after them.
pub(crate) fn parse_all(bytes: &[u8]) -> (Vec<Response>, Vec<u8>) {
    let mut responses = Vec::new();
    let mut at = 0;
    while let Ok(Some((response, used))) = parse_response(&bytes[at..], false) {
        responses.push(response);
        at += used;
    }
    (responses, bytes[at..].to_vec())
}

/// A request's bytes: request line, `Host`, the given headers in order, then the body as is
/// (no `Content-Length` is added: see [`post_request`]).
pub(crate) fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A `POST` of `body` to `path` with a correct `Content-Length` after the given headers.
pub(crate) fn post_request(path: &str, body: &[u8], headers: &[(&str, &str)]) -> Vec<u8> {
    let length = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    all.push(("Content-Type", "application/json"));
    all.push(("Content-Length", &length));
    request("POST", path, &all, body)
}

/// A realistic, valid event with this id, as compact JSON.
pub(crate) fn event(id: &str) -> String {
    serde_json::json!({
        "eventId": id,
        "domain": "acme.egnyte.com",
        "timestamp": 1_732_780_800_123_u64,
        "actionSource": "WebUI",
        "eventType": "fs:add_file",
        "webhookId": "5da697d9-f34e-55ce-a68f-3eece8dc4086",
        "data": {"targetPath": format!("/Shared/{id}.txt"), "targetGroupId": "g1", "isFolder": false}
    })
    .to_string()
}

/// A batch (JSON array) of events with these ids.
pub(crate) fn batch(ids: &[&str]) -> String {
    format!("[{}]", ids.iter().map(|id| event(id)).collect::<Vec<_>>().join(","))
}

/// A fresh event id for this test process.
pub(crate) fn unique_id(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The server still answers `/healthz` with 200 `ok` and still takes a valid batch (which lands,
/// as sent, at the end of `events.jsonl`).
pub(crate) fn assert_still_healthy(server: &Server) {
    let stderr = server.stderr_text();
    assert!(!stderr.contains("panicked"), "the server panicked:\n{stderr}");
    let health = server.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"), "GET /healthz: {health:?}");
    let id = unique_id("still-healthy");
    let body = batch(&[&id]);
    let answer = server.post_authorized(body.as_bytes(), &[]);
    assert_eq!(answer.status, 200, "a valid batch after the hostile case: {answer:?}");
    assert_eq!(answer.json(), serde_json::json!({"accepted": 1, "duplicates": 0, "quarantined": 0}));
    let events = server.events();
    let expected: Value = serde_json::from_str(&event(&id)).unwrap();
    assert_eq!(events.last(), Some(&expected), "the batch must be the last line of events.jsonl");
}

/// Sends `bytes` one at a time, `pause` apart, until the server ends the connection or the bytes
/// run out; returns when it ended (from `since`; `None`: not within 3 s after the last byte) and
/// what the server sent.
pub(crate) fn dribble(
    client: &mut Client,
    bytes: &[u8],
    pause: Duration,
    since: Instant,
) -> (Option<Duration>, Vec<u8>) {
    let mut received = Vec::new();
    for byte in bytes {
        if client.send(std::slice::from_ref(byte)).is_err() {
            let closing = client.wait_closed(Duration::from_secs(1));
            received.extend(closing.data);
            return (Some(since.elapsed()), received);
        }
        let closing = client.wait_closed(pause);
        received.extend(closing.data);
        if closing.closed {
            return (Some(since.elapsed()), received);
        }
    }
    let closing = client.wait_closed(Duration::from_secs(3));
    received.extend(closing.data);
    (closing.closed.then(|| since.elapsed()), received)
}

/// Waits (bounded, 5 s) until the only connection open on the server is the scrape asking (the
/// gauge is updated before a connection's socket closes).
pub(crate) fn wait_until_alone(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut client = server.connect();
        client.send(&request("GET", "/metrics", &[("Connection", "close")], b"")).unwrap();
        let response = client.read_response();
        let open = Metrics::parse(&response.text()).get("egnyte_receiver_open_connections");
        assert!(client.wait_closed(Duration::from_secs(5)).closed, "the scrape's connection must close");
        if open == 1.0 {
            return;
        }
        assert!(Instant::now() < deadline, "{open} connections still open after 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens `n` connections that each completed a `GET /healthz` and stay open.
pub(crate) fn hold_connections(server: &Server, n: usize) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mut client = server.connect();
            client.send(&request("GET", "/healthz", &[], b"")).unwrap();
            let response = client.read_response();
            assert_eq!(response.status, 200, "connection {i} of {n}: {response:?}");
            client
        })
        .collect()
}

/// Every family of a `/metrics` text, from its `# TYPE` lines, with the series a histogram or
/// summary adds (`_bucket`, `_sum`, `_count`).
pub(crate) fn exported_families(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for rest in text.lines().filter_map(|line| line.strip_prefix("# TYPE ")) {
        let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line {rest:?}"));
        let suffixes: &[&str] = match kind {
            "histogram" => &["", "_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}
