//! The ingest boundary: where a parsed batch leaves the HTTP layer.
//!
//! The HTTP layer hands each batch to a [`Pipeline`] and answers 200 only when the pipeline says
//! the batch is safely taken ([`Taken`]), 503 with `Retry-After` when it says it cannot take it
//! now ([`Refused`]). Nothing else crosses this line: the pipeline decides what "safely" means
//! (the journal's durability mode), and it owns the quarantine of invalid elements.
//!
//! [`JournalPipeline`] renders each fresh event and each invalid element as a journal record
//! (`render.rs`) and appends the batch's records as one unit (`journal.rs`); the dispatcher
//! delivers them to the sinks and the quarantine file from there.

mod journal;
mod render;

pub use journal::JournalPipeline;

use crate::Batch;

/// What a pipeline did with a batch it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taken {
    /// Valid events stored for delivery.
    pub accepted: usize,
    /// Valid events already received before (not stored again).
    pub duplicates: usize,
    /// Invalid elements stored for the quarantine file.
    pub quarantined: usize,
}

/// Why a pipeline cannot take a batch now; the sender should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Seconds the sender should wait (the `Retry-After` header).
    pub retry_after_secs: u32,
    /// One line for the log and the response body.
    pub reason: &'static str,
}

/// Takes parsed batches; shared by every connection.
pub trait Pipeline: Send + Sync + 'static {
    /// Stores the batch's valid events for which `keep[index]` is true (the others are
    /// duplicates: counted, not stored) and quarantines its invalid elements; `Ok` only when all
    /// of that is done. `keep` has one entry per element; `keys` one dedup key per valid event,
    /// in order.
    fn take(&self, batch: &Batch<'_>, keep: &[bool], keys: &[u64]) -> Result<Taken, Refused>;

    /// False while the pipeline cannot store events (`/healthz` answers 503).
    fn healthy(&self) -> bool {
        self.problem().is_none()
    }

    /// Why the pipeline cannot store events now, as `/healthz` says it (`unhealthy: …`); `None`
    /// while it can.
    fn problem(&self) -> Option<&'static str>;
}
