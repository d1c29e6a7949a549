//! Deduplication: has this (domain, eventId) been received before?
//!
//! Egnyte delivers at least once and retries for up to an hour, so the same event comes again.
//! The receiver answers a duplicate 200 (or Egnyte keeps retrying) and never delivers it twice.
//!
//! * [`key`]: a keyed 64-bit hash (SipHash-2-4) of (domain, eventId) under a random secret kept
//!   in the data directory, so nobody can craft ids that collide with a genuine event.
//! * [`Ring`]: the lock-free, fixed-size set of keys that forgets in insertion order, with a
//!   reservation protocol (`Fresh` tickets committed or aborted with the batch's storage).
//!
//! * [`Dedup`]: the request stage: reserves a batch's events, commits after storage.
//!
//! Restarts: the dispatcher keeps the keys of delivered events in `DATA_DIR/dedup.keys` and the
//! journal holds the rest, so `dispatch::restore_keys` rebuilds the ring after a graceful
//! stop or a crash. Speed (`cargo bench --bench dedup`, 2-core EPYC VM): 27–28 M fresh inserts/s
//! single-threaded while the ring fits in L3 (capacity 2^16) and 21–23 M/s at the default
//! capacity with [`Ring::warm`] (its prefetches overlap a batch's cache misses), against a target
//! of 20 M/s; under two threads sharing half their keys 3.6–4.4× the locked-set baseline at the
//! default capacity, against a target of 3×, since each thread writes its FIFO records in a lane
//! of its own (`ring.rs`, "Lanes"). That is with the two cores sharing an L3 cache; on the VM's
//! cores of different L3s, where every cache line the other thread wrote crosses between the
//! caches, it is 2.7–3.0× (benches/README.md, "The cores' two states"). What is left per fresh key: two locked instructions (claim,
//! finalize) and, at the default capacity, three cache misses that `warm` overlaps but cannot
//! remove.
//!
//! False duplicates: two different events are confused only if their 64-bit keys agree on 62
//! bits (and share a bucket); with 2^20 keys remembered that is below 2^20 × 2^-62 = 2^-42 per
//! insert (about one in 4 × 10^12), and the secret keeps anyone from aiming at it.

pub(crate) mod lanes;
mod pages;
mod ring;
mod siphash;
mod stage;

pub use ring::{Insert, Ring, Ticket, MAX_CAPACITY, WINDOW};
pub use stage::{Busy, Dedup, Reservation};

use std::io::{self, Read, Write};
use std::path::Path;

/// Default `--dedup-capacity`: keys remembered at least.
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// File in the data directory holding the hash secret.
pub const SECRET_FILE: &str = "dedup.key";

/// The per-install secret of the dedup hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fixed secret (tests and benchmarks).
    pub fn from_bytes(bytes: [u8; 16]) -> Secret {
        Secret(bytes)
    }

    /// Reads `DATA_DIR/dedup.key`, creating it (16 random bytes, mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> io::Result<Secret> {
        let path = data_dir.join(SECRET_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => <[u8; 16]>::try_from(bytes.as_slice()).map(Secret).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: not 16 bytes", path.display()))
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 16];
                std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
                let mut file = crate::private_files::options().write(true).create_new(true).open(&path)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                Ok(Secret(bytes))
            }
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
}

/// The dedup key of an event: SipHash-2-4 of `domain`, a 0xFF byte (never in UTF-8, so the
/// split is unambiguous), and `event_id`.
pub fn key(secret: &Secret, domain: &str, event_id: &str) -> u64 {
    let mut hasher = siphash::SipHasher24::new(&secret.0);
    hasher.write(domain.as_bytes());
    hasher.write(&[0xFF]);
    hasher.write(event_id.as_bytes());
    hasher.finish()
}

/// The order key of an event: SipHash-2-4 of `domain`, a 0xFE byte and its primary `path`.
/// Events with equal order keys reach each sink in the order they were accepted (see
/// `dispatch`); a keyed hash keeps anyone from steering unrelated paths onto one worker.
pub fn order_key(secret: &Secret, domain: &str, path: &str) -> u64 {
    let mut hasher = siphash::SipHasher24::new(&secret.0);
    hasher.write(domain.as_bytes());
    hasher.write(&[0xFE]);
    hasher.write(path.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests;
