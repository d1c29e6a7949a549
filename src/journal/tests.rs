//! Journal scenarios, each run on a real directory and on the in-memory disk; the faults only a
//! simulated disk can produce (failing fsync, ENOSPC, short writes, a panic, power loss) on the
//! in-memory one. Every scenario ends the same way: reopen, read everything, and compare with
//! exactly the batches whose append was acknowledged.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::format::{self, push_record, Meta, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use super::memory::{Faults, MemStorage};
use super::storage;
use super::*;
use crate::test_dir::TempDir;

/// Where a scenario runs: a real directory, or the in-memory disk.
enum Disk {
    Real(TempDir),
    Memory(MemStorage),
}

/// The two disks every scenario runs on.
fn disks() -> Vec<(Arc<dyn Storage>, Disk)> {
    let dir = TempDir::new("journal");
    let real: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.path()).unwrap());
    let memory = MemStorage::new();
    vec![(real, Disk::Real(dir)), (Arc::new(memory.clone()), Disk::Memory(memory))]
}

fn config(segment_bytes: u64) -> JournalConfig {
    JournalConfig { segment_bytes, ..JournalConfig::default() }
}

/// One batch of `n` event records whose payloads name the batch and the event.
fn batch(tag: usize, n: usize) -> (Vec<u8>, Vec<String>) {
    let mut bytes = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..n {
        let payload = format!("{{\"eventId\":\"{tag}-{i}\",\"pad\":\"{}\"}}", "x".repeat((tag * 7 + i) % 50));
        let meta = Meta {
            kind: Kind::Event,
            seq: 0,
            accepted_ms: 1_700_000_000_000 + tag as u64,
            key: tag as u64,
            order: i as u64,
        };
        push_record(&mut bytes, &meta, &[payload.as_bytes()]);
        payloads.push(payload);
    }
    (bytes, payloads)
}

/// Reopens and reads every record: (sequence, payload).
fn reopen(storage: &Arc<dyn Storage>) -> (Vec<(u64, String)>, Recovered) {
    let (journal, recovered) = Journal::open(Arc::clone(storage), &config(1 << 20)).unwrap();
    (read_committed(&journal, &mut journal.reader(1)), recovered)
}

fn numbered(payloads: &[String]) -> Vec<(u64, String)> {
    payloads.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.clone())).collect()
}

#[test]
fn appended_batches_come_back_in_order_across_segments() {
    for (storage, _dir) in disks() {
        let (journal, recovered) = Journal::open(Arc::clone(&storage), &config(600)).unwrap();
        assert_eq!(recovered, Recovered::default());
        let mut expected = Vec::new();
        for tag in 0..20 {
            let (bytes, payloads) = batch(tag, tag % 4 + 1);
            assert_eq!(journal.append(bytes), Append::Committed);
            expected.extend(payloads);
        }
        assert_eq!(journal.committed_seq(), expected.len() as u64 + 1);
        let segments = journal.segments();
        assert!(segments.len() > 3, "600-byte segments rotate: {segments:?}");
        assert_eq!(journal.bytes(), segments.iter().map(|s| s.len).sum::<u64>());
        drop(journal);
        let (records, recovered) = reopen(&storage);
        assert_eq!(records, numbered(&expected));
        assert!(recovered.repairs.is_empty());
        assert_eq!(recovered.records, expected.len() as u64);
    }
}

#[test]
fn removing_delivered_segments_keeps_the_rest_readable() {
    for (storage, _dir) in disks() {
        let (journal, _) = Journal::open(Arc::clone(&storage), &config(500)).unwrap();
        for tag in 0..30 {
            assert_eq!(journal.append(batch(tag, 2).0), Append::Committed);
        }
        let segments = journal.segments();
        let keep_from = segments[3].id;
        assert_eq!(journal.remove_before(keep_from).unwrap(), 3);
        assert_eq!(journal.remove_before(keep_from).unwrap(), 0, "idempotent");
        assert_eq!(storage.segments().unwrap()[0], keep_from);
        let mut reader = journal.reader(1);
        let first = reader.next(journal.committed_seq()).unwrap().unwrap();
        assert_eq!(first.meta.seq, keep_from, "a reader from before the oldest starts at the oldest");
        // The newest segment is never removed: the next sequence number survives.
        assert_eq!(journal.remove_before(u64::MAX).unwrap(), segments.len() - 4);
        let next = journal.committed_seq();
        drop(journal);
        let (journal, _) = Journal::open(Arc::clone(&storage), &config(500)).unwrap();
        assert_eq!(journal.committed_seq(), next);
    }
}

