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

use super::notify::{self, Notifier};
use super::signals::{Signal, Signals};
use egnyte_receiver::http;
use egnyte_receiver::journal::{self, Durability};
use egnyte_receiver::serve::{self, Health, ServeConfig, Token};
use egnyte_receiver::sink::{self, SinkOptions, SinkSpec};
use egnyte_receiver::{dedup, dispatch, egnyte};

use super::Command;

/// One option of `serve`: the single source of its help line, its default and its range
/// (`--help`, the checks below, and the tests that hold the README and `deploy/env` to it).
struct Opt {
    name: &'static str,
    /// The value's placeholder in help (`N`, `SECS`, `BYTES`, …).
    value: &'static str,
    default: Default,
    /// For numeric options: which values start the service.
    range: Range,
    meaning: &'static str,
}

/// An option's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Default {
    /// A number.
    Number(u64),
    /// A byte count (help adds it in KiB, MiB or GiB).
    Bytes(u64),
    /// Not a plain value: said in words (`none`, `CPU count`, …).
    Words(&'static str),
}

/// The values a numeric option accepts. Beyond them a value is a typo that would break the
/// service (a timer that overflows, a thread count the machine cannot start, a journal budget
/// that refuses every POST), so it stops the start instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    /// Not a number.
    Text,
    /// From the first to the second, both included.
    Within(u64, u64),
    /// 0 (off), or at least this.
    ZeroOrAtLeast(u64),
}

/// Smallest journal segment (a header and a few records), and so the smallest journal budget.
const MIN_SEGMENT_BYTES: u64 = 4096;

