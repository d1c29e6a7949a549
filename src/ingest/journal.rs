//! Storing a batch's records in the journal, and every refusal that can cause: each a 503 with
//! `Retry-After`. The journal holds more undelivered bytes than `--max-journal-bytes`
//! (deliveries are behind; the sender backs off instead of filling the disk), the disk has no
//! room (until it has again), too many batches wait for the next write, the process is out of
//! file descriptors for a new segment, or the journal is poisoned.

use super::Refused;
use crate::journal::{Append, Journal};

/// Seconds Egnyte is asked to wait when the journal is over its disk budget.
const FULL_RETRY_AFTER_SECS: u32 = 30;
/// Seconds Egnyte is asked to wait when too many batches wait for a write.
const BUSY_RETRY_AFTER_SECS: u32 = 1;
/// Seconds Egnyte is asked to wait when the disk is full.
const NO_SPACE_RETRY_AFTER_SECS: u32 = 30;
/// Seconds Egnyte is asked to wait once the journal cannot write (until a restart).
const FAILED_RETRY_AFTER_SECS: u32 = 60;

/// Appends `records` (one batch's, rendered) as one unit; `Ok` once the journal says they are
/// stored (synced, or queued with `--durability none`).
pub(super) fn store(journal: &Journal, records: Vec<u8>, max_journal_bytes: u64) -> Result<(), Refused> {
    if journal.undelivered_bytes() > max_journal_bytes {
        return Err(Refused {
            retry_after_secs: FULL_RETRY_AFTER_SECS,
            reason: "the journal is over --max-journal-bytes: deliveries are behind; retry later",
        });
    }
    match journal.append(records) {
        Append::Committed | Append::Queued => Ok(()),
        Append::Busy => Err(Refused {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
            reason: "too many batches waiting to be written; retry shortly",
        }),
        Append::NoSpace => Err(Refused {
            retry_after_secs: NO_SPACE_RETRY_AFTER_SECS,
            reason: "events cannot be stored: the disk is full; retry later",
        }),
        Append::NoDescriptors => Err(Refused {
            retry_after_secs: BUSY_RETRY_AFTER_SECS,
            reason: "events cannot be stored now: the receiver is out of file descriptors; retry shortly",
        }),
        Append::Failed | Append::Poisoned => Err(Refused {
            retry_after_secs: FAILED_RETRY_AFTER_SECS,
            reason: "events cannot be stored: the journal failed (see the receiver's log)",
        }),
    }
}

/// Why the journal cannot store events now (`unhealthy: …`), if it cannot.
pub(super) fn problem(journal: &Journal) -> Option<&'static str> {
    if journal.poisoned() {
        Some("unhealthy: the journal failed (a write or fsync, or its files were removed); see the log, then restart")
    } else if journal.no_space() {
        Some("unhealthy: the disk is full; events are refused until a write finds room again")
    } else {
        None
    }
}
