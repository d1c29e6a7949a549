//! Starting the receiver: open and recover the state in the data directory, in the order the
//! data flows backwards (what delivery needs first), then bind the socket.
//!
//! 1. checkpoint (where each sink and the key file stand);
//! 2. journal (recovered: a torn tail cut, reported; no record numbered below the checkpoint);
//! 3. dedup ring, restored from the key file and the journal after it;
//! 4. sinks and the dispatcher, resuming each sink at its checkpoint;
//! 5. the HTTP edge (the socket is bound first of all, right after the data directory's lock, so
//!    that a second receiver on the same address fails before it touches anything); with
//!    `--metrics-listen`, a second, small listener for `/metrics` and `/healthz` (same service,
//!    its own connection cap), and `/metrics` is then 404 on the public one.
//!
//! [`Running::shutdown`] undoes it in the opposite order: listener, requests in flight, journal,
//! delivery.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::damaged;
use super::gate::{GateConfig, Listener};
use super::limits;
use super::lock::DataDirLock;
use super::metrics::Metrics;
use super::service::Connection;
use super::{ServeConfig, ServeError, Shared, Token, BODY_BUDGET_FACTOR};
use crate::dedup::{Dedup, Secret};
use crate::dispatch::{self, DispatchConfig, Dispatcher, SinkStats, Target, QUARANTINE, QUARANTINE_FILE};
use crate::http;
use crate::ingest::Ingest;
use crate::journal::{DirStorage, Durability, Journal, JournalConfig, Kind, CORRUPT_DIR, JOURNAL_DIR};
use crate::parse::Limits;
use crate::sink::{Sink, SinkSpec};

/// How often a stop looks whether the requests in flight have finished.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Segments are at most this fraction of `--max-journal-bytes` (see `open_journal`).
const SEGMENTS_PER_BUDGET: u64 = 8;
/// Smallest segment size used, whatever the budget.
const MIN_SEGMENT_BYTES: u64 = 4096;

/// Connections the metrics listener keeps open at once (scrapers and health checks).
const METRICS_CONNECTIONS: usize = 64;

/// Default sink file in the data directory.
pub(super) const DEFAULT_SINK_FILE: &str = "events.jsonl";

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Opens the journal, reporting what recovery cut or stepped over; also returns the number of
/// acknowledged records lost to damage.
fn open_journal(config: &ServeConfig, first_seq: u64) -> Result<(Arc<Journal>, u64), ServeError> {
    let storage = DirStorage::new(&config.data_dir.join(JOURNAL_DIR)).map_err(ServeError::Journal)?;
    // The newest segment is never removed, so delivery frees the budget only segment by segment:
    // segments of at most an eighth of it keep one segment from holding the budget hostage.
    let segment_bytes = config
        .journal_segment_bytes
        .min(config.max_journal_bytes / SEGMENTS_PER_BUDGET)
        .max(MIN_SEGMENT_BYTES);
    if segment_bytes < config.journal_segment_bytes {
        log::info!(
            "journal segments of {segment_bytes} bytes: at most 1/{SEGMENTS_PER_BUDGET} of --max-journal-bytes ({})",
            config.max_journal_bytes
        );
    }
    let journal_config = JournalConfig {
        durability: config.durability,
        segment_bytes,
        first_seq,
        corrupt_dir: Some(config.data_dir.join(CORRUPT_DIR)),
    };
    let (journal, recovered) =
        Journal::open(Arc::new(storage), &journal_config).map_err(ServeError::Journal)?;
    for corruption in &recovered.corruptions {
        log::error!(
            "journal recovery: damage on disk: {corruption}; every valid record before and after it is kept"
        );
    }
    for repair in &recovered.repairs {
        if repair.lost_committed && config.durability == Durability::None {
            log::warn!("journal recovery: {repair} (a machine crash with --durability none)");
        } else if repair.lost_committed {
            log::error!("journal recovery: {repair}; committed events in it were lost (disk damage?)");
        } else if config.durability == Durability::None {
            log::warn!("journal recovery: {repair} (a torn write at the crash)");
        } else {
            log::warn!("journal recovery: {repair} (a torn write at the crash; it was never acknowledged)");
        }
    }
    log::info!(
        "journal: {} records in {} segments, next record {}, {:?} durability",
        recovered.records,
        journal.segments().len(),
        journal.committed_seq(),
        config.durability
    );
    Ok((Arc::new(journal), recovered.corrupt_records()))
}

