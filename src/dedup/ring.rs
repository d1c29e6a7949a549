//! The lock-free dedup ring: a fixed-size set of 64-bit keys that forgets in insertion order.
//!
//! Two arrays of atomics, both allocated once at start (advised for transparent huge pages, see
//! `pages.rs`):
//! * `buckets`: buckets of [`BUCKET`] 64-bit words, each one cache line (64-byte aligned: a plain
//!   `[AtomicU64]` allocation is 16 bytes off a line from glibc, which made every bucket two
//!   cache misses), at least twice as many words as the capacity (a power of two). A key may
//!   live in two buckets chosen by its bits (its [`WINDOW`] candidate slots, "two choices": the
//!   fuller bucket is avoided);
//! * `fifo`: a ring of records, one per committed key, in the order of their *positions* (a
//!   count of records handed out so far, see "Lanes"). Writing a record at a position
//!   overwrites the record one lap earlier and evicts the key it names (if still there). It
//!   holds `capacity` records, plus a sixteenth for the slack lanes need (capacities of 16,384
//!   and more).
//!
//! Memory: `8 × table_words + 8 × fifo records` bytes plus 128 per lane, i.e. 24.5 bytes per
//! key of capacity and 1 KiB (24 below a capacity of 16,384; more when rounding the table up to
//! a power of two); 24.5 MiB at the default 1,048,576.
//!
//! # A table word (`u64`)
//! ```text
//! bits 63..2  fingerprint: bits 63..2 of the key (never 0)
//! bits  1..0  state: 0 killed, 1 pending, 2 decided, 3 committed
//! 0 = EMPTY (never used), 1 = TOMBSTONE (evicted, rolled back or withdrawn): the free words
//! ```
//! Keys are already keyed 64-bit hashes, so two keys are confused only if they agree on 62 bits
//! (and share a bucket): with 2^20 keys remembered, below 2^20 × 2^-62 = 2^-42 per insert. Every
//! operation looks at exactly the key's [`WINDOW`] candidate slots, in one fixed order (first
//! bucket, then second): two racers on one key see the same candidates. Each look is one pass of
//! sixteen loads classified without a branch per word (free or not is a coin flip the branch
//! predictor loses), so the scans cost little next to the locked instructions.
//!
//! # Who writes a word
//! A free word is taken only by a claim (CAS, step 1 below). From then on the word belongs to its
//! claimant, and only the claimant turns it back into a free word (withdrawing, aborting) or
//! moves it forward (pending → decided → committed); others may only *kill* it (pending →
//! killed, by CAS) or, once committed, evict it through its FIFO record (which only the record's
//! committer holds). So every change the owner makes is a plain store except finalize, which
//! races with kills and is a CAS. The rule also rules out ABA on finalize: if a killed word
//! were freed by its killer, another racer could claim the same slot with the identical pending
//! word, and the first owner's late finalize would succeed on it.
//!
//! # Inserting a key (exactly one racer wins)
//! 1. Scan the candidates: a committed copy → [`Insert::Duplicate`]; any other copy (pending,
//!    decided, killed) → [`Insert::Pending`] (another request is storing it); else pick the
//!    first free word of the emptier bucket and CAS a *pending* word into it (a lost CAS
//!    rescans). Locked instruction 1.
//! 2. Verify: scan the candidates again for other copies of the fingerprint (none, the common
//!    case, skips to 3). A decided or committed copy, or a pending one earlier in the candidate
//!    order, means we lose: free our word, answer `Pending`/`Duplicate`. A pending copy later in
//!    the order is killed (CAS); a killed copy is ignored (its owner will find out in step 3).
//! 3. Finalize: CAS our word pending → decided (locked instruction 2). If it was killed
//!    meanwhile, we lose: free it, answer `Pending`.
//!
//! Why at most one winner: every claim, kill, finalize and verify load is `SeqCst`, so of two
//! racers that both placed a pending word, at least one sees the other's word when it verifies
//! (the other order would be a cycle in the total order). The lower-indexed one never loses to a
//! pending copy, and a higher-indexed one that it saw is killed before it can finalize (or, if
//! it finalized first, is seen as decided, and the lower one loses). A win is a successful
//! finalize on one's own word, and the word stays its owner's until the owner frees it, so no
//! finalize can land on another racer's claim. Why at least one: the lowest-indexed pending copy
//! can be killed by nobody and loses only to a decided copy, whose owner won. This is the
//! "claim, verify, finalize" scheme of lock-free hash sets that reuse slots; the stress tests in
//! `tests.rs` hold it to "exactly one `Fresh` per key", with rollbacks.
//!
//! # Reservation: commit or roll back
//! A winner holds a [`Ticket`] while its batch is being stored. Others see the key as `Pending`
//! (the HTTP layer answers 503, so Egnyte retries) rather than `Duplicate`, so a duplicate is
//! never acknowledged before the first copy is safe. [`Ring::commit`] stores it committed and
//! writes its FIFO record (plain loads and stores); [`Ring::abort`] frees the word, so a retry
//! after a failed store is `Fresh` again.
//!
//! # Lanes: where a record goes
//! Positions come from one shared counter, but not one `fetch_add` per batch: two threads
//! committing that way take turns on the counter's cache line and on the FIFO lines between
//! their batches, and every record write waits for a line the other core holds (measured: two
//! threads on disjoint keys together did 12 M commits/s, a quarter of two private rings; the
//! record write, then an exchange, was a third of all time). Instead each thread holds a *lane* (`lanes.rs`: at most
//! [`MAX_LANES`] threads at once; others fall back to one `fetch_add` per batch) and each lane
//! reserves a *chunk* of `chunk` consecutive positions at a time (64 at the default capacity:
//! eight cache lines), fills them over its next commits, then reserves the next. The counter is
//! touched once per chunk and the records' lines belong to one core (about 3.5 times as many
//! commits a second on disjoint keys; current figures in `benches/README.md`).
//!
//! The price is holes: positions reserved but not (yet) written, whose slots keep the previous
//! lap's records, so a span of the FIFO holds fewer keys than it has slots. Hence the slack
//! (`capacity / 16` records) and two rules:
//! * a lane's chunk is *stale* once the counter has moved `capacity / 32` positions past its
//!   start (checked before each record); a stale chunk is abandoned (its unwritten positions
//!   stay holes) and a new one reserved. Without this, a thread that was idle for a while would
//!   write a record far behind the others, where it is overwritten (its key evicted) soon.
//! * `chunk` is small enough that [`MAX_LANES`] × [`HOLE_CHUNKS`] × (`chunk` − 1) ≤
//!   `capacity / 32`.
//!
//! Why the last `capacity` committed keys are remembered: a key K written at position q is
//! evicted by the write at q + L (L = the FIFO's length, `capacity + capacity / 16`). Of the
//! L − 1 positions between, fewer than `capacity / 32` were written before K (K's chunk was not
//! stale), and at most `capacity / 32` are holes: per lane, the chunks with holes (the one it
//! is filling, those it abandoned) start at least `capacity / 32` apart, so at most 35 of them
//! meet a span of L (counted as [`HOLE_CHUNKS`]), each with at most `chunk` − 1 holes. So at
//! least L − 1 − `capacity / 16` + 1 = `capacity` keys were committed after K before K is
//! evicted. A thread that exits gives its lane back and the lane's next holder goes on filling
//! the same chunks, so exits make no holes; threads beyond [`MAX_LANES`] reserve per batch and
//! make none either. The test `lanes_remember_at_least_the_last_capacity_keys_under_the_worst_
//! schedule` drives every lane in the pattern that makes the most holes; it fails with a slack
//! of `capacity / 32`. The slack is kept this small because it raises the table's load: at an
//! eighth, 19 of 60 million inserts at 2^20 found their window full (see "The one
//! approximation"); at a sixteenth, none.
//!
//! Below a capacity of 16,384, `chunk` is 1: no lanes, no slack, and exactly the last
//! `capacity` keys are remembered.
//!
//! # Eviction
//! A FIFO record packs the table index (32 bits), a valid bit and 31 fingerprint bits. A
//! committed word leaves the table only through its own record's eviction (verify kills only
//! pending words, abort only decided ones), so the check that the slot still holds a committed
//! word with those fingerprint bits is a safety net, not a race resolution. A record is written
//! with a load (the record it replaces) and a store, not an exchange, which cost 5% of the
//! single-thread rate: two writers can only meet on one record if one of them stalls between
//! its staleness check (or its `fetch_add`) and its store while about `capacity` other commits
//! happen. Then one record is lost and its key stays in the table for good (remembered forever:
//! one table word), and both writers evict the key of the record they replaced; should another
//! key with the same 31 fingerprint bits have taken that word in between (odds of 2^-31 on top
//! of the race), it is forgotten early.
//!
//! # The one approximation
//! If all 16 candidate slots of a key hold other live keys, the key cannot be remembered:
//! [`Insert::Full`] (counted by the caller; the event is accepted, but a later duplicate of it
//! would not be caught). With about half the words live (17/32 with lanes' slack) and two
//! choices of bucket, the fuller of which is avoided, this needs two buckets of 8 each holding 8
//! of the ~4 keys they average: none was seen in 60 million inserts at capacity 2^20 (with a
//! slack of an eighth instead of a sixteenth, 19 were), and a keyed hash keeps anyone from
//! aiming at one bucket.
//!
//! # Speed
//! A fresh insert costs two locked instructions (claim, finalize), two scans of two cache lines
//! and, at the default capacity, three cache misses (two buckets, the evicted word) that
//! [`Ring::warm`] overlaps across a batch; a lane adds one `fetch_add` per chunk.
//! Figures: `benches/README.md` (dedup).
//!
//! For the next maintainer: any change to the word layout changes the verify step; keep "only the owner frees its word" (an
//! owner's plain stores and the ABA argument rest on it); run the stress tests under
//! `--release` and under Miri (`cargo +nightly miri test dedup`) after touching this file.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use super::lanes::{self, MAX_LANES};
use super::pages;

