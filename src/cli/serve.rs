//! `egnyte-receiver serve [OPTIONS]`: options from flags, then the environment, then defaults.
//!
//! Every option `--some-name` can also be set as `EGNYTE_RECEIVER_SOME_NAME`; a flag beats the
//! environment, which beats the default. Values are checked here, so that a typo fails at start
//! with a clear message rather than at the first request.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use egnyte_receiver::http;
use egnyte_receiver::journal::{self, Durability};
use super::notify::{self, Notifier};
use super::signals::{Signal, Signals};
use egnyte_receiver::serve::{self, Health, ServeConfig, Token};
use egnyte_receiver::sink::{SinkOptions, SinkSpec};
use egnyte_receiver::{dedup, dispatch};

use super::Command;

/// Every option: (name, value placeholder, default shown in help, description).
const OPTIONS: [(&str, &str, &str, &str); 23] = [
    ("listen", "ADDR", "127.0.0.1:8080", "address to bind"),
    ("path", "PATH", "/egnyte/webhook", "the webhook route"),
    ("auth-token", "TOKEN", "none", "a POST must carry exactly this value (see --auth-header)"),
    (
        "auth-token-file",
        "FILE",
        "$CREDENTIALS_DIRECTORY/token if present, else none",
        "read the token from FILE (trailing newline removed; re-read on SIGHUP)",
    ),
    ("auth-header", "NAME", "Authorization or Authentication", "accept the token only in this header"),
    (
        "data-dir",
        "DIR",
        "./egnyte-data",
        "all state: journal, dedup keys, checkpoint, quarantine, dead letters",
    ),
    (
        "max-body",
        "BYTES",
        "16777216 (16 MiB)",
        "a larger body (declared, or chunked and decoded) is answered 413",
    ),
    ("max-headers", "N", "100", "header lines in one request; more are answered 431"),
    (
        "max-header-bytes",
        "BYTES",
        "32768 (32 KiB)",
        "request line and headers together (and a chunked body's trailers); more are answered 431",
    ),
    ("read-timeout", "SECS", "30", "time to complete a request, and to stay idle between two (1 to 3600)"),
    (
        "max-connections",
        "N",
        "10000",
        "connections beyond this are closed at once (1 to 1000000; capped to what the open-file limit leaves)",
    ),
    ("io-threads", "N", "CPU count", "may worker threads (1 to 256)"),
    ("dedup-capacity", "N", "1048576", "event ids remembered for deduplication (24.5 bytes of memory each)"),
    ("durability", "MODE", "fsync", "fsync: answer 200 once events are fsynced; none: once queued"),
    (
        "max-journal-bytes",
        "BYTES",
        "1073741824 (1 GiB)",
        "undelivered events on disk beyond which POSTs get 503 (at least 4096)",
    ),
    (
        "journal-segment-bytes",
        "BYTES",
        "67108864 (64 MiB)",
        "journal segment size, the unit of deletion (at most 1/8 of --max-journal-bytes)",
    ),
    (
        "journal-retention",
        "SECS",
        "3600",
        "delivered events stay this long for `replay` (less when over --max-journal-bytes; 0 to 31536000)",
    ),
    ("workers", "N", "4", "delivery threads of each exec sink, also its most children at once (1 to 256)"),
    (
        "sink",
        "SPEC",
        "jsonl:DATA_DIR/events.jsonl",
        "jsonl:PATH, exec:PROGRAM or stdout; repeat for several (environment: comma-separated)",
    ),
    ("jsonl-max-bytes", "BYTES", "0 (never)", "rotate a jsonl sink file at this size (0, or at least 4096)"),
    ("exec-timeout", "SECS", "30", "an exec sink program running longer is killed (and retried) (1 to 86400)"),
    ("delivery-attempts", "N", "8", "attempts per event and sink before the dead-letter file (1 to 1000)"),
    ("shutdown-timeout", "SECS", "10", "time to deliver journaled events when stopping (0 to 3600)"),
];

/// Most `--max-headers`: each costs 32 bytes of parser scratch in every connection.
const MAX_HEADERS_LIMIT: usize = 10_000;
/// Smallest and largest `--max-header-bytes`: a short request line and a few headers; 1 MiB (Go's
/// default, and already 1 GiB of buffers across 1,000 slow connections).
const HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1 << 20;

