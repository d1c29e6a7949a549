//! The `exec:PROGRAM` sink: PROGRAM runs once per event, the event's JSON on its stdin.
//!
//! It owns the program's path and the time one run may take, and, during a delivery, one child
//! process. The child is started without a shell and without arguments, with the inherited
//! environment plus `EGNYTE_EVENT_ID`, `EGNYTE_EVENT_TYPE`, `EGNYTE_DOMAIN`, `EGNYTE_PATH`
//! (empty when the event has no primary path), and, so that a program can skip a repeat (delivery
//! is at least once), `EGNYTE_IDEMPOTENCY_KEY` (`DOMAIN:EVENT_ID`), `EGNYTE_JOURNAL_POSITION`
//! (the record's number, increasing) and `EGNYTE_ATTEMPT` (1, 2, … within one process's life); its stdout goes to `/dev/null` (the stdout sink
//! may own the process's stdout). Its stderr is captured, at most [`STDERR_CAPTURE_BYTES`] per
//! run (the rest is read and counted, not kept), and logged with the run's outcome: a chatty or
//! looping program cannot flood the receiver's log.
//! Exit status 0 means delivered; anything else is the delivery's error. (An event whose id,
//! type, domain or path holds a NUL byte, legal as `\u0000` in JSON, cannot be put in the
//! environment: its spawn fails with that reason and it ends up dead-lettered.)
//!
//! Invariants:
//! * Each run is the leader of its own process group, and when the run ends (it exited, or its
//!   time ran out) the whole group is killed: nothing the program started (`cmd &`) outlives it,
//!   holds its stderr open, or piles up over retries. A program that means to start lasting work
//!   must start it with `setsid`, which takes it out of the group. After the leader was reaped its pid stays
//!   reserved while any process of its group lives, so the kill reaches only that group (or, if
//!   the group is empty, nothing, unless the kernel's pid counter wrapped around in between).
//! * Every child is reaped, on every path (exit, timeout, an error after the spawn, a panic): a
//!   guard owns it from the spawn on, and kills and waits for it unless it was already waited for.
//!   A sink that leaked zombies would slowly fill the process table of a long-running service.
//! * Writing stdin never deadlocks against a program that does not read it: payloads up to
//!   [`STDIN_INLINE_BYTES`] fit in any pipe and are written inline; larger ones are written by a
//!   short-lived thread while this one waits for the exit. A program that exits without reading
//!   its stdin (`EPIPE` for the writer) is judged by its exit status alone.
//! * Concurrency is bounded by the dispatcher's worker pool: each worker runs at most one child
//!   at a time, so at most one child per worker exists.
//!
//! It must never pass event content through a shell or as arguments: the event reaches the
//! program only as stdin bytes and environment values.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Delivery, Failure};
use crate::Event;

/// Default for [`SinkOptions::exec_timeout`](super::SinkOptions::exec_timeout): a program still
/// running after it is killed and the delivery fails (and is retried). Long enough for a script
/// that calls a remote API; short enough that a hung one holds its worker only briefly.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// Payloads up to this size are written to the child's stdin from the delivering thread; larger
/// ones from a thread of their own, because a program that does not read its stdin would block
/// the write, and with it the wait for its exit, forever. 4 KiB is the smallest capacity Linux
/// gives a pipe (one page, once the user's pipe-buffer quota is used up), so an inline write
/// never blocks. Most events are smaller.
pub const STDIN_INLINE_BYTES: usize = 4 << 10;

/// Bytes of a run's stderr kept for the log; the rest is read (so the program never blocks on a
/// full pipe) and counted.
pub(super) const STDERR_CAPTURE_BYTES: usize = 4 << 10;

/// How long a run's stderr may stay open after its group was killed (held by a process that
/// left the group) before the run is judged without it.
const STDERR_WAIT: Duration = Duration::from_millis(200);

/// First pause between checks of whether the child exited; each pause doubles up to
/// [`MAX_POLL_PAUSE`]. A quick script is seen to exit within about a millisecond.
const FIRST_POLL_PAUSE: Duration = Duration::from_millis(1);

/// Longest pause between checks: a slow program's exit (or its timeout) is noticed within this.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(50);

/// Runs a program per event. See the module docs.
#[derive(Debug)]
pub struct ExecSink {
    name: String,
    /// Always names a file (`./PROGRAM` for a bare name), so `Command` never searches `PATH`.
    program: PathBuf,
    timeout: Duration,
    /// Process groups of the runs going on now, for [`halt`](ExecSink::halt).
    running: Mutex<HashSet<u32>>,
}

