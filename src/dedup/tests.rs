//! Ring and key tests: the protocol case by case, eviction guarantees at small capacities, and
//! multi-thread races (sized down under Miri).

use super::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

/// Spreads small integers over 64 bits, as the keyed hash does for real keys.
fn k(n: u64) -> u64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn fresh(ring: &Ring, key: u64) -> Ticket {
    match ring.insert(key) {
        Insert::Fresh(ticket) => ticket,
        other => panic!("{key:#x}: expected Fresh, got {other:?}"),
    }
}

#[test]
fn fresh_pending_duplicate_abort() {
    let ring = Ring::new(16);
    let ticket = fresh(&ring, k(1));
    assert_eq!(ring.insert(k(1)), Insert::Pending, "reserved, not yet stored");
    assert!(!ring.contains(k(1)));
    ring.abort(ticket);
    // Rolled back: a retry is fresh again.
    let ticket = fresh(&ring, k(1));
    ring.commit(ticket);
    assert_eq!(ring.insert(k(1)), Insert::Duplicate);
    assert!(ring.contains(k(1)));
    assert!(!ring.contains(k(2)));
}

#[test]
fn memory_is_fixed_and_documented() {
    let ring = Ring::new(DEFAULT_CAPACITY);
    assert_eq!(ring.capacity(), DEFAULT_CAPACITY);
    // 2^21 table words + 2^20 + 2^16 FIFO records, 8 bytes each, and 8 lanes of 128 bytes:
    // 24.5 bytes per key of capacity and 1 KiB.
    assert_eq!(ring.memory_bytes(), 49 * DEFAULT_CAPACITY / 2 + 1024);
    // No lanes below 16,384: 24 bytes per key.
    assert_eq!(Ring::new(8192).memory_bytes(), 24 * 8192);
    assert_eq!(Ring::new(0).capacity(), 1);
    assert_eq!(Ring::new(1000).capacity(), 1024);
    assert_eq!(ring::clamp(usize::MAX), MAX_CAPACITY);
}

#[test]
fn remembers_exactly_the_last_capacity_keys() {
    for requested in [1, 2, 3, 7, 64, 1000] {
        let ring = Ring::new(requested);
        let capacity = ring.capacity();
        assert!(capacity >= requested && capacity.is_power_of_two());
        let total = 5 * capacity as u64 + 3;
        for n in 0..total {
            let ticket = fresh(&ring, k(n));
            ring.commit(ticket);
            // The last `capacity` keys are duplicates; the one before them is forgotten.
            let first_kept = (n + 1).saturating_sub(capacity as u64);
            for m in first_kept..=n {
                assert!(ring.contains(k(m)), "capacity {capacity}: key {m} forgotten after {n}");
            }
            if first_kept > 0 {
                assert!(
                    !ring.contains(k(first_kept - 1)),
                    "capacity {capacity}: key {} kept",
                    first_kept - 1
                );
            }
        }
    }
}

