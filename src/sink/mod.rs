//! Sinks: where a journaled event is finally delivered.
//!
//! This module owns the last hop. A worker thread of the dispatcher parses one journaled record
//! (one event's JSON on one line, exactly as received) and calls [`Sink::deliver`] with the
//! record's bytes and the parsed [`Event`]; every so often the dispatcher calls [`Sink::sync`]
//! and, once it returns `Ok`, checkpoints "everything delivered before this sync is in the sink".
//!
//! * `jsonl:PATH` ([`JsonlSink`]): one line per event appended to a file, buffered, made durable
//!   by `sync`, optionally rotated by size, reopened on SIGHUP for logrotate.
//! * `exec:PROGRAM` ([`ExecSink`]): PROGRAM runs once per event with the event on stdin.
//! * `stdout` ([`StdoutSink`]): one line per event on the process's standard output.
//! * `https://URL` or `http://URL` ([`HttpSink`]): events POSTed as a JSON array, up to
//!   `--http-batch` a request ([`Sink::deliver_batch`]), with an `Idempotency-Key` and optionally
//!   Standard Webhooks signatures.
//! * a [`Handler`] ([`HandlerSink`]): a Rust program embedding the receiver is handed each event.
//!
//! Invariants every sink keeps:
//! * `deliver` is called concurrently by several workers on one shared `&Sink`: every method takes
//!   `&self` and `Sink` is `Send + Sync`. Calls may block (workers are OS threads).
//! * `deliver` returns `Err(reason)` with a short one-line reason when the event is not delivered;
//!   the worker retries and eventually dead-letters it. A sink never drops an event in silence and
//!   never leaves a half-written event that a retry would follow with a whole one (where the
//!   medium allows taking bytes back: a file can be cut, a pipe cannot).
//! * `sync` returns `Ok` only when every event whose `deliver` returned `Ok` before it was called
//!   is as durable as the sink can make it.
//! * No sink panics on an event's content or lets a handler's panic escape into the worker.
//!
//! For the next maintainer: [`SinkSpec::name`] is a sink's identity, stored in checkpoints and
//! used as the metric label `sink`: `NAME` for `NAME=SPEC`, else `jsonl:`/`exec:` and the
//! canonical absolute path ([`canonical_path`]), so that two spellings of one file are one sink
//! (an `http:` sink: its URL without user info or query, [`redact_url`]).
//! A change of its format must come with a migration (see `dispatch/resume.rs`, which adopts the
//! entries of older spellings), or every sink counts as new and receives the journal again.

mod exec;
mod handler;
mod http;
mod jsonl;
mod stdout;

pub use exec::{ExecSink, DEFAULT_EXEC_TIMEOUT, STDIN_INLINE_BYTES};
pub use handler::HandlerSink;
pub use http::{
    idempotency_key, json_array, parse_secret, sign, Batched, HttpSink, DEFAULT_HTTP_BATCH,
    DEFAULT_HTTP_TIMEOUT, HTTP_CONNECT_TIMEOUT, MAX_HTTP_BATCH, REASON_BODY_CHARS,
};
pub use jsonl::{
    last_line, JsonlSink, Resume, DEFAULT_JSONL_MAX_BYTES, JSONL_BUFFER_BYTES, MAX_ROTATION_SUFFIX,
};
pub use stdout::StdoutSink;

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::outbound::redact_url;
use crate::Event;

/// How an operator names a sink on the command line (`--sink SPEC`, repeatable).
#[derive(Clone)]
pub enum SinkSpec {
    /// `jsonl:PATH`: append one line per event to PATH.
    Jsonl(PathBuf),
    /// `exec:PROGRAM`: run PROGRAM once per event, the event on its stdin.
    Exec(PathBuf),
    /// `stdout`: one line per event on standard output.
    Stdout,
    /// `https://URL` or `http://URL`: events POSTed to the URL (as given: user info and query
    /// included, which its name and `Debug` leave out).
    Http(String),
    /// A handler supplied by a program embedding the receiver (not reachable from the command
    /// line).
    Handler {
        /// The handler's name, used in [`SinkSpec::name`] (`handler:NAME`).
        name: String,
        /// What events are handed to.
        handler: Arc<dyn Handler>,
    },
    /// `NAME=SPEC`: the sink SPEC, known as NAME in checkpoints and metrics whatever its path.
    Named {
        /// Letters, digits, `-`, `_` and `.` ([`valid_sink_name`]).
        name: String,
        /// The sink itself (not another `Named`).
        spec: Box<SinkSpec>,
    },
}

/// Names `NAME=SPEC` may not take: the names of the plain `stdout` sink and of the quarantine
/// target, which the checkpoint already uses.
pub const RESERVED_SINK_NAMES: [&str; 2] = ["stdout", "quarantine"];

