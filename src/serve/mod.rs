//! The HTTP edge: `egnyte-receiver serve`, on may_minihttp's stackful coroutines.
//!
//! ```text
//! socket ─► may_minihttp (head parsed, ≤ 16 headers) ─► gate.rs (route, framing, token)
//!        ─► service.rs (body read exactly, Parser) ─► ingest::Pipeline ─► response.rs
//! ```
//! * `gate.rs` decides from the head alone; `service.rs` reads bodies and never leaves one
//!   unread; `response.rs` is the one place statuses live; `deadline.rs` adds the read timeout
//!   may_minihttp lacks; `socket.rs` holds the only `unsafe` (FFI `shutdown`/`send`).
//! * Memory is bounded: at most `--max-connections` connections (more are cut at once), each
//!   body at most `--max-body`, and all bodies being read at most [`BODY_BUDGET_FACTOR`] × `--max-body` bytes
//!   together (beyond it: 503), with per-connection buffers released after a large body.
//!
//! may_minihttp's limits that cannot be fixed on top of it (a 17th header closes the connection
//! without an answer; chunked bodies; no cap on header size; a client that half-closes after
//! sending is dropped unanswered) are documented in the README with the reverse-proxy setup that
//! covers most of them.

mod auth;
mod deadline;
pub mod gate;
mod metrics;
mod response;
mod service;
mod socket;

pub use auth::Token;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use may_minihttp::HttpServiceFactory;

use crate::dedup::{Dedup, Secret};
use crate::ingest::{JsonlPipeline, Pipeline};
use crate::parse::Limits;
use deadline::Deadlines;
use gate::GateConfig;
use metrics::Metrics;
use service::Connection;

/// Default `--max-body`: 16 MiB. Egnyte documents no limit; real batches are kilobytes.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;
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
/// about 6.6 KB, about 10% (simd-json's tape and every walk over it use constant stack). The
/// rest is headroom for the stages still to come (dedup, journal); pages never touched cost no
/// memory.
pub const STACK_WORDS: usize = 8 * 1024;

/// Everything `serve` needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// The webhook path.
    pub path: String,
    /// The token, when authentication is on.
    pub token: Option<Token>,
    /// All state lives here.
    pub data_dir: PathBuf,
    /// Largest body accepted.
    pub max_body: usize,
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
}

/// State shared by every connection.
pub(crate) struct Shared {
    gate: GateConfig,
    limits: Limits,
    dedup: Dedup,
    pipeline: Box<dyn Pipeline>,
    metrics: Metrics,
    deadlines: Arc<Deadlines>,
    max_connections: usize,
    /// Body bytes being read right now, across connections.
    bodies_in_flight: AtomicUsize,
    body_budget: usize,
}

impl Shared {
    /// Reserves `length` bytes of the body budget until the returned guard drops; `None` when
    /// that would exceed it.
    fn reserve_body(&self, length: usize) -> Option<BodyReservation<'_>> {
        let mut current = self.bodies_in_flight.load(Ordering::Relaxed);
        loop {
            let next = current.checked_add(length).filter(|&n| n <= self.body_budget)?;
            match self.bodies_in_flight.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(BodyReservation { shared: self, length }),
                Err(seen) => current = seen,
            }
        }
    }

    fn render_metrics(&self) -> String {
        let mut text = String::with_capacity(2048);
        let _ = self.metrics.render(&mut text, self.deadlines.expired(), self.pipeline.healthy());
        text
    }
}

/// A share of the body budget, given back on drop.
struct BodyReservation<'a> {
    shared: &'a Shared,
    length: usize,
}

impl Drop for BodyReservation<'_> {
    fn drop(&mut self) {
        self.shared.bodies_in_flight.fetch_sub(self.length, Ordering::AcqRel);
    }
}

/// may_minihttp's factory: one [`Connection`] per accepted socket.
struct Factory(Arc<Shared>);

impl HttpServiceFactory for Factory {
    type Service = Connection;

    fn new_service(&self, fd: usize) -> Connection {
        Connection::open(Arc::clone(&self.0), fd as i32)
    }
}

/// Why `serve` could not start.
#[derive(Debug)]
pub enum ServeError {
    /// The data directory or a file in it could not be created or opened.
    DataDir(io::Error),
    /// The listening socket could not be bound.
    Bind(SocketAddr, io::Error),
    /// A helper thread could not be started.
    Thread(io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::DataDir(e) => write!(f, "data directory: {e}"),
            ServeError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            ServeError::Thread(e) => write!(f, "cannot start a thread: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Runs the receiver until the process is stopped.
pub fn run(config: ServeConfig) -> Result<(), ServeError> {
    may::config().set_workers(config.io_threads.max(1)).set_stack_size(config.stack_words);
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServeError::DataDir(io::Error::new(e.kind(), format!("{}: {e}", config.data_dir.display())))
    })?;
    let pipeline = JsonlPipeline::open(&config.data_dir).map_err(ServeError::DataDir)?;
    let secret = Secret::load_or_create(&config.data_dir).map_err(ServeError::DataDir)?;
    let dedup = Dedup::new(config.dedup_capacity, secret);
    log::info!(
        "dedup remembers the last {} events ({} MiB); it starts empty after a restart",
        dedup.ring().capacity(),
        dedup.ring().memory_bytes() >> 20
    );
    if config.token.is_none() {
        log::warn!("no --auth-token or --auth-token-file: every POST to {} is accepted", config.path);
    }
    let deadlines = Arc::new(Deadlines::new(config.read_timeout));
    let stop = Arc::new(AtomicBool::new(false));
    deadlines.spawn_reaper(stop).map_err(ServeError::Thread)?;
    let shared = Arc::new(Shared {
        gate: GateConfig {
            path: config.path.clone(),
            max_body: config.max_body,
            token: config.token.clone(),
        },
        limits: Limits::default().max_bytes(config.max_body),
        dedup,
        pipeline: Box::new(pipeline),
        metrics: Metrics::default(),
        deadlines,
        max_connections: config.max_connections,
        bodies_in_flight: AtomicUsize::new(0),
        body_budget: config.max_body.saturating_mul(BODY_BUDGET_FACTOR),
    });
    let server = Factory(shared).start(config.listen).map_err(|e| ServeError::Bind(config.listen, e))?;
    log::info!(
        "listening on {} for POST {} (data in {}, {} io threads)",
        config.listen,
        config.path,
        config.data_dir.display(),
        config.io_threads
    );
    // The listener coroutine runs until the process ends; graceful shutdown is a later issue.
    let _ = server.join();
    Ok(())
}