/// The worst schedule for lanes (see "Lanes" in `ring.rs`): one thread per lane; one commits
/// batches steadily, the others one key now and then, half of them just often enough that
/// their chunks are nearly stale when used (their keys land far behind the counter), half just
/// rarely enough that their chunks go stale (each abandons all but one position). At every
/// checkpoint the last `capacity` committed keys must all be remembered, and the oldest keys
/// must be forgotten in the end (the ring still evicts).
#[test]
#[cfg_attr(miri, ignore = "hundreds of thousands of commits")]
fn lanes_remember_at_least_the_last_capacity_keys_under_the_worst_schedule() {
    use std::sync::mpsc;
    let _many = lanes::MANY_LANES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let capacity: usize = 1 << 16;
    let ring = Arc::new(Ring::new(capacity));
    let (chunk, stale) = ring.lane_limits();
    assert_eq!((chunk, stale), (8, 2048));
    // Each worker commits the keys it is sent, then answers: the test decides the commit order.
    let workers: Vec<(mpsc::Sender<Vec<u64>>, mpsc::Receiver<()>)> = (0..lanes::MAX_LANES)
        .map(|_| {
            let (keys_tx, keys_rx) = mpsc::channel::<Vec<u64>>();
            let (done_tx, done_rx) = mpsc::channel();
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                for keys in keys_rx {
                    let mut tickets: Vec<Ticket> = keys.iter().map(|&key| fresh(&ring, key)).collect();
                    ring.commit_all(tickets.drain(..));
                    done_tx.send(()).unwrap();
                }
            });
            (keys_tx, done_rx)
        })
        .collect();
    let mut order: Vec<u64> = Vec::new();
    let commit = |worker: usize, keys: Vec<u64>, order: &mut Vec<u64>| {
        order.extend_from_slice(&keys);
        workers[worker].0.send(keys).unwrap();
        workers[worker].1.recv().unwrap();
    };
    let sporadic = lanes::MAX_LANES as u64 - 1;
    let total = 6 * capacity as u64;
    let mut n = 0;
    // Where the sporadic lanes' keys are in `order`: the near-stale ones are the most at risk.
    let mut sporadic_keys: Vec<usize> = Vec::new();
    while n < total {
        commit(0, (n..n + 10).map(k).collect(), &mut order);
        n += 10;
        for lane in 1..=sporadic {
            // Odd lanes come back a little before their chunk goes stale (the positions the
            // others reserve meanwhile count too), even lanes just after; each at its own phase.
            let every = if lane % 2 == 1 { stale - 4 * sporadic * chunk } else { stale + 16 };
            if (n + lane * 97) % every < 10 {
                commit(lane as usize, vec![k(n + 1_000_000_000 * lane)], &mut order);
                sporadic_keys.push(order.len() - 1);
            }
        }
        // All of the last `capacity` now and then; the sporadic lanes' keys among them always.
        let first = order.len().saturating_sub(capacity);
        let forgotten = if n % 8_190 == 0 {
            order[first..].iter().filter(|&&key| !ring.contains(key)).count()
        } else {
            let at_risk = sporadic_keys.iter().filter(|&&i| i >= first);
            at_risk.filter(|&&i| !ring.contains(order[i])).count()
        };
        assert_eq!(
            forgotten,
            0,
            "after {} commits, {forgotten} of the last {capacity} forgotten",
            order.len()
        );
    }
    let oldest = &order[..capacity];
    let kept = oldest.iter().filter(|&&key| ring.contains(key)).count();
    assert!(kept < capacity / 100, "{kept} of the oldest {capacity} keys still remembered");
}

#[test]
fn a_full_window_is_reported_not_hidden() {
    // Keys that share both buckets (same low bits, same rotated bits) fill the 16 candidates.
    let ring = Ring::new(64);
    let same_buckets = |n: u64| n << 48;
    let mut kept = Vec::new();
    for n in 1..=WINDOW as u64 {
        let ticket = fresh(&ring, same_buckets(n));
        ring.commit(ticket);
        kept.push(same_buckets(n));
    }
    assert_eq!(ring.insert(same_buckets(WINDOW as u64 + 1)), Insert::Full);
    // All of them are still remembered.
    assert!(kept.iter().all(|&key| ring.contains(key)));
}

