//! The lock-free dedup ring: a fixed-size set of 64-bit keys that forgets in insertion order.
//!
//! Two arrays of atomics, both allocated once at start:
//! * `table`: buckets of [`BUCKET`] 64-bit words (one cache line each), at least twice as many
//!   words as the capacity (a power of two). A key may live in two buckets chosen by its bits (its
//!   [`WINDOW`] candidate slots, "two choices": the fuller bucket is avoided);
//! * `fifo`: a ring of `capacity` records, one per committed key in commit order. Committing a
//!   key overwrites the oldest record and evicts the key it names (if still there).
//!
//! Memory: `8 × table_words + 8 × capacity` bytes, i.e. 24 bytes per key of capacity (up to 40
//! when rounding the table up to a power of two); 24 MiB at the default 1,048,576.
//!
//! # A table word (`u64`)
//! ```text
//! bits 63..2  fingerprint: bits 63..2 of the key (never 0)
//! bits  1..0  state: 1 pending, 2 decided, 3 committed
//! 0 = EMPTY (never used), 1 = TOMBSTONE (evicted or rolled back)
//! ```
//! Keys are already keyed 64-bit hashes, so two keys are confused only if they agree on 62 bits
//! and share a bucket. Every operation looks at exactly the key's [`WINDOW`] candidate slots, in
//! one fixed order (first bucket, then second): two racers on one key see the same candidates.
//!
//! # Inserting a key (exactly one racer wins)
//! 1. Scan the candidates: a committed copy → [`Insert::Duplicate`]; a pending or decided copy →
//!    [`Insert::Pending`] (another request is storing it); else pick a free slot (EMPTY or
//!    TOMBSTONE) in the emptier bucket and CAS a *pending* word into it (a lost CAS rescans).
//! 2. Verify: scan the candidates again for other copies of the fingerprint. A decided or
//!    committed copy, or a pending one earlier in the candidate order, means we lose: tombstone
//!    our word, answer `Pending`/`Duplicate`. A pending copy later in the order is killed.
//! 3. Finalize: CAS our word pending → decided. If someone killed it, we lose (`Pending`).
//!
//! Why at most one winner: every CAS and load is `SeqCst`, so of two racers that both placed a
//! pending word, at least one sees the other's word when it verifies (the other order would be a
//! cycle in the total order). The lower-indexed one never loses to a pending copy, and a
//! higher-indexed one that it saw is killed before it can finalize. Why at least one: the
//! lowest-indexed pending copy can be killed by nobody and loses only to a decided copy, whose
//! owner won. This is the "claim, verify, finalize" scheme used by lock-free hash sets that allow
//! slot reuse; the stress tests in `tests.rs` hold it to "exactly one `Fresh` per key".
//!
//! # Reservation: commit or roll back
//! A winner holds a [`Ticket`] while its batch is being stored. Others see the key as `Pending`
//! (the HTTP layer answers 503, so Egnyte retries) rather than `Duplicate`, so a duplicate is
//! never acknowledged before the first copy is safe. [`Ring::commit`] marks it committed and
//! appends it to the FIFO; [`Ring::abort`] tombstones it, so a retry after a failed store is
//! `Fresh` again.
//!
//! # Eviction
//! A FIFO record packs the table index (32 bits), a valid bit and 31 fingerprint bits. A
//! committed word leaves the table only through its own record's eviction (verify kills only
//! pending words, abort only decided ones), so the check that the slot still holds a committed
//! word with those fingerprint bits is a safety net, not a race resolution.
//!
//! # The one approximation
//! If all 16 candidate slots of a key hold other live keys, the key cannot be remembered:
//! [`Insert::Full`] (counted by the caller; the event is accepted, but a later duplicate of it
//! would not be caught). With at most half the words live and two choices of bucket, the fuller
//! of which is avoided, this needs two buckets of 8 each holding 8 of the ~4 keys they average:
//! none was seen in 8 million inserts at capacity 2^20 (see the tests), and a keyed hash keeps
//! anyone from aiming at one bucket.
//!
//! For the next maintainer: any change to the word layout changes the snapshot format (see
//! `snapshot` once it exists) and the verify step; run the stress tests under `--release` and
//! under Miri (`cargo +nightly miri test dedup`) after touching this file.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, Release, SeqCst};

/// Words per bucket: one 64-byte cache line.
pub const BUCKET: usize = 8;

/// Candidate slots of a key: its two buckets.
pub const WINDOW: usize = 2 * BUCKET;

/// Largest capacity (64 Mi keys, 1.5 GiB of ring; a power of two); table indexes must also fit the FIFO
/// record's 32 bits, which this keeps far from.
pub const MAX_CAPACITY: usize = 1 << 26;

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
const PENDING: u64 = 1;
const DECIDED: u64 = 2;
const COMMITTED: u64 = 3;
const STATE_MASK: u64 = 0b11;
const FP_SHIFT: u32 = 2;
/// FIFO record: fingerprint bits kept, and the valid bit.
const RECORD_FP_MASK: u64 = 0x7FFF_FFFF;
const RECORD_VALID: u64 = 1 << 31;

