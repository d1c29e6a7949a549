//! adnanh/webhook (Debian package `webhook`) as a child process: the speed reference of a
//! receiver that stores nothing.
//!
//! One hook whose URL is the receiver's webhook path (`-urlprefix` is the path's first part, the
//! hook id its last: `/egnyte/webhook` is prefix `egnyte`, id `webhook`), answering 200 with the
//! receiver's own 10-event JSON answer and `Content-Type: application/json`. webhook's docs call
//! `execute-command` required, but 2.8 loads a hook without it and serves it: the command is
//! looked up in a goroutine started beside the answer, the lookup of `""` fails, and the error is
//! logged (to nowhere without `-verbose`). So by default **no process is started per request**.
//! `BENCH_WEBHOOK_COMMAND=/bin/true` adds `"execute-command"`: a fork and exec per request, after
//! the answer is written (webhook never waits for the command unless asked to capture its
//! output), which measures webhook's usual deployment rather than its HTTP path.
//!
//! Started with `-ip 127.0.0.1 -port P -urlprefix … -nopanic` and no `-verbose` (webhook then
//! discards its log); checked with one POST of the benchmark's own request (token header
//! included, which webhook ignores) before any load; killed by PID when dropped.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::builtin;

/// Time webhook gets to answer the check request after it is spawned.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// `webhook -version`'s line when `webhook` can be run, else `None`.
pub(crate) fn version() -> Option<String> {
    let output = Command::new("webhook").arg("-version").stdin(Stdio::null()).output().ok()?;
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    output.status.success().then(|| text.lines().next().unwrap_or("webhook").trim().to_owned())
}

/// A running `webhook`.
pub(crate) struct Webhook {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    /// The command each request runs, if any.
    pub command: Option<String>,
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Webhook {
    /// Writes `ROOT/hooks.json` and spawns webhook on `addr` serving `path` with `answer`; returns
    /// once `check` (a complete request) is answered 200 with exactly `answer`.
    pub(crate) fn spawn(
        root: &Path,
        addr: SocketAddr,
        path: &str,
        answer: &str,
        command: Option<String>,
        check: &[u8],
    ) -> io::Result<Webhook> {
        std::fs::create_dir_all(root)?;
        let (prefix, id) = path
            .trim_start_matches('/')
            .rsplit_once('/')
            .ok_or_else(|| io::Error::other(format!("{path}: webhook needs a path /PREFIX/ID")))?;
        let mut hook = format!(
            "[{{\"id\":{},\"response-message\":{},\"response-headers\":[{{\"name\":\"Content-Type\",\
             \"value\":\"application/json\"}}]",
            json_string(id),
            json_string(answer)
        );
        if let Some(command) = &command {
            hook.push_str(&format!(",\"execute-command\":{}", json_string(command)));
        }
        hook.push_str("}]\n");
        let hooks = root.join("hooks.json");
        std::fs::write(&hooks, hook)?;
        let log = root.join("webhook.log");
        let child = Command::new("webhook")
            .arg("-hooks")
            .arg(&hooks)
            .args(["-ip", &addr.ip().to_string(), "-port", &addr.port().to_string()])
            .args(["-urlprefix", prefix, "-nopanic"])
            .stdin(Stdio::null())
            .stdout(File::create(root.join("webhook.out"))?)
            .stderr(File::create(&log)?)
            .spawn()?;
        let mut webhook = Webhook { child, addr, log, command };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = webhook.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "webhook exited ({status}) before answering; its log:\n{}",
                    webhook.log_tail()
                )));
            }
            match builtin::send(addr, check) {
                Ok(reply) if reply.status == 200 && reply.body == answer.as_bytes() => return Ok(webhook),
                Ok(reply) => {
                    return Err(io::Error::other(format!(
                        "webhook answered the check request {} {:?}, not 200 {answer}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    )))
                }
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Err(error) => {
                    return Err(io::Error::other(format!(
                        "webhook did not answer within {START_TIMEOUT:?} ({error}); its log:\n{}",
                        webhook.log_tail()
                    )))
                }
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of webhook's stderr.
    pub(crate) fn log_tail(&self) -> String {
        let mut text = String::new();
        let _ = File::open(&self.log).and_then(|mut f| f.read_to_string(&mut text));
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        // `Child::kill` signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
