//! Counters for `/metrics`, in the Prometheus text format.
//!
//! Plain relaxed atomics: each counter is independent, and a scrape may see one a request ahead
//! of another. Statuses are a fixed set (every status the receiver can answer), so counting a
//! request is one array index and one atomic add.

use std::fmt::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dispatch::{SinkStats, Target};
use crate::http;
use crate::ingest::IngestStats;
use crate::journal::Journal;

/// Every status code the receiver answers with, in the order they are reported.
pub(super) const STATUSES: [u16; 13] = [200, 400, 401, 404, 405, 408, 413, 414, 431, 500, 501, 503, 505];

/// The slot that counts a status missing from [`STATUSES`] (none should be).
const OTHER: usize = 9;

/// The receiver's counters.
#[derive(Debug, Default)]
pub(super) struct Metrics {
    requests: [AtomicU64; STATUSES.len()],
    /// State files found damaged at start, set aside and rebuilt (see `serve/damaged.rs`).
    pub state_files_set_aside: AtomicU64,
    /// Acknowledged journal records lost to damage on disk, found at start (see
    /// `journal/recover.rs`).
    pub journal_corrupt_records: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub(super) fn count_request(&self, status: u16) {
        // 500 is the catch-all slot: every status the receiver sends is in the table.
        let slot = STATUSES.iter().position(|&s| s == status).unwrap_or(OTHER);
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
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
        writeln!(out, "egnyte_receiver_healthy {}", u8::from(healthy))
    }
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
        assert!(text.lines().all(|l| l.starts_with('#') || l.starts_with("egnyte_receiver_")));
    }
}
