//! Logging rejected requests without letting a flood of them flood the log: at most one line per
//! reason per second, carrying the count of the ones not logged in between.
//!
//! A reason is one of the fixed texts of `response.rs` (a finite set), so the table stays tiny;
//! the lock is taken only for rejected requests. Tokens never reach it: reasons are static texts,
//! and a parse error's detail names a byte offset, not content.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shortest time between two log lines for the same reason.
pub(super) const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Entry {
    reason: &'static str,
    last: Instant,
    suppressed: u64,
}

/// The per-reason state.
#[derive(Debug, Default)]
pub(super) struct RejectLog {
    entries: Mutex<Vec<Entry>>,
}

impl RejectLog {
    /// Notes one rejected request; logs it unless its reason was logged within the interval.
    /// `detail` (for example a parse error) is appended to the logged line.
    pub(super) fn note(&self, status: u16, reason: &'static str, detail: &dyn std::fmt::Display) {
        if let Some(suppressed) = self.due(reason, Instant::now()) {
            let more = if suppressed > 0 {
                format!(" (and {suppressed} more since the last line)")
            } else {
                String::new()
            };
            log::warn!("rejected with {status}: {reason}{detail}{more}");
        }
    }

    /// `Some(count not logged since the last line)` when a line is due for `reason` at `now`.
    fn due(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.iter_mut().find(|e| e.reason == reason) {
            None => {
                entries.push(Entry { reason, last: now, suppressed: 0 });
                Some(0)
            }
            Some(entry) if now.duration_since(entry.last) >= REJECT_LOG_INTERVAL => {
                entry.last = now;
                Some(std::mem::take(&mut entry.suppressed))
            }
            Some(entry) => {
                entry.suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_reason_per_second_with_the_count_in_between() {
        let log = RejectLog::default();
        let start = Instant::now();
        assert_eq!(log.due("missing or wrong token", start), Some(0));
        for _ in 0..5 {
            assert_eq!(log.due("missing or wrong token", start + Duration::from_millis(500)), None);
        }
        assert_eq!(log.due("not found", start + Duration::from_millis(500)), Some(0), "reasons are separate");
        assert_eq!(log.due("missing or wrong token", start + Duration::from_millis(999)), None);
        assert_eq!(log.due("missing or wrong token", start + REJECT_LOG_INTERVAL), Some(6));
        assert_eq!(log.due("missing or wrong token", start + Duration::from_millis(1500)), None);
        assert_eq!(log.due("missing or wrong token", start + Duration::from_secs(3)), Some(1));
    }
}