/// Every option of `serve`.
const OPTIONS: [Opt; 35] = [
    Opt {
        name: "listen",
        value: "ADDR",
        default: Default::Words("127.0.0.1:8080"),
        range: Range::Text,
        meaning: "address to bind",
    },
    Opt {
        name: "metrics-listen",
        value: "ADDR",
        default: Default::Words("none"),
        range: Range::Text,
        meaning: "serve /metrics and /healthz on this address instead (then /metrics is 404 on --listen)",
    },
    Opt {
        name: "path",
        value: "PATH",
        default: Default::Words("/egnyte/webhook"),
        range: Range::Text,
        meaning: "the webhook route",
    },
    Opt {
        name: "auth-token",
        value: "TOKEN",
        default: Default::Words("none"),
        range: Range::Text,
        meaning: "a POST must carry exactly this value (see --auth-header)",
    },
    Opt {
        name: "auth-token-file",
        value: "FILE",
        default: Default::Words("$CREDENTIALS_DIRECTORY/token if present, else none"),
        range: Range::Text,
        meaning: "read the token from FILE (trailing newline removed; re-read on SIGHUP)",
    },
    Opt {
        name: "auth-header",
        value: "NAME",
        default: Default::Words("Authorization or Authentication"),
        range: Range::Text,
        meaning: "accept the token only in this header",
    },
    Opt {
        name: "data-dir",
        value: "DIR",
        default: Default::Words("./egnyte-data"),
        range: Range::Text,
        meaning: "all state: journal, dedup keys, checkpoint, quarantine, dead letters",
    },
    Opt {
        name: "max-body",
        value: "BYTES",
        default: Default::Bytes(serve::DEFAULT_MAX_BODY as u64),
        range: Range::Within(1, usize::MAX as u64),
        meaning: "a larger body (declared, or chunked and decoded) is answered 413",
    },
    Opt {
        name: "max-headers",
        value: "N",
        default: Default::Number(http::head::DEFAULT_MAX_HEADERS as u64),
        // Each costs 32 bytes of parser scratch in every connection.
        range: Range::Within(1, 10_000),
        meaning: "header lines in one request; more are answered 431",
    },
    Opt {
        name: "max-header-bytes",
        value: "BYTES",
        default: Default::Bytes(http::head::DEFAULT_MAX_HEAD_BYTES as u64),
        // A short request line and a few headers; 1 MiB (Go's default, and already 1 GiB of
        // buffers across 1,000 slow connections).
        range: Range::Within(1024, 1 << 20),
        meaning: "request line and headers together (and a chunked body's trailers); more are answered 431",
    },
    Opt {
        name: "read-timeout",
        value: "SECS",
        default: Default::Number(serve::DEFAULT_READ_TIMEOUT.as_secs()),
        range: Range::Within(1, 3600),
        meaning: "time to complete a request, and to stay idle between two",
    },
    Opt {
        name: "max-connections",
        value: "N",
        default: Default::Number(serve::DEFAULT_MAX_CONNECTIONS as u64),
        range: Range::Within(1, 1_000_000),
        meaning: "connections beyond this are closed at once (capped to what the open-file limit leaves)",
    },
    Opt {
        name: "io-threads",
        value: "N",
        default: Default::Words("CPU count"),
        range: Range::Within(1, 256),
        meaning: "may worker threads",
    },
    Opt {
        name: "dedup-capacity",
        value: "N",
        default: Default::Number(dedup::DEFAULT_CAPACITY as u64),
        range: Range::Within(1, dedup::MAX_CAPACITY as u64),
        meaning: "event ids remembered for deduplication (24.5 bytes of memory each)",
    },
    Opt {
        name: "durability",
        value: "MODE",
        default: Default::Words("fsync"),
        range: Range::Text,
        meaning: "fsync: answer 200 once events are fsynced; none: once queued",
    },
    Opt {
        name: "max-journal-bytes",
        value: "BYTES",
        default: Default::Bytes(serve::DEFAULT_MAX_JOURNAL_BYTES),
        range: Range::Within(MIN_SEGMENT_BYTES, u64::MAX),
        meaning: "undelivered events on disk beyond which POSTs get 503",
    },
    Opt {
        name: "journal-segment-bytes",
        value: "BYTES",
        default: Default::Bytes(journal::DEFAULT_SEGMENT_BYTES),
        range: Range::Within(MIN_SEGMENT_BYTES, u64::MAX),
        meaning: "journal segment size, the unit of deletion (at most 1/8 of --max-journal-bytes)",
    },
    Opt {
        name: "journal-retention",
        value: "SECS",
        default: Default::Number(serve::DEFAULT_JOURNAL_RETENTION.as_secs()),
        range: Range::Within(0, 31_536_000),
        meaning: "delivered events stay this long for `replay` (less when over --max-journal-bytes)",
    },
    Opt {
        name: "workers",
        value: "N",
        default: Default::Number(serve::DEFAULT_WORKERS as u64),
        range: Range::Within(1, 256),
        meaning: "delivery threads of each exec, http or Handler sink (an exec sink's most children at once)",
    },
    Opt {
        name: "sink",
        value: "SPEC",
        default: Default::Words("jsonl:DATA_DIR/events.jsonl"),
        range: Range::Text,
        meaning: "jsonl:PATH, exec:PROGRAM, stdout, https://URL or http://URL, optionally NAME=SPEC (NAME \
                  keeps its checkpoint whatever the path); repeat for several (environment: comma-separated)",
    },
    Opt {
        name: "sink-start",
        value: "WHEN",
        default: Default::Words("oldest"),
        range: Range::Text,
        meaning: "where a sink the checkpoint does not know starts: oldest (every event still journaled) \
                  or end (only events accepted from now on)",
    },
    Opt {
        name: "jsonl-max-bytes",
        value: "BYTES",
        default: Default::Bytes(sink::DEFAULT_JSONL_MAX_BYTES),
        range: Range::ZeroOrAtLeast(4096),
        meaning: "rotate a jsonl sink file at this size; 0 never rotates",
    },
    Opt {
        name: "exec-timeout",
        value: "SECS",
        default: Default::Number(sink::DEFAULT_EXEC_TIMEOUT.as_secs()),
        range: Range::Within(1, 86_400),
        meaning: "an exec sink program running longer is killed (and retried)",
    },
    Opt {
        name: "http-batch",
        value: "N",
        default: Default::Number(sink::DEFAULT_HTTP_BATCH as u64),
        range: Range::Within(1, sink::MAX_HTTP_BATCH as u64),
        meaning: "events per POST of an http sink at most (one JSON array, all or nothing)",
    },
    Opt {
        name: "http-timeout",
        value: "SECS",
        default: Default::Number(sink::DEFAULT_HTTP_TIMEOUT.as_secs()),
        range: Range::Within(1, 3600),
        meaning: "an http sink POST taking longer (connecting included) fails (and is retried)",
    },
    Opt {
        name: "http-sign-secret-file",
        value: "FILE",
        default: Default::Words("none (unsigned)"),
        range: Range::Text,
        meaning: "sign http sink requests (Standard Webhooks headers) with the whsec_ secret in FILE",
    },
    Opt {
        name: "delivery-attempts",
        value: "N",
        default: Default::Number(dispatch::DEFAULT_DELIVERY_ATTEMPTS as u64),
        range: Range::Within(1, 1000),
        meaning: "attempts per event and sink before the dead-letter file",
    },
    Opt {
        name: "shutdown-timeout",
        value: "SECS",
        default: Default::Number(serve::DEFAULT_SHUTDOWN_TIMEOUT.as_secs()),
        range: Range::Within(0, 3600),
        meaning: "time to deliver journaled events when stopping",
    },
    Opt {
        name: "log-format",
        value: "FORMAT",
        default: Default::Words("text"),
        range: Range::Text,
        meaning: "text: [UTC time LEVEL target] message (under journald: <priority>target: message); \
                  json: one {\"ts\",\"level\",\"target\",\"msg\"} object per line",
    },
    Opt {
        name: "webhook-id",
        value: "ID",
        default: Default::Words("none"),
        range: Range::Text,
        meaning: "keep this webhook enabled at Egnyte: check it at start and every --webhook-check-interval, \
                  re-enable it when found disabled while events can be stored (needs --domain or --api-url, and an \
                  API token; see `egnyte-receiver webhook --help`)",
    },
    Opt {
        name: "webhook-check-interval",
        value: "SECS",
        default: Default::Number(egnyte::DEFAULT_CHECK_INTERVAL.as_secs()),
        // Egnyte allows an API token about 1,000 calls a day: 120 s is 720 of them.
        range: Range::Within(egnyte::MIN_CHECK_INTERVAL.as_secs(), egnyte::MAX_CHECK_INTERVAL.as_secs()),
        meaning: "time between two checks of --webhook-id (each is one of the API token's ~1,000 calls a day)",
    },
    Opt {
        name: "domain",
        value: "DOMAIN",
        default: Default::Words("none"),
        range: Range::Text,
        meaning: "the Egnyte domain, acme or acme.egnyte.com (for --webhook-id and `webhook`)",
    },
    Opt {
        name: "api-url",
        value: "URL",
        default: Default::Words("https://DOMAIN.egnyte.com"),
        range: Range::Text,
        meaning: "Egnyte's API (http:// only on a loopback address: tests, a local proxy)",
    },
    Opt {
        name: "api-token",
        value: "TOKEN",
        default: Default::Words("none"),
        range: Range::Text,
        meaning: "an Egnyte OAuth bearer token with the webhook scope, for --webhook-id (prefer --api-token-file)",
    },
    Opt {
        name: "api-token-file",
        value: "FILE",
        default: Default::Words("$CREDENTIALS_DIRECTORY/api-token if present, else none"),
        range: Range::Text,
        meaning: "read the API token from FILE (one line)",
    },
];

