//! The dedup stage of a request: reserve every valid event of a batch in the ring, keep the fresh
//! ones, and commit the reservations only once the batch is stored (or roll them back).
//!
//! ```text
//! parse ─► Dedup::reserve (fresh / duplicate per event) ─► the journal stores the fresh ones (the ingest stage)
//!        ─► Reservation::commit on success; dropped (rolled back) on failure
//! ```
//! An event whose key another request has reserved but not yet stored makes the whole batch
//! [`Busy`]: answering it 200 as a duplicate could acknowledge an event that then fails to be
//! stored, and answering only part of a batch is not possible. The sender's retry settles it.
//! A key repeated inside one batch is a duplicate of its first occurrence.

use std::collections::HashSet;

use super::{key, Insert, Ring, Secret, Ticket};
use crate::{Batch, Element};

/// Batches up to this many events find repeats by looking back; larger ones use a set.
const SMALL_BATCH: usize = 64;

/// The ring and the secret its keys are hashed with.
#[derive(Debug)]
pub struct Dedup {
    ring: Ring,
    secret: Secret,
}

/// Another request is storing one of the batch's events right now: retry shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Reservations of one batch's fresh events; rolled back on drop unless committed.
#[derive(Debug)]
#[must_use = "commit the reservation once the batch is stored, or drop it to roll back"]
pub struct Reservation<'d> {
    ring: &'d Ring,
    tickets: Vec<Ticket>,
    /// Fresh events that could not be remembered (their window was full).
    pub unremembered: usize,
}

impl Reservation<'_> {
    /// The batch is stored: its events are now remembered.
    pub fn commit(mut self) {
        self.ring.commit_all(self.tickets.drain(..));
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        for ticket in self.tickets.drain(..) {
            self.ring.abort(ticket);
        }
    }
}

impl Dedup {
    /// A ring of `capacity` keys hashed under `secret`.
    pub fn new(capacity: usize, secret: Secret) -> Dedup {
        Dedup { ring: Ring::new(capacity), secret }
    }

    /// Remembers `key` as stored: restoring the ring after a restart, before any request runs.
    pub fn remember(&self, key: u64) {
        if let Insert::Fresh(ticket) = self.ring.insert(key) {
            self.ring.commit(ticket);
        }
    }

    /// The secret keys are hashed with.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The ring (for its size and memory).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Reserves the batch's valid events. `keep[i]` tells, for element `i`, whether it is a fresh
    /// valid event to store (false for duplicates and invalid elements). `keys` receives the dedup key
    /// of each valid event, in order; it is scratch space
    /// the caller keeps between batches (no allocation per request once warmed up).
    pub fn reserve(
        &self,
        batch: &Batch<'_>,
        keep: &mut Vec<bool>,
        keys: &mut Vec<u64>,
    ) -> Result<Reservation<'_>, Busy> {
        keep.clear();
        keys.clear();
        for element in batch.elements() {
            if let Element::Valid(event) = element {
                keys.push(key(&self.secret, event.domain(), event.event_id()));
            }
        }
        self.ring.warm(keys);
        // One allocation per batch, sized once (a growing vector would reallocate several times).
        let tickets = Vec::with_capacity(keys.len());
        let mut reservation = Reservation { ring: &self.ring, tickets, unremembered: 0 };
        // Repeats inside the batch: a linear look-back is cheapest for the batch sizes Egnyte
        // sends; a set takes over for large batches.
        let large = keys.len() > SMALL_BATCH;
        let mut seen: HashSet<u64> = HashSet::new();
        let mut next_key = 0;
        for element in batch.elements() {
            let Element::Valid(_) = element else {
                keep.push(false);
                continue;
            };
            let key = keys[next_key];
            let repeat = if large { !seen.insert(key) } else { keys[..next_key].contains(&key) };
            next_key += 1;
            if repeat {
                keep.push(false);
                continue;
            }
            let fresh = match self.ring.insert(key) {
                Insert::Fresh(ticket) => {
                    reservation.tickets.push(ticket);
                    true
                }
                Insert::Duplicate => false,
                // `reservation` rolls back this batch's own tickets as it drops.
                Insert::Pending => return Err(Busy),
                Insert::Full => {
                    reservation.unremembered += 1;
                    true
                }
            };
            keep.push(fresh);
        }
        Ok(reservation)
    }
}