impl SinkSpec {
    /// The sink's stable identity, used in checkpoints and as the metric label `sink`: NAME for
    /// `NAME=SPEC`; `jsonl:PATH` and `exec:PROGRAM` with PATH made canonical and absolute
    /// ([`canonical_path`]: `./data/events.jsonl` and `/srv/r/data/events.jsonl` are one sink);
    /// `stdout`; `handler:NAME`. It reads the file system (the directory's real path), so it is
    /// asked once, when the sink is opened.
    pub fn name(&self) -> String {
        match self {
            SinkSpec::Jsonl(path) => format!("jsonl:{}", canonical_path(path).display()),
            SinkSpec::Exec(program) => format!("exec:{}", canonical_path(program).display()),
            SinkSpec::Stdout => "stdout".to_string(),
            SinkSpec::Http(url) => redact_url(url),
            SinkSpec::Handler { name, .. } => format!("handler:{name}"),
            SinkSpec::Named { name, .. } => name.clone(),
        }
    }

    /// The sink without its `NAME=`: what it delivers to.
    pub fn without_name(&self) -> &SinkSpec {
        match self {
            SinkSpec::Named { spec, .. } => spec.without_name(),
            other => other,
        }
    }

    /// The identity of the file a `jsonl` or `exec` sink uses, named or not (`jsonl:` or `exec:`
    /// and the canonical path); `None` for the others. A checkpoint entry that an older version
    /// wrote under another spelling of the same path resolves to it
    /// ([`resolve_sink_name`]).
    pub fn path_name(&self) -> Option<String> {
        match self.without_name() {
            spec @ (SinkSpec::Jsonl(_) | SinkSpec::Exec(_)) => Some(spec.name()),
            _ => None,
        }
    }
}

/// `path` made absolute (against the working directory) with its directory resolved to its real
/// path (symbolic links, `.` and `..`); the file name is kept as it is, since the file itself may
/// not exist yet (a jsonl file is created at the first start). A directory that cannot be
/// resolved (it does not exist) is only made absolute, `.` and `..` taken lexically.
pub fn canonical_path(path: &Path) -> PathBuf {
    let absolute = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let resolved = match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(file)) => std::fs::canonicalize(parent).map(|parent| parent.join(file)),
        // `/`, or a path ending in `..`: a directory, with no file name to keep.
        _ => std::fs::canonicalize(&absolute),
    };
    resolved.unwrap_or_else(|_| lexical(&absolute))
}

/// An absolute `path` with `.` dropped and each `..` taking the component before it off, without
/// reading the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The identity a checkpoint entry's name stands for today: a `jsonl:PATH` or `exec:PROGRAM`
/// entry (under any spelling an older version stored: relative, through a symbolic link, with
/// `..`) resolved as [`SinkSpec::name`] resolves it now; `None` for any other name (`stdout`,
/// `handler:…`, `quarantine`, a NAME).
pub fn resolve_sink_name(name: &str) -> Option<String> {
    let (kind, path) = name.split_once(':')?;
    if path.is_empty() {
        return None;
    }
    match kind {
        "jsonl" => Some(SinkSpec::Jsonl(PathBuf::from(path)).name()),
        "exec" => Some(SinkSpec::Exec(PathBuf::from(path)).name()),
        _ => None,
    }
}

/// True for a name `NAME=SPEC` may give: 1 to 64 ASCII letters, digits, `-`, `_` and `.`, not
/// one of [`RESERVED_SINK_NAMES`].
pub fn valid_sink_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !RESERVED_SINK_NAMES.contains(&name)
}

impl fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSpec::Jsonl(path) => f.debug_tuple("Jsonl").field(path).finish(),
            SinkSpec::Exec(program) => f.debug_tuple("Exec").field(program).finish(),
            SinkSpec::Stdout => f.write_str("Stdout"),
            SinkSpec::Http(url) => f.debug_tuple("Http").field(&redact_url(url)).finish(),
            // A `dyn Handler` has no Debug; its name is what identifies it.
            SinkSpec::Handler { name, .. } => {
                f.debug_struct("Handler").field("name", name).finish_non_exhaustive()
            }
            SinkSpec::Named { name, spec } => {
                f.debug_struct("Named").field("name", name).field("spec", spec).finish()
            }
        }
    }
}

impl FromStr for SinkSpec {
    type Err = SinkSpecError;