/// Words per bucket: one 64-byte cache line.
pub(super) const BUCKET: usize = 8;

/// Candidate slots of a key: its two buckets.
pub const WINDOW: usize = 2 * BUCKET;

/// Largest capacity (64 Mi keys, 1.5 GiB of ring; a power of two); table indexes must also fit the FIFO
/// record's 32 bits, which this keeps far from.
pub const MAX_CAPACITY: usize = 1 << 26;

/// Most FIFO positions a lane reserves at once: eight cache lines of records.
const MAX_CHUNK: usize = 64;

/// Chunks per lane that may hold holes in one span of the FIFO, with room to spare (see "Lanes":
/// 35 at most).
const HOLE_CHUNKS: usize = 36;

/// Whole words (fingerprint bits 0): never used, and freed.
const EMPTY: u64 = 0;
const TOMBSTONE: u64 = 1;
/// States of a word holding a fingerprint (bits 1..0).
const KILLED: u64 = 0;
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

/// One cache line of table words. The alignment is what makes a bucket one line: a plain
/// `[AtomicU64]` allocation is only 8-aligned, and glibc hands large blocks out 16 bytes past a
/// page start, so every bucket would straddle two lines (twice the cache misses).
#[derive(Debug, Default)]
#[repr(align(64))]
struct Bucket([AtomicU64; BUCKET]);