/// Smallest `--journal-segment-bytes`: a segment header and a few records.
const MIN_SEGMENT_BYTES: u64 = 4096;

/// The ranges of the numeric options (each also in its help line). Beyond them a value is a
/// typo that would break the service (a timer that overflows, a thread count the machine cannot
/// start, a journal budget that refuses every POST), so it stops the start instead.
const RANGES: &[(&str, u64, u64)] = &[
    ("read-timeout", 1, 3600),
    ("max-connections", 1, 1_000_000),
    ("io-threads", 1, 256),
    ("workers", 1, 256),
    ("exec-timeout", 1, 86_400),
    ("delivery-attempts", 1, 1000),
    ("shutdown-timeout", 0, 3600),
    ("journal-retention", 0, 31_536_000),
    ("max-journal-bytes", MIN_SEGMENT_BYTES, u64::MAX),
];

/// Smallest nonzero `--jsonl-max-bytes`.
const MIN_JSONL_MAX_BYTES: u64 = 4096;

/// Hidden option (no flag): coroutine stack size in words; odd values make may report stack use.
const STACK_WORDS_ENV: &str = "EGNYTE_RECEIVER_STACK_WORDS";

/// True when a path holds a byte below 0x20 or DEL.
fn has_control(text: &std::ffi::OsStr) -> bool {
    text.as_encoded_bytes().iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// `serve --help`, generated from [`OPTIONS`] so it can never miss one.
pub fn help() -> String {
    let mut text = String::from(
        "Receive Egnyte webhooks over HTTP.\n\nUsage: egnyte-receiver serve [OPTIONS]\n\nOptions \
         (each also from the environment as EGNYTE_RECEIVER_<NAME>, e.g. EGNYTE_RECEIVER_MAX_BODY;\n\
         a flag beats the environment, which beats the default):\n",
    );
    for (name, value, default, meaning) in OPTIONS {
        text.push_str(&format!("  --{name} {value}\n      {meaning} [default: {default}]\n"));
    }
    text.push_str("  -h, --help\n      print this help\n\nLogging: RUST_LOG (default: info).\n");
    text
}

/// The raw option values, before checking: flag or environment, by option name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    values: Vec<(&'static str, OsString)>,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut values = Vec::new();
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(help())),
                Long(name) => match OPTIONS.iter().find(|(option, ..)| *option == name) {
                    Some(&(option, ..)) => values.push((option, parser.value()?)),
                    None => return Err(arg.unexpected()),
                },
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Command::Serve(Args { values }))
    }

    /// The value of `name`: the last flag, else the environment variable (an empty one counts as
    /// unset, like a commented-out line: the default applies).
    fn get(&self, name: &str) -> Option<OsString> {
        let flag = self.values.iter().rev().find(|(option, _)| *option == name).map(|(_, v)| v.clone());
        flag.or_else(|| std::env::var_os(env_name(name)).filter(|v| !v.is_empty()))
    }

    /// How the operator spelled where `name`'s value came from, for error messages: `--name`, or
    /// the environment variable when no flag was given.
    fn origin(&self, name: &str) -> String {
        let flagged = self.values.iter().any(|(option, _)| *option == name);
        if !flagged && std::env::var_os(env_name(name)).is_some_and(|v| !v.is_empty()) {
            env_name(name)
        } else {
            format!("--{name}")
        }
    }

    /// Every value of a repeatable option: all its flags, else the environment split at commas.
    fn all(&self, name: &str) -> Vec<OsString> {
        let flags: Vec<OsString> =
            self.values.iter().filter(|(option, _)| *option == name).map(|(_, v)| v.clone()).collect();
        if !flags.is_empty() {
            return flags;
        }
        let env = std::env::var(env_name(name)).unwrap_or_default();
        env.split(',').map(str::trim).filter(|s| !s.is_empty()).map(OsString::from).collect()
    }

    /// Checks every value and builds the configuration.
    pub fn config(&self) -> Result<ServeConfig, String> {
        unknown_variables()?;
        let text = |name: &str| -> Result<Option<String>, String> {
            self.get(name)
                .map(|v| v.into_string().map_err(|_| format!("{}: not valid UTF-8", self.origin(name))))
                .transpose()
        };
        let number = |name: &str, default: usize| -> Result<usize, String> {
            match text(name)? {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{}: {v:?} is not a whole number", self.origin(name))),
            }
        };
        let listen =
            listen_addr(&text("listen")?.unwrap_or_else(|| "127.0.0.1:8080".into()), &self.origin("listen"))?;
        let path = text("path")?.unwrap_or_else(|| "/egnyte/webhook".into());
        if !path.starts_with('/') || path.contains('?') || path == "/healthz" || path == "/metrics" {
            return Err(format!(
                "{}: {path:?} must start with '/', have no '?', and not be /healthz or /metrics",
                self.origin("path")
            ));
        }
        let header = text("auth-header")?;
        if header.as_deref().is_some_and(|h| h.is_empty() || !h.bytes().all(is_token_char)) {
            return Err(format!("{}: not a valid header name", self.origin("auth-header")));
        }
        let (token, token_file) = match (text("auth-token")?, self.get("auth-token-file")) {
            (Some(_), Some(_)) => return Err("give --auth-token or --auth-token-file, not both".into()),
            (Some(token), None) => {
                let token = Token::parse(token.into_bytes(), header)
                    .map_err(|e| format!("{}: {e}", self.origin("auth-token")))?;
                (Some(token), None)
            }
            (None, Some(file)) => {
                let path = PathBuf::from(file);
                let token = Token::read_file(&path, header).map_err(|e| format!("--auth-token-file {e}"))?;
                (Some(token), Some(path))
            }
            // Under systemd, `LoadCredential=token:…` hands the token over as a file.
            (None, None) => match credential_token() {
                Some(path) => {
                    let token = Token::read_file(&path, header).map_err(|e| format!("credential {e}"))?;
                    (Some(token), Some(path))
                }
                None => (None, None),
            },
        };
        if token.is_none() && self.get("auth-header").is_some() {
            return Err(format!(
                "{} is set but there is no token (--auth-token, --auth-token-file or a `token` credential)",
                self.origin("auth-header")
            ));
        }
        let max_body = number("max-body", serve::DEFAULT_MAX_BODY)?;
        let max_headers = number("max-headers", http::head::DEFAULT_MAX_HEADERS)?;
        if max_headers > MAX_HEADERS_LIMIT {
            return Err(format!("{}: at most {MAX_HEADERS_LIMIT}", self.origin("max-headers")));
        }
        let max_header_bytes = number("max-header-bytes", http::head::DEFAULT_MAX_HEAD_BYTES)?;
        if !HEADER_BYTES_RANGE.contains(&max_header_bytes) {
            return Err(format!(
                "{}: from {} to {}",
                self.origin("max-header-bytes"),
                HEADER_BYTES_RANGE.start(),
                HEADER_BYTES_RANGE.end()
            ));
        }
        let read_timeout = number("read-timeout", serve::DEFAULT_READ_TIMEOUT.as_secs() as usize)?;
        let max_connections = number("max-connections", serve::DEFAULT_MAX_CONNECTIONS)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let io_threads = number("io-threads", cpus)?;
        let dedup_capacity = number("dedup-capacity", dedup::DEFAULT_CAPACITY)?;
        if dedup_capacity > dedup::MAX_CAPACITY {
            return Err(format!("{}: at most {}", self.origin("dedup-capacity"), dedup::MAX_CAPACITY));
        }
        let bytes = |name: &str, default: u64| -> Result<u64, String> {
            match text(name)? {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{}: {v:?} is not a whole number", self.origin(name))),
            }
        };
        let durability = match text("durability")? {
            None => Durability::Fsync,
            Some(v) => v.parse().map_err(|e| format!("{}: {e}", self.origin("durability")))?,
        };
        let max_journal_bytes = bytes("max-journal-bytes", serve::DEFAULT_MAX_JOURNAL_BYTES)?;
        let journal_segment_bytes = bytes("journal-segment-bytes", journal::DEFAULT_SEGMENT_BYTES)?;
        if journal_segment_bytes < MIN_SEGMENT_BYTES {
            return Err(format!("{}: at least {MIN_SEGMENT_BYTES}", self.origin("journal-segment-bytes")));
        }
        let journal_retention =
            number("journal-retention", serve::DEFAULT_JOURNAL_RETENTION.as_secs() as usize)?;
        let workers = number("workers", serve::DEFAULT_WORKERS)?;
        let mut sinks = Vec::new();
        for spec in self.all("sink") {
            let spec = spec.into_string().map_err(|_| format!("{}: not valid UTF-8", self.origin("sink")))?;
            // A sink's name is a line of the checkpoint: a control character would break it.
            if has_control(std::ffi::OsStr::new(&spec)) {
                return Err(format!("{}: {spec:?} has a control character", self.origin("sink")));
            }
            sinks.push(spec.parse::<SinkSpec>().map_err(|e| format!("{}: {e}", self.origin("sink")))?);
        }
        let sink_options = SinkOptions {
            jsonl_max_bytes: bytes("jsonl-max-bytes", SinkOptions::default().jsonl_max_bytes)?,
            exec_timeout: Duration::from_secs(number(
                "exec-timeout",
                SinkOptions::default().exec_timeout.as_secs() as usize,
            )? as u64),
        };
        let delivery_attempts = number("delivery-attempts", dispatch::DEFAULT_DELIVERY_ATTEMPTS as usize)?;
        let delivery_attempts = u32::try_from(delivery_attempts)
            .map_err(|_| format!("{}: too large", self.origin("delivery-attempts")))?;
        let shutdown_timeout =
            number("shutdown-timeout", serve::DEFAULT_SHUTDOWN_TIMEOUT.as_secs() as usize)?;
        let stack_words = match std::env::var(STACK_WORDS_ENV) {
            Ok(v) => v.parse().map_err(|_| format!("{STACK_WORDS_ENV}: {v:?} is not a whole number"))?,
            Err(_) => serve::STACK_WORDS,
        };
        for (name, value) in [
            ("max-body", max_body),
            ("max-headers", max_headers),
            ("read-timeout", read_timeout),
            ("max-connections", max_connections),
            ("io-threads", io_threads),
            ("dedup-capacity", dedup_capacity),
            ("workers", workers),
            ("exec-timeout", sink_options.exec_timeout.as_secs() as usize),
            ("delivery-attempts", delivery_attempts as usize),
        ] {
            if value == 0 {
                return Err(format!("{} must be at least 1", self.origin(name)));
            }
        }
        for (name, value) in [
            ("read-timeout", read_timeout as u64),
            ("max-connections", max_connections as u64),
            ("io-threads", io_threads as u64),
            ("workers", workers as u64),
            ("exec-timeout", sink_options.exec_timeout.as_secs()),
            ("delivery-attempts", u64::from(delivery_attempts)),
            ("shutdown-timeout", shutdown_timeout as u64),
            ("journal-retention", journal_retention as u64),
            ("max-journal-bytes", max_journal_bytes),
        ] {
            let &(_, low, high) = RANGES.iter().find(|(n, ..)| *n == name).expect("a range for each");
            if !(low..=high).contains(&value) {
                return Err(match high {
                    u64::MAX => format!("{}: at least {low}", self.origin(name)),
                    _ => format!("{}: from {low} to {high}", self.origin(name)),
                });
            }
        }
        if sink_options.jsonl_max_bytes != 0 && sink_options.jsonl_max_bytes < MIN_JSONL_MAX_BYTES {
            return Err(format!(
                "{}: 0 (never) or at least {MIN_JSONL_MAX_BYTES}",
                self.origin("jsonl-max-bytes")
            ));
        }
        let data_dir = self.get("data-dir").map_or_else(|| PathBuf::from("./egnyte-data"), PathBuf::from);
        if data_dir.as_os_str().is_empty() {
            return Err(format!("{}: empty (give a directory)", self.origin("data-dir")));
        }
        if has_control(data_dir.as_os_str()) {
            return Err(format!("{}: has a control character (a line break?)", self.origin("data-dir")));
        }
        Ok(ServeConfig {
            listen,
            path,
            token,
            token_file,
            data_dir,
            max_body,
            max_headers,
            max_header_bytes,
            read_timeout: Duration::from_secs(read_timeout as u64),
            max_connections,
            io_threads,
            stack_words,
            dedup_capacity,
            durability,
            max_journal_bytes,
            journal_segment_bytes,
            journal_retention: Duration::from_secs(journal_retention as u64),
            workers,
            sinks,
            sink_options,
            delivery_attempts,
            shutdown_timeout: Duration::from_secs(shutdown_timeout as u64),
        })
    }
}