impl ExecSink {
    /// Checks that `program` is an executable file (the error names it).
    pub fn open(name: String, program: &Path, timeout: Duration) -> io::Result<ExecSink> {
        let context = |message: String| io::Error::new(io::ErrorKind::PermissionDenied, message);
        let metadata = std::fs::metadata(program)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
        if !metadata.is_file() {
            return Err(context(format!("{}: not a regular file", program.display())));
        }
        if metadata.permissions().mode() & 0o111 == 0 {
            return Err(context(format!("{}: not executable", program.display())));
        }
        // A bare name would make `Command` search $PATH instead of running the file we checked.
        let program = if program.components().count() == 1 && program.is_relative() {
            Path::new(".").join(program)
        } else {
            program.to_path_buf()
        };
        Ok(ExecSink { name, program, timeout, running: Mutex::new(HashSet::new()) })
    }

    /// `exec:PROGRAM`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the program with `payload` on stdin; `Ok` when it exits with status 0 in time.
    pub fn deliver(&self, payload: &[u8], event: &Event<'_>, delivery: &Delivery) -> Result<(), Failure> {
        let mut child = self.spawn(event, delivery).map_err(Failure::event)?;
        let pid = child.child.id();
        self.lock_running().insert(pid);
        // `run` kills the group once the program exited; on any earlier return, dropping `child`
        // does.
        let outcome = self.run(&mut child, payload, delivery);
        drop(child);
        self.lock_running().remove(&pid);
        outcome.map_err(Failure::event)
    }

    /// Kills every run going on now, with its process group (a stop whose deadline passed): the
    /// delivery fails, and the event stays in the journal for the next start.
    pub fn halt(&self) {
        for &pid in self.lock_running().iter() {
            kill_group(pid);
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashSet<u32>> {
        self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn run(&self, child: &mut Reaped, payload: &[u8], delivery: &Delivery) -> Result<(), String> {
        let stdin = child.stdin().ok_or("child has no stdin")?;
        let stderr = child.child.stderr.take().map(capture);
        feed(stdin, payload)?;
        let outcome = child.wait_for(self.timeout).and_then(judge);
        // Whatever the program left running goes with it, and with them its end of stderr.
        kill_group(child.child.id());
        // A process that left the group (setsid) may still hold stderr open: its text is not
        // waited for beyond a moment (the reader thread ends when that process does).
        let finished = stderr.filter(|reader| {
            let until = Instant::now() + STDERR_WAIT;
            while !reader.is_finished() && Instant::now() < until {
                std::thread::sleep(FIRST_POLL_PAUSE);
            }
            reader.is_finished()
        });
        if let Some(Ok((text, dropped))) = finished.map(|reader| reader.join()) {
            self.log_stderr(delivery, &outcome, &text, dropped);
        }
        outcome
    }

    /// One log line with what the run wrote on stderr: a warning when the run failed.
    fn log_stderr(&self, delivery: &Delivery, outcome: &Result<(), String>, text: &str, dropped: u64) {
        let text = text.trim_end();
        if text.is_empty() && dropped == 0 {
            return;
        }
        let more = if dropped > 0 { format!(" (and {dropped} more bytes)") } else { String::new() };
        let level = if outcome.is_ok() { log::Level::Info } else { log::Level::Warn };
        log::log!(level, "{} record {} stderr: {text}{more}", self.name, delivery.position);
    }

    fn spawn(&self, event: &Event<'_>, delivery: &Delivery) -> Result<Reaped, String> {
        Command::new(&self.program)
            .env("EGNYTE_EVENT_ID", event.event_id())
            .env("EGNYTE_EVENT_TYPE", event.event_type().as_str())
            .env("EGNYTE_DOMAIN", event.domain())
            .env("EGNYTE_PATH", event.primary_path().unwrap_or(""))
            .env("EGNYTE_IDEMPOTENCY_KEY", Delivery::idempotency_key(event))
            .env("EGNYTE_JOURNAL_POSITION", delivery.position.to_string())
            .env("EGNYTE_ATTEMPT", delivery.attempt.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map(|child| Reaped { child, waited: false })
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))
    }
}

/// Writes the payload to the child's stdin and closes it, inline when that cannot block.
/// Write errors are ignored: a program may exit without reading (`EPIPE`), and its exit status
/// is what decides.
fn feed(mut stdin: ChildStdin, payload: &[u8]) -> Result<(), String> {
    if payload.len() <= STDIN_INLINE_BYTES {
        let _ = stdin.write_all(payload);
        return Ok(());
    }
    let payload = payload.to_vec();
    // Not joined: it ends when the child reads everything or its stdin's read end closes (the
    // child exited or was killed). Only a grandchild holding that end open keeps it alive.
    std::thread::Builder::new()
        .name("exec-sink-stdin".to_string())
        .spawn(move || {
            let _ = stdin.write_all(&payload);
        })
        .map(drop)
        .map_err(|e| format!("cannot start stdin writer: {e}"))
}

/// Reads a run's stderr to its end on a thread of its own, keeping the first
/// [`STDERR_CAPTURE_BYTES`]: (text, bytes not kept). It ends when every process holding the pipe
/// exited (a timeout kills the group, so a grandchild cannot keep it open after that).
fn capture(mut stderr: ChildStderr) -> std::thread::JoinHandle<(String, u64)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut dropped = 0u64;
        let mut chunk = [0u8; 4096];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = STDERR_CAPTURE_BYTES - kept.len();
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                    dropped += n.saturating_sub(room) as u64;
                }
            }
        }
        (String::from_utf8_lossy(&kept).into_owned(), dropped)
    })
}