#[test]
fn a_journal_behind_the_checkpoints_starts_after_them() {
    for (storage, _dir) in disks() {
        let first = JournalConfig { first_seq: 1000, ..config(1 << 20) };
        let (journal, _) = Journal::open(Arc::clone(&storage), &first).unwrap();
        assert_eq!(journal.committed_seq(), 1000);
        assert_eq!(journal.append(batch(1, 3).0), Append::Committed);
        drop(journal);
        let (records, _) = reopen(&storage);
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), [1000, 1001, 1002]);
    }
}

/// Damage done to the newest segment's bytes, and how many of the 5 records survive it.
fn damage(bytes: &mut Vec<u8>, how: &str) -> usize {
    let last_record = {
        // Offsets of each record start.
        let mut at = SEGMENT_HEADER_LEN;
        let mut starts = Vec::new();
        while at < bytes.len() {
            starts.push(at);
            at += RECORD_HEADER_LEN + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        }
        *starts.last().unwrap()
    };
    match how {
        "flipped checksum byte" => {
            bytes[last_record + 5] ^= 1;
            4
        }
        "flipped payload byte" => {
            let at = bytes.len() - 3;
            bytes[at] ^= 0x20;
            4
        }
        "garbage appended" => {
            bytes.extend_from_slice(b"\x07\x00\x00\x00garbage that is not a record");
            5
        }
        "zeros appended, fewer than a header" => {
            bytes.extend_from_slice(&[0; RECORD_HEADER_LEN - 1]);
            5
        }
        "record cut" => {
            bytes.truncate(bytes.len() - 10);
            4
        }
        "header cut" => {
            bytes.truncate(last_record + 20);
            4
        }
        other => unreachable!("{other}"),
    }
}

#[test]
fn a_damaged_tail_is_cut_to_the_last_valid_record_and_reported() {
    for how in [
        "flipped checksum byte",
        "flipped payload byte",
        "garbage appended",
        "zeros appended, fewer than a header",
        "record cut",
        "header cut",
    ] {
        for (storage, disk) in disks() {
            let (journal, _) = Journal::open(Arc::clone(&storage), &config(1 << 20)).unwrap();
            let (bytes, payloads) = batch(3, 5);
            assert_eq!(journal.append(bytes), Append::Committed);
            drop(journal);
            let survivors = match &disk {
                Disk::Real(dir) => {
                    let path = dir.path().join(format!("{:020}.seg", 1));
                    let mut bytes = std::fs::read(&path).unwrap();
                    let n = damage(&mut bytes, how);
                    std::fs::write(&path, bytes).unwrap();
                    n
                }
                Disk::Memory(memory) => {
                    let mut bytes = memory.bytes(1).unwrap();
                    let n = damage(&mut bytes, how);
                    memory.set_bytes(1, bytes);
                    n
                }
            };
            let (records, recovered) = reopen(&storage);
            assert_eq!(records, numbered(&payloads[..survivors]), "{how}");
            assert_eq!(recovered.repairs.len(), 1, "{how}: {recovered:?}");
            assert!(!recovered.repairs[0].lost_committed, "the newest segment's tail");
            // The cut is on disk: a second open finds nothing to repair, and appends continue.
            let (journal, recovered) = Journal::open(Arc::clone(&storage), &config(1 << 20)).unwrap();
            assert!(recovered.repairs.is_empty(), "{how}");
            assert_eq!(journal.committed_seq(), survivors as u64 + 1);
            assert_eq!(journal.append(batch(4, 1).0), Append::Committed);
        }
    }
}

/// Offsets of each record in a segment's bytes.
fn record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut at = SEGMENT_HEADER_LEN;
    let mut starts = Vec::new();
    while at + RECORD_HEADER_LEN <= bytes.len() && bytes[at..at + RECORD_HEADER_LEN] != format::END_MARK {
        starts.push(at);
        at += RECORD_HEADER_LEN + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    starts
}

/// Applies `change` to segment `id`'s bytes on either disk.
fn alter(storage_dir: &Disk, id: u64, change: impl FnOnce(&mut Vec<u8>)) {
    match storage_dir {
        Disk::Real(dir) => {
            let path = dir.path().join(format!("{id:020}.seg"));
            let mut bytes = std::fs::read(&path).unwrap();
            change(&mut bytes);
            std::fs::write(&path, bytes).unwrap();
        }
        Disk::Memory(memory) => {
            let mut bytes = memory.bytes(id).unwrap();
            change(&mut bytes);
            memory.set_bytes(id, bytes);
        }
    }
}