    /// `jsonl:PATH`, `exec:PROGRAM`, `stdout`, `https://URL`, `http://URL`, or any of them as
    /// `NAME=SPEC` (an `=` before the first `:` starts a name; one after it is part of the path or
    /// URL).
    fn from_str(spec: &str) -> Result<SinkSpec, SinkSpecError> {
        if let Some((name, inner)) = spec.split_once('=').filter(|(name, _)| !name.contains(':')) {
            if !valid_sink_name(name) {
                return Err(SinkSpecError::BadName(spec.to_string()));
            }
            let inner = match unnamed(inner) {
                Ok(inner) => inner,
                // The error names the whole spec, as given.
                Err(SinkSpecError::EmptyPath(_)) => return Err(SinkSpecError::EmptyPath(spec.to_string())),
                Err(SinkSpecError::BadUrl(_)) => return Err(SinkSpecError::BadUrl(shown_spec(spec))),
                Err(_) => return Err(SinkSpecError::Unknown(spec.to_string())),
            };
            return Ok(SinkSpec::Named { name: name.to_string(), spec: Box::new(inner) });
        }
        unnamed(spec)
    }
}

/// `jsonl:PATH`, `exec:PROGRAM`, `stdout`, `https://URL` or `http://URL`.
fn unnamed(spec: &str) -> Result<SinkSpec, SinkSpecError> {
    if spec == "stdout" {
        return Ok(SinkSpec::Stdout);
    }
    if spec.starts_with("https://") || spec.starts_with("http://") {
        return if valid_url(spec) {
            Ok(SinkSpec::Http(spec.to_string()))
        } else {
            Err(SinkSpecError::BadUrl(shown_spec(spec)))
        };
    }
    let (kind, path) = spec.split_once(':').ok_or_else(|| SinkSpecError::Unknown(spec.to_string()))?;
    let make = match kind {
        "jsonl" => SinkSpec::Jsonl,
        "exec" => SinkSpec::Exec,
        _ => return Err(SinkSpecError::Unknown(spec.to_string())),
    };
    if path.is_empty() {
        return Err(SinkSpecError::EmptyPath(spec.to_string()));
    }
    Ok(make(PathBuf::from(path)))
}

/// True for an `http://` or `https://` URL with a host, no fragment, and no space or control
/// character (a sink's name is a line of the checkpoint).
fn valid_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<ureq::http::Uri>() else { return false };
    uri.host().is_some_and(|host| !host.is_empty())
        && !url.contains('#')
        && !url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
}

/// A `--sink` value as a log line or an error may show it: an `http://` or `https://` URL
/// without user info or query ([`redact_url`]; a `NAME=` kept), any other spec as it is.
pub fn shown_spec(spec: &str) -> String {
    let (name, inner) = match spec.split_once('=').filter(|(name, _)| !name.contains(':')) {
        Some((name, inner)) => (Some(name), inner),
        None => (None, spec),
    };
    if !(inner.starts_with("http://") || inner.starts_with("https://")) {
        return spec.to_string();
    }
    match name {
        Some(name) => format!("{name}={}", redact_url(inner)),
        None => redact_url(inner),
    }
}

/// Why a `--sink` value was refused. Each variant carries the spec as given (a URL without its
/// user info or query).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkSpecError {
    /// Not `jsonl:PATH`, `exec:PROGRAM`, `stdout`, `https://URL` or `http://URL`.
    Unknown(String),
    /// `jsonl:` or `exec:` with nothing after the colon.
    EmptyPath(String),
    /// `NAME=SPEC` with a NAME [`valid_sink_name`] refuses.
    BadName(String),
    /// `http://` or `https://` and not a valid URL (no host, a space, a fragment…).
    BadUrl(String),
}

impl SinkSpecError {
    /// The spec as given on the command line.
    pub fn spec(&self) -> &str {
        match self {
            SinkSpecError::Unknown(spec)
            | SinkSpecError::EmptyPath(spec)
            | SinkSpecError::BadName(spec)
            | SinkSpecError::BadUrl(spec) => spec,
        }
    }
}

impl fmt::Display for SinkSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSpecError::Unknown(spec) => write!(
                f,
                "unknown sink {spec:?}: expected jsonl:PATH, exec:PROGRAM, stdout, https://URL or \
                 http://URL, optionally as NAME=SPEC"
            ),
            SinkSpecError::EmptyPath(spec) => write!(f, "sink {spec:?} has an empty path"),
            SinkSpecError::BadUrl(spec) => {
                write!(f, "sink {spec:?} is not a valid URL (http:// or https://, a host, no fragment)")
            }
            SinkSpecError::BadName(spec) => write!(
                f,
                "sink {spec:?}: a NAME is 1 to 64 letters, digits, '-', '_' or '.', and not {}",
                RESERVED_SINK_NAMES.join(" or ")
            ),
        }
    }
}

impl std::error::Error for SinkSpecError {}

/// Settings shared by every sink opened from a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkOptions {
    /// A jsonl file is rotated before a line would take it over this many bytes; 0 never rotates.
    pub jsonl_max_bytes: u64,
    /// How long an exec sink's program may run for one event before it is killed.
    pub exec_timeout: Duration,
    /// Events per POST of an `http:` sink at most (1 to [`MAX_HTTP_BATCH`]).
    pub http_batch: usize,
    /// How long one POST of an `http:` sink may take, connecting included.
    pub http_timeout: Duration,
    /// The Standard Webhooks secret (`whsec_…`) an `http:` sink signs with; none: unsigned.
    pub http_sign_secret_file: Option<PathBuf>,
}