/// The delivery's outcome from the child's exit status.
fn judge(status: ExitStatus) -> Result<(), String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("exit status {code}")),
        (None, Some(signal)) => Err(format!("killed by signal {signal}")),
        (None, None) => Err(format!("ended with {status}")),
    }
}

/// "30 s", "0.3 s": a duration as a reason string wants it.
fn seconds(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1000) {
        format!("{} s", millis / 1000)
    } else {
        let text = format!("{}.{:03}", millis / 1000, millis % 1000);
        format!("{} s", text.trim_end_matches('0'))
    }
}

/// A child that is reaped whatever happens: see the module docs.
#[derive(Debug)]
struct Reaped {
    child: Child,
    /// The child was waited for; its pid may already belong to another process.
    waited: bool,
}

impl Reaped {
    fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Polls for the exit with a growing pause; kills the child when `timeout` runs out.
    fn wait_for(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_POLL_PAUSE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.waited = true;
                    return Ok(status);
                }
                Ok(None) => {}
                Err(error) => return Err(format!("cannot wait for the program: {error}")),
            }
            let now = Instant::now();
            if now >= deadline {
                self.kill();
                return Err(format!("timed out after {}", seconds(timeout)));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
    }

    /// Kills (if still running) the child's process group and reaps the child.
    fn kill(&mut self) {
        if self.waited {
            return;
        }
        kill_group(self.child.id());
        // Fails only if the child already exited, which the wait below reaps just the same.
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(_) => self.waited = true,
            Err(error) => log::error!("cannot reap child {}: {error}", self.child.id()),
        }
    }
}

/// SIGKILL to every process of the group `leader` leads (the child, not yet reaped, so its pid,
/// and with it the group id, cannot have been reused).
#[allow(unsafe_code)]
fn kill_group(leader: u32) {
    let Ok(group) = libc::pid_t::try_from(leader) else { return };
    // SAFETY: kill(2) takes plain integers; a negative pid names the process group.
    unsafe { libc::kill(-group, libc::SIGKILL) };
}

impl Drop for Reaped {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testing::{with_event, TempDir, EVENT};
    use std::fs;