/// An `EGNYTE_RECEIVER_*` variable that names no option is a typo the operator believes in
/// (`EGNYTE_RECEIVER_MAXBODY=100` would otherwise be ignored): refuse it, with the closest name.
fn unknown_variables() -> Result<(), String> {
    let known: Vec<String> = OPTIONS.iter().map(|(name, ..)| env_name(name)).collect();
    for (variable, _) in std::env::vars_os() {
        let Some(variable) = variable.to_str() else { continue };
        if !variable.starts_with("EGNYTE_RECEIVER_")
            || variable == STACK_WORDS_ENV
            || known.iter().any(|k| k == variable)
        {
            continue;
        }
        let closest = known
            .iter()
            .min_by_key(|k| edit_distance(k, variable))
            .filter(|k| edit_distance(k, variable) <= 3);
        return Err(match closest {
            Some(name) => format!("{variable} is not a setting (did you mean {name}?)"),
            None => format!("{variable} is not a setting (`egnyte-receiver serve --help` lists them)"),
        });
    }
    Ok(())
}

/// Levenshtein distance (bytes), for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.as_bytes().iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diagonal + usize::from(x != y));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// `EGNYTE_RECEIVER_` + the option name in upper case, dashes as underscores.
fn env_name(option: &str) -> String {
    format!("EGNYTE_RECEIVER_{}", option.to_ascii_uppercase().replace('-', "_"))
}