impl Default for SinkOptions {
    fn default() -> SinkOptions {
        SinkOptions {
            jsonl_max_bytes: DEFAULT_JSONL_MAX_BYTES,
            exec_timeout: DEFAULT_EXEC_TIMEOUT,
            http_batch: DEFAULT_HTTP_BATCH,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            http_sign_secret_file: None,
        }
    }
}

/// Which delivery of which journal record an event is: what a sink needs to tell a repeat from
/// a new event.
///
/// Delivery is at least once: after a crash, the records past a sink's last checkpoint are
/// delivered again, and a failed attempt is retried. A sink that records
/// [`position`](Delivery::position) together with its effect (in one transaction) can skip any
/// record at or below the last one it recorded, and so be exactly once; one that cannot can use
/// [`idempotency_key`](Delivery::idempotency_key), stable across re-deliveries, re-sends by Egnyte
/// and `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// The event's journal record number: increasing in acceptance order, never reused.
    pub position: u64,
    /// 1 for the first attempt in this process's life, then 2, 3, … for its retries.
    pub attempt: u32,
}

impl Delivery {
    /// `DOMAIN:EVENT_ID`: the key the receiver deduplicates on, the same for every delivery of
    /// the event (and for every re-send of it).
    pub fn idempotency_key(event: &Event<'_>) -> String {
        format!("{}:{}", event.domain(), event.event_id())
    }
}

/// Why one delivery failed: what every sink's `deliver` and a [`Handler`] return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A short one-line reason.
    pub reason: String,
    /// The sink's medium failed, not the event (a jsonl file that cannot be written: a full
    /// disk, an I/O error, a path that cannot be reopened): retrying the same event is right
    /// until the medium works again, and moving it to the dead-letter file (usually on the same
    /// disk) is not. Such a failure is retried without limit (the journal keeps the event, and
    /// its budget pushes back on Egnyte meanwhile). Otherwise the event is dead-lettered after
    /// `--delivery-attempts`.
    pub medium: bool,
}

impl Failure {
    /// A failure of this event (dead-lettered after the last attempt).
    pub fn event(reason: impl Into<String>) -> Failure {
        Failure { reason: reason.into(), medium: false }
    }

    /// A failure of the sink's medium (retried until it works).
    pub fn medium(reason: impl Into<String>) -> Failure {
        Failure { reason: reason.into(), medium: true }
    }
}

impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure::event(reason)
    }
}

impl From<&str> for Failure {
    fn from(reason: &str) -> Failure {
        Failure::event(reason)
    }
}

impl std::error::Error for Failure {}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Where a file sink's file stood when a `sync` returned: its device and inode number (which
/// file, whatever its name now) and its length, every byte of it durable and ending with a
/// whole line. Stored in the checkpoint with the sink's position, it lets a restart tell the
/// lines written after the checkpoint from those before it (see `dispatch/resume.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMark {
    /// Bytes of whole lines.
    pub len: u64,
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
}

/// What a file sink's `sync` made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// The file and the length the lines reach.
    pub mark: FileMark,
    /// One past the position of the record whose line is the file's last (0 before this process
    /// wrote a line). Lines are written in position order by one worker, so every record below
    /// it was delivered or dead-lettered: the checkpoint may move there even before the
    /// dispatcher hears that they finished, and must, for the mark to describe the file.
    pub next: u64,
}

/// What a Rust program embedding the receiver implements to be handed events.
///
/// `handle` runs on the dispatcher's worker threads, several at once, and may block.
pub trait Handler: Send + Sync + 'static {
    /// Delivers one event. `Err(`[`Failure::event`]`)` (or any `String` or `&str`, with `?` or
    /// `.into()`): the event is retried with backoff, then dead-lettered with the reason.
    /// `Err(`[`Failure::medium`]`)`: what the handler writes to is down (a database, a queue),
    /// so the event is retried until it works, never dead-lettered. A panic is caught and
    /// treated as a failure of the event. `delivery` says which record and which attempt this
    /// is (see [`Delivery`] for being exactly once on top of it).
    fn handle(&self, event: &Event<'_>, delivery: &Delivery) -> Result<(), Failure>;
}

/// An open sink, shared by every worker (`&Sink` or `Arc<Sink>`).
#[derive(Debug)]
pub enum Sink {
    /// See [`JsonlSink`].
    Jsonl(JsonlSink),
    /// See [`ExecSink`].
    Exec(ExecSink),
    /// See [`StdoutSink`].
    Stdout(StdoutSink),
    /// See [`HandlerSink`].
    Handler(HandlerSink),
    /// See [`HttpSink`].
    Http(HttpSink),
}

