//! The pipeline: a batch's records go into the journal, and the batch is taken once the journal
//! says they are stored (synced, or queued with `--durability none`).
//!
//! Refusals, each a 503 with `Retry-After`: the journal holds more undelivered bytes than
//! `--max-journal-bytes` (deliveries are behind; the sender backs off instead of filling the
//! disk), the disk has no room (until it has again), too many batches are waiting for the next
//! write, or the journal is poisoned.

use crate::time::now_ms;
use std::sync::Arc;

use super::render::render;
use super::{Pipeline, Refused, Taken};
use crate::dedup::Secret;
use crate::journal::{Append, Journal};
use crate::Batch;

/// Seconds Egnyte is asked to wait when the journal is over its disk budget.
const FULL_RETRY_AFTER_SECS: u32 = 30;
/// Seconds Egnyte is asked to wait when too many batches wait for a write.
const BUSY_RETRY_AFTER_SECS: u32 = 1;
/// Seconds Egnyte is asked to wait when the disk is full.
const NO_SPACE_RETRY_AFTER_SECS: u32 = 30;
/// Seconds Egnyte is asked to wait once the journal cannot write (until a restart).
const FAILED_RETRY_AFTER_SECS: u32 = 60;

/// Takes batches into a [`Journal`].
#[derive(Debug)]
pub struct JournalPipeline {
    journal: Arc<Journal>,
    order_keys: Option<Secret>,
    max_journal_bytes: u64,
}

impl JournalPipeline {
    /// A pipeline into `journal`; above `max_journal_bytes` of journal on disk batches are
    /// refused. Events' order keys are hashed under `order_keys`; `None` when no sink delivers
    /// in parallel (the line sinks, or one worker), so that no key would be used: records then
    /// carry order key 0, which keeps them in one order should a later start deliver them in
    /// parallel.
    pub fn new(journal: Arc<Journal>, order_keys: Option<Secret>, max_journal_bytes: u64) -> JournalPipeline {
        JournalPipeline { journal, order_keys, max_journal_bytes }
    }
}

impl Pipeline for JournalPipeline {
    fn take(&self, batch: &Batch<'_>, keep: &[bool], keys: &[u64]) -> Result<Taken, Refused> {
        let (records, taken) = render(batch, keep, keys, self.order_keys.as_ref(), now_ms());
        if records.is_empty() {
            // Every event was a duplicate: nothing to store.
            return Ok(taken);
        }
        if self.journal.undelivered_bytes() > self.max_journal_bytes {
            return Err(Refused {
                retry_after_secs: FULL_RETRY_AFTER_SECS,
                reason: "the journal is over --max-journal-bytes: deliveries are behind; retry later",
            });
        }
        match self.journal.append(records) {
            Append::Committed | Append::Queued => Ok(taken),
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

    fn problem(&self) -> Option<&'static str> {
        if self.journal.poisoned() {
            Some("unhealthy: the journal failed (a write or fsync, or its files were removed); see the log, then restart")
        } else if self.journal.no_space() {
            Some("unhealthy: the disk is full; events are refused until a write finds room again")
        } else {
            None
        }
    }
}