#[test]
fn damage_in_the_middle_or_in_a_sealed_segment_keeps_every_other_record_and_is_reported() {
    // Records 1-5 in a sealed segment, 6-10 in the newest one. (segment, records damaged by
    // index in it, byte within the record): header (accepted-at), length, checksum, payload.
    let cases: &[(&str, u64, &[usize], usize)] = &[
        ("newest, middle, header", 6, &[2], 26),
        ("newest, middle, length", 6, &[1], 0),
        ("newest, middle, checksum", 6, &[2], 5),
        ("newest, middle, payload", 6, &[0], RECORD_HEADER_LEN + 3),
        ("sealed, middle, header", 1, &[2], 26),
        ("sealed, middle, payload", 1, &[3], RECORD_HEADER_LEN + 1),
        ("sealed, last, checksum", 1, &[4], 6),
        ("sealed, first, payload", 1, &[0], RECORD_HEADER_LEN + 2),
        ("sealed, two adjacent", 1, &[1, 2], 27),
        ("newest, two adjacent", 6, &[2, 3], RECORD_HEADER_LEN + 1),
    ];
    for &(name, id, damaged, byte) in cases {
        for (storage, disk) in disks() {
            let corrupt = TempDir::new("journal-corrupt");
            let with_copies =
                JournalConfig { corrupt_dir: Some(corrupt.path().to_path_buf()), ..config(1 << 20) };
            let (journal, _) = Journal::open(Arc::clone(&storage), &config(1 << 20)).unwrap();
            let (bytes, mut payloads) = batch(5, 5);
            assert_eq!(journal.append(bytes), Append::Committed);
            drop(journal);
            // A small segment size: the next batch starts segment 6.
            let (journal, _) = Journal::open(Arc::clone(&storage), &config(100)).unwrap();
            let (bytes, more) = batch(6, 5);
            assert_eq!(journal.append(bytes), Append::Committed);
            payloads.extend(more);
            drop(journal);
            assert_eq!(storage.segments().unwrap(), [1, 6], "{name}");
            alter(&disk, id, |bytes| {
                let starts = record_starts(bytes);
                for &n in damaged {
                    bytes[starts[n] + byte] ^= 0x41;
                }
            });
            let lost: Vec<u64> = damaged.iter().map(|&n| id + n as u64).collect();
            let (journal, recovered) = Journal::open(Arc::clone(&storage), &with_copies).unwrap();
            let records = read_committed(&journal, &mut journal.reader(1));
            let expected: Vec<(u64, String)> =
                numbered(&payloads).into_iter().filter(|(seq, _)| !lost.contains(seq)).collect();
            assert_eq!(records, expected, "{name}: every record outside the damaged ones");
            assert!(recovered.repairs.is_empty(), "{name}: nothing is called a torn write: {recovered:?}");
            assert_eq!(recovered.corruptions.len(), 1, "{name}: {recovered:?}");
            let corruption = &recovered.corruptions[0];
            assert_eq!((corruption.first_lost, corruption.lost), (lost[0], lost.len() as u64), "{name}");
            let saved = corruption.saved.as_ref().unwrap();
            assert_eq!(std::fs::metadata(saved).unwrap().len(), corruption.bytes, "{name}");
            assert_eq!(recovered.corrupt_records(), lost.len() as u64);
            // Appends go on after the last record, and a second open finds nothing new.
            let (bytes, more) = batch(7, 1);
            assert_eq!(journal.append(bytes), Append::Committed);
            drop(journal);
            let (journal, recovered) = Journal::open(Arc::clone(&storage), &with_copies).unwrap();
            assert!(
                recovered.corruptions.is_empty() && recovered.repairs.is_empty(),
                "{name}: {recovered:?}"
            );
            let mut expected = expected;
            expected.push((11, more[0].clone()));
            assert_eq!(read_committed(&journal, &mut journal.reader(1)), expected, "{name}");
        }
    }
}