impl Opt {
    /// The option called `name` (every caller names one that exists).
    fn named(name: &str) -> &'static Opt {
        OPTIONS.iter().find(|o| o.name == name).expect("an option of that name")
    }

    /// The default as help shows it: `16777216 (16 MiB)`, `30`, `none`.
    fn default_text(&self) -> String {
        match self.default {
            Default::Number(n) => n.to_string(),
            Default::Bytes(0) => "0".to_string(),
            Default::Bytes(n) => match n.trailing_zeros() {
                30.. => format!("{n} ({} GiB)", n >> 30),
                20.. => format!("{n} ({} MiB)", n >> 20),
                10.. => format!("{n} ({} KiB)", n >> 10),
                _ => n.to_string(),
            },
            Default::Words(words) => words.to_string(),
        }
    }

    /// The range as help and errors say it: `1 to 3600`, `at least 4096`, `0, or at least 4096`.
    fn range_text(&self) -> Option<String> {
        match self.range {
            Range::Text => None,
            Range::Within(low, u64::MAX) => Some(format!("at least {low}")),
            Range::Within(low, high) if high == usize::MAX as u64 => Some(format!("at least {low}")),
            Range::Within(low, high) => Some(format!("{low} to {high}")),
            Range::ZeroOrAtLeast(low) => Some(format!("0, or at least {low}")),
        }
    }

    /// What a refused value should have been: `from 1 to 3600`, `at least 4096`, …
    fn range_error(&self) -> String {
        match self.range {
            Range::Within(low, high) if high != u64::MAX && high != usize::MAX as u64 => {
                format!("from {low} to {high}")
            }
            _ => self.range_text().unwrap_or_default(),
        }
    }

    /// The default of a numeric option.
    fn default_number(&self) -> u64 {
        match self.default {
            Default::Number(n) | Default::Bytes(n) => n,
            Default::Words(words) => unreachable!("--{} defaults to {words}, not a number", self.name),
        }
    }

    fn accepts(&self, value: u64) -> bool {
        match self.range {
            Range::Text => true,
            Range::Within(low, high) => (low..=high).contains(&value),
            Range::ZeroOrAtLeast(low) => value == 0 || value >= low,
        }
    }
}