/// The configured sinks (or the default one) and the quarantine file, as targets.
fn open_targets(config: &ServeConfig) -> Result<Vec<Target>, ServeError> {
    let default = [SinkSpec::Jsonl(config.data_dir.join(DEFAULT_SINK_FILE))];
    let specs = if config.sinks.is_empty() { &default[..] } else { &config.sinks[..] };
    let mut targets = Vec::new();
    for spec in specs {
        let name = spec.name();
        if name == QUARANTINE || targets.iter().any(|t: &Target| t.name == name) {
            return Err(ServeError::Sink(
                name,
                io::Error::new(io::ErrorKind::InvalidInput, "configured twice"),
            ));
        }
        let sink = Sink::open(spec, &config.sink_options).map_err(|e| ServeError::Sink(name.clone(), e))?;
        targets.push(Target { name, sink, accepts: Kind::Event, stats: SinkStats::default() });
    }
    let quarantine = SinkSpec::Jsonl(config.data_dir.join(QUARANTINE_FILE));
    let sink =
        Sink::open(&quarantine, &config.sink_options).map_err(|e| ServeError::Sink(QUARANTINE.into(), e))?;
    targets.push(Target {
        name: QUARANTINE.into(),
        sink,
        accepts: Kind::Quarantined,
        stats: SinkStats::default(),
    });
    Ok(targets)
}

/// The secret and the checkpoint, each set aside and replaced when damaged (see `damaged.rs`).
struct Recovered {
    secret: Secret,
    /// The secret was created now in place of a damaged one: stored keys are meaningless.
    new_secret: bool,
    checkpoint: dispatch::Checkpoint,
    /// State files set aside.
    set_aside: u64,
}

fn recover_state(data_dir: &Path) -> Result<Recovered, ServeError> {
    let mut set_aside = 0;
    let aside = |path: &Path, error: &io::Error, cost: &str, count: &mut u64| {
        damaged::report(path, error, cost, count).map_err(|e| ServeError::DataDir(with_path(path, e)))
    };
    let secret_path = data_dir.join(crate::dedup::SECRET_FILE);
    let (secret, new_secret) = match Secret::load_or_create(data_dir) {
        Ok(secret) => (secret, false),
        Err(e) if damaged::is_damage(&e) => {
            aside(&secret_path, &e, "a new secret; dedup keys rebuilt from the journal", &mut set_aside)?;
            // Keys made with the old secret mean nothing under the new one.
            let keys = data_dir.join(dispatch::KEYS_FILE);
            if keys.exists() {
                let obsolete = io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: made with the old secret", keys.display()),
                );
                aside(&keys, &obsolete, "rebuilt from the journal", &mut set_aside)?;
            }
            (Secret::load_or_create(data_dir).map_err(ServeError::DataDir)?, true)
        }
        Err(e) => return Err(ServeError::DataDir(e)),
    };
    let checkpoint_path = data_dir.join(dispatch::CHECKPOINT_FILE);
    let mut checkpoint = match dispatch::Checkpoint::load_or_default(data_dir) {
        Ok(checkpoint) => checkpoint,
        Err(e) if damaged::is_damage(&e) => {
            aside(
                &checkpoint_path,
                &e,
                "every sink starts again at the oldest journaled record: at least once",
                &mut set_aside,
            )?;
            dispatch::Checkpoint::default()
        }
        Err(e) => return Err(ServeError::Journal(e)),
    };
    if new_secret {
        checkpoint.keys_count = 0;
        checkpoint.keys_through = 0;
    }
    Ok(Recovered { secret, new_secret, checkpoint, set_aside })
}