#[test]
fn removed_segment_files_are_reused_and_their_old_bytes_never_read() {
    let dir = TempDir::new("journal");
    let storage: Arc<dyn Storage> = Arc::new(DirStorage::new(dir.path()).unwrap());
    let files = |suffix: &str| -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        names.sort();
        names
    };
    let (journal, _) = Journal::open(Arc::clone(&storage), &config(2000)).unwrap();
    let mut expected: Vec<(u64, String)> = Vec::new();
    let mut reused = 0;
    for round in 0..40 {
        // Long batches first, short ones later: a reused file is then longer than its new
        // records, so old records lie after them.
        let (bytes, payloads) = batch(if round < 20 { 49 } else { 1 }, 3);
        let first = journal.committed_seq();
        assert_eq!(journal.append(bytes), Append::Committed);
        expected.extend(payloads.into_iter().enumerate().map(|(i, p)| (first + i as u64, p)));
        if round % 4 == 3 {
            let floor = journal.segments().iter().rev().nth(1).map_or(0, |s| s.id);
            journal.remove_before(floor).unwrap();
            expected.retain(|&(seq, _)| seq >= journal.segments()[0].id);
            assert!(files(SPARE_SUFFIX).len() <= storage::MAX_SPARES, "{:?}", files(SPARE_SUFFIX));
        }
        let segments = journal.segments();
        let newest = segments.last().unwrap();
        let size = std::fs::metadata(dir.path().join(format!("{:020}.seg", newest.id))).unwrap().len();
        if size > newest.len + RECORD_HEADER_LEN as u64 {
            reused += 1;
        }
        // The reader (the dispatcher's) sees exactly the records, never the old bytes behind.
        assert_eq!(read_committed(&journal, &mut journal.reader(1)), expected, "round {round}");
    }
    assert!(reused > 5, "spare files were reused ({reused} rounds wrote into one)");
    drop(journal);
    let (records, recovered) = reopen(&storage);
    assert_eq!(records, expected, "after a restart");
    assert!(recovered.repairs.is_empty(), "end marks, not damage: {recovered:?}");

    // A crash that tore the newest group in a reused file: old bytes where its end mark was.
    let newest = files(".seg").pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let (journal, _) = Journal::open(Arc::clone(&storage), &config(2000)).unwrap();
    let end = journal.segments().last().unwrap().len as usize;
    drop(journal);
    bytes.resize(bytes.len().max(end + 200), 0);
    bytes[end..end + 200].fill(0x5A);
    std::fs::write(&newest, bytes).unwrap();
    let (records, recovered) = reopen(&storage);
    assert_eq!(records, expected, "the records before the tear");
    assert_eq!(recovered.repairs.len(), 1, "the old bytes are cut and reported: {recovered:?}");
}

/// Appends one batch of two events per tag, each committed; returns their payloads in order.
fn append_pairs(journal: &Journal, tags: std::ops::Range<usize>) -> Vec<String> {
    let mut payloads = Vec::new();
    for tag in tags {
        let (bytes, batch_payloads) = batch(tag, 2);
        assert_eq!(journal.append(bytes), Append::Committed);
        payloads.extend(batch_payloads);
    }
    payloads
}

/// Reads every committed record with `reader`: (sequence, payload).
fn read_committed(journal: &Journal, reader: &mut Reader) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    while let Some(record) = reader.next(journal.committed_seq()).unwrap() {
        out.push((record.meta.seq, String::from_utf8(record.payload.to_vec()).unwrap()));
    }
    out
}

#[test]
fn zeros_after_the_records_are_an_end_mark_not_damage() {
    // What a reused segment file looks like after its records, and what a crash that extended
    // a file without writing it can leave: the records stay, nothing is reported, and appends
    // overwrite the zeros.
    for (storage, disk) in disks() {
        let (journal, _) = Journal::open(Arc::clone(&storage), &config(1 << 20)).unwrap();
        let (bytes, payloads) = batch(3, 5);
        assert_eq!(journal.append(bytes), Append::Committed);
        drop(journal);
        match &disk {
            Disk::Real(dir) => {
                let path = dir.path().join(format!("{:020}.seg", 1));
                let mut bytes = std::fs::read(&path).unwrap();
                bytes.extend_from_slice(&[0; 4096]);
                std::fs::write(&path, bytes).unwrap();
            }
            Disk::Memory(memory) => {
                let mut bytes = memory.bytes(1).unwrap();
                bytes.extend_from_slice(&[0; 4096]);
                memory.set_bytes(1, bytes);
            }
        }
        let (records, recovered) = reopen(&storage);
        assert_eq!(records, numbered(&payloads), "every record before the zeros");
        assert!(recovered.repairs.is_empty(), "{recovered:?}");
        let (journal, _) = Journal::open(Arc::clone(&storage), &config(1 << 20)).unwrap();
        let (more, more_payloads) = batch(4, 2);
        assert_eq!(journal.append(more), Append::Committed);
        drop(journal);
        let (records, recovered) = reopen(&storage);
        let all: Vec<String> = payloads.iter().chain(&more_payloads).cloned().collect();
        assert_eq!(records, numbered(&all), "appends overwrite the zeros and are read back");
        assert!(recovered.repairs.is_empty(), "{recovered:?}");
    }
}