impl Sink {
    /// Opens the sink a spec names: a jsonl file is opened (created if needed, never its
    /// directory) for appending; an exec program must exist and be executable; an http sink reads
    /// its signing secret and the environment's TLS and proxy settings. Errors name the path.
    pub fn open(spec: &SinkSpec, options: &SinkOptions) -> io::Result<Sink> {
        let name = spec.name();
        Ok(match spec.without_name() {
            SinkSpec::Jsonl(path) => Sink::Jsonl(JsonlSink::open(name, path, options.jsonl_max_bytes)?),
            SinkSpec::Exec(program) => Sink::Exec(ExecSink::open(name, program, options.exec_timeout)?),
            SinkSpec::Stdout => Sink::Stdout(StdoutSink::new(name)),
            SinkSpec::Handler { handler, .. } => Sink::Handler(HandlerSink::new(name, Arc::clone(handler))),
            SinkSpec::Http(url) => Sink::Http(HttpSink::open(
                name,
                url,
                options.http_batch,
                options.http_timeout,
                options.http_sign_secret_file.as_deref(),
            )?),
            SinkSpec::Named { .. } => unreachable!("without_name takes every name off"),
        })
    }

    /// Opens a sink for `replay`: as [`open`](Sink::open), except that a jsonl file a running
    /// receiver writes, or one that ends in the middle of a line, is refused
    /// ([`JsonlSink::open_for_replay`]).
    pub fn open_for_replay(spec: &SinkSpec, options: &SinkOptions) -> io::Result<Sink> {
        match spec.without_name() {
            SinkSpec::Jsonl(path) => Ok(Sink::Jsonl(JsonlSink::open_for_replay(spec.name(), path)?)),
            _ => Sink::open(spec, options),
        }
    }

    /// The name of the spec it was opened from ([`SinkSpec::name`]).
    pub fn name(&self) -> &str {
        match self {
            Sink::Jsonl(sink) => sink.name(),
            Sink::Exec(sink) => sink.name(),
            Sink::Stdout(sink) => sink.name(),
            Sink::Handler(sink) => sink.name(),
            Sink::Http(sink) => sink.name(),
        }
    }

    /// Delivers one event: `payload` is its JSON exactly as received (one line), `event` the
    /// parsed view of it, `delivery` its journal position and attempt.
    pub fn deliver(&self, payload: &[u8], event: &Event<'_>, delivery: &Delivery) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(sink) => sink.deliver(payload, delivery.position),
            Sink::Exec(sink) => sink.deliver(payload, event, delivery),
            Sink::Stdout(sink) => sink.deliver(payload),
            Sink::Handler(sink) => sink.deliver(event, delivery),
            Sink::Http(sink) => {
                let key = Delivery::idempotency_key(event);
                sink.deliver_batch(&[Batched { payload, key: &key }])
            }
        }
    }

    /// Events one [`deliver_batch`](Sink::deliver_batch) may take: `--http-batch` for an `http:`
    /// sink, 1 (no batches: [`deliver`](Sink::deliver) each) for the others.
    pub fn batch_limit(&self) -> usize {
        match self {
            Sink::Http(sink) => sink.batch(),
            _ => 1,
        }
    }

    /// Delivers several events at once, all or nothing (an `http:` sink: one POST); the others
    /// refuse, since they take events one by one.
    pub fn deliver_batch(&self, events: &[Batched<'_>]) -> Result<(), Failure> {
        match self {
            Sink::Http(sink) => sink.deliver_batch(events),
            _ => Err(Failure::event("this sink takes events one at a time")),
        }
    }

    /// True when the sink reads the parsed event (exec's environment, a handler, an http sink's
    /// idempotency key); the line sinks take the payload as it is, so the worker does not parse it
    /// for them.
    pub fn needs_event(&self) -> bool {
        matches!(self, Sink::Exec(_) | Sink::Handler(_) | Sink::Http(_))
    }

    /// True when the sink writes one stream (jsonl, stdout): its deliveries serialize on that
    /// stream whatever the worker, so the dispatcher gives all of them to one worker instead of
    /// spreading them (which would only add lock contention and wake-ups, and keeps the file in
    /// acceptance order). exec, handler and http deliveries run in parallel.
    pub fn serial(&self) -> bool {
        matches!(self, Sink::Jsonl(_) | Sink::Stdout(_))
    }

    /// Writes a record's payload as one line (a quarantined element's line, or an event for a
    /// sink that does not parse it): only the line sinks (jsonl, stdout) take such lines; the
    /// others refuse them.
    pub fn deliver_line(&self, line: &[u8], position: u64) -> Result<(), Failure> {
        match self {
            Sink::Jsonl(sink) => sink.deliver(line, position),
            Sink::Stdout(sink) => sink.deliver(line),
            Sink::Exec(_) | Sink::Handler(_) | Sink::Http(_) => {
                Err(Failure::event("this sink takes only events"))
            }
        }
    }

    /// Makes every event delivered before this call durable (jsonl: written and `fdatasync`ed,
    /// and says where the file stands; stdout: flushed; exec, handler and http deliver
    /// synchronously, so there is nothing to do).
    pub fn sync(&self) -> io::Result<Option<Synced>> {
        match self {
            Sink::Jsonl(sink) => sink.sync().map(Some),
            Sink::Stdout(sink) => sink.sync().map(|()| None),
            Sink::Exec(_) | Sink::Handler(_) | Sink::Http(_) => Ok(None),
        }
    }

    /// At a stop whose deadline passed: an exec sink kills the runs going on (with every process
    /// they started); their events stay in the journal for the next start. (A POST of an http
    /// sink ends by its own timeout; its events, not reported delivered, stay in the journal too.)
    pub fn halt(&self) {
        if let Sink::Exec(sink) = self {
            sink.halt();
        }
    }

    /// After SIGHUP (logrotate moved the file away): a jsonl sink makes what it wrote durable and
    /// opens PATH afresh, creating it; other sinks do nothing.
    pub fn reopen(&self) -> io::Result<()> {
        match self {
            Sink::Jsonl(sink) => sink.reopen(),
            Sink::Exec(_) | Sink::Stdout(_) | Sink::Handler(_) | Sink::Http(_) => Ok(()),
        }
    }
}