/// Binds the `--metrics-listen` listener: the public one's limits and read timeout, a few
/// connections, and no body budget (its gate admits bodiless requests only; the others are
/// answered from their head, 404 for the webhook).
fn bind_metrics(
    addr: SocketAddr,
    config: &ServeConfig,
    public: SocketAddr,
) -> Result<http::Server, ServeError> {
    let overlaps = addr.ip() == public.ip() || addr.ip().is_unspecified() || public.ip().is_unspecified();
    if addr.port() == public.port() && overlaps {
        let same = io::Error::new(io::ErrorKind::InvalidInput, "the address --listen serves");
        return Err(ServeError::Bind(addr, same));
    }
    http::Server::bind(addr, http_config(config, METRICS_CONNECTIONS, 0))
        .map_err(|e| ServeError::Bind(addr, e))
}

/// The HTTP layer's settings from the configuration, for a listener of at most `max_connections`
/// whose bodies in memory may take `body_budget` bytes together.
fn http_config(config: &ServeConfig, max_connections: usize, body_budget: usize) -> http::Config {
    http::Config {
        limits: http::Limits {
            max_headers: config.max_headers,
            max_head_bytes: config.max_header_bytes,
            max_target_bytes: http::head::MAX_TARGET_BYTES,
            max_body: config.max_body as u64,
        },
        read_timeout: config.read_timeout,
        max_connections,
        body_budget,
    }
}

/// A started receiver: serving, delivering, until [`Running::shutdown`].
pub struct Running {
    shared: Arc<Shared>,
    http: http::Server,
    /// The `--metrics-listen` listener.
    metrics_http: Option<http::Server>,
    shutdown_timeout: Duration,
    token_file: Option<PathBuf>,
    /// The `--webhook-id` watcher, stopped first at a shutdown.
    watcher: Option<super::watch::Watcher>,
    /// Held until the receiver is dropped (and by the kernel until the process ends).
    _lock: DataDirLock,
}