/// A journal on the in-memory disk with one committed batch; returns its payloads.
fn memory_journal(durability: Durability) -> (MemStorage, Journal, Vec<String>) {
    let memory = MemStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(memory.clone());
    let (journal, _) = Journal::open(storage, &JournalConfig { durability, ..config(1 << 20) }).unwrap();
    let (bytes, payloads) = batch(1, 3);
    let first = journal.append(bytes);
    assert!(matches!(first, Append::Committed | Append::Queued), "{first:?}");
    (memory, journal, payloads)
}

fn memory_reopen(memory: &MemStorage) -> Vec<(u64, String)> {
    reopen(&(Arc::new(memory.clone()) as Arc<dyn Storage>)).0
}

/// A none-durability journal on an in-memory disk whose writes stall from now on.
fn stalled_journal() -> (MemStorage, Journal) {
    let memory = MemStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(memory.clone());
    let durability = Durability::None;
    let (journal, _) = Journal::open(storage, &JournalConfig { durability, ..config(64 << 20) }).unwrap();
    memory.set_faults(Faults { stall_writes: true, ..Faults::default() });
    (memory, journal)
}

/// One batch of a single event record padded with `pad` bytes, and its payload.
fn padded(tag: u64, pad: usize) -> (Vec<u8>, String) {
    let payload = format!("{{\"eventId\":\"{tag}\",\"pad\":\"{}\"}}", "x".repeat(pad));
    let mut bytes = Vec::new();
    let meta = Meta { kind: Kind::Event, seq: 0, accepted_ms: 1, key: tag, order: 0 };
    push_record(&mut bytes, &meta, &[payload.as_bytes()]);
    (bytes, payload)
}

#[test]
fn a_failed_fsync_poisons_and_only_acknowledged_batches_survive() {
    for torn in [0, usize::MAX] {
        let (memory, journal, payloads) = memory_journal(Durability::Fsync);
        memory.set_faults(Faults { fail_sync: true, ..Faults::default() });
        assert_eq!(journal.append(batch(2, 2).0), Append::Failed);
        assert!(journal.poisoned());
        // Poison is for the life of the process, even once the disk looks fine again.
        memory.set_faults(Faults::default());
        assert_eq!(journal.append(batch(3, 1).0), Append::Poisoned);
        assert!(journal.flush().is_err());
        assert_eq!(journal.committed_seq(), 4, "nothing after the failure is readable");
        drop(journal);
        memory.power_loss(|unsynced| unsynced.min(torn));
        assert_eq!(memory_reopen(&memory), numbered(&payloads));
    }
}

#[test]
fn a_full_disk_refuses_the_batch_leaves_no_partial_record_and_recovers_when_space_returns() {
    let (memory, journal, mut payloads) = memory_journal(Durability::Fsync);
    let used = memory.bytes(1).unwrap().len() as u64;
    memory.set_faults(Faults { space: Some(used + 60), ..Faults::default() });
    assert_eq!(journal.append(batch(2, 2).0), Append::NoSpace);
    assert!(!journal.poisoned(), "no room is not a failed write-back");
    assert!(journal.no_space());
    assert_eq!(journal.no_space_groups(), 1);
    assert_eq!(memory.bytes(1).unwrap().len() as u64, used, "the partial write was cut back");
    assert_eq!(journal.append(batch(3, 1).0), Append::NoSpace, "still no room");
    // Space is freed: the next batch is stored, numbered right after the last committed one.
    memory.set_faults(Faults::default());
    let (bytes, more) = batch(4, 2);
    assert_eq!(journal.append(bytes), Append::Committed);
    assert!(!journal.no_space());
    payloads.extend(more);
    drop(journal);
    memory.power_loss(|_| 0);
    assert_eq!(memory_reopen(&memory), numbered(&payloads));
}