/// What [`Ring::insert`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// The key was not there; it is now reserved by this ticket until committed or aborted.
    Fresh(Ticket),
    /// The key is remembered (committed): a duplicate.
    Duplicate,
    /// Another insertion of the key is being stored right now.
    Pending,
    /// The key's window is full of live keys: it is not remembered (see the module docs).
    Full,
}

/// A reservation: the slot and word of a fresh key, until [`Ring::commit`] or [`Ring::abort`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a ticket must be committed or aborted, or the key stays reserved"]
pub struct Ticket {
    index: usize,
    word: u64,
}

/// The ring; see the module docs.
#[derive(Debug)]
pub struct Ring {
    table: Box<[AtomicU64]>,
    mask: usize,
    fifo: Box<[AtomicU64]>,
    /// Commits so far; `next % capacity` is the FIFO record to overwrite.
    next: AtomicU64,
}

fn fingerprint(key: u64) -> u64 {
    (key >> FP_SHIFT).max(1)
}

fn same_key(word: u64, fp: u64) -> bool {
    word > TOMBSTONE && word >> FP_SHIFT == fp
}

/// The capacity actually used for a requested one: a power of two, 1 to [`MAX_CAPACITY`].
pub fn clamp(capacity: usize) -> usize {
    capacity.clamp(1, MAX_CAPACITY).next_power_of_two()
}

