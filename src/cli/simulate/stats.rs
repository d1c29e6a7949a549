//! What a simulation counted: requests, batches, events, the receiver's answers, status codes,
//! and a latency histogram.
//!
//! Each connection owns one [`Stats`] behind its own mutex (uncontended: only the progress line
//! and the final summary read it), and the summary merges them with [`Stats::merge`]. Counters
//! only grow; nothing here allocates per request once every status seen has its slot.
//!
//! The histogram is log-linear (HdrHistogram's layout, reduced): values below
//! 2^[`SUB_BUCKET_BITS`] µs have a bucket each, and every power of two above is split into
//! 2^[`SUB_BUCKET_BITS`] equal buckets, so a reported quantile is within 1/32 (about 3%) of the
//! true value, from 1 µs to [`MAX_LATENCY_MICROS`], in a fixed 1024 counters.

use std::time::Duration;

/// Bits of sub-bucket resolution per power of two: 2^5 = 32 buckets per octave, ≤ 3.2% error.
const SUB_BUCKET_BITS: u32 = 5;
/// Buckets per power of two.
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Largest latency the histogram tells apart (2^36 µs ≈ 19 hours); longer ones count as this.
const MAX_LATENCY_MICROS: u64 = (1 << 36) - 1;
/// Octaves above the linear range, up to [`MAX_LATENCY_MICROS`].
const OCTAVES: usize = 36 - SUB_BUCKET_BITS as usize;
/// Counters in a histogram.
const BUCKETS: usize = (OCTAVES + 1) * SUB_BUCKETS;

/// How one HTTP attempt ended, as the status table counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Outcome {
    /// A complete response with this status code.
    Status(u16),
    /// No complete response within `--timeout`.
    Timeout,
    /// Connecting, writing or reading failed (refused, reset, closed early).
    NetworkError,
    /// The peer answered something that is not HTTP/1.x as this client reads it.
    BadResponse,
}

impl Outcome {
    /// The bucket's name in the summary's `status:` line.
    pub(super) fn label(self) -> String {
        match self {
            Outcome::Status(code) => code.to_string(),
            Outcome::Timeout => "timeout".into(),
            Outcome::NetworkError => "network-error".into(),
            Outcome::BadResponse => "bad-response".into(),
        }
    }
}

/// Latencies in microseconds, log-linear buckets (see the module docs).
#[derive(Debug, Clone)]
pub(super) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0, max: 0 }
    }
}

impl Histogram {
    /// Counts one latency.
    pub(super) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX).min(MAX_LATENCY_MICROS);
        self.counts[bucket(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// Adds every count of `other`.
    pub(super) fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// Latencies counted.
    #[cfg(test)]
    pub(super) fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0.0–1.0): the upper edge of the bucket holding that rank, never above
    /// the largest value seen. Zero when nothing was counted.
    pub(super) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_micros(upper_edge(index).min(self.max));
            }
        }
        self.max_latency()
    }

    /// The largest latency counted.
    pub(super) fn max_latency(&self) -> Duration {
        Duration::from_micros(self.max)
    }
}

/// The bucket of a value: exact below [`SUB_BUCKETS`], then [`SUB_BUCKETS`] per octave.
fn bucket(micros: u64) -> usize {
    if micros < SUB_BUCKETS as u64 {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros(); // ≥ SUB_BUCKET_BITS here
    let shift = octave - SUB_BUCKET_BITS;
    let sub = ((micros >> shift) as usize) & (SUB_BUCKETS - 1);
    (shift as usize + 1) * SUB_BUCKETS + sub
}

/// The largest value that falls in bucket `index`.
fn upper_edge(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let sub = (index % SUB_BUCKETS) as u64;
    (((SUB_BUCKETS as u64 + sub) + 1) << shift) - 1
}

/// Everything one connection (or, merged, the whole run) counted.
#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    /// HTTP requests written (first attempts, retries and re-sent duplicates alike).
    pub requests: u64,
    /// Requests that were retries of a batch whose previous attempt failed.
    pub retries: u64,
    /// Batches given to the receiver (each counted once, however often it was retried).
    pub batches: u64,
    /// Batches answered 200 in the end.
    pub batches_acknowledged: u64,
    /// Batches still not answered 200 after `--retry-for`.
    pub batches_failed: u64,
    /// Batches that re-sent an earlier acknowledged batch verbatim.
    pub duplicate_batches: u64,
    /// Events in every batch sent (each batch counted once).
    pub events: u64,
    /// Events in acknowledged batches.
    pub events_acknowledged: u64,
    /// Events sent with a type Egnyte does not document.
    pub events_unknown_type: u64,
    /// Events in re-sent duplicate batches: the duplicates the receiver should report.
    pub duplicates_sent: u64,
    /// `accepted` summed over every 200 answer.
    pub accepted: u64,
    /// `duplicates` summed over every 200 answer.
    pub duplicates_reported: u64,
    /// `quarantined` summed over every 200 answer.
    pub quarantined: u64,
    /// 200 answers whose body was not the receiver's `{"accepted":…}` object.
    pub unreadable_answers: u64,
    /// How each request ended, sorted by outcome (a handful of entries).
    pub outcomes: Vec<(Outcome, u64)>,
    /// Time from writing a request to reading its whole response, for every complete response.
    pub latency: Histogram,
}