#[test]
fn the_remembered_fraction_at_small_capacities_is_total() {
    // With random keys and the table at most half full, no window fills up.
    let capacities: &[usize] = if cfg!(miri) { &[16] } else { &[16, 100, 4096, 1 << 16] };
    for &capacity in capacities {
        let ring = Ring::new(capacity);
        let mut full = 0;
        for n in 0..20 * capacity as u64 {
            match ring.insert(k(n)) {
                Insert::Fresh(ticket) => ring.commit(ticket),
                Insert::Full => full += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(full, 0, "capacity {capacity}");
        let last = 20 * capacity as u64;
        assert!((last - capacity as u64..last).all(|n| ring.contains(k(n))));
    }
}

#[test]
fn keys_are_keyed_and_unambiguous() {
    let a = Secret::from_bytes([1; 16]);
    let b = Secret::from_bytes([2; 16]);
    assert_eq!(key(&a, "acme", "e1"), key(&a, "acme", "e1"));
    assert_ne!(key(&a, "acme", "e1"), key(&b, "acme", "e1"), "the secret changes every key");
    assert_ne!(key(&a, "acme", "e1"), key(&a, "acme", "e2"));
    assert_ne!(key(&a, "ac", "mee1"), key(&a, "acm", "ee1"), "the split between domain and id counts");
    assert_eq!(format!("{a:?}"), "Secret(..)");
}

#[test]
fn the_secret_is_created_once_and_kept() {
    let temp = crate::test_dir::TempDir::new("dedup-secret");
    let dir = temp.path().to_path_buf();
    let first = Secret::load_or_create(&dir).unwrap();
    let again = Secret::load_or_create(&dir).unwrap();
    assert_eq!(first, again);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SECRET_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::write(dir.join(SECRET_FILE), b"short").unwrap();
    assert!(Secret::load_or_create(&dir).is_err(), "a damaged secret is an error, not a new secret");
}

/// Threads × keys with heavy overlap: every key is inserted by every thread; exactly one
/// insertion of each key may be `Fresh`, and the others see `Pending` or `Duplicate`.
fn race(threads: usize, keys: u64, rounds: usize, abort_every: u64) {
    for round in 0..rounds {
        let ring = Arc::new(Ring::new(4 * keys as usize));
        let barrier = Arc::new(Barrier::new(threads));
        let wins = Arc::new((0..keys).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (ring, barrier, wins) = (Arc::clone(&ring), Arc::clone(&barrier), Arc::clone(&wins));
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..keys {
                        // Each thread walks the keys from a different start, so races meet everywhere.
                        let n = (i + t as u64 * keys / threads as u64) % keys;
                        let key = k(n + round as u64 * 1_000_000);
                        loop {
                            match ring.insert(key) {
                                Insert::Fresh(ticket) => {
                                    wins[n as usize].fetch_add(1, Ordering::SeqCst);
                                    if abort_every > 0 && n.is_multiple_of(abort_every) && t == 0 {
                                        // A failed store: roll back; someone must win it again.
                                        wins[n as usize].fetch_sub(1, Ordering::SeqCst);
                                        ring.abort(ticket);
                                        continue;
                                    }
                                    ring.commit(ticket);
                                }
                                // Another insertion is being stored: a real sender retries.
                                Insert::Pending => {
                                    std::thread::yield_now();
                                    if ring.contains(key) {
                                        break;
                                    }
                                    continue;
                                }
                                Insert::Duplicate => {}
                                Insert::Full => panic!("window full at {keys} keys"),
                            }
                            break;
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let counts: HashSet<usize> = wins.iter().map(|w| w.load(Ordering::SeqCst)).collect();
        assert_eq!(counts, HashSet::from([1]), "round {round}: every key must be won exactly once");
        assert!((0..keys).all(|n| ring.contains(k(n + round as u64 * 1_000_000))));
    }
}

#[test]
fn racing_threads_win_each_key_exactly_once() {
    let (keys, rounds) = if cfg!(miri) { (40, 1) } else { (20_000, 5) };
    race(4, keys, rounds, 0);
}

#[test]
fn racing_with_rollbacks_still_wins_each_key_exactly_once() {
    let (keys, rounds) = if cfg!(miri) { (30, 1) } else { (10_000, 3) };
    race(3, keys, rounds, 7);
}

#[test]
fn racing_on_a_tiny_table_with_rollbacks_wins_each_key_exactly_once() {
    // 32 table words, so the racers' windows overlap and claims, kills and withdrawals meet.
    let rounds = if cfg!(miri) { 2 } else { 1_000 };
    race(3, 4, rounds, 2);
}

#[test]
fn racing_on_one_key_has_one_winner() {
    let rounds = if cfg!(miri) { 5 } else { 2_000 };
    for round in 0..rounds {
        let ring = Arc::new(Ring::new(8));
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (ring, barrier) = (Arc::clone(&ring), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    match ring.insert(k(round)) {
                        Insert::Fresh(ticket) => {
                            ring.commit(ticket);
                            1
                        }
                        _ => 0,
                    }
                })
            })
            .collect();
        let wins: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(wins <= 1, "round {round}: {wins} winners");
        // Zero winners is impossible: the lowest pending copy always wins.
        assert_eq!(wins, 1, "round {round}: nobody won");
    }
}

#[test]
fn committing_a_batch_keeps_fifo_order_even_past_the_capacity() {
    for capacity in [1, 2, 4, 16] {
        let ring = Ring::new(capacity);
        let keys: Vec<u64> = (0..40).map(|n| k(n + 7_000)).collect();
        for chunk in keys.chunks(3) {
            let mut tickets: Vec<Ticket> = chunk.iter().map(|&key| fresh(&ring, key)).collect();
            ring.commit_all(tickets.drain(..));
            assert!(tickets.is_empty());
        }
        let kept: Vec<bool> = keys.iter().map(|&key| ring.contains(key)).collect();
        let expected: Vec<bool> = (0..40).map(|n| n >= 40 - capacity).collect();
        assert_eq!(kept, expected, "capacity {capacity}");
    }
}

#[test]
fn warming_changes_nothing_but_the_cache() {
    let ring = Ring::new(64);
    let keys: Vec<u64> = (0..200).map(k).collect();
    for chunk in keys.chunks(10) {
        ring.warm(chunk);
        for &key in chunk {
            let ticket = fresh(&ring, key);
            ring.commit(ticket);
        }
    }
    assert!(keys[136..].iter().all(|&key| ring.contains(key)));
    assert!(!ring.contains(keys[135]));
}

mod stage {
    use super::super::*;
    use crate::Parser;

    fn body(ids: &[&str]) -> Vec<u8> {
        let events: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"eventId":"{id}","domain":"d","timestamp":1,"data":{{}},"actionSource":"a","eventType":"t"}}"#))
            .collect();
        format!("[{},42]", events.join(",")).into_bytes()
    }

    #[test]
    fn reserve_commit_abort_and_busy() {
        let dedup = Dedup::new(16, Secret::from_bytes([3; 16]));
        let (mut p1, mut p2) = (Parser::default(), Parser::default());
        let (first, second) = (body(&["a", "b", "a"]), body(&["b", "c"]));
        let batch = p1.parse(&first).unwrap();
        let mut keep = Vec::new();
        let reservation = dedup.reserve(&batch, &mut keep, &mut Vec::new()).unwrap();
        assert_eq!(keep, [true, true, false, false], "the repeat and the invalid element are not kept");
        // While the first batch is being stored, another batch sharing an event must wait.
        let other = p2.parse(&second).unwrap();
        let mut keep2 = Vec::new();
        assert_eq!(dedup.reserve(&other, &mut keep2, &mut Vec::new()).unwrap_err(), Busy);
        // The store failed: dropping rolls back, so both batches are fresh again.
        drop(reservation);
        let reservation = dedup.reserve(&other, &mut keep2, &mut Vec::new()).unwrap();
        assert_eq!(keep2, [true, true, false]);
        reservation.commit();
        let reservation = dedup.reserve(&batch, &mut keep, &mut Vec::new()).unwrap();
        assert_eq!(keep, [true, false, false, false], "b is committed now; a is fresh");
        reservation.commit();
        assert!(dedup.ring().contains(key(&Secret::from_bytes([3; 16]), "d", "a")));
    }

    #[test]
    fn repeats_are_found_in_small_and_large_batches() {
        let dedup = Dedup::new(1024, Secret::from_bytes([4; 16]));
        for size in [3usize, 64, 65, 200] {
            // Every third event repeats the one two places before it.
            let ids: Vec<String> = (0..size)
                .map(|i| if i % 3 == 2 { format!("{size}-{}", i - 2) } else { format!("{size}-{i}") })
                .collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let text = body(&ids);
            let mut parser = Parser::default();
            let batch = parser.parse(&text).unwrap();
            let (mut keep, mut keys) = (Vec::new(), Vec::new());
            let reservation = dedup.reserve(&batch, &mut keep, &mut keys).unwrap();
            let expected: Vec<bool> = (0..size).map(|i| i % 3 != 2).chain([false]).collect();
            assert_eq!(keep, expected, "batch of {size}");
            reservation.commit();
        }
    }
}
