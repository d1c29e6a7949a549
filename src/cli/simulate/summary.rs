//! The summary: one line per topic, `topic: key value, key value, …`, keys fixed, numbers
//! plain (latencies in ms with 3 decimals), so scripts and tests can read it:
//!
//! ```text
//! run: url http://127.0.0.1:8080/egnyte/webhook, seconds 10.012, connections 4, seed 42
//! batches: sent 1000, acknowledged 1000, failed 0, duplicate 100
//! requests: sent 1003, retries 3, per-second 100.2
//! events: sent 10000, acknowledged 10000, unknown-type 180, per-second 998.8
//! answers: accepted 9000, duplicates 1000, quarantined 0, unreadable 0
//! duplicates: sent 1000, reported 1000
//! status: 200 1000, 503 3
//! latency: p50 0.412 ms, p90 0.630 ms, p99 2.100 ms, max 9.800 ms
//! verify: acknowledged 9000, found 9000, missing 0, duplicated 0, unacknowledged 0, unknown 0, unreadable 0
//! result: ok
//! ```
//!
//! `verify:` appears only with `--verify-jsonl`; `result:` is `ok` or `failed` followed by why.

use std::fmt::Write as _;
use std::time::Duration;

use super::arguments::Options;
use super::stats::Stats;
use super::verify::Verdict;

/// The summary of a run that took `elapsed`, in the format above; `verdict` from `--verify-jsonl`.
pub(super) fn render(options: &Options, s: &Stats, elapsed: Duration, verdict: Option<&Verdict>) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run: url {}, seconds {seconds:.3}, connections {}, seed {}",
        options.url, options.connections, options.seed
    );
    let _ = writeln!(
        out,
        "batches: sent {}, acknowledged {}, failed {}, duplicate {}",
        s.batches, s.batches_acknowledged, s.batches_failed, s.duplicate_batches
    );
    let _ = writeln!(
        out,
        "requests: sent {}, retries {}, per-second {:.1}",
        s.requests,
        s.retries,
        s.requests as f64 / seconds
    );
    let _ = writeln!(
        out,
        "events: sent {}, acknowledged {}, unknown-type {}, per-second {:.1}",
        s.events,
        s.events_acknowledged,
        s.events_unknown_type,
        s.events_acknowledged as f64 / seconds
    );
    let _ = writeln!(
        out,
        "answers: accepted {}, duplicates {}, quarantined {}, unreadable {}",
        s.accepted, s.duplicates_reported, s.quarantined, s.unreadable_answers
    );
    let _ = writeln!(out, "duplicates: sent {}, reported {}", s.duplicates_sent, s.duplicates_reported);
    let statuses: Vec<String> = s.outcomes.iter().map(|(o, n)| format!("{} {n}", o.label())).collect();
    let _ =
        writeln!(out, "status: {}", if statuses.is_empty() { "none".into() } else { statuses.join(", ") });
    let _ = writeln!(
        out,
        "latency: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        ms(s.latency.quantile(0.5)),
        ms(s.latency.quantile(0.9)),
        ms(s.latency.quantile(0.99)),
        ms(s.latency.max_latency())
    );
    if let Some(v) = verdict {
        let _ = writeln!(
            out,
            "verify: acknowledged {}, found {}, missing {}, duplicated {}, unacknowledged {}, unknown {}, unreadable {}",
            v.acknowledged, v.found, v.missing, v.duplicated, v.unacknowledged, v.unknown, v.unreadable
        );
    }
    let mut why = Vec::new();
    if s.batches_failed > 0 {
        why.push(format!("{} batches failed after --retry-for", s.batches_failed));
    }
    if verdict.is_some_and(|v| !v.passed()) {
        why.push("verification found missing or duplicated events".to_owned());
    }
    let _ = writeln!(
        out,
        "result: {}",
        if why.is_empty() { "ok".to_owned() } else { format!("failed: {}", why.join("; ")) }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::simulate::arguments::options;
    use crate::cli::simulate::stats::Outcome;

    #[test]
    fn the_summary_has_its_fixed_lines() {
        let o = options(&["--url", "http://127.0.0.1:9/h", "--seed", "3"]).unwrap();
        let mut s = Stats { batches_failed: 1, ..Stats::default() };
        s.count_outcome(Outcome::Status(401));
        s.count_outcome(Outcome::NetworkError);
        let text = render(&o, &s, Duration::from_secs(2), None);
        let topics: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            topics,
            ["run", "batches", "requests", "events", "answers", "duplicates", "status", "latency", "result"]
        );
        assert!(text.contains("status: 401 1, network-error 1\n"), "{text}");
        assert!(text.contains("result: failed: 1 batches failed after --retry-for\n"), "{text}");
    }
}