#[test]
fn with_no_durability_a_group_that_found_no_room_is_written_once_there_is() {
    let (memory, journal, mut payloads) = memory_journal(Durability::None);
    let used = memory.bytes(1).unwrap().len() as u64;
    memory.set_faults(Faults { space: Some(used + 60), ..Faults::default() });
    let (bytes, more) = batch(2, 3);
    assert_eq!(journal.append(bytes), Append::Queued, "acknowledged before the write");
    payloads.extend(more);
    let waited = std::time::Instant::now();
    while !journal.no_space() && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(journal.no_space(), "the writer found no room");
    std::thread::sleep(super::writer::NO_SPACE_RETRY * 2);
    assert!(journal.no_space_groups() >= 2, "and keeps trying");
    memory.set_faults(Faults::default());
    journal.flush().unwrap();
    assert!(!journal.no_space());
    drop(journal);
    memory.power_loss(|_| 0);
    assert_eq!(memory_reopen(&memory), numbered(&payloads), "the acknowledged group was kept");
}

#[test]
fn a_segment_that_cannot_be_opened_for_want_of_descriptors_is_refused_and_tried_again() {
    let memory = MemStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(memory.clone());
    // Segments "full" after one group: every append starts a new one.
    let (journal, _) = Journal::open(Arc::clone(&storage), &config(64)).unwrap();
    let (bytes, mut payloads) = batch(1, 2);
    assert_eq!(journal.append(bytes), Append::Committed);
    memory.set_faults(Faults { create_error: Some(libc::EMFILE), ..Faults::default() });
    assert_eq!(journal.append(batch(2, 2).0), Append::NoDescriptors);
    assert!(!journal.poisoned(), "no descriptor is not a failed write");
    assert_eq!(journal.no_descriptor_groups(), 1);
    memory.set_faults(Faults::default());
    let (bytes, more) = batch(3, 2);
    assert_eq!(journal.append(bytes), Append::Committed);
    payloads.extend(more);
    drop(journal);
    assert_eq!(memory_reopen(&memory), numbered(&payloads));
}

#[test]
fn short_writes_are_completed() {
    let (memory, journal, mut payloads) = memory_journal(Durability::Fsync);
    memory.set_faults(Faults { short_writes: Some(7), ..Faults::default() });
    let (bytes, more) = batch(2, 4);
    assert_eq!(journal.append(bytes), Append::Committed);
    payloads.extend(more);
    drop(journal);
    memory.power_loss(|_| 0);
    assert_eq!(memory_reopen(&memory), numbered(&payloads));
}

#[test]
fn a_failed_write_poisons_like_a_failed_sync() {
    let (memory, journal, payloads) = memory_journal(Durability::Fsync);
    memory.set_faults(Faults { fail_write: true, ..Faults::default() });
    assert_eq!(journal.append(batch(2, 1).0), Append::Failed);
    assert_eq!(journal.append(batch(3, 1).0), Append::Poisoned);
    drop(journal);
    memory.set_faults(Faults::default());
    assert_eq!(memory_reopen(&memory), numbered(&payloads));
}

