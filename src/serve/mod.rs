//! The webhook service: `egnyte-receiver serve`, on our HTTP/1.1 layer (`crate::http`).
//!
//! ```text
//! socket ─► http (framing, limits, timeouts) ─► gate.rs (route, method, token)
//!        ─► service.rs (parse) ─► ingest (dedup, journal) ─► response.rs
//!        journal ─► dispatch (workers) ─► sinks
//! ```
//! `start.rs` opens the state in the data directory in order (checkpoint, journal, dedup keys,
//! sinks, dispatcher) before the socket is bound, so the first request finds it recovered.
//! * `gate.rs` decides from the head alone; `service.rs` handles a whole body; `response.rs` is
//!   the one place the receiver's own statuses live (the HTTP layer's are in `crate::http`);
//!   `lock.rs` keeps one receiver per data directory.
//! * Memory is bounded by the HTTP layer: at most `--max-connections` connections (more are cut
//!   at once), each head at most `--max-header-bytes`, each body at most `--max-body`, and all
//!   bodies being read at most [`BODY_BUDGET_FACTOR`] × `--max-body` bytes together (beyond it:
//!   503), with per-connection buffers released after a large request.

mod auth;
mod damaged;
// Public for its fuzz target, not for embedders.
#[doc(hidden)]
pub mod gate;
mod limits;
mod lock;
mod metrics;
mod reject_log;
mod response;
mod service;
mod start;
mod watch;

pub use auth::Token;
pub use lock::{LockError, LOCK_FILE};
pub use start::{run, start, Health, Running, Stopped};

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch::Dispatcher;
use crate::http;
use crate::ingest::Ingest;
use crate::journal::{Durability, Journal};
use crate::parse::Limits;
use crate::sink::{SinkOptions, SinkSpec};
use gate::GateConfig;
use metrics::Metrics;

/// Default `--max-body`: the HTTP layer's default body limit.
pub const DEFAULT_MAX_BODY: usize = http::DEFAULT_MAX_BODY;
/// Default `--read-timeout`.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Bodies being read at once may hold this many times `--max-body` in memory together; a body
/// that would exceed it is answered 503 with `Retry-After` instead of read.
pub const BODY_BUDGET_FACTOR: usize = 4;
/// Coroutine stack, in 8-byte words (64 KiB), chosen with the parser's depth limit. Measured by
/// `tests/stack.rs` (an odd size makes may report each coroutine's high-water mark): a request
/// at the deepest nesting the parser accepts (64), a 440 KB batch or 2 KB of `[` all peak at
/// about 7.3 KB, 11% (simd-json's tape and every walk over it use constant stack; the HTTP
/// layer keeps its buffers on the heap). The rest is headroom; pages never touched cost no
/// memory.
pub const STACK_WORDS: usize = 8 * 1024;
/// Default `--max-journal-bytes`: 1 GiB of undelivered events on disk; beyond it POSTs are
/// answered 503 until the sinks catch up.
pub const DEFAULT_MAX_JOURNAL_BYTES: u64 = 1 << 30;
/// Default `--journal-retention`: delivered events stay an hour for `replay` (within
/// `--max-journal-bytes`: undelivered events always win the disk).
pub const DEFAULT_JOURNAL_RETENTION: Duration = Duration::from_secs(3600);
/// Default `--workers`: delivery threads (each runs at most one `exec` child at a time).
pub const DEFAULT_WORKERS: usize = 4;
/// Default `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `serve` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// The webhook path.
    pub path: String,
    /// The token, when authentication is on.
    pub token: Option<Token>,
    /// The file the token was read from, re-read on SIGHUP ([`Running::reload_token`]).
    pub token_file: Option<PathBuf>,
    /// All state lives here.
    pub data_dir: PathBuf,
    /// Largest body accepted (declared or, chunked, decoded).
    pub max_body: usize,
    /// Header lines a request may have.
    pub max_headers: usize,
    /// Bytes of a request's head (request line and headers) at most.
    pub max_header_bytes: usize,
    /// Time to complete a request (and to stay idle between two).
    pub read_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// may worker threads.
    pub io_threads: usize,
    /// Coroutine stack size in words ([`STACK_WORDS`] unless measuring).
    pub stack_words: usize,
    /// Event keys remembered for deduplication.
    pub dedup_capacity: usize,
    /// When a batch counts as stored.
    pub durability: Durability,
    /// Journal bytes on disk beyond which POSTs are refused (503).
    pub max_journal_bytes: u64,
    /// Size at which the journal starts a new segment.
    pub journal_segment_bytes: u64,
    /// How long delivered events stay in the journal for `replay`.
    pub journal_retention: Duration,
    /// Delivery worker threads.
    pub workers: usize,
    /// Where events go; empty means `jsonl:DATA_DIR/events.jsonl`.
    pub sinks: Vec<SinkSpec>,
    /// Where a sink without a checkpoint entry starts (`--sink-start`).
    pub sink_start: crate::dispatch::SinkStart,
    /// Sink settings (jsonl rotation, exec timeout).
    pub sink_options: SinkOptions,
    /// Attempts per (sink, event) before it goes to the dead-letter file.
    pub delivery_attempts: u32,
    /// Time a graceful stop may take to deliver what is journaled.
    pub shutdown_timeout: Duration,
    /// Where `/metrics` and `/healthz` are served on their own (then `/metrics` is 404 on
    /// `listen`); `None` serves them on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--webhook-id`: the webhook at Egnyte kept enabled (see `serve/watch.rs`); `None`: not
    /// watched.
    pub webhook_watch: Option<crate::egnyte::WatchConfig>,
}