fn listen_addr(value: &str, origin: &str) -> Result<SocketAddr, String> {
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("{origin}: {value:?} is not an address like 127.0.0.1:8080 or [::1]:8080"))
}

/// `$CREDENTIALS_DIRECTORY/token`, when systemd passed a credential named `token`.
fn credential_token() -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var_os("CREDENTIALS_DIRECTORY")?).join("token");
    path.exists().then_some(path)
}

/// RFC 9110 token characters, the ones allowed in a header name.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Runs the server; the return value is the exit status.
pub fn run(args: &Args) -> u8 {
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("egnyte-receiver: {message}");
            return super::EXIT_USAGE;
        }
    };
    // Before any thread starts, so that only the waiting loop below receives them.
    let signals = match Signals::block() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("egnyte-receiver: cannot block signals: {error}");
            return 1;
        }
    };
    let running = match serve::start(config) {
        Ok(running) => running,
        Err(error) => {
            // One line on stderr: through the logger (journald keeps its priority) unless logging
            // is off.
            if log::log_enabled!(log::Level::Error) {
                log::error!("{error}");
            } else {
                eprintln!("egnyte-receiver: {error}");
            }
            return 1;
        }
    };
    let notifier = Arc::new(Notifier::from_env());
    let health = running.health();
    notifier.ready(&format!("listening on {}; {}", running.local_addr(), health.summary()));
    let stop_reporting = Arc::new(AtomicBool::new(false));
    let reporter = report(Arc::clone(&notifier), health, Arc::clone(&stop_reporting));
    loop {
        match signals.wait() {
            Signal::Reopen => {
                running.reopen();
                running.reload_token();
            }
            Signal::Stop(name) => {
                log::info!("{name}: stopping (finishing requests in flight, delivering what is journaled)");
                notifier.stopping(&format!("{name}: stopping"));
                stop_reporting.store(true, Ordering::Relaxed);
                if let Some(reporter) = reporter {
                    reporter.thread().unpark();
                    let _ = reporter.join();
                }
                let stopped = running.shutdown();
                if stopped.unchecked > 0 {
                    log::warn!(
                        "stopped, but the last checkpoint could not be stored (see the errors above): \
                         {} delivered records past it are delivered again after the next start (except \
                         into jsonl files, which resume after their last line)",
                        stopped.unchecked
                    );
                }
                if stopped.requests_cut > 0 || stopped.undelivered > 0 {
                    log::warn!(
                        "stopped at the shutdown timeout: {} requests cut, {} journaled records not yet \
                         delivered (they are delivered after the next start)",
                        stopped.requests_cut,
                        stopped.undelivered
                    );
                } else if stopped.unchecked == 0 {
                    log::info!("stopped: every journaled event delivered and checkpointed");
                }
                return 0;
            }
        }
    }
}