#[test]
fn a_batch_that_finds_the_queue_full_waits_for_room() {
    let (memory, journal) = stalled_journal();
    let journal = Arc::new(journal);
    // One batch larger than the whole bound: taken, since at most half the bound is queued (it
    // could never be stored otherwise), and its write stalls.
    let (huge, huge_payload) = padded(0, QUEUE_BYTES + 1000);
    assert_eq!(journal.append(huge), Append::Queued);
    // The next one finds the queue full and waits; the disk recovers within the wait.
    let (next, next_payload) = padded(1, 100);
    let waiting = {
        let journal = Arc::clone(&journal);
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            (journal.append(next), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    memory.set_faults(Faults::default());
    let (answer, waited) = waiting.join().unwrap();
    assert_eq!(answer, Append::Queued, "room came within QUEUE_WAIT");
    assert!(waited >= Duration::from_millis(25) && waited < QUEUE_WAIT, "{waited:?}");
    journal.flush().unwrap();
    let read: Vec<String> =
        read_committed(&journal, &mut journal.reader(1)).into_iter().map(|(_, p)| p).collect();
    assert_eq!(read, [huge_payload, next_payload]);
}

#[test]
fn the_write_queue_bounds_what_is_accepted_and_not_yet_written() {
    // With none durability nothing waits for the disk, so a stalled write is where memory (and
    // what a crash loses) could grow: the bound covers the group being written as well as the
    // queue, so a stall holds at most QUEUE_BYTES; then batches wait for room, and get refused
    // (503) when none comes within QUEUE_WAIT.
    let (memory, journal) = stalled_journal();
    let big = |tag: u64| padded(tag, (1 << 20) - 100);
    let (first, first_payload) = big(0);
    let per_batch = first.len();
    assert_eq!(journal.append(first), Append::Queued);
    // Let the writer take it and stall in its write.
    std::thread::sleep(Duration::from_millis(100));
    let mut accepted = vec![first_payload];
    let mut tag = 1;
    loop {
        let (bytes, payload) = big(tag);
        let started = std::time::Instant::now();
        match journal.append(bytes) {
            Append::Queued => accepted.push(payload),
            Append::Busy => {
                assert!(started.elapsed() >= QUEUE_WAIT, "refused only after waiting for room");
                break;
            }
            other => panic!("{other:?}"),
        }
        tag += 1;
        if tag == 100 {
            break;
        }
    }
    // The disk recovers (before any assertion: a failing one must not leave the writer stalled
    // for the journal's drop to wait on): everything accepted is written, nothing refused is.
    memory.set_faults(Faults::default());
    assert_eq!(accepted.len(), QUEUE_BYTES / per_batch, "the stalled group counts against the bound");
    journal.flush().unwrap();
    let read: Vec<String> =
        read_committed(&journal, &mut journal.reader(1)).into_iter().map(|(_, p)| p).collect();
    assert_eq!(read, accepted);
    assert_eq!(journal.append(big(tag).0), Append::Queued, "room again once written");
}

#[test]
fn a_panicking_writer_wakes_every_waiter_and_poisons() {
    let (memory, journal, payloads) = memory_journal(Durability::Fsync);
    memory.set_faults(Faults { panic_on_write: true, ..Faults::default() });
    let journal = Arc::new(journal);
    let threads: Vec<_> = (0..4)
        .map(|tag| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || journal.append(batch(10 + tag, 1).0))
        })
        .collect();
    let mut outcomes = Vec::new();
    for thread in threads {
        // The writer thread unwinds; every waiting caller is woken with Failed.
        match thread.join() {
            Ok(outcome) => outcomes.push(outcome),
            Err(_) => outcomes.push(Append::Failed),
        }
    }
    assert!(outcomes.iter().all(|o| matches!(o, Append::Failed | Append::Poisoned)), "{outcomes:?}");
    assert!(journal.poisoned());
    memory.set_faults(Faults::default());
    assert_eq!(journal.append(batch(20, 1).0), Append::Poisoned);
    drop(journal);
    assert_eq!(memory_reopen(&memory), numbered(&payloads));
}

#[test]
fn concurrent_appends_share_syncs_and_lose_nothing() {
    let (memory, journal, _) = memory_journal(Durability::Fsync);
    let journal = Arc::new(journal);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let journal = Arc::clone(&journal);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..200 {
                    let (bytes, payloads) = batch(1000 + t * 1000 + i, 2);
                    assert_eq!(journal.append(bytes), Append::Committed);
                    mine.extend(payloads);
                }
                mine
            })
        })
        .collect();
    let mut expected: Vec<String> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let stats = journal.stats();
    assert_eq!(stats.batches.load(Ordering::Relaxed), 1601);
    assert!(stats.syncs.load(Ordering::Relaxed) <= stats.batches.load(Ordering::Relaxed));
    drop(journal);
    memory.power_loss(|_| 0);
    let mut found: Vec<String> = memory_reopen(&memory).into_iter().skip(3).map(|r| r.1).collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
}

#[test]
fn durability_none_answers_at_hand_off_and_flush_makes_it_durable() {
    let (memory, journal, mut payloads) = memory_journal(Durability::None);
    let syncs = memory.syncs();
    let before = memory.bytes(1).unwrap().len();
    let (bytes, more) = batch(2, 2);
    // Answered once queued; the writer thread writes it without an fdatasync.
    assert_eq!(journal.append(bytes), Append::Queued);
    payloads.extend(more);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while memory.bytes(1).unwrap().len() == before && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(memory.bytes(1).unwrap().len() > before, "written by the writer thread");
    assert_eq!(memory.syncs(), syncs, "no sync per batch");
    journal.flush().unwrap();
    assert_eq!(memory.syncs(), syncs + 1, "one for the flush");
    journal.flush().unwrap();
    assert_eq!(memory.syncs(), syncs + 2);
    drop(journal);
    memory.power_loss(|_| 0);
    assert_eq!(memory_reopen(&memory), numbered(&payloads));
}

