//! A real nginx (the Debian package `nginx`, binary [`NGINX`]) in front of an upstream, in a guard.
//!
//! This module owns one nginx per [`Nginx`]: its temp directory (configuration, pid file, error
//! and access logs, every `*_temp_path`, nginx's own stdout/stderr), the child process (master and
//! worker, in their own process group) and its loopback port.
//!
//! * [`Nginx::start`] writes a default-style reverse-proxy configuration (`location /` with
//!   `proxy_pass` to the caller's upstream, HTTP/1.1, `Connection ""`, `Host`, `X-Real-IP`,
//!   `X-Forwarded-For`, `X-Forwarded-Proto`; every client header forwarded, as by default), with
//!   `proxy_request_buffering` chosen by [`RequestBuffering`], and runs
//!   `nginx -p DIR -e DIR/error.log -c DIR/nginx.conf -g 'daemon off;'` in the foreground on a
//!   free `127.0.0.1` port (retrying on another port when the bind is lost to a race), then waits
//!   (bounded) until nginx has bound and accepts connections.
//! * When [`NGINX`] is missing, starting panics and says to `apt-get install nginx`: the tests
//!   that use this guard never skip silently.
//! * On drop (or [`Nginx::stop`]) nginx gets SIGTERM by its PID, then after a bounded wait SIGKILL
//!   for its whole process group; it is waited for and the directory is removed. Its error log is
//!   readable at any time before that with [`Nginx::error_log`], for assertion messages.
//! * Every loop here is bounded in count and time. A system nginx service, if one runs, is never
//!   touched: nothing here uses `/etc/nginx`, `/var/log/nginx`, `/var/lib/nginx` or `/run`.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egnyte_receiver::test_dir::{free_port, TempDir};

/// The nginx binary of the Debian package `nginx`.
pub(crate) const NGINX: &str = "/usr/sbin/nginx";

/// Longest wait for a started nginx to accept connections.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest wait for nginx to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at starting nginx when the probed free port was taken before nginx bound it.
const START_ATTEMPTS: usize = 5;

/// How nginx passes a request body to the upstream (`proxy_request_buffering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestBuffering {
    /// `proxy_request_buffering on;` (nginx's default): nginx reads the whole body first and
    /// sends it upstream with `Content-Length`, whatever framing the client used.
    On,
    /// `proxy_request_buffering off;`: nginx streams the body as it arrives; a chunked client body
    /// goes upstream chunked (HTTP/1.1 upstream).
    Off,
}

impl RequestBuffering {
    fn directive(self) -> &'static str {
        match self {
            RequestBuffering::On => "on",
            RequestBuffering::Off => "off",
        }
    }
}