/// Opens and recovers the data directory, starts delivery, and listens; returns once the
/// receiver is ready for requests.
pub fn start(config: ServeConfig) -> Result<Running, ServeError> {
    may::config().set_workers(config.io_threads.max(1)).set_stack_size(config.stack_words);
    crate::private_files::create_dir_all(&config.data_dir)
        .map_err(|e| ServeError::DataDir(with_path(&config.data_dir, e)))?;
    crate::private_files::warn_if_shared(&config.data_dir);
    // Before anything in the directory is read or written: one receiver per data directory.
    let lock = DataDirLock::acquire(&config.data_dir).map_err(ServeError::Locked)?;
    // And one per address: bound before the state is recovered, so a refused start touches
    // nothing else.
    let max_connections = match limits::raise_open_files() {
        Some(limit) => {
            let capped = limits::connections_within(config.max_connections, limit);
            if capped < config.max_connections {
                log::warn!(
                    "--max-connections {} needs more descriptors than the open-file limit ({limit}) \
                     leaves beside the {} the receiver keeps for its files: capped at {capped} (raise \
                     LimitNOFILE= in the unit, or ulimit -n)",
                    config.max_connections,
                    limits::RESERVED_DESCRIPTORS
                );
            }
            capped
        }
        None => config.max_connections,
    };
    let http_config =
        http_config(&config, max_connections, config.max_body.saturating_mul(BODY_BUDGET_FACTOR));
    let mut server =
        http::Server::bind(config.listen, http_config).map_err(|e| ServeError::Bind(config.listen, e))?;
    let mut metrics_server = match config.metrics_listen {
        Some(addr) => Some(bind_metrics(addr, &config, server.local_addr())?),
        None => None,
    };
    let recovered = recover_state(&config.data_dir)?;
    let (secret, mut checkpoint, mut set_aside) =
        (recovered.secret, recovered.checkpoint, recovered.set_aside);
    let (journal, corrupt_records) = open_journal(&config, checkpoint.high_water())?;
    let dedup = Dedup::new(config.dedup_capacity, secret.clone());
    let rehash = recovered.new_secret.then_some(&secret);
    let keys_path = config.data_dir.join(dispatch::KEYS_FILE);
    let (key_file, restored) =
        match dispatch::restore_keys(&config.data_dir, &checkpoint, &journal, &dedup, rehash) {
            Err(e) if damaged::is_damage(&e) => {
                damaged::report(&keys_path, &e, "dedup keys rebuilt from the journal", &mut set_aside)
                    .map_err(|e| ServeError::DataDir(with_path(&keys_path, e)))?;
                checkpoint.keys_count = 0;
                checkpoint.keys_through = 0;
                dispatch::restore_keys(&config.data_dir, &checkpoint, &journal, &dedup, rehash)
            }
            other => other,
        }
        .map_err(ServeError::Journal)?;
    log::info!(
        "dedup remembers the last {} events ({:.1} MiB): restored {} keys from the key file and {} from the journal",
        dedup.ring().capacity(),
        dedup.ring().memory_bytes() as f64 / f64::from(1 << 20),
        restored.from_file,
        restored.from_journal
    );
    let targets = open_targets(&config)?;
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    log::info!("delivering to {} with {} workers", names.join(", "), config.workers);
    let dispatch_config = DispatchConfig {
        data_dir: config.data_dir.clone(),
        workers: config.workers,
        delivery_attempts: config.delivery_attempts,
        retention: config.journal_retention,
        max_journal_bytes: config.max_journal_bytes,
        identity: dispatch::SinkIdentity::new(config.sink_start, &config.sinks),
    };
    let dispatcher =
        Dispatcher::start(&dispatch_config, Arc::clone(&journal), targets, &checkpoint, key_file)
            .map_err(ServeError::Journal)?;
    if config.token.is_none() {
        log::warn!("no --auth-token or --auth-token-file: every POST to {} is accepted", config.path);
    }
    // Order keys only route deliveries that run in parallel (see `dispatch`).
    let parallel = config.workers > 1 && dispatcher.targets().iter().any(|t| !t.sink.serial());
    let ingest =
        Ingest::new(dedup, Arc::clone(&journal), parallel.then_some(secret), config.max_journal_bytes);
    let shared = Arc::new(Shared {
        gate: GateConfig { path: config.path.clone(), token: None },
        token: std::sync::Mutex::new(config.token.clone()),
        token_generation: std::sync::atomic::AtomicU64::new(0),
        limits: Limits::default().max_bytes(config.max_body),
        ingest,
        journal,
        dispatcher,
        metrics: Metrics::default(),
        http: server.stats(),
        reject_log: Default::default(),
        draining: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
    });
    shared.metrics.state_files_set_aside.store(set_aside, Ordering::Relaxed);
    shared.metrics.journal_corrupt_records.store(corrupt_records, Ordering::Relaxed);
    let public = if metrics_server.is_some() { Listener::Public } else { Listener::All };
    let factory_shared = Arc::clone(&shared);
    server.start(move || Connection::new(Arc::clone(&factory_shared), public)).map_err(ServeError::Thread)?;
    if let Some(metrics) = &mut metrics_server {
        let factory_shared = Arc::clone(&shared);
        metrics
            .start(move || Connection::new(Arc::clone(&factory_shared), Listener::Metrics))
            .map_err(ServeError::Thread)?;
        log::info!(
            "serving /metrics and /healthz on {} (not /metrics on {})",
            metrics.local_addr(),
            server.local_addr()
        );
    }
    log::info!(
        "listening on {} for POST {} (data in {}, {} io threads)",
        server.local_addr(),
        config.path,
        config.data_dir.display(),
        config.io_threads
    );
    // Once the receiver can take events: its first check may re-enable the webhook.
    let watcher =
        config.webhook_watch.and_then(|watch| super::watch::start(watch, &shared, config.max_journal_bytes));
    Ok(Running {
        shared,
        http: server,
        metrics_http: metrics_server,
        shutdown_timeout: config.shutdown_timeout,
        token_file: config.token_file,
        watcher,
        _lock: lock,
    })
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("shutdown_timeout", &self.shutdown_timeout).finish_non_exhaustive()
    }
}

/// What a graceful stop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Requests still running when the shutdown timeout ran out (0 after a clean stop).
    pub requests_cut: usize,
    /// Records not yet delivered to every sink (delivered after the next start).
    pub undelivered: u64,
    /// Delivered records the last checkpoint does not cover, because storing it failed.
    pub unchecked: u64,
}

/// A cheap, shareable view of a running receiver's health and counters (for sd_notify's
/// watchdog and status line).
#[derive(Clone)]
pub struct Health {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("healthy", &self.healthy()).finish()
    }
}