/// How often the status line is refreshed under systemd.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Under systemd: a thread that sends `WATCHDOG=1` at half of `$WATCHDOG_USEC` while the
/// receiver is healthy (so a stuck or poisoned receiver is restarted), and refreshes `STATUS=`.
fn report(
    notifier: Arc<Notifier>,
    health: Health,
    stop: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    if !notifier.enabled() {
        return None;
    }
    let watchdog = notify::watchdog_interval();
    let tick = watchdog.map_or(STATUS_INTERVAL, |w| w.min(STATUS_INTERVAL));
    let spawned = std::thread::Builder::new().name("sd-notify".into()).spawn(move || {
        let mut last_status = std::time::Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if watchdog.is_some() && health.healthy() {
                notifier.watchdog();
            }
            if last_status.elapsed() >= STATUS_INTERVAL {
                notifier.status(&health.summary());
                last_status = std::time::Instant::now();
            }
            std::thread::park_timeout(tick);
        }
    });
    match spawned {
        Ok(handle) => Some(handle),
        Err(e) => {
            log::error!("cannot start the sd-notify thread: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[(&'static str, &str)]) -> Args {
        Args { values: flags.iter().map(|(n, v)| (*n, OsString::from(v))).collect() }
    }

    #[test]
    fn env_names_follow_the_rule() {
        assert_eq!(env_name("max-body"), "EGNYTE_RECEIVER_MAX_BODY");
        assert_eq!(env_name("auth-token-file"), "EGNYTE_RECEIVER_AUTH_TOKEN_FILE");
        assert!(help().contains("--max-connections N"));
        for (name, ..) in OPTIONS {
            assert!(help().contains(&format!("--{name} ")), "{name} missing from help");
        }
    }

    #[test]
    fn near_names_are_suggested() {
        assert_eq!(edit_distance("EGNYTE_RECEIVER_MAX_BODY", "EGNYTE_RECEIVER_MAXBODY"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn flags_are_checked() {
        // Only flags that do not depend on the environment of the test process.
        let bad = [
            ("listen", "nowhere"),
            ("path", "egnyte"),
            ("path", "/healthz"),
            ("max-body", "0"),
            ("max-body", "-1"),
            ("max-headers", "0"),
            ("max-headers", "10001"),
            ("max-header-bytes", "1023"),
            ("max-header-bytes", "1048577"),
            ("read-timeout", "soon"),
            ("auth-header", "Bad Header"),
            ("auth-token", ""),
            // Absurd values: each would break the service some way.
            ("read-timeout", "9223372036854775808"),
            ("read-timeout", "3601"),
            ("max-connections", "1000001"),
            ("exec-timeout", "9223372036854775808"),
            ("exec-timeout", "86401"),
            ("shutdown-timeout", "18446744073709551615"),
            ("shutdown-timeout", "3601"),
            ("workers", "100000"),
            ("io-threads", "100000"),
            ("max-journal-bytes", "0"),
            ("max-journal-bytes", "4095"),
            ("delivery-attempts", "1001"),
            ("journal-retention", "31536001"),
            ("jsonl-max-bytes", "100"),
            ("data-dir", ""),
            ("data-dir", "/var/lib/a\nb"),
            ("sink", "jsonl:/tmp/a\nb.jsonl"),
            ("sink", "exec:/bin/\x7f"),
        ];
        for (name, value) in bad {
            assert!(args(&[(name, value)]).config().is_err(), "--{name} {value} must be refused");
        }
        let config = args(&[
            ("listen", "[::1]:9000"),
            ("max-body", "1024"),
            ("max-body", "2048"),
            ("auth-token", "t"),
        ])
        .config()
        .unwrap();
        assert_eq!(config.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(config.max_body, 2048, "the last flag wins");
        assert!(config.token.is_some());
        // The ends of each range are accepted.
        let edges = [
            ("read-timeout", "3600"),
            ("max-connections", "1000000"),
            ("workers", "256"),
            ("io-threads", "256"),
            ("exec-timeout", "86400"),
            ("shutdown-timeout", "0"),
            ("journal-retention", "0"),
            ("max-journal-bytes", "4096"),
            ("delivery-attempts", "1000"),
            ("jsonl-max-bytes", "0"),
            ("jsonl-max-bytes", "4096"),
        ];
        for (name, value) in edges {
            assert!(args(&[(name, value)]).config().is_ok(), "--{name} {value} must be accepted");
        }
        let error = args(&[("workers", "100000")]).config().unwrap_err();
        assert_eq!(error, "--workers: from 1 to 256");
    }
}