/// The line sinks' guard: a payload is one line by contract (the journal stores each event's JSON
/// on one line), and a line break inside it would split the event in two lines for every reader of
/// the file or pipe. Such a payload is refused (and so dead-lettered, visibly) rather than written.
fn one_line(payload: &[u8]) -> Result<(), String> {
    if payload.contains(&b'\n') {
        return Err("payload contains a line break".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str, name: &str) {
        let parsed: SinkSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(parsed.name(), name, "{spec}");
    }

    fn err(spec: &str, message: &str) {
        let error = spec.parse::<SinkSpec>().expect_err(spec);
        assert_eq!(error.to_string(), message, "{spec}");
        assert_eq!(error.spec(), spec);
    }

    /// `path` against the working directory, as a string.
    fn here(path: &str) -> String {
        std::env::current_dir().unwrap().join(path).display().to_string()
    }

    #[test]
    fn good_specs() {
        ok("stdout", "stdout");
        ok("jsonl:/var/lib/egnyte/events.jsonl", "jsonl:/var/lib/egnyte/events.jsonl");
        // A relative path is named by its absolute path: the name does not depend on the spelling.
        ok("jsonl:relative/events.jsonl", &format!("jsonl:{}", here("relative/events.jsonl")));
        ok("jsonl:a:b", &format!("jsonl:{}", here("a:b")));
        ok("jsonl:/a=b.jsonl", "jsonl:/a=b.jsonl");
        ok("exec:/usr/local/bin/on-event", "exec:/usr/local/bin/on-event");
        ok("exec:./hook", &format!("exec:{}", here("hook")));
        ok("events=jsonl:/var/lib/egnyte/events.jsonl", "events");
        ok("a.B-c_9=exec:./hook", "a.B-c_9");
        ok("copy=stdout", "copy");
    }

    #[test]
    fn spec_variants() {
        assert!(matches!("stdout".parse(), Ok(SinkSpec::Stdout)));
        assert!(matches!("jsonl:/x".parse(), Ok(SinkSpec::Jsonl(p)) if p == std::path::Path::new("/x")));
        assert!(matches!("exec:/y".parse(), Ok(SinkSpec::Exec(p)) if p == std::path::Path::new("/y")));
        // An `=` after the colon is part of the path, not a name.
        assert!(matches!("jsonl:/a=b".parse(), Ok(SinkSpec::Jsonl(p)) if p == std::path::Path::new("/a=b")));
        let named: SinkSpec = "events=jsonl:/x/events.jsonl".parse().unwrap();
        assert!(
            matches!(named.without_name(), SinkSpec::Jsonl(p) if p == std::path::Path::new("/x/events.jsonl"))
        );
        assert_eq!(named.path_name().as_deref(), Some("jsonl:/x/events.jsonl"));
        assert_eq!(format!("{named:?}"), r#"Named { name: "events", spec: Jsonl("/x/events.jsonl") }"#);
        assert_eq!("exec:/y".parse::<SinkSpec>().unwrap().path_name().as_deref(), Some("exec:/y"));
        assert_eq!("copy=stdout".parse::<SinkSpec>().unwrap().path_name(), None);
        assert_eq!(SinkSpec::Stdout.path_name(), None);
    }

    #[test]
    fn bad_specs() {
        let expected =
            "expected jsonl:PATH, exec:PROGRAM, stdout, https://URL or http://URL, optionally as NAME=SPEC";
        for spec in ["foo:x", "", "jsonl", "stdout:", "STDOUT", "Jsonl:/x", "handler:x", "x=", "x=y=jsonl:/z"]
        {
            err(spec, &format!("unknown sink {spec:?}: {expected}"));
        }
        err("jsonl:", r#"sink "jsonl:" has an empty path"#);
        err("exec:", r#"sink "exec:" has an empty path"#);
        err("events=jsonl:", r#"sink "events=jsonl:" has an empty path"#);
        let long = format!("{}=stdout", "n".repeat(65));
        for spec in
            ["=jsonl:/x", "my sink=jsonl:/x", "a/b=jsonl:/x", "stdout=jsonl:/x", "quarantine=stdout", &long]
        {
            let expected = "a NAME is 1 to 64 letters, digits, '-', '_' or '.', and not stdout or quarantine";
            err(spec, &format!("sink {spec:?}: {expected}"));
        }
        assert!(valid_sink_name(&"n".repeat(64)));
        assert!(!valid_sink_name("événements"));
    }

    #[test]
    fn http_specs_are_named_by_their_url_without_user_info_or_query() {
        ok("https://hooks.internal/egnyte", "https://hooks.internal/egnyte");
        ok("http://127.0.0.1:9000/in?token=s3cr3t", "http://127.0.0.1:9000/in");
        ok("https://svc:s3cr3t@hooks.internal:8443/in", "https://hooks.internal:8443/in");
        ok("hook=https://svc:s3cr3t@hooks.internal/in?a=b", "hook");
        let spec: SinkSpec = "https://svc:s3cr3t@h/in?token=s3cr3t".parse().unwrap();
        assert!(matches!(&spec, SinkSpec::Http(url) if url == "https://svc:s3cr3t@h/in?token=s3cr3t"));
        assert_eq!(format!("{spec:?}"), r#"Http("https://h/in")"#);
        assert_eq!(spec.path_name(), None);
        assert_eq!(resolve_sink_name("https://h/in"), None);
        for bad in
            ["https://", "http:///x", "https://h/a b", "https://h/#frag", "http://u:s3cr3t@/x?t=s3cr3t"]
        {
            let error = bad.parse::<SinkSpec>().expect_err(bad);
            assert!(matches!(error, SinkSpecError::BadUrl(_)), "{bad}: {error:?}");
            let shown = error.to_string();
            assert!(shown.contains("is not a valid URL") && !shown.contains("s3cr3t"), "{shown}");
        }
        let error = "x=https://u:s3cr3t@/p".parse::<SinkSpec>().unwrap_err();
        assert_eq!(error.spec(), "x=https:///p");
        assert_eq!(shown_spec("a=http://u:p@h/x?y=1"), "a=http://h/x");
        assert_eq!(shown_spec("https://u:p@h/x?y=1"), "https://h/x");
        assert_eq!(shown_spec("jsonl:/data/a?b#c.jsonl"), "jsonl:/data/a?b#c.jsonl");
        assert_eq!(shown_spec("stdout"), "stdout");
    }

    #[test]
    fn an_http_sink_opens_with_its_options_and_batches() {
        let spec: SinkSpec = "http://127.0.0.1:1/in".parse().unwrap();
        let options = SinkOptions { http_batch: 7, ..SinkOptions::default() };
        let sink = Sink::open(&spec, &options).unwrap();
        assert_eq!(
            (sink.name(), sink.serial(), sink.needs_event(), sink.batch_limit()),
            ("http://127.0.0.1:1/in", false, true, 7)
        );
        assert!(sink.sync().unwrap().is_none());
        let failure = sink.deliver_batch(&[Batched { payload: b"{}", key: "d:1" }]).unwrap_err();
        assert!(failure.reason.starts_with("http://127.0.0.1:1/in: cannot connect"), "{failure}");
        assert!(!failure.medium);
        assert!(sink.deliver_line(b"{}", 1).is_err());
        let stdout = Sink::open(&SinkSpec::Stdout, &SinkOptions::default()).unwrap();
        assert_eq!(stdout.batch_limit(), 1);
        assert!(stdout.deliver_batch(&[]).is_err());
        let temp = testing::TempDir::new("sink-http-secret");
        let secret = temp.path().join("secret");
        std::fs::write(&secret, "whsec_c2hvcnQ=").unwrap();
        let options = SinkOptions { http_sign_secret_file: Some(secret), ..SinkOptions::default() };
        let error = Sink::open(&spec, &options).unwrap_err().to_string();
        assert!(error.starts_with("--http-sign-secret-file "), "{error}");
    }

    #[test]
    fn a_path_is_named_by_its_real_directory_whatever_the_spelling() {
        let temp = testing::TempDir::new("sink-canonical");
        let real = std::fs::canonicalize(temp.path()).unwrap();
        std::fs::create_dir(real.join("data")).unwrap();
        std::os::unix::fs::symlink(real.join("data"), real.join("link")).unwrap();
        // The file need not exist: its directory is resolved, its name kept.
        let expected = real.join("data/events.jsonl");
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let relative = format!("{up}{}", expected.display().to_string().trim_start_matches('/'));
        for spelling in [
            expected.display().to_string(),
            format!("{}/./data/../data//events.jsonl", real.display()),
            format!("{}/link/events.jsonl", real.display()),
            relative,
        ] {
            assert_eq!(canonical_path(Path::new(&spelling)), expected, "{spelling}");
            let name = format!("jsonl:{}", expected.display());
            assert_eq!(spelling.parse::<PathBuf>().map(SinkSpec::Jsonl).unwrap().name(), name);
            // A checkpoint entry an older version stored under this spelling resolves to it.
            assert_eq!(resolve_sink_name(&format!("jsonl:{spelling}")), Some(name));
        }
        // A symbolic link as the file itself is kept: it is the file name the operator gave.
        assert_eq!(canonical_path(&real.join("data/../link")), real.join("link"));
        // A directory that does not exist is taken lexically.
        assert_eq!(
            canonical_path(Path::new("/no-such-dir-9/a/../b/./c.jsonl")),
            Path::new("/no-such-dir-9/b/c.jsonl")
        );
        assert_eq!(canonical_path(Path::new("/")), Path::new("/"));
        for name in ["stdout", "quarantine", "handler:x", "events", "jsonl:", "exec", "other:/x"] {
            assert_eq!(resolve_sink_name(name), None, "{name}");
        }
        assert_eq!(
            resolve_sink_name("exec:/no-such-dir-9/./hook").as_deref(),
            Some("exec:/no-such-dir-9/hook")
        );
    }

    struct Nothing;

    impl Handler for Nothing {
        fn handle(&self, _: &Event<'_>, _: &Delivery) -> Result<(), Failure> {
            Ok(())
        }
    }

    #[test]
    fn handler_spec_name_debug_and_clone() {
        let spec = SinkSpec::Handler { name: "audit".to_string(), handler: Arc::new(Nothing) };
        assert_eq!(spec.name(), "handler:audit");
        assert_eq!(format!("{:?}", spec.clone()), r#"Handler { name: "audit", .. }"#);
        let sink = Sink::open(&spec, &SinkOptions::default()).unwrap();
        assert_eq!(sink.name(), "handler:audit");
        assert_eq!(format!("{:?}", SinkSpec::Jsonl("/x".into())), r#"Jsonl("/x")"#);
        // Named: the NAME is the sink's name (the metric label and the checkpoint entry).
        let named = SinkSpec::Named { name: "audit-2".into(), spec: Box::new(spec) };
        assert_eq!(Sink::open(&named, &SinkOptions::default()).unwrap().name(), "audit-2");
        let stdout: SinkSpec = "copy=stdout".parse().unwrap();
        let sink = Sink::open(&stdout, &SinkOptions::default()).unwrap();
        assert_eq!((sink.name(), sink.serial()), ("copy", true));
    }

    #[test]
    fn stdout_sink_opens_with_its_name() {
        let sink = Sink::open(&SinkSpec::Stdout, &SinkOptions::default()).unwrap();
        assert_eq!(sink.name(), "stdout");
        sink.sync().unwrap();
        sink.reopen().unwrap();
    }

    #[test]
    fn sink_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Sink>();
        assert_send_sync::<SinkSpec>();
    }

    #[test]
    fn default_options() {
        let options = SinkOptions::default();
        assert_eq!(options.jsonl_max_bytes, DEFAULT_JSONL_MAX_BYTES);
        assert_eq!(options.exec_timeout, Duration::from_secs(30));
        assert_eq!((options.http_batch, options.http_timeout), (100, Duration::from_secs(30)));
        assert_eq!(options.http_sign_secret_file, None);
    }
}

/// Helpers shared by the sinks' tests: events and unique temporary directories.
#[cfg(test)]
pub(crate) mod testing {

    /// One valid event with a primary path.
    pub(crate) const EVENT: &[u8] = br#"{"eventId":"e1","domain":"acme","timestamp":1,"actionSource":"WebUI","eventType":"fs:add_file","data":{"targetPath":"/Shared/a.txt"}}"#;

    /// Parses `body` (one event) and hands the event to `f`.
    pub(crate) fn with_event<R>(body: &[u8], f: impl FnOnce(&crate::Event<'_>) -> R) -> R {
        let mut parser = crate::Parser::default();
        let batch = parser.parse(body).unwrap();
        let Some(crate::Element::Valid(event)) = batch.elements().next() else { panic!("not a valid event") };
        f(&event)
    }

    pub(crate) use crate::test_dir::TempDir;
}