impl Stats {
    /// Counts one request's outcome.
    pub(super) fn count_outcome(&mut self, outcome: Outcome) {
        match self.outcomes.binary_search_by_key(&outcome, |(o, _)| *o) {
            Ok(i) => self.outcomes[i].1 += 1,
            Err(i) => self.outcomes.insert(i, (outcome, 1)),
        }
    }

    /// Adds everything `other` counted.
    pub(super) fn merge(&mut self, other: &Stats) {
        self.requests += other.requests;
        self.retries += other.retries;
        self.batches += other.batches;
        self.batches_acknowledged += other.batches_acknowledged;
        self.batches_failed += other.batches_failed;
        self.duplicate_batches += other.duplicate_batches;
        self.events += other.events;
        self.events_acknowledged += other.events_acknowledged;
        self.events_unknown_type += other.events_unknown_type;
        self.duplicates_sent += other.duplicates_sent;
        self.accepted += other.accepted;
        self.duplicates_reported += other.duplicates_reported;
        self.quarantined += other.quarantined;
        self.unreadable_answers += other.unreadable_answers;
        for &(outcome, count) in &other.outcomes {
            match self.outcomes.binary_search_by_key(&outcome, |(o, _)| *o) {
                Ok(i) => self.outcomes[i].1 += count,
                Err(i) => self.outcomes.insert(i, (outcome, count)),
            }
        }
        self.latency.merge(&other.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_contain_their_values() {
        let mut previous = 0;
        for micros in (0..100_000).chain([MAX_LATENCY_MICROS - 1, MAX_LATENCY_MICROS]) {
            let index = bucket(micros);
            assert!(index >= previous, "{micros}");
            assert!(index < BUCKETS, "{micros}");
            assert!(upper_edge(index) >= micros, "{micros}: edge {}", upper_edge(index));
            if index > 0 {
                assert!(upper_edge(index - 1) < micros, "{micros}");
            }
            previous = index;
        }
    }

    #[test]
    fn quantiles_are_within_the_resolution() {
        let mut histogram = Histogram::default();
        for ms in 1..=1000u64 {
            histogram.record(Duration::from_millis(ms));
        }
        for (q, expected) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = histogram.quantile(q).as_secs_f64() * 1e3;
            assert!((got - expected).abs() / expected < 0.04, "q{q}: {got} ms, expected {expected}");
        }
        assert_eq!(histogram.max_latency(), Duration::from_millis(1000));
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn merge_adds_counts_and_outcomes() {
        let mut a = Stats::default();
        a.count_outcome(Outcome::Status(200));
        a.count_outcome(Outcome::Timeout);
        a.latency.record(Duration::from_millis(3));
        let mut b = Stats::default();
        b.count_outcome(Outcome::Status(503));
        b.count_outcome(Outcome::Status(200));
        b.latency.record(Duration::from_millis(7));
        a.merge(&b);
        assert_eq!(
            a.outcomes,
            vec![(Outcome::Status(200), 2), (Outcome::Status(503), 1), (Outcome::Timeout, 1)]
        );
        assert_eq!(a.latency.count(), 2);
        assert_eq!(a.latency.max_latency(), Duration::from_millis(7));
    }
}