/// The commit counter on a line of its own (two, for the adjacent-line prefetcher): every batch's
/// `fetch_add` would otherwise invalidate, in the other cores, the line holding the table's
/// address, which every insert reads.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counter(AtomicU64);

/// A lane's chunk in one ring: positions `next..end` are reserved and not yet written. Only
/// the lane's holder touches it; on a line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Lane {
    next: AtomicU64,
    end: AtomicU64,
}

/// The ring; see the module docs.
#[derive(Debug)]
pub struct Ring {
    buckets: Box<[Bucket]>,
    /// `buckets.len() - 1` (a power of two minus one).
    bucket_mask: usize,
    /// The FIFO's records, eight to a line; the first `fifo_len` are used.
    fifo: Box<[Bucket]>,
    fifo_len: u64,
    capacity: usize,
    /// Positions a lane reserves at once (1: no lanes).
    chunk: u64,
    /// How far the counter may pass a chunk's start before the chunk is abandoned.
    stale: u64,
    /// Per lane (empty when `chunk` is 1).
    lanes: Box<[Lane]>,
    /// FIFO positions handed out so far; position `p` is record `p % fifo_len`.
    next: Counter,
}

/// One pass over a key's two buckets. Bit `w` of a mask is word `w` of its bucket.
struct Scan {
    /// Per bucket: the words holding the key's fingerprint, in any state.
    matches: [u32; 2],
    /// Whether one of them is committed.
    committed: bool,
    /// Per bucket: the free words (EMPTY or TOMBSTONE), and how many there are (summed in the
    /// pass: the baseline x86-64 target has no `popcnt`).
    free: [u32; 2],
    free_count: [u32; 2],
}