impl Health {
    /// True while events can be stored and delivered: the journal is not poisoned and the
    /// dispatcher thread runs.
    pub fn healthy(&self) -> bool {
        !self.shared.journal.poisoned() && self.shared.dispatcher.running()
    }

    /// One line for `systemctl status`.
    pub fn summary(&self) -> String {
        let ingest = self.shared.ingest.stats();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let lag =
            self.shared.dispatcher.targets().iter().map(|t| get(&t.stats.lag_events)).max().unwrap_or(0);
        let dead: u64 = self.shared.dispatcher.targets().iter().map(|t| get(&t.stats.dead_lettered)).sum();
        format!(
            "{}: {} events accepted, {} duplicates, {} quarantined; delivery lag {} records, {} dead-lettered; \
             journal {} MiB",
            if self.healthy() { "healthy" } else { "UNHEALTHY" },
            get(&ingest.accepted),
            get(&ingest.duplicates),
            get(&ingest.quarantined),
            lag,
            dead,
            self.shared.journal.bytes() >> 20
        )
    }
}

impl Running {
    /// The address it listens on (the port the kernel chose, for `:0`).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.http.local_addr()
    }

    /// The address `/metrics` is served on alone (`--metrics-listen`), if it is.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_http.as_ref().map(http::Server::local_addr)
    }

    /// A view of its health and counters that other threads can keep.
    pub fn health(&self) -> Health {
        Health { shared: Arc::clone(&self.shared) }
    }

    /// Replaces the token (SIGHUP, after its file changed); connections use it from their next
    /// request.
    pub fn set_token(&self, token: Option<Token>) {
        *self.shared.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = token;
        self.shared.token_generation.fetch_add(1, Ordering::Release);
    }

    /// Re-reads the token file, if the token came from one (SIGHUP); a file that cannot be read
    /// keeps the old token (logged).
    pub fn reload_token(&self) {
        let Some(path) = &self.token_file else { return };
        let old = self.shared.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let header = old.as_ref().and_then(|t| t.header().map(str::to_owned));
        match Token::read_file(path, header) {
            Ok(token) => {
                // Under systemd's LoadCredential the file is the copy made at start: a reload
                // finds it unchanged, and only a restart takes a new token (the README says so).
                let changed = !old.is_some_and(|old| old.same_as(&token));
                self.set_token(Some(token));
                if changed {
                    log::info!("token changed: re-read from {}", path.display());
                } else {
                    log::info!("token unchanged: {} holds the token in force", path.display());
                }
            }
            Err(e) => log::error!("cannot re-read the token: {e}; the old one stays in force"),
        }
    }

    /// Reopens the sinks' files (SIGHUP, after logrotate moved them).
    pub fn reopen(&self) {
        self.shared.dispatcher.reopen_sinks();
        log::info!("sink files reopened");
    }

    /// Stops gracefully within `--shutdown-timeout`: stop accepting connections, refuse new
    /// POSTs (503, connection closed), let requests in flight finish, make the journal durable,
    /// deliver what is journaled, and checkpoint.
    pub fn shutdown(mut self) -> Stopped {
        let deadline = Instant::now() + self.shutdown_timeout;
        let shared = &self.shared;
        // Draining first, so that the connections the stop closes or lets finish refuse new POSTs.
        shared.draining.store(true, Ordering::SeqCst);
        if let Some(watcher) = &self.watcher {
            watcher.stop();
        }
        self.http.stop();
        while shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(DRAIN_POLL);
        }
        let requests_cut = shared.in_flight.load(Ordering::SeqCst);
        if let Err(e) = shared.journal.flush() {
            log::error!("journal at shutdown: {e}");
        }
        let delivery = shared.dispatcher.stop(deadline);
        // Scraped until the end of the stop.
        if let Some(metrics) = &mut self.metrics_http {
            metrics.stop();
        }
        Stopped { requests_cut, undelivered: delivery.undelivered, unchecked: delivery.unchecked }
    }

    /// Serves until the process ends (no graceful stop).
    pub fn wait(mut self) {
        self.http.wait();
    }
}

/// Runs the receiver until the process ends (embedding without a graceful stop; the binary uses
/// [`start`] and stops on SIGTERM).
pub fn run(config: ServeConfig) -> Result<(), ServeError> {
    start(config)?.wait();
    Ok(())
}