fn atomics(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Ring {
    /// A ring that remembers at least the last `capacity` committed keys; the capacity is
    /// rounded up to a power of two (so a FIFO position is a mask, not a division), at most
    /// [`MAX_CAPACITY`].
    pub fn new(capacity: usize) -> Ring {
        let capacity = clamp(capacity);
        let table_size = (2 * capacity).next_power_of_two().max(2 * WINDOW);
        Ring {
            table: atomics(table_size),
            mask: table_size - 1,
            fifo: atomics(capacity),
            next: AtomicU64::new(0),
        }
    }

    /// How many keys it remembers at least.
    pub fn capacity(&self) -> usize {
        self.fifo.len()
    }

    /// Bytes of memory it holds (fixed at creation).
    pub fn memory_bytes(&self) -> usize {
        8 * (self.table.len() + self.fifo.len())
    }

    /// The first table index of each of `key`'s two buckets (never the same bucket).
    /// Candidate `i` (0..WINDOW) is `bases[i / BUCKET] + i % BUCKET`.
    fn bases(&self, key: u64) -> [usize; 2] {
        let buckets = (self.mask + 1) / BUCKET;
        let first = key as usize & (buckets - 1);
        let mut second = (key.rotate_left(29) as usize) & (buckets - 1);
        if second == first {
            second = first ^ 1;
        }
        [first * BUCKET, second * BUCKET]
    }

    fn index(bases: &[usize; 2], i: usize) -> usize {
        bases[i / BUCKET] + i % BUCKET
    }

    /// All candidate words of a key, loaded one after the other (two cache lines).
    fn load(&self, bases: &[usize; 2]) -> [u64; WINDOW] {
        std::array::from_fn(|i| self.table[Self::index(bases, i)].load(SeqCst))
    }

    fn slot(&self, key: u64, i: usize) -> &AtomicU64 {
        &self.table[Self::index(&self.bases(key), i)]
    }

    /// Starts loading, all at once, the cache lines that inserting and committing `keys` will
    /// touch: both buckets of each key, and the table slots the next commits will evict. The
    /// loads are independent, so the processor overlaps their cache misses instead of waiting for
    /// them one insert at a time; at the default capacity the ring is far larger than the caches,
    /// so this is what makes a batch fast. Call it with a batch's keys before inserting them.
    pub fn warm(&self, keys: &[u64]) {
        let mut sink = 0u64;
        for &key in keys {
            sink ^= self.slot(key, 0).load(Relaxed) ^ self.slot(key, BUCKET).load(Relaxed);
        }
        let next = self.next.load(Relaxed) as usize;
        for i in 0..keys.len().min(self.fifo.len()) {
            let record = self.fifo[(next + i) & (self.fifo.len() - 1)].load(Relaxed);
            sink ^= self.table[(record >> 32) as usize & self.mask].load(Relaxed);
        }
        std::hint::black_box(sink);
    }

    /// Inserts `key` if absent (see the module docs for the protocol).
    pub fn insert(&self, key: u64) -> Insert {
        let fp = fingerprint(key);
        let bases = self.bases(key);
        loop {
            // 1. Look for the key; count live slots per bucket, keep the first free one of each.
            let mut free = [None, None];
            let mut live = [0usize; 2];
            for i in 0..WINDOW {
                let word = self.table[Self::index(&bases, i)].load(SeqCst);
                if word == EMPTY || word == TOMBSTONE {
                    free[i / BUCKET] = free[i / BUCKET].or(Some((i, word)));
                } else if same_key(word, fp) {
                    return if word & STATE_MASK == COMMITTED { Insert::Duplicate } else { Insert::Pending };
                } else {
                    live[i / BUCKET] += 1;
                }
            }
            let choice = if live[0] <= live[1] { free[0].or(free[1]) } else { free[1].or(free[0]) };
            let Some((i, seen)) = choice else { return Insert::Full };
            let slot = &self.table[Self::index(&bases, i)];
            let mine = fp << FP_SHIFT | PENDING;
            if slot.compare_exchange(seen, mine, SeqCst, SeqCst).is_err() {
                continue;
            }
            // 2. Verify against every other copy among the candidates.
            if let Some(lost) = self.verify(&bases, i, fp) {
                let _ = slot.compare_exchange(mine, TOMBSTONE, SeqCst, SeqCst);
                return lost;
            }
            // 3. Finalize, unless an earlier racer killed our word meanwhile.
            let decided = mine & !STATE_MASK | DECIDED;
            return match slot.compare_exchange(mine, decided, SeqCst, SeqCst) {
                Ok(_) => Insert::Fresh(Ticket { index: Self::index(&bases, i), word: decided }),
                Err(_) => Insert::Pending,
            };
        }
    }

    /// Step 2: `Some(answer)` when our pending word at candidate `me` loses to another copy.
    fn verify(&self, bases: &[usize; 2], me: usize, fp: u64) -> Option<Insert> {
        for i in (0..WINDOW).filter(|&i| i != me) {
            let slot = &self.table[Self::index(bases, i)];
            let mut word = slot.load(SeqCst);
            while same_key(word, fp) {
                match word & STATE_MASK {
                    COMMITTED => return Some(Insert::Duplicate),
                    DECIDED => return Some(Insert::Pending),
                    _ if i < me => return Some(Insert::Pending),
                    // A pending copy after us: kill it (a failed CAS re-examines the slot).
                    _ => match slot.compare_exchange(word, TOMBSTONE, SeqCst, SeqCst) {
                        Ok(_) => break,
                        Err(now) => word = now,
                    },
                }
            }
        }
        None
    }

    /// The batch holding the ticket's key is stored: remember the key, evicting the oldest.
    pub fn commit(&self, ticket: Ticket) {
        self.commit_all(&mut vec![ticket]);
    }

    /// Commits every ticket of a stored batch (draining `tickets`), in order. One `fetch_add`
    /// reserves the batch's FIFO records: the shared counter is the ring's most contended word.
    pub fn commit_all(&self, tickets: &mut Vec<Ticket>) {
        if tickets.is_empty() {
            return;
        }
        let start = self.next.fetch_add(tickets.len() as u64, SeqCst) as usize;
        let mask = self.fifo.len() - 1;
        for (i, ticket) in tickets.drain(..).enumerate() {
            let committed = ticket.word & !STATE_MASK | COMMITTED;
            // Only the ticket's holder changes a decided word (kills touch pending words only),
            // so a plain release store is enough: no locked instruction on x86.
            self.table[ticket.index].store(committed, Release);
            let record =
                (ticket.index as u64) << 32 | RECORD_VALID | (committed >> FP_SHIFT) & RECORD_FP_MASK;
            let evicted = self.fifo[(start + i) & mask].swap(record, SeqCst);
            if evicted != 0 {
                self.evict(evicted);
            }
        }
    }

    /// The batch holding the ticket's key could not be stored: forget the key.
    pub fn abort(&self, ticket: Ticket) {
        let _ = self.table[ticket.index].compare_exchange(ticket.word, TOMBSTONE, SeqCst, SeqCst);
    }

    /// Tombstones the committed insertion a FIFO record names, if it is still there.
    fn evict(&self, record: u64) {
        let index = (record >> 32) as usize;
        let slot = &self.table[index & self.mask];
        let word = slot.load(SeqCst);
        let same =
            word & STATE_MASK == COMMITTED && (word >> FP_SHIFT) & RECORD_FP_MASK == record & RECORD_FP_MASK;
        if same && word > TOMBSTONE {
            // A committed word changes only through its own record, which is this one: a plain
            // release store, no locked instruction.
            slot.store(TOMBSTONE, Release);
        }
    }

    /// True when `key` is remembered (committed).
    pub fn contains(&self, key: u64) -> bool {
        let fp = fingerprint(key);
        self.load(&self.bases(key)).iter().any(|&word| same_key(word, fp) && word & STATE_MASK == COMMITTED)
    }
}
