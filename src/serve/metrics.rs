//! Counters for `/metrics`, in the Prometheus text format.
//!
//! Plain relaxed atomics: each counter is independent, and a scrape may see one a request ahead
//! of another. Statuses, routes and duration buckets are fixed sets, so counting a request is a
//! few array indexes and three relaxed atomic adds (its status, its bucket, the sum of
//! durations), with no allocation and no lock. The `process_*` series are read from `/proc/self`
//! at each scrape, under the names every Prometheus client library uses.

use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::gate::{Page, Route};
use crate::dispatch::{SinkStats, Target};
use crate::http;
use crate::ingest::IngestStats;
use crate::journal::Journal;

/// Every status code the receiver answers with, in the order they are reported.
pub(super) const STATUSES: [u16; 13] = [200, 400, 401, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505];

/// The slot that counts a status missing from [`STATUSES`] (none should be).
const OTHER: usize = 9;

/// The `route` label's values, in the order of [`route_slot`].
const ROUTES: [&str; 4] = ["webhook", "healthz", "metrics", "other"];

/// The duration histogram's upper bounds, in nanoseconds and as the `le` label says them; one
/// more slot counts what is above the last (`+Inf`).
const BUCKETS: [(u64, &str); 12] = [
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (10_000_000_000, "10"),
];

/// The revision the build script found (`git` at build time), else `unknown`.
const REVISION: &str = match option_env!("EGNYTE_RECEIVER_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// Request durations by route and status: per bucket (not cumulative; summed at a scrape) and
/// their sum in nanoseconds.
#[derive(Debug, Default)]
struct Durations {
    buckets: [[[AtomicU64; BUCKETS.len() + 1]; STATUSES.len()]; ROUTES.len()],
    sum_nanos: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
}

/// The receiver's counters.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    durations: Durations,
    /// Request body bytes handed to the service.
    received_bytes: AtomicU64,
    /// When a batch last had an event accepted, in milliseconds since the epoch (0: never).
    last_accepted_millis: AtomicU64,
    /// State files found damaged at start, set aside and rebuilt (see `serve/damaged.rs`).
    pub state_files_set_aside: AtomicU64,
    /// Acknowledged journal records lost to damage on disk, found at start (see
    /// `journal/recover.rs`).
    pub journal_corrupt_records: AtomicU64,
    /// The `--webhook-id` watcher's (see `serve/watch.rs`).
    pub webhook: super::watch::WebhookMetrics,
}

/// The slot of `status` in [`STATUSES`].
fn status_slot(status: u16) -> usize {
    // 500 is the catch-all slot: every status the receiver sends is in the table.
    STATUSES.iter().position(|&s| s == status).unwrap_or(OTHER)
}