/// Hidden option (no flag): coroutine stack size in words; odd values make may report stack use.
const STACK_WORDS_ENV: &str = "EGNYTE_RECEIVER_STACK_WORDS";

/// True when a path holds a byte below 0x20 or DEL.
fn has_control(text: &std::ffi::OsStr) -> bool {
    text.as_encoded_bytes().iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// `serve --help`, generated from [`OPTIONS`] so it can never miss one.
pub(super) fn help() -> String {
    let mut text = String::from(
        "Receive Egnyte webhooks over HTTP.\n\nUsage: egnyte-receiver serve [OPTIONS]\n\nOptions \
         (each also from the environment as EGNYTE_RECEIVER_<NAME>, e.g. EGNYTE_RECEIVER_MAX_BODY;\n\
         a flag beats the environment, which beats the default):\n",
    );
    for option in &OPTIONS {
        let range = option.range_text().map(|r| format!("; range: {r}")).unwrap_or_default();
        text.push_str(&format!(
            "  --{} {}\n      {} [default: {}{range}]\n",
            option.name,
            option.value,
            option.meaning,
            option.default_text()
        ));
    }
    text.push_str(
        "  --check\n      check the options, the token, the data directory, every sink and the listen \
         address,\n      print one line per problem and exit 0 (none) or 1, starting nothing\n",
    );
    text.push_str("  -h, --help\n      print this help\n\nLogging: RUST_LOG (default: info).\n");
    text
}

/// The raw option values, before checking: flag or environment, by option name.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Args {
    values: Vec<(&'static str, OsString)>,
    /// `--check`: try everything, start nothing.
    check: bool,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut values = Vec::new();
        let mut check = false;
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(help())),
                Long("check") => check = true,
                Long(name) => match OPTIONS.iter().find(|option| option.name == name) {
                    Some(option) => values.push((option.name, parser.value()?)),
                    None => return Err(arg.unexpected()),
                },
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Command::Serve(Args { values, check }))
    }

    /// The value of `name`: the last flag, else the environment variable (an empty one counts as
    /// unset, like a commented-out line: the default applies).
    pub(super) fn get(&self, name: &str) -> Option<OsString> {
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

    /// Every option's effective value and where it came from, for the start-up log line:
    /// `max-body=1048576 (flag), read-timeout=30 (default), auth-token=<set, 32 chars> (environment)`.
    /// A token is never shown, only its length.
    fn effective(&self) -> String {
        let mut parts = Vec::with_capacity(OPTIONS.len());
        for option in &OPTIONS {
            let name = option.name;
            let flagged = self.values.iter().any(|(o, _)| *o == name);
            let values = self.all(name);
            let (value, from) = match values.last() {
                Some(_) if name == "sink" => {
                    let specs: Vec<String> =
                        values.iter().map(|v| sink::shown_spec(&v.to_string_lossy())).collect();
                    (specs.join(","), if flagged { "flag" } else { "environment" })
                }
                Some(_) => {
                    let value = self.get(name).unwrap_or_default().to_string_lossy().into_owned();
                    (value, if flagged { "flag" } else { "environment" })
                }
                None => (option.default_text(), "default"),
            };
            let value = if (name == "auth-token" || name == "api-token") && from != "default" {
                format!("<set, {} chars>", value.chars().count())
            } else {
                value
            };
            parts.push(format!("{name}={value} ({from})"));
        }
        parts.join(", ")
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
    pub(crate) fn config(&self) -> Result<ServeConfig, String> {
        unknown_variables()?;
        let text = |name: &str| -> Result<Option<String>, String> {
            self.get(name)
                .map(|v| v.into_string().map_err(|_| format!("{}: not valid UTF-8", self.origin(name))))
                .transpose()
        };
        // A numeric option's value, checked against its range; `None` when not given.
        let given = |name: &str| -> Result<Option<u64>, String> {
            let Some(v) = text(name)? else { return Ok(None) };
            let value: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{}: {v:?} is not a whole number", self.origin(name)))?;
            let option = Opt::named(name);
            if !option.accepts(value) {
                return Err(format!("{}: {}", self.origin(name), option.range_error()));
            }
            Ok(Some(value))
        };
        let number = |name: &str| -> Result<u64, String> {
            Ok(given(name)?.unwrap_or_else(|| Opt::named(name).default_number()))
        };
        let words = |name: &str| -> Result<String, String> {
            Ok(text(name)?.unwrap_or_else(|| Opt::named(name).default_text()))
        };
        let listen = listen_addr(&words("listen")?, &self.origin("listen"))?;
        let path = words("path")?;
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
                let origin = self.origin("auth-token");
                let parse = |value: String| {
                    Token::parse(value.into_bytes(), header.clone()).map_err(|e| format!("{origin}: {e}"))
                };
                // `--auth-token` twice: the token in use and the next (a rotation).
                let flags: Vec<&OsString> =
                    self.values.iter().filter(|(o, _)| *o == "auth-token").map(|(_, v)| v).collect();
                let mut tokens = match flags.len() {
                    0 | 1 => vec![parse(token)?],
                    _ => flags
                        .into_iter()
                        .map(|v| parse(v.to_string_lossy().into_owned()))
                        .collect::<Result<Vec<_>, _>>()?,
                };
                let first = tokens.remove(0);
                let token =
                    tokens.into_iter().try_fold(first, Token::and).map_err(|e| format!("{origin}: {e}"))?;
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
        let max_body = number("max-body")? as usize;
        let max_headers = number("max-headers")? as usize;
        let max_header_bytes = number("max-header-bytes")? as usize;
        let read_timeout = Duration::from_secs(number("read-timeout")?);
        let max_connections = number("max-connections")? as usize;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let io_threads = given("io-threads")?.map_or(cpus, |n| n as usize);
        let dedup_capacity = number("dedup-capacity")? as usize;
        let durability = match text("durability")? {
            None => Durability::Fsync,
            Some(v) => v.parse().map_err(|e| format!("{}: {e}", self.origin("durability")))?,
        };
        let max_journal_bytes = number("max-journal-bytes")?;
        let journal_segment_bytes = number("journal-segment-bytes")?;
        let journal_retention = Duration::from_secs(number("journal-retention")?);
        let workers = number("workers")? as usize;
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
            jsonl_max_bytes: number("jsonl-max-bytes")?,
            exec_timeout: Duration::from_secs(number("exec-timeout")?),
            http_batch: number("http-batch")? as usize,
            http_timeout: Duration::from_secs(number("http-timeout")?),
            http_sign_secret_file: self.get("http-sign-secret-file").map(PathBuf::from),
        };
        let delivery_attempts = number("delivery-attempts")? as u32;
        let shutdown_timeout = Duration::from_secs(number("shutdown-timeout")?);
        let webhook_watch =
            super::webhook::watch_config(&text, &|name| self.origin(name), number("webhook-check-interval"))?;
        let stack_words = match std::env::var(STACK_WORDS_ENV) {
            Ok(v) => v.parse().map_err(|_| format!("{STACK_WORDS_ENV}: {v:?} is not a whole number"))?,
            Err(_) => serve::STACK_WORDS,
        };
        let data_dir = self
            .get("data-dir")
            .map_or_else(|| PathBuf::from(Opt::named("data-dir").default_text()), PathBuf::from);
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
            read_timeout,
            max_connections,
            io_threads,
            stack_words,
            dedup_capacity,
            durability,
            max_journal_bytes,
            journal_segment_bytes,
            journal_retention,
            workers,
            sinks,
            sink_start: words("sink-start")?
                .parse()
                .map_err(|e| format!("{}: {e}", self.origin("sink-start")))?,
            sink_options,
            delivery_attempts,
            shutdown_timeout,
            metrics_listen: text("metrics-listen")?
                .map(|addr| listen_addr(&addr, &self.origin("metrics-listen")))
                .transpose()?,
            webhook_watch,
        })
    }
}

