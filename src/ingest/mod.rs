//! The ingest stage: what happens to a parsed batch between the HTTP layer and its answer.
//!
//! ```text
//! parsed batch ─► dedup reserve ─► render records ─► journal append ─► dedup commit ─► Taken (200)
//!                      │ Busy                              │ refused: rollback
//!                      └────────────► Refused (503, Retry-After) ◄┘
//! ```
//! [`Ingest::take`] runs that sequence and nothing else crosses this line: the HTTP service
//! hands it a batch and answers 200 only when it returns [`Taken`] (every fresh event and every
//! invalid element is stored as the journal's durability mode defines it), 503 with
//! `Retry-After` when it returns [`Refused`]. A refused batch leaves no trace: its dedup
//! reservation is rolled back, so the sender's retry is fresh again.
//!
//! * `render.rs`: a batch's fresh events and invalid elements as journal records;
//!   `journal.rs`: appending them, and each refusal the journal can cause.
//! * The dispatcher delivers the records to the sinks and the quarantine file from there.

mod journal;
mod render;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dedup::{Busy, Dedup, Secret};
use crate::journal::Journal;
use crate::time::now_ms;
use crate::Batch;

/// What the stage did with a batch it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taken {
    /// Valid events stored for delivery.
    pub accepted: usize,
    /// Valid events already received before (not stored again).
    pub duplicates: usize,
    /// Invalid elements stored for the quarantine file.
    pub quarantined: usize,
}

/// Why the stage cannot take a batch now; the sender should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds the sender should wait (the `Retry-After` header).
    pub retry_after_secs: u32,
    /// One line for the log and the response body.
    pub reason: &'static str,
}

/// The answer when another request is storing one of the batch's events right now.
const BUSY: Refused = Refused {
    retry_after_secs: 1,
    reason: "an event of this batch is being stored by another request; retry shortly",
};

/// The stage's counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Valid events taken.
    pub accepted: AtomicU64,
    /// Events recognised as already received.
    pub duplicates: AtomicU64,
    /// Invalid elements stored for the quarantine file.
    pub quarantined: AtomicU64,
    /// Fresh events the dedup ring could not remember (a full window; see `dedup/ring.rs`).
    pub unremembered: AtomicU64,
}

/// Scratch space one connection keeps between batches, so that taking a batch allocates
/// nothing once warmed up.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Per element of the batch: store it (a fresh valid event) or not.
    keep: Vec<bool>,
    /// The dedup key of each valid event, in order.
    keys: Vec<u64>,
}

/// Takes parsed batches into the journal, deduplicated; shared by every connection.
#[derive(Debug)]
pub struct Ingest {
    dedup: Dedup,
    journal: Arc<Journal>,
    order_keys: Option<Secret>,
    max_journal_bytes: u64,
    stats: IngestStats,
}

impl Ingest {
    /// The stage over `dedup` and `journal`; above `max_journal_bytes` of undelivered journal
    /// batches are refused. Events' order keys are hashed under `order_keys`; `None` when no
    /// sink delivers in parallel (the line sinks, or one worker), so that no key would be used:
    /// records then carry order key 0, which keeps them in one order should a later start
    /// deliver them in parallel.
    pub fn new(
        dedup: Dedup,
        journal: Arc<Journal>,
        order_keys: Option<Secret>,
        max_journal_bytes: u64,
    ) -> Ingest {
        Ingest { dedup, journal, order_keys, max_journal_bytes, stats: IngestStats::default() }
    }

    /// Takes a batch: reserves its events in the dedup ring, stores the fresh ones and its
    /// invalid elements in the journal, and commits the reservation once they are stored. A
    /// refusal rolls the reservation back.
    pub fn take(&self, batch: &Batch<'_>, scratch: &mut Scratch) -> Result<Taken, Refused> {
        let reservation =
            self.dedup.reserve(batch, &mut scratch.keep, &mut scratch.keys).map_err(|Busy| BUSY)?;
        let (records, taken) =
            render::render(batch, &scratch.keep, &scratch.keys, self.order_keys.as_ref(), now_ms());
        // Every event a duplicate: nothing to store.
        if !records.is_empty() {
            // Dropping the reservation rolls it back.
            journal::store(&self.journal, records, self.max_journal_bytes)?;
        }
        let stats = &self.stats;
        stats.unremembered.fetch_add(reservation.unremembered as u64, Ordering::Relaxed);
        reservation.commit();
        stats.accepted.fetch_add(taken.accepted as u64, Ordering::Relaxed);
        stats.duplicates.fetch_add(taken.duplicates as u64, Ordering::Relaxed);
        stats.quarantined.fetch_add(taken.quarantined as u64, Ordering::Relaxed);
        Ok(taken)
    }

    /// Why events cannot be stored now, as `/healthz` says it (`unhealthy: …`); `None` while
    /// they can.
    pub fn problem(&self) -> Option<&'static str> {
        journal::problem(&self.journal)
    }

    /// False while events cannot be stored.
    pub fn healthy(&self) -> bool {
        self.problem().is_none()
    }

    /// Its counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }
}