fn fingerprint(key: u64) -> u64 {
    (key >> FP_SHIFT).max(1)
}

/// The capacity actually used for a requested one: a power of two, 1 to [`MAX_CAPACITY`].
pub(super) fn clamp(capacity: usize) -> usize {
    capacity.clamp(1, MAX_CAPACITY).next_power_of_two()
}

/// A lane's chunk for a ring of `capacity`: the largest power of two up to [`MAX_CHUNK`] with
/// `MAX_LANES × HOLE_CHUNKS × (chunk − 1) ≤ capacity / 32` (see "Lanes"). 64 from a capacity of
/// 2^20, 8 at 2^16, 1 (no lanes) below 2^14.
fn chunk_for(capacity: usize) -> usize {
    let most = (capacity / (32 * MAX_LANES * HOLE_CHUNKS) + 1).min(MAX_CHUNK);
    1 << most.ilog2()
}

impl Ring {
    /// A ring that remembers at least the last `capacity` committed keys; the capacity is
    /// rounded up to a power of two (so a key's bucket number is a mask), at most
    /// [`MAX_CAPACITY`].
    pub fn new(capacity: usize) -> Ring {
        let capacity = clamp(capacity);
        let table_words = (2 * capacity).next_power_of_two().max(2 * WINDOW);
        let buckets = table_words / BUCKET;
        let chunk = chunk_for(capacity);
        let (fifo_len, lanes) = if chunk > 1 { (capacity + capacity / 16, MAX_LANES) } else { (capacity, 0) };
        Ring {
            buckets: pages::filled(buckets),
            bucket_mask: buckets - 1,
            fifo: pages::filled(fifo_len.div_ceil(BUCKET)),
            fifo_len: fifo_len as u64,
            capacity,
            chunk: chunk as u64,
            stale: (capacity / 32) as u64,
            lanes: (0..lanes).map(|_| Lane::default()).collect(),
            next: Counter::default(),
        }
    }