#[test]
fn power_loss_without_fsync_keeps_a_prefix_of_whole_records() {
    for torn in [0, 1, 47, 48, 49, 100, 333] {
        let (memory, journal, _) = memory_journal(Durability::None);
        let mut all = Vec::new();
        for tag in 2..10 {
            let (bytes, payloads) = batch(tag, 3);
            journal.append(bytes);
            all.extend(payloads);
        }
        drop(journal);
        memory.power_loss(|_| torn);
        let records = memory_reopen(&memory);
        let survivors: Vec<String> = records.iter().map(|r| r.1.clone()).collect();
        assert!(records.iter().enumerate().all(|(i, r)| r.0 == i as u64 + 1));
        assert!(survivors.len() <= 27, "torn {torn}");
        // The first batch was synced with the segment header? No: only flush syncs in this
        // mode, so any prefix (possibly empty) is right, and it is exactly a prefix.
        let mut expected = batch(1, 3).1;
        expected.extend(all);
        assert_eq!(survivors[..], expected[..survivors.len()], "torn {torn}");
    }
}

#[test]
fn a_foreign_file_stops_the_open_instead_of_being_repaired() {
    let memory = MemStorage::new();
    memory.set_bytes(1, b"NOTAJOURNALFILE!and more".to_vec());
    let error = Journal::open(Arc::new(memory.clone()), &config(1 << 20)).unwrap_err();
    assert!(error.to_string().contains("not a journal segment"), "{error}");
    assert_eq!(memory.bytes(1).unwrap(), b"NOTAJOURNALFILE!and more", "left untouched");
    let misnamed = MemStorage::new();
    misnamed.set_bytes(5, format::segment_header(6).to_vec());
    assert!(Journal::open(Arc::new(misnamed), &config(1 << 20)).is_err());
}

#[test]
fn a_segment_cut_before_its_header_is_rewritten() {
    for cut in [0, 1, 15] {
        let (memory, journal, payloads) = memory_journal(Durability::Fsync);
        drop(journal);
        memory.set_bytes(4, format::segment_header(4)[..cut].to_vec());
        assert_eq!(memory_reopen(&memory), numbered(&payloads));
        assert_eq!(memory.bytes(4).unwrap(), format::segment_header(4));
    }
}

#[test]
fn inspection_reads_without_changing_anything_and_stops_at_a_torn_tail() {
    let memory = MemStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(memory.clone());
    let (journal, _) = Journal::open(Arc::clone(&storage), &config(700)).unwrap();
    let expected = append_pairs(&journal, 0..12);
    drop(journal);
    // A torn record at the end of the newest segment, as a write in progress would leave.
    let newest = *storage.segments().unwrap().last().unwrap();
    let mut bytes = memory.bytes(newest).unwrap();
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    memory.set_bytes(newest, bytes.clone());

    let summaries = summarize(&*storage).unwrap();
    assert!(summaries.len() > 2, "{summaries:?}");
    assert_eq!(summaries.iter().map(|s| s.events).sum::<u64>(), 24);
    assert_eq!(summaries[0].id, 1);
    assert_eq!(summaries.last().unwrap().end_seq, 25);
    assert_eq!(summaries.last().unwrap().tail, Some((6, Invalid::Truncated)));
    assert!(summaries[..summaries.len() - 1].iter().all(|s| s.tail.is_none()));
    assert_eq!(
        summaries[0].accepted_ms,
        Some((1_700_000_000_000, 1_700_000_000_000 + summaries[0].end_seq / 2 - 1))
    );
    assert_eq!(memory.bytes(newest).unwrap(), bytes, "nothing repaired");

    for from in [1, 2, 7, 24, 25, 99] {
        let mut scan = Scan::new(Arc::clone(&storage), from).unwrap();
        let mut seqs = Vec::new();
        while let Some(record) = scan.next_record().unwrap() {
            assert_eq!(
                String::from_utf8(record.payload.to_vec()).unwrap(),
                expected[record.meta.seq as usize - 1]
            );
            seqs.push(record.meta.seq);
        }
        assert_eq!(seqs, (from.min(25)..25).collect::<Vec<_>>(), "from {from}");
    }
    // A segment removed mid-scan is skipped, not an error.
    let mut scan = Scan::new(Arc::clone(&storage), 1).unwrap();
    assert_eq!(scan.next_record().unwrap().unwrap().meta.seq, 1);
    storage.remove(summaries[1].id).unwrap();
    let mut rest = Vec::new();
    while let Some(record) = scan.next_record().unwrap() {
        rest.push(record.meta.seq);
    }
    assert_eq!(rest.first(), Some(&2));
    assert!(!rest.contains(&summaries[1].id), "{rest:?}");
    assert_eq!(rest.last(), Some(&24));
}