impl ServeConfig {
    /// A configuration with every default, listening on `listen` with state in `data_dir`
    /// (embedding: add `SinkSpec::Handler` sinks, then [`run`]).
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> ServeConfig {
        ServeConfig {
            listen,
            path: "/egnyte/webhook".into(),
            token: None,
            token_file: None,
            data_dir,
            max_body: DEFAULT_MAX_BODY,
            max_headers: http::head::DEFAULT_MAX_HEADERS,
            max_header_bytes: http::head::DEFAULT_MAX_HEAD_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            io_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stack_words: STACK_WORDS,
            dedup_capacity: crate::dedup::DEFAULT_CAPACITY,
            durability: Durability::Fsync,
            max_journal_bytes: DEFAULT_MAX_JOURNAL_BYTES,
            journal_segment_bytes: crate::journal::DEFAULT_SEGMENT_BYTES,
            journal_retention: DEFAULT_JOURNAL_RETENTION,
            workers: DEFAULT_WORKERS,
            sinks: Vec::new(),
            sink_start: crate::dispatch::SinkStart::Oldest,
            sink_options: SinkOptions::default(),
            delivery_attempts: crate::dispatch::DEFAULT_DELIVERY_ATTEMPTS,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            metrics_listen: None,
            webhook_watch: None,
        }
    }
}

/// State shared by every connection.
pub(crate) struct Shared {
    /// Path and token settings; its `token` is unused (see `token`).
    gate: GateConfig,
    /// The current token; connections copy it when `token_generation` moves.
    token: std::sync::Mutex<Option<Token>>,
    /// Bumped when the token is replaced.
    token_generation: std::sync::atomic::AtomicU64,
    limits: Limits,
    /// Everything between a parsed batch and its answer.
    ingest: Ingest,
    /// The journal the ingest stage writes and the dispatcher reads (for stopping and metrics).
    journal: Arc<Journal>,
    dispatcher: Dispatcher,
    metrics: Metrics,
    /// The HTTP layer's connection counters.
    http: http::Stats,
    reject_log: reject_log::RejectLog,
    /// Set when stopping: POSTs are refused (503) and connections close after each answer.
    draining: AtomicBool,
    /// POSTs admitted and not yet answered.
    in_flight: AtomicUsize,
}

impl Shared {
    /// A line per stuck sink, for `/healthz`.
    fn stuck_sinks(&self) -> String {
        let mut lines = String::new();
        for target in self.dispatcher.targets().iter().filter(|t| t.stats.stuck()) {
            let stats = &target.stats;
            let _ = writeln!(
                lines,
                "sink {} stuck: {} records behind, none delivered for {} s",
                target.name,
                stats.lag_events.load(Ordering::Relaxed),
                stats.stalled_seconds.load(Ordering::Relaxed)
            );
        }
        lines
    }

    fn render_metrics(&self) -> String {
        let mut text = String::with_capacity(4096);
        let _ = self.metrics.render(&mut text, &self.http, self.ingest.stats(), self.ingest.healthy());
        let _ = metrics::render_delivery(&mut text, &self.journal, self.dispatcher.targets());
        text
    }
}

/// Why `serve` could not start.
#[derive(Debug)]
pub enum ServeError {
    /// The data directory or a file in it could not be created or opened.
    DataDir(io::Error),
    /// Another receiver holds the data directory (or its lock file could not be taken).
    Locked(LockError),
    /// The listening socket could not be bound.
    Bind(SocketAddr, io::Error),
    /// A helper thread could not be started.
    Thread(io::Error),
    /// The journal, the checkpoint or the dedup key file could not be opened or recovered.
    Journal(io::Error),
    /// A sink could not be opened.
    Sink(String, io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::DataDir(e) => write!(f, "data directory: {e}"),
            ServeError::Locked(e) => write!(f, "{e}"),
            ServeError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServeError::Thread(e) => write!(f, "cannot start a thread: {e}"),
            ServeError::Journal(e) => write!(f, "journal: {e}"),
            ServeError::Sink(name, e) => write!(f, "sink {name}: {e}"),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ServeError::DataDir(e)
            | ServeError::Bind(_, e)
            | ServeError::Thread(e)
            | ServeError::Journal(e)
            | ServeError::Sink(_, e) => Some(e),
            ServeError::Locked(e) => Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_serve_error_names_its_cause() {
        let cause = || io::Error::new(io::ErrorKind::AddrInUse, "in use");
        let errors = [
            ServeError::DataDir(cause()),
            ServeError::Bind("127.0.0.1:1".parse().unwrap(), cause()),
            ServeError::Thread(cause()),
            ServeError::Journal(cause()),
            ServeError::Sink("stdout".into(), cause()),
        ];
        for error in errors {
            assert_eq!(error.source().map(|e| e.to_string()), Some("in use".into()), "{error}");
        }
    }
}