    /// How many keys it remembers at least.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of memory it holds (fixed at creation).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Bucket>() * (self.buckets.len() + self.fifo.len())
            + std::mem::size_of::<Lane>() * self.lanes.len()
    }

    /// (`chunk`, positions after which a chunk is stale), for the lane tests.
    #[cfg(test)]
    pub(super) fn lane_limits(&self) -> (u64, u64) {
        (self.chunk, self.stale)
    }

    /// The FIFO record with index `index` (0..fifo_len).
    fn record(&self, index: usize) -> &AtomicU64 {
        &self.fifo[index / BUCKET].0[index % BUCKET]
    }

    /// Record indexes of successive positions, with one division for a run of consecutive ones
    /// (the FIFO's length is not a power of two when it has slack).
    fn indexes(&self) -> impl FnMut(u64) -> usize + '_ {
        let mut last: Option<(u64, usize)> = None;
        move |position| {
            let index = match last {
                Some((before, index)) if position == before + 1 => {
                    if index + 1 == self.fifo_len as usize {
                        0
                    } else {
                        index + 1
                    }
                }
                _ => (position % self.fifo_len) as usize,
            };
            last = Some((position, index));
            index
        }
    }

    /// The calling thread's lane in this ring, if it has one and the ring uses lanes.
    fn lane(&self) -> Option<&Lane> {
        if self.lanes.is_empty() {
            return None;
        }
        lanes::current().map(|lane| &self.lanes[lane])
    }

    /// The lane's unwritten positions, `next..end`: empty when its chunk is used up or stale.
    fn lane_span(&self, lane: &Lane) -> (u64, u64) {
        let (next, end) = (lane.next.load(Relaxed), lane.end.load(Relaxed));
        let start = end.saturating_sub(self.chunk);
        if next < end && self.next.0.load(Relaxed).wrapping_sub(start) < self.stale {
            (next, end)
        } else {
            (end, end)
        }
    }

    /// The position of the lane's next record, reserving a new chunk when needed.
    fn lane_position(&self, lane: &Lane) -> u64 {
        let (next, end) = self.lane_span(lane);
        let position = if next < end {
            next
        } else {
            let start = self.next.0.fetch_add(self.chunk, SeqCst);
            lane.end.store(start + self.chunk, Relaxed);
            start
        };
        lane.next.store(position + 1, Relaxed);
        position
    }

    /// The bucket numbers of `key`'s two buckets (never the same bucket). Candidate `i`
    /// (0..WINDOW) is word `i % BUCKET` of bucket `i / BUCKET`.
    fn bucket_numbers(&self, key: u64) -> [usize; 2] {
        let first = key as usize & self.bucket_mask;
        let mut second = key.rotate_left(29) as usize & self.bucket_mask;
        if second == first {
            second = first ^ 1;
        }
        [first, second]
    }

    fn buckets_of(&self, key: u64) -> [&Bucket; 2] {
        self.bucket_numbers(key).map(|n| &self.buckets[n])
    }

    /// The table slot at table index `index` (bucket number × [`BUCKET`] + word).
    fn slot(&self, index: usize) -> &AtomicU64 {
        &self.buckets[(index / BUCKET) & self.bucket_mask].0[index % BUCKET]
    }

    /// Loads all sixteen candidates of `fp` (`SeqCst`: the verify step relies on it) and
    /// classifies them.
    #[inline(always)]
    fn scan(buckets: [&Bucket; 2], fp: u64) -> Scan {
        let fp_word = fp << FP_SHIFT;
        let (m0, c0, f0, n0) = Self::scan_bucket(buckets[0], fp_word);
        let (m1, c1, f1, n1) = Self::scan_bucket(buckets[1], fp_word);
        Scan { matches: [m0, m1], committed: c0 | c1, free: [f0, f1], free_count: [n0, n1] }
    }

    /// One bucket of [`Ring::scan`]: (matches, committed, free, free count), without a branch per word
    /// (whether a word is free is a coin flip the branch predictor would lose half the time)
    /// and with the masks in registers.
    #[inline(always)]
    fn scan_bucket(bucket: &Bucket, fp_word: u64) -> (u32, bool, u32, u32) {
        let (mut matches, mut committed, mut free, mut free_count) = (0u32, false, 0u32, 0u32);
        for (w, slot) in bucket.0.iter().enumerate() {
            let word = slot.load(SeqCst);
            // Equal fingerprints leave only the state bits: 0..=3, and 3 when committed.
            let diff = word ^ fp_word;
            matches |= u32::from(diff <= STATE_MASK) << w;
            committed |= diff == COMMITTED;
            let is_free = u32::from(word == EMPTY || word == TOMBSTONE);
            free |= is_free << w;
            free_count += is_free;
        }
        (matches, committed, free, free_count)
    }

    /// Starts loading, all at once, the cache lines that inserting and committing `keys` will
    /// touch: both buckets of each key, and the table slots the next commits will evict. They
    /// are prefetches, not loads: the processor overlaps their cache misses with each other and
    /// with the inserts that follow instead of waiting for them one insert at a time (loads that
    /// miss hold up everything behind them until they retire: measured 15 M fresh inserts/s at
    /// the default capacity with loads, 23 M/s with prefetches). At the default capacity the
    /// ring is far larger than the caches, so this is what makes a batch fast. Call it with a
    /// batch's keys before inserting them.
    pub fn warm(&self, keys: &[u64]) {
        for &key in keys {
            let [first, second] = self.buckets_of(key);
            pages::prefetch(&first.0[0]);
            pages::prefetch(&second.0[0]);
        }
        // The positions the next commits will write: the rest of the lane's chunk, then (or,
        // without a lane, from the start) the counter's next ones, which the next chunk or batch
        // will get unless another thread reserves first.
        let wanted = keys.len() as u64;
        let (next, end) = self.lane().map_or((0, 0), |lane| self.lane_span(lane));
        let in_chunk = (end - next).min(wanted);
        let counter = self.next.0.load(Relaxed);
        let mut index = self.indexes();
        for position in (next..next + in_chunk).chain(counter..counter + (wanted - in_chunk)) {
            let record = self.record(index(position)).load(Relaxed);
            pages::prefetch(self.slot((record >> 32) as usize));
        }
    }

    /// Inserts `key` if absent (see the module docs for the protocol).
    pub fn insert(&self, key: u64) -> Insert {
        let fp = fingerprint(key);
        let numbers = self.bucket_numbers(key);
        let buckets = numbers.map(|n| &self.buckets[n]);
        loop {
            // 1. Look for the key; else claim a free word in the bucket with more of them.
            let scan = Self::scan(buckets, fp);
            if scan.matches != [0; 2] {
                return if scan.committed { Insert::Duplicate } else { Insert::Pending };
            }
            let b = usize::from(scan.free_count[1] > scan.free_count[0]);
            if scan.free[b] == 0 {
                return Insert::Full;
            }
            let w = scan.free[b].trailing_zeros() as usize;
            let slot = &buckets[b].0[w];
            let seen = slot.load(SeqCst);
            let mine = fp << FP_SHIFT | PENDING;
            // Claim; a lost CAS (or a word taken since the scan) means look again.
            if seen > TOMBSTONE || slot.compare_exchange(seen, mine, SeqCst, SeqCst).is_err() {
                continue;
            }
            // 2. Verify against every other copy among the candidates.
            let me = b * BUCKET + w;
            let mut others = Self::scan(buckets, fp).matches;
            others[b] &= !(1 << w);
            if others != [0; 2] {
                if let Some(lost) = Self::verify(buckets, others, me, fp) {
                    // Withdraw. Our word is pending or killed, and only we free it: a store.
                    slot.store(TOMBSTONE, Release);
                    return lost;
                }
            }
            // 3. Finalize, unless an earlier racer killed our word meanwhile.
            let decided = mine & !STATE_MASK | DECIDED;
            return match slot.compare_exchange(mine, decided, SeqCst, SeqCst) {
                Ok(_) => Insert::Fresh(Ticket { index: numbers[b] * BUCKET + w, word: decided }),
                Err(_killed) => {
                    slot.store(TOMBSTONE, Release);
                    Insert::Pending
                }
            };
        }
    }

    /// Step 2's slow path, when other copies were seen (`others`, masks as in [`Scan`]):
    /// `Some(answer)` when our pending word at candidate `me` loses to one of them; pending
    /// copies after ours are killed.
    #[cold]
    fn verify(buckets: [&Bucket; 2], others: [u32; 2], me: usize, fp: u64) -> Option<Insert> {
        let fp_word = fp << FP_SHIFT;
        for i in (0..WINDOW).filter(|&i| others[i / BUCKET] & 1 << (i % BUCKET) != 0) {
            let slot = &buckets[i / BUCKET].0[i % BUCKET];
            let mut word = slot.load(SeqCst);
            while word & !STATE_MASK == fp_word {
                match word & STATE_MASK {
                    COMMITTED => return Some(Insert::Duplicate),
                    DECIDED => return Some(Insert::Pending),
                    // Killed: its owner will free it; it beats nobody.
                    KILLED => break,
                    _ if i < me => return Some(Insert::Pending),
                    // A pending copy after us: kill it (a failed CAS re-examines the word).
                    _ => match slot.compare_exchange(word, fp_word | KILLED, SeqCst, SeqCst) {
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
        self.commit_all(std::iter::once(ticket));
    }

    /// Commits every ticket of a stored batch, in order (pass `vec.drain(..)` to reuse a
    /// vector). The records' positions come from the thread's lane (see "Lanes"), or without one
    /// from one `fetch_add` for the batch: the shared counter is the ring's most contended word.
    pub fn commit_all<I>(&self, tickets: I)
    where
        I: IntoIterator<Item = Ticket>,
        I::IntoIter: ExactSizeIterator,
    {
        let tickets = tickets.into_iter();
        if tickets.len() == 0 {
            return;
        }
        let mut index = self.indexes();
        match self.lane() {
            Some(lane) => tickets.for_each(|ticket| self.write(index(self.lane_position(lane)), ticket)),
            None => {
                let start = self.next.0.fetch_add(tickets.len() as u64, SeqCst);
                (start..).zip(tickets).for_each(|(position, ticket)| self.write(index(position), ticket));
            }
        }
    }

    /// Commits one ticket's key with its FIFO record at record index `index`, evicting the key
    /// one lap older.
    #[inline]
    fn write(&self, index: usize, ticket: Ticket) {
        let committed = ticket.word & !STATE_MASK | COMMITTED;
        // Only the ticket's holder changes a decided word (kills touch pending words only), so a
        // plain release store is enough: no locked instruction on x86.
        self.slot(ticket.index).store(committed, Release);
        let record = (ticket.index as u64) << 32 | RECORD_VALID | (committed >> FP_SHIFT) & RECORD_FP_MASK;
        // A load and a store, not an exchange (see "Eviction").
        let slot = self.record(index);
        let evicted = slot.load(Acquire);
        slot.store(record, Release);
        if evicted != 0 {
            self.evict(evicted);
        }
    }

    /// The batch holding the ticket's key could not be stored: forget the key.
    pub fn abort(&self, ticket: Ticket) {
        debug_assert_eq!(self.slot(ticket.index).load(Relaxed), ticket.word);
        // A decided word changes only through its ticket's holder: a store.
        self.slot(ticket.index).store(TOMBSTONE, Release);
    }

    /// Tombstones the committed insertion a FIFO record names, if it is still there.
    fn evict(&self, record: u64) {
        let slot = self.slot((record >> 32) as usize);
        let word = slot.load(SeqCst);
        let same =
            word & STATE_MASK == COMMITTED && (word >> FP_SHIFT) & RECORD_FP_MASK == record & RECORD_FP_MASK;
        if same {
            // A committed word changes only through its own record, which is this one: a plain
            // release store, no locked instruction.
            slot.store(TOMBSTONE, Release);
        }
    }

    /// True when `key` is remembered (committed).
    pub fn contains(&self, key: u64) -> bool {
        Self::scan(self.buckets_of(key), fingerprint(key)).committed
    }
}

#[cfg(test)]
mod layout {
    use super::*;

    #[test]
    fn a_bucket_is_one_cache_line() {
        for capacity in [1, 1000, 1 << 16] {
            let ring = Ring::new(capacity);
            assert_eq!(std::mem::size_of::<Bucket>(), 64);
            assert_eq!(ring.buckets.as_ptr() as usize % 64, 0, "capacity {capacity}");
        }
    }
}