/// A running nginx reverse proxy; stopped (by PID), waited for and cleaned up on drop.
#[derive(Debug)]
pub(crate) struct Nginx {
    child: Option<Child>,
    /// Where nginx listens (always `127.0.0.1`).
    pub addr: SocketAddr,
    /// Where it forwards to.
    pub upstream: SocketAddr,
    /// Its `proxy_request_buffering`.
    pub buffering: RequestBuffering,
    /// The generated configuration, for failure messages.
    pub config: String,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx proxying every path to `upstream`; panics (with the error log) when it does
    /// not come up, and with an `apt-get install nginx` hint when the binary is missing.
    pub(crate) fn start(upstream: SocketAddr, buffering: RequestBuffering) -> Nginx {
        require_nginx();
        let mut last_error = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let dir = TempDir::new("nginx");
            let addr = free_port();
            let config = config(dir.path(), addr, upstream, buffering);
            let conf_path = dir.path().join("nginx.conf");
            std::fs::write(&conf_path, &config).unwrap_or_else(|e| panic!("{}: {e}", conf_path.display()));
            for sub in ["client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"] {
                let path = dir.path().join(sub);
                std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            let child = spawn(dir.path(), &conf_path).unwrap_or_else(|e| panic!("cannot start {NGINX}: {e}"));
            let mut nginx = Nginx { child: Some(child), addr, upstream, buffering, config, dir };
            match nginx.wait_ready() {
                Ok(()) => return nginx,
                Err(e) => {
                    nginx.stop();
                    let log = nginx.error_log();
                    last_error = format!("attempt {attempt}: {e}\n--- nginx error log:\n{log}");
                    if !log.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The nginx temp directory (configuration, logs, temp paths).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything nginx wrote so far to its error log and to its own stderr.
    pub(crate) fn error_log(&self) -> String {
        let mut text = read_text(&self.dir.path().join("error.log"));
        let stderr = read_text(&self.dir.path().join("stderr.log"));
        if !stderr.trim().is_empty() {
            text.push_str("--- nginx stderr:\n");
            text.push_str(&stderr);
        }
        text
    }

    /// The access log so far (one line per request, with the upstream's status and address).
    pub(crate) fn access_log(&self) -> String {
        read_text(&self.dir.path().join("access.log"))
    }

    /// Both logs, labelled, for an assertion message.
    pub(crate) fn logs(&self) -> String {
        format!("--- nginx error log:\n{}--- nginx access log:\n{}", self.error_log(), self.access_log())
    }

    /// True while the nginx master process runs.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops nginx (also done on drop): SIGTERM by PID, a bounded wait, then SIGKILL for its
    /// process group (master and workers); waits for the master. The logs stay readable until
    /// the guard is dropped.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own, not yet reaped child (its PID cannot have been reused).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: the master is not reaped yet, so its process group (it leads it: spawned with
        // process_group(0)) still holds only nginx's own processes.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits until nginx has bound its port (its pid file holds the master's PID: nginx writes it
    /// after binding) and accepts a connection there.
    fn wait_ready(&mut self) -> Result<(), String> {
        let pid_file = self.dir.path().join("nginx.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            let Some(child) = self.child.as_mut() else { return Err("no child".into()) };
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("nginx exited at start with {status}"));
            }
            let pid = child.id().to_string();
            let written = std::fs::read_to_string(&pid_file).map(|s| s.trim() == pid).unwrap_or(false);
            if !written {
                last = format!("{} does not hold PID {pid} yet", pid_file.display());
            } else {
                match TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)) {
                    Ok(_) => return Ok(()),
                    Err(e) => last = format!("connect {}: {e}", self.addr),
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("nginx did not accept connections within {START_TIMEOUT:?}: {last}"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        // `dir` (a TempDir) is removed after this, when the field is dropped.
    }
}

/// Panics with an install hint when the nginx binary is missing.
pub(crate) fn require_nginx() {
    assert!(
        Path::new(NGINX).is_file(),
        "{NGINX} is missing: these tests run a real nginx and do not skip. \
         Install it with `apt-get install nginx` (Debian package nginx)."
    );
}

/// nginx in the foreground, in its own process group, output into files in `dir`.
fn spawn(dir: &Path, conf: &Path) -> io::Result<Child> {
    let stdout = File::create(dir.join("stdout.log"))?;
    let stderr = File::create(dir.join("stderr.log"))?;
    Command::new(NGINX)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(conf)
        .arg("-g")
        .arg("daemon off;")
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
}

/// The configuration: one server on `addr`, `location /` proxied to `upstream` the way a default
/// reverse-proxy setup does it; every path nginx writes is inside `dir`.
fn config(dir: &Path, addr: SocketAddr, upstream: SocketAddr, buffering: RequestBuffering) -> String {
    let d = |name: &str| -> PathBuf { dir.join(name) };
    // Workers switch to `user` only when the master runs as root; as root, stay root so they can
    // read and write the temp directory like the master.
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let user = if unsafe { libc::geteuid() } == 0 { "user root;\n" } else { "" };
    format!(
        r#"# Generated by tests/support/nginx.rs.
{user}worker_processes 1;
pid {pid};
error_log {error_log} info;

events {{
    worker_connections 256;
}}

http {{
    log_format proxy '$remote_addr "$request" $status $body_bytes_sent '
                     'request_length=$request_length te="$http_transfer_encoding" '
                     'cl="$http_content_length" upstream=$upstream_addr '
                     'upstream_status=$upstream_status request_time=$request_time';
    access_log {access_log} proxy;

    client_body_temp_path {client_body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};

    client_max_body_size 32m;
    proxy_request_buffering {buffering};

    server {{
        listen {addr};
        server_name localhost;

        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"#,
        pid = d("nginx.pid").display(),
        error_log = d("error.log").display(),
        access_log = d("access.log").display(),
        client_body = d("client_body_temp").display(),
        proxy = d("proxy_temp").display(),
        fastcgi = d("fastcgi_temp").display(),
        uwsgi = d("uwsgi_temp").display(),
        scgi = d("scgi_temp").display(),
        buffering = buffering.directive(),
    )
}

/// A file's text, or a note saying why there is none.
fn read_text(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("({}: {e})\n", path.display()),
    }
}