    /// Writes an executable `#!/bin/sh` script.
    fn script(dir: &TempDir, name: &str, body: &str) -> PathBuf {
        let path = dir.path().join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn sink(program: &Path, timeout: Duration) -> ExecSink {
        ExecSink::open(format!("exec:{}", program.display()), program, timeout).unwrap()
    }

    /// Delivers, retrying while the script is "text file busy": another test thread's fork can
    /// briefly hold the script's just-written file open (a test-only race, between processes
    /// forking in parallel).
    fn deliver(sink: &ExecSink, payload: &[u8], event: &Event<'_>) -> Result<(), String> {
        for _ in 0..50 {
            match sink.deliver(payload, event, &Delivery { position: 42, attempt: 3 }) {
                Err(failure) if failure.reason.contains("Text file busy") => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                result => return result.map_err(|failure| failure.reason),
            }
        }
        panic!("script stayed busy")
    }

    #[test]
    fn payload_and_environment_reach_the_program() {
        let dir = TempDir::new("exec-env");
        let out = dir.path().join("out");
        let body = format!(
            r#"cat > "{out}.stdin"
printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$EGNYTE_EVENT_ID" "$EGNYTE_EVENT_TYPE" "$EGNYTE_DOMAIN" "$EGNYTE_PATH" "${{EGNYTE_PATH+set}}" "$EGNYTE_IDEMPOTENCY_KEY" "$EGNYTE_JOURNAL_POSITION" "$EGNYTE_ATTEMPT" > "{out}.env"
printf '%s' "$HOME" > "{out}.home"
echo "to /dev/null"
exit 0"#,
            out = out.display()
        );
        let sink = sink(&script(&dir, "copy", &body), DEFAULT_EXEC_TIMEOUT);
        with_event(EVENT, |event| deliver(&sink, EVENT, event)).unwrap();
        assert_eq!(fs::read(dir.path().join("out.stdin")).unwrap(), EVENT);
        assert_eq!(
            fs::read_to_string(dir.path().join("out.env")).unwrap(),
            "e1|fs:add_file|acme|/Shared/a.txt|set|acme:e1|42|3\n"
        );
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(fs::read_to_string(dir.path().join("out.home")).unwrap(), home, "inherited environment");

        // No primary path: EGNYTE_PATH is set, and empty.
        let no_path = br#"{"eventId":"e2","domain":"acme","timestamp":1,"actionSource":"WebUI","eventType":"x:new","data":{}}"#;
        with_event(no_path, |event| deliver(&sink, no_path, event)).unwrap();
        assert_eq!(fs::read(dir.path().join("out.stdin")).unwrap(), no_path);
        assert_eq!(
            fs::read_to_string(dir.path().join("out.env")).unwrap(),
            "e2|x:new|acme||set|acme:e2|42|3\n"
        );
    }

    #[test]
    fn a_non_zero_exit_is_the_reason() {
        let dir = TempDir::new("exec-exit");
        let sink = sink(&script(&dir, "fail", "exit 3"), DEFAULT_EXEC_TIMEOUT);
        assert_eq!(with_event(EVENT, |event| deliver(&sink, EVENT, event)), Err("exit status 3".to_string()));
    }

    #[test]
    fn a_signal_is_the_reason() {
        let dir = TempDir::new("exec-signal");
        let sink = sink(&script(&dir, "killed", "kill -9 $$"), DEFAULT_EXEC_TIMEOUT);
        assert_eq!(
            with_event(EVENT, |event| deliver(&sink, EVENT, event)),
            Err("killed by signal 9".to_string())
        );
    }

    #[test]
    fn a_slow_program_is_killed_and_reaped() {
        let dir = TempDir::new("exec-timeout");
        let pid_file = dir.path().join("pid");
        let body = format!("echo $$ > \"{}\"\nexec sleep 10", pid_file.display());
        let sink = sink(&script(&dir, "slow", &body), Duration::from_millis(300));
        let started = Instant::now();
        let result = with_event(EVENT, |event| deliver(&sink, EVENT, event));
        assert_eq!(result, Err("timed out after 0.3 s".to_string()));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        let pid = fs::read_to_string(&pid_file).unwrap();
        // A zombie would still have its /proc entry (in state Z) until reaped.
        let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
        assert!(
            !proc.exists(),
            "child {} not reaped: {:?}",
            pid.trim(),
            fs::read_to_string(proc.join("stat"))
        );
    }

    #[test]
    fn a_program_that_ignores_a_large_stdin_does_not_deadlock() {
        let dir = TempDir::new("exec-ignore");
        let payload = vec![b'x'; 1 << 20];
        for (body, expected) in
            [("exit 0", Ok(())), ("sleep 0.2\nexit 0", Ok(())), ("exit 4", Err("exit status 4".to_string()))]
        {
            let sink = sink(&script(&dir, "ignore", body), Duration::from_secs(10));
            let started = Instant::now();
            assert_eq!(with_event(EVENT, |event| deliver(&sink, &payload, event)), expected, "{body}");
            assert!(started.elapsed() < Duration::from_secs(5), "{body}: {:?}", started.elapsed());
        }
        // A small payload (written inline) to a program that exits without reading it.
        let small = sink(&script(&dir, "ignore-small", "exit 0"), Duration::from_secs(10));
        with_event(EVENT, |event| deliver(&small, EVENT, event)).unwrap();
        // Neither reads nor exits: the timeout still applies (an inline write would block on the
        // full pipe before the wait even starts).
        let slow = sink(&script(&dir, "ignore-slow", "exec sleep 10"), Duration::from_millis(300));
        let started = Instant::now();
        let result = with_event(EVENT, |event| deliver(&slow, &payload, event));
        assert_eq!(result, Err("timed out after 0.3 s".to_string()));
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn a_large_payload_arrives_whole() {
        let dir = TempDir::new("exec-large");
        let out = dir.path().join("out");
        let sink =
            sink(&script(&dir, "copy", &format!("cat > \"{}\"", out.display())), Duration::from_secs(10));
        let payload: Vec<u8> = (0..(1 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
        with_event(EVENT, |event| deliver(&sink, &payload, event)).unwrap();
        assert_eq!(fs::read(&out).unwrap(), payload);
    }

    #[test]
    fn open_refuses_what_cannot_run() {
        let dir = TempDir::new("exec-open");
        let plain = dir.path().join("plain");
        fs::write(&plain, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).unwrap();
        let missing = dir.path().join("missing");
        for (path, kind) in [
            (plain, io::ErrorKind::PermissionDenied),
            (missing, io::ErrorKind::NotFound),
            (dir.path().to_path_buf(), io::ErrorKind::PermissionDenied),
        ] {
            let error = ExecSink::open("x".to_string(), &path, DEFAULT_EXEC_TIMEOUT).unwrap_err();
            assert_eq!(error.kind(), kind, "{}", path.display());
            assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        }
    }

    #[test]
    fn a_program_that_vanished_cannot_start() {
        let dir = TempDir::new("exec-vanished");
        let path = script(&dir, "gone", "exit 0");
        let sink = sink(&path, DEFAULT_EXEC_TIMEOUT);
        fs::remove_file(&path).unwrap();
        let reason = with_event(EVENT, |event| deliver(&sink, EVENT, event)).unwrap_err();
        assert!(reason.starts_with(&format!("cannot start {}: ", path.display())), "{reason}");
    }

    #[test]
    fn durations_in_reasons() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(300)), "0.3 s");
        assert_eq!(seconds(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(seconds(Duration::from_millis(1)), "0.001 s");
    }

    /// Waits (up to 5 s) until process `pid` is gone; false if it is still there.
    fn gone(pid: &str) -> bool {
        let proc_dir = Path::new("/proc").join(pid.trim());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            // A zombie still has a directory: look at its state too.
            match fs::read_to_string(proc_dir.join("stat")) {
                Err(_) => return true,
                Ok(stat)
                    if stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')) =>
                {
                    return true
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    #[test]
    fn what_a_run_started_ends_with_it_after_a_timeout_and_after_an_exit() {
        let dir = TempDir::new("exec-group");
        for (name, tail, timeout, outcome) in [
            ("hangs", "sleep 1000", Duration::from_millis(300), Err("timed out after 0.3 s".to_string())),
            ("exits", "exit 0", Duration::from_secs(10), Ok(())),
        ] {
            let pid_file = dir.path().join(format!("{name}.pid"));
            let body = format!("sleep 1000 &\necho $! > {}\n{tail}", pid_file.display());
            let sink = sink(&script(&dir, name, &body), timeout);
            with_event(EVENT, |event| assert_eq!(deliver(&sink, b"{}", event), outcome, "{name}"));
            let grandchild = fs::read_to_string(&pid_file).unwrap();
            assert!(gone(&grandchild), "{name}: the background process {grandchild} outlived the run");
        }
    }

    #[test]
    fn halt_kills_a_run_and_what_it_started() {
        let dir = TempDir::new("exec-halt");
        let pid_file = dir.path().join("halt.pid");
        let body = format!("sleep 1000 &\necho $! > {}\nwait", pid_file.display());
        let sink = std::sync::Arc::new(sink(&script(&dir, "runs", &body), Duration::from_secs(60)));
        let running = std::sync::Arc::clone(&sink);
        let delivering =
            std::thread::spawn(move || with_event(EVENT, |event| deliver(&running, b"{}", event)));
        let started = Instant::now();
        while !pid_file.exists() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        sink.halt();
        let outcome = delivering.join().unwrap();
        assert_eq!(outcome, Err("killed by signal 9".to_string()));
        assert!(started.elapsed() < Duration::from_secs(10), "halt ended the run at once");
        assert!(gone(&fs::read_to_string(&pid_file).unwrap()));
    }

    #[test]
    fn stderr_is_kept_up_to_its_bound_and_the_rest_counted() {
        let mut child = Command::new("/bin/sh")
            .args(["-c", "head -c 10000 /dev/zero | tr '\\0' x >&2"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (text, dropped) = capture(child.stderr.take().unwrap()).join().unwrap();
        child.wait().unwrap();
        assert_eq!((text.len(), dropped), (STDERR_CAPTURE_BYTES, 10000 - STDERR_CAPTURE_BYTES as u64));
        assert!(text.bytes().all(|b| b == b'x'));
    }
}