/// The slot of `route` in [`ROUTES`].
fn route_slot(route: Route) -> usize {
    match route {
        Route::Webhook => 0,
        Route::Page(Page::Health) => 1,
        Route::Page(Page::Metrics) => 2,
        Route::Other => 3,
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(super) fn count_request(&self, status: u16) {
        self.requests[status_slot(status)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one request to the duration histogram: `elapsed` from its head to its answer.
    pub(super) fn observe(&self, route: Route, status: u16, elapsed: Duration) {
        let (route, status) = (route_slot(route), status_slot(status));
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BUCKETS.iter().position(|&(bound, _)| nanos <= bound).unwrap_or(BUCKETS.len());
        self.durations.buckets[route][status][bucket].fetch_add(1, Ordering::Relaxed);
        self.durations.sum_nanos[route][status].fetch_add(nanos, Ordering::Relaxed);
    }

    /// Counts the bytes of a request body received whole.
    pub(super) fn count_body(&self, bytes: usize) {
        if bytes > 0 {
            self.received_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Notes that a batch had an event accepted now.
    pub(super) fn event_accepted(&self) {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.last_accepted_millis.fetch_max(millis, Ordering::Relaxed);
    }

    /// When a batch last had an event accepted, in milliseconds since the epoch (0: not since the
    /// start).
    pub(super) fn last_accepted_ms(&self) -> u64 {
        self.last_accepted_millis.load(Ordering::Relaxed)
    }

    /// Writes every metric; `connections` come from the HTTP layer, `ingest` and `healthy` from
    /// the ingest stage.
    pub(super) fn render(
        &self,
        out: &mut impl Write,
        connections: &http::Stats,
        ingest: &IngestStats,
        healthy: bool,
    ) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        writeln!(out, "# HELP egnyte_receiver_requests_total HTTP requests answered, by status code.")?;
        writeln!(out, "# TYPE egnyte_receiver_requests_total counter")?;
        for (status, count) in STATUSES.iter().zip(&self.requests) {
            writeln!(out, "egnyte_receiver_requests_total{{status=\"{status}\"}} {}", get(count))?;
        }
        let counters = [
            ("events_accepted_total", "Valid events taken.", get(&ingest.accepted)),
            ("events_duplicate_total", "Events already received before.", get(&ingest.duplicates)),
            (
                "events_quarantined_total",
                "Invalid elements written to quarantine.jsonl.",
                get(&ingest.quarantined),
            ),
            (
                "dedup_unremembered_total",
                "Fresh events the dedup ring could not remember (raise --dedup-capacity when it grows).",
                get(&ingest.unremembered),
            ),
            (
                "connections_refused_total",
                "Connections closed at once: too many open.",
                connections.connections_refused(),
            ),
            (
                "connections_timed_out_total",
                "Connections closed for not completing a request in time.",
                connections.timed_out(),
            ),
            (
                "accept_errors_total",
                "Failed accepts for want of file descriptors or memory (raise LimitNOFILE).",
                connections.accept_errors(),
            ),
        ];
        for (name, help, value) in counters {
            writeln!(out, "# HELP egnyte_receiver_{name} {help}")?;
            writeln!(out, "# TYPE egnyte_receiver_{name} counter")?;
            writeln!(out, "egnyte_receiver_{name} {value}")?;
        }
        writeln!(
            out,
            "# HELP egnyte_receiver_state_files_set_aside State files found damaged at start, renamed *.damaged-* and rebuilt."
        )?;
        writeln!(out, "# TYPE egnyte_receiver_state_files_set_aside gauge")?;
        writeln!(out, "egnyte_receiver_state_files_set_aside {}", get(&self.state_files_set_aside))?;
        writeln!(
            out,
            "# HELP egnyte_receiver_journal_corrupt_records_total Acknowledged journal records found damaged on disk at start (their bytes are in DATA_DIR/corrupt)."
        )?;
        writeln!(out, "# TYPE egnyte_receiver_journal_corrupt_records_total counter")?;
        writeln!(
            out,
            "egnyte_receiver_journal_corrupt_records_total {}",
            get(&self.journal_corrupt_records)
        )?;
        let open = connections.open_connections();
        writeln!(out, "# HELP egnyte_receiver_open_connections Connections open now.")?;
        writeln!(out, "# TYPE egnyte_receiver_open_connections gauge")?;
        writeln!(out, "egnyte_receiver_open_connections {open}")?;
        writeln!(out, "# HELP egnyte_receiver_healthy 1 when events can be stored, else 0.")?;
        writeln!(out, "# TYPE egnyte_receiver_healthy gauge")?;
        writeln!(out, "egnyte_receiver_healthy {}", u8::from(healthy))?;
        writeln!(
            out,
            "# HELP egnyte_receiver_received_bytes_total Request body bytes received whole (chunked bodies as decoded), on every route."
        )?;
        writeln!(out, "# TYPE egnyte_receiver_received_bytes_total counter")?;
        writeln!(out, "egnyte_receiver_received_bytes_total {}", get(&self.received_bytes))?;
        let millis = get(&self.last_accepted_millis);
        writeln!(
            out,
            "# HELP egnyte_receiver_last_event_accepted_timestamp_seconds When a batch last had an event accepted (Unix time; 0 before the first since the start)."
        )?;
        writeln!(out, "# TYPE egnyte_receiver_last_event_accepted_timestamp_seconds gauge")?;
        writeln!(
            out,
            "egnyte_receiver_last_event_accepted_timestamp_seconds {}.{:03}",
            millis / 1000,
            millis % 1000
        )?;
        self.webhook.render(out)?;
        self.render_durations(out)?;
        writeln!(
            out,
            "# HELP egnyte_receiver_build_info The running build: its version and the git revision it was built from (1)."
        )?;
        writeln!(out, "# TYPE egnyte_receiver_build_info gauge")?;
        write!(out, "egnyte_receiver_build_info{{version=\"")?;
        label_value(out, env!("CARGO_PKG_VERSION"))?;
        write!(out, "\",revision=\"")?;
        label_value(out, REVISION)?;
        writeln!(out, "\"}} 1")?;
        render_process(out)
    }

    /// The duration histogram: every (route, status) that has been observed.
    fn render_durations(&self, out: &mut impl Write) -> fmt::Result {
        let name = "egnyte_receiver_request_duration_seconds";
        writeln!(
            out,
            "# HELP {name} Time from a request's head to its answer, by route (webhook, healthz, metrics, other) and status; requests the HTTP layer refused before their head was read are only in egnyte_receiver_requests_total."
        )?;
        writeln!(out, "# TYPE {name} histogram")?;
        for (route, (buckets_by_status, sums)) in
            ROUTES.iter().zip(self.durations.buckets.iter().zip(&self.durations.sum_nanos))
        {
            for ((status, buckets), sum) in STATUSES.iter().zip(buckets_by_status).zip(sums) {
                let counts = buckets.each_ref().map(load);
                let count: u64 = counts.iter().sum();
                if count == 0 {
                    continue;
                }
                let labels = format!("route=\"{route}\",status=\"{status}\"");
                let mut cumulative = 0;
                for ((_, le), n) in BUCKETS.iter().zip(&counts) {
                    cumulative += n;
                    writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}")?;
                }
                writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}")?;
                writeln!(out, "{name}_sum{{{labels}}} {}", load(sum) as f64 / 1e9)?;
                writeln!(out, "{name}_count{{{labels}}} {count}")?;
            }
        }
        Ok(())
    }
}

/// The standard process metrics, from `/proc/self` (nothing where there is no `/proc`).
fn render_process(out: &mut impl Write) -> fmt::Result {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold anything.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let ticks = clock_ticks() as f64;
    if let (Some(user), Some(system)) = (field(14), field(15)) {
        writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.")?;
        writeln!(out, "# TYPE process_cpu_seconds_total counter")?;
        writeln!(out, "process_cpu_seconds_total {}", (user + system) as f64 / ticks)?;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    if let Some(kib) = rss_kib {
        writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.")?;
        writeln!(out, "# TYPE process_resident_memory_bytes gauge")?;
        writeln!(out, "process_resident_memory_bytes {}", kib * 1024)?;
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|text| {
        text.lines().find_map(|line| line.strip_prefix("btime ")).and_then(|v| v.trim().parse::<u64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds."
        )?;
        writeln!(out, "# TYPE process_start_time_seconds gauge")?;
        writeln!(out, "process_start_time_seconds {}", boot as f64 + start as f64 / ticks)?;
    }
    // The descriptor that lists the directory is not counted.
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let open = entries.count().saturating_sub(1);
        writeln!(out, "# HELP process_open_fds Number of open file descriptors.")?;
        writeln!(out, "# TYPE process_open_fds gauge")?;
        writeln!(out, "process_open_fds {open}")?;
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max_fds = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok());
    if let Some(max) = max_fds {
        writeln!(out, "# HELP process_max_fds Maximum number of open file descriptors.")?;
        writeln!(out, "# TYPE process_max_fds gauge")?;
        writeln!(out, "process_max_fds {max}")?;
    }
    Ok(())
}

/// Clock ticks per second, the unit of the times in `/proc/self/stat`.
#[allow(unsafe_code)]
fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// A per-sink series: name, type, help, and the value it reads.
type SinkSeries = (&'static str, &'static str, &'static str, fn(&SinkStats) -> u64);

/// Writes the journal's and every sink's metrics.
pub(super) fn render_delivery(out: &mut impl Write, journal: &Journal, targets: &[Target]) -> fmt::Result {
    let stats = journal.stats();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let series = [
        ("journal_bytes", "gauge", "Bytes in journal segments on disk.", journal.bytes()),
        (
            "journal_retained_bytes",
            "gauge",
            "Bytes of delivered journal segments kept for replay.",
            journal.retained_bytes(),
        ),
        (
            "journal_poisoned",
            "gauge",
            "1 after a failed journal write or fsync (until restart).",
            u64::from(journal.poisoned()),
        ),
        (
            "journal_no_space",
            "gauge",
            "1 while the disk has no room for the journal (events are refused with 503 until a write succeeds).",
            u64::from(journal.no_space()),
        ),
        (
            "journal_no_space_total",
            "counter",
            "Journal writes that found no room on the disk.",
            journal.no_space_groups(),
        ),
        (
            "journal_no_descriptors_total",
            "counter",
            "Journal groups refused because a new segment could not be opened for want of file descriptors.",
            journal.no_descriptor_groups(),
        ),
        (
            "journal_next_record",
            "gauge",
            "Sequence number the next journal record gets.",
            journal.committed_seq(),
        ),
        ("journal_records_total", "counter", "Records written to the journal.", get(&stats.records)),
        ("journal_groups_total", "counter", "Group commits (one write each).", get(&stats.groups)),
        ("journal_syncs_total", "counter", "Successful journal fdatasync calls.", get(&stats.syncs)),
    ];
    for (name, kind, help, value) in series {
        writeln!(out, "# HELP egnyte_receiver_{name} {help}")?;
        writeln!(out, "# TYPE egnyte_receiver_{name} {kind}")?;
        writeln!(out, "egnyte_receiver_{name} {value}")?;
    }
    let per_sink: [SinkSeries; 9] = [
        ("sink_delivered_total", "counter", "Records delivered to the sink.", |s| load(&s.delivered)),
        ("sink_retried_total", "counter", "Failed attempts that were retried.", |s| load(&s.retried)),
        ("sink_failed_total", "counter", "Failed delivery attempts.", |s| load(&s.failed)),
        ("sink_dead_lettered_total", "counter", "Records written to dead-letter.jsonl.", |s| {
            load(&s.dead_lettered)
        }),
        ("sink_lag_events", "gauge", "Journal records not yet delivered to the sink.", |s| {
            load(&s.lag_events)
        }),
        ("sink_lag_seconds", "gauge", "Age of the oldest record in flight not yet delivered.", |s| {
            load(&s.lag_seconds)
        }),
        (
            "sink_stalled_seconds",
            "gauge",
            "Seconds the sink's position has not moved while records wait for it (0 when none wait).",
            |s| load(&s.stalled_seconds),
        ),
        (
            "sink_stuck",
            "gauge",
            "1 while records have waited for the sink and none was delivered for 60 s.",
            |s| u64::from(s.stuck()),
        ),
        (
            "sink_checkpoint_position",
            "gauge",
            "Every journal record below this is delivered to the sink and checkpointed.",
            |s| load(&s.checkpointed),
        ),
    ];
    for (name, kind, help, field) in per_sink {
        writeln!(out, "# HELP egnyte_receiver_{name} {help}")?;
        writeln!(out, "# TYPE egnyte_receiver_{name} {kind}")?;
        for target in targets {
            write!(out, "egnyte_receiver_{name}{{sink=\"")?;
            label_value(out, &target.name)?;
            writeln!(out, "\"}} {}", field(&target.stats))?;
        }
    }
    Ok(())
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A label value with `\`, `"` and line breaks escaped, as the text format requires.
fn label_value(out: &mut impl Write, value: &str) -> fmt::Result {
    for c in value.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = Metrics::default();
        m.count_request(200);
        m.count_request(200);
        m.count_request(401);
        m.count_request(418);
        let ingest = IngestStats::default();
        ingest.accepted.fetch_add(7, Ordering::Relaxed);
        let config = http::Config {
            limits: http::Limits::default(),
            read_timeout: std::time::Duration::from_secs(1),
            max_connections: 1,
            body_budget: 1,
        };
        let server = http::Server::bind("127.0.0.1:0".parse().unwrap(), config).unwrap();
        let mut text = String::new();
        m.render(&mut text, &server.stats(), &ingest, true).unwrap();
        for line in [
            "egnyte_receiver_requests_total{status=\"200\"} 2",
            "egnyte_receiver_requests_total{status=\"401\"} 1",
            "egnyte_receiver_requests_total{status=\"500\"} 1",
            "egnyte_receiver_requests_total{status=\"503\"} 0",
            "egnyte_receiver_events_accepted_total 7",
            "egnyte_receiver_events_duplicate_total 0",
            "egnyte_receiver_events_quarantined_total 0",
            "egnyte_receiver_open_connections 0",
            "egnyte_receiver_connections_timed_out_total 0",
            "egnyte_receiver_accept_errors_total 0",
            "egnyte_receiver_dedup_unremembered_total 0",
            "egnyte_receiver_healthy 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("egnyte_receiver_") || l.starts_with("process_")));
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
        ] {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(family)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {family} in\n{text}"));
            assert!(value.parse::<f64>().is_ok_and(|v| v >= 0.0), "{family} {value}");
        }
        let build = format!(
            "egnyte_receiver_build_info{{version=\"{}\",revision=\"{REVISION}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == build), "no {build:?} in\n{text}");
        assert!(text.contains("\negnyte_receiver_last_event_accepted_timestamp_seconds 0.000\n"), "{text}");
        assert!(text.contains("\negnyte_receiver_received_bytes_total 0\n"), "{text}");
        // Nothing observed, no histogram series (the family is still described).
        assert!(text.contains("# TYPE egnyte_receiver_request_duration_seconds histogram\n"));
        assert!(!text.contains("egnyte_receiver_request_duration_seconds_count"), "{text}");
    }

    #[test]
    fn durations_are_a_cumulative_histogram_by_route_and_status() {
        let m = Metrics::default();
        let ms = Duration::from_millis;
        m.observe(Route::Webhook, 200, ms(3));
        m.observe(Route::Webhook, 200, ms(3));
        m.observe(Route::Webhook, 200, Duration::from_micros(1000));
        m.observe(Route::Webhook, 200, Duration::from_secs(60));
        m.observe(Route::Page(Page::Metrics), 200, ms(0));
        m.observe(Route::Other, 404, ms(30));
        m.observe(Route::Webhook, 418, ms(1));
        m.count_body(10);
        m.count_body(0);
        m.count_body(5);
        let mut text = String::new();
        m.render_durations(&mut text).unwrap();
        let value = |series: &str| -> f64 {
            let line = text.lines().find(|l| l.rsplit_once(' ').is_some_and(|(name, _)| name == series));
            line.unwrap_or_else(|| panic!("no {series} in\n{text}"))
                .rsplit_once(' ')
                .unwrap()
                .1
                .parse()
                .unwrap()
        };
        let webhook = "route=\"webhook\",status=\"200\"";
        let bucket = |labels: &str, le: &str| {
            value(&format!("egnyte_receiver_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}"))
        };
        assert_eq!(bucket(webhook, "0.001"), 1.0, "a bound is inclusive");
        assert_eq!(bucket(webhook, "0.0025"), 1.0);
        assert_eq!(bucket(webhook, "0.005"), 3.0);
        assert_eq!(bucket(webhook, "10"), 3.0);
        assert_eq!(bucket(webhook, "+Inf"), 4.0);
        assert_eq!(value(&format!("egnyte_receiver_request_duration_seconds_count{{{webhook}}}")), 4.0);
        let sum = value(&format!("egnyte_receiver_request_duration_seconds_sum{{{webhook}}}"));
        assert!((sum - 60.007).abs() < 1e-9, "{sum}");
        assert_eq!(bucket("route=\"metrics\",status=\"200\"", "0.001"), 1.0);
        assert_eq!(bucket("route=\"other\",status=\"404\"", "0.025"), 0.0);
        assert_eq!(bucket("route=\"other\",status=\"404\"", "0.05"), 1.0);
        assert_eq!(
            bucket("route=\"webhook\",status=\"500\"", "+Inf"),
            1.0,
            "an unknown status counts as 500"
        );
        assert_eq!(text.matches("_count{").count(), 4, "only observed pairs: {text}");
        let buckets = text.lines().filter(|l| l.contains("_bucket{")).count();
        assert_eq!(buckets, 4 * (BUCKETS.len() + 1));
        assert_eq!(m.received_bytes.load(Ordering::Relaxed), 15);
        m.event_accepted();
        let millis = m.last_accepted_millis.load(Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(millis <= now && now - millis < 60_000, "{millis} vs {now}");
    }
}