/// `serve --check`: prints each problem (and note) on a line; 0 when there is no problem.
fn report_check(config: &ServeConfig) -> u8 {
    let found = super::preflight::check(config);
    for note in &found.notes {
        println!("note: {note}");
    }
    for problem in &found.problems {
        println!("problem: {problem}");
    }
    if found.problems.is_empty() {
        println!("configuration OK: listen {}, data in {}", config.listen, config.data_dir.display());
        0
    } else {
        println!("{} problem(s): the receiver would not start", found.problems.len());
        1
    }
}

/// An `EGNYTE_RECEIVER_*` variable that names no option is a typo the operator believes in
/// (`EGNYTE_RECEIVER_MAXBODY=100` would otherwise be ignored): refuse it, with the closest name.
fn unknown_variables() -> Result<(), String> {
    let known: Vec<String> = OPTIONS.iter().map(|option| env_name(option.name)).collect();
    for (variable, _) in std::env::vars_os() {
        let Some(variable) = variable.to_str() else { continue };
        if !variable.starts_with("EGNYTE_RECEIVER_")
            || variable == STACK_WORDS_ENV
            || variable == "EGNYTE_RECEIVER_REVISION" // build.rs's, also set by `cargo run` and `cargo test`
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
pub(super) fn run(args: &Args) -> u8 {
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("egnyte-receiver: {message}");
            return super::EXIT_USAGE;
        }
    };
    if args.check {
        return report_check(&config);
    }
    log::info!("configuration: {}", args.effective());
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
        Args { values: flags.iter().map(|(n, v)| (*n, OsString::from(v))).collect(), check: false }
    }

    #[test]
    fn env_names_follow_the_rule() {
        assert_eq!(env_name("max-body"), "EGNYTE_RECEIVER_MAX_BODY");
        assert_eq!(env_name("auth-token-file"), "EGNYTE_RECEIVER_AUTH_TOKEN_FILE");
        assert!(help().contains("--max-connections N"));
        for option in &OPTIONS {
            assert!(help().contains(&format!("--{} ", option.name)), "{} missing from help", option.name);
        }
    }

    #[test]
    fn help_shows_the_defaults_and_ranges_the_code_uses() {
        let help = help();
        assert!(help.contains("[default: 16777216 (16 MiB); range: at least 1]"), "{help}");
        assert!(help.contains("[default: 1073741824 (1 GiB); range: at least 4096]"), "{help}");
        assert!(help.contains("[default: 32768 (32 KiB); range: 1024 to 1048576]"), "{help}");
        assert!(help.contains("[default: 30; range: 1 to 3600]"), "{help}");
        assert!(help.contains("[default: 0; range: 0, or at least 4096]"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:8080]\n"), "{help}");
        let defaults = args(&[]).config().unwrap();
        assert_eq!(defaults.max_body, serve::DEFAULT_MAX_BODY);
        assert_eq!(defaults.read_timeout, serve::DEFAULT_READ_TIMEOUT);
        assert_eq!(defaults.shutdown_timeout, serve::DEFAULT_SHUTDOWN_TIMEOUT);
        assert_eq!(defaults.sink_options.exec_timeout, sink::DEFAULT_EXEC_TIMEOUT);
        for option in &OPTIONS {
            if let Default::Number(n) | Default::Bytes(n) = option.default {
                assert!(option.accepts(n), "--{}'s default {n} is outside its own range", option.name);
            }
        }
    }

    /// The README's options table: per row, its cells (backticks removed).
    fn readme_rows() -> Vec<Vec<String>> {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("| option | environment | default | range | meaning |")
            .nth(1)
            .expect("the options table");
        table
            .lines()
            .skip(2)
            .take_while(|line| line.starts_with('|'))
            .map(|line| {
                line.trim_matches('|').split(" | ").map(|cell| cell.trim().replace('`', "")).collect()
            })
            .collect()
    }

    #[test]
    fn the_readme_options_table_matches_the_option_table() {
        let rows = readme_rows();
        for option in &OPTIONS {
            let flag = format!("--{} {}", option.name, option.value);
            let row = rows
                .iter()
                .find(|row| row[0].split(", ").any(|f| f == flag))
                .unwrap_or_else(|| panic!("README: no row for {flag}"));
            assert!(
                row[1].split(", ").any(|v| v == env_name(option.name)),
                "README: {flag}'s variable: {row:?}"
            );
            if row[0] == flag {
                assert_eq!(row[2], option.default_text(), "README: {flag}'s default");
            }
            if let Some(range) = option.range_text() {
                assert_eq!(row[3], range, "README: {flag}'s range");
            }
        }
        for row in &rows {
            for flag in row[0].split(", ") {
                let name = flag.trim_start_matches("--").split(' ').next().unwrap();
                assert!(OPTIONS.iter().any(|o| o.name == name), "README: {flag} is not an option");
            }
        }
    }

    #[test]
    fn deploy_env_names_real_options_with_their_defaults() {
        let env = include_str!("../../deploy/env");
        let mut named = Vec::new();
        for line in env.lines().filter(|line| line.starts_with("#EGNYTE_RECEIVER_")) {
            let (variable, value) = line.trim_start_matches('#').split_once('=').expect("VARIABLE=value");
            let option = OPTIONS
                .iter()
                .find(|o| env_name(o.name) == variable)
                .unwrap_or_else(|| panic!("deploy/env: {variable} is not a setting"));
            // Paths and addresses are the service's own; a number shown must be the default.
            if option.range != Range::Text && !value.is_empty() {
                assert_eq!(value.parse::<u64>().ok(), Some(option.default_number()), "deploy/env: {line}");
            }
            named.push(option.name);
        }
        for option in &OPTIONS {
            // Tokens go in credentials, never in the environment file.
            if !option.name.starts_with("auth-token") && option.name != "api-token" {
                assert!(named.contains(&option.name), "deploy/env has no line for --{}", option.name);
            }
        }
    }

    #[test]
    fn the_auth_token_twice_accepts_both_while_rotating() {
        let config = args(&[("auth-token", "old"), ("auth-token", "new")]).config().unwrap();
        assert_eq!(config.token.as_ref().map(Token::count), Some(2));
        let error =
            args(&[("auth-token", "a"), ("auth-token", "b"), ("auth-token", "c")]).config().unwrap_err();
        assert_eq!(error, "--auth-token: at most 2 tokens (the one in use and the next)");
        assert!(args(&[("auth-token", "a"), ("auth-token", " b")]).config().is_err());
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
