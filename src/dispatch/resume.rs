//! Where each sink resumes after a restart, so that what reached a file before a crash is not
//! written to it again.
//!
//! * A sink resumes at its checkpointed position (a new sink: at the oldest journaled record).
//! * A jsonl sink first squares its file with the checkpoint's mark ([`JsonlSink::resume`](crate::sink::JsonlSink::resume)): it
//!   cuts off what was written after the mark, or, when the file was rotated since, finds the
//!   record of the last line its files hold and resumes after it. So it is exactly once across
//!   crashes; the same holds with no mark at all (a damaged checkpoint set aside, a new sink name
//!   for a file that already holds lines) whenever the file's last line is still journaled.
//! * Records a sink dead-lettered after its checkpoint are read back from the dead-letter file
//!   and not delivered to it again: every dead-letter line is synced before its record counts as
//!   finished, so a crash can leave lines past the checkpoint, each of which would otherwise be
//!   retried and, failing again, dead-lettered twice.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::checkpoint::Checkpoint;
use super::dead_letter::DEAD_LETTER_FILE;
use super::worker::Target;
use crate::journal::{Journal, Kind};
use crate::json::write_json_string;
use crate::sink::{Resume, Sink};

/// Bytes at the end of the dead-letter file read at start for lines past the checkpoint. They
/// are at most the records in flight then (a few thousand lines, a few MiB); older lines are of
/// records below every checkpoint and need not be read.
pub const DEAD_LETTER_SCAN_BYTES: u64 = 64 << 20;

/// Each target's first position to deliver.
pub(super) fn starts(targets: &[Target], checkpoint: &Checkpoint, journal: &Journal) -> io::Result<Vec<u64>> {
    let oldest = journal.segments().first().map_or(1, |s| s.id);
    let mut starts = Vec::with_capacity(targets.len());
    for target in targets {
        let stored = checkpoint.position(&target.name);
        let base = stored.unwrap_or_else(|| {
            if !checkpoint.sinks.is_empty() {
                log::info!(
                    "{} is a new sink: it starts at the oldest journaled record ({oldest})",
                    target.name
                );
            }
            oldest
        });
        let Sink::Jsonl(sink) = &target.sink else {
            starts.push(base);
            continue;
        };
        let mark = checkpoint.mark(&target.name);
        let find = |lines: &[Vec<u8>]| last_record(journal, base, target.accepts, lines);
        let start = match sink.resume(mark, find)? {
            Resume::AtCheckpoint => base,
            Resume::After(position) => {
                let start = base.max(position + 1);
                if start > base {
                    log::info!(
                        "{}: the file already holds the lines of records {base} to {position}; \
                         delivery resumes at {start}",
                        target.name
                    );
                }
                start
            }
            Resume::Unknown => {
                if mark.is_some() {
                    log::warn!(
                        "{}: the file the last checkpoint describes is no longer there (rotated and \
                         compressed, or moved away) and the current file's last line is not journaled: \
                         events after record {base} are written again, and some may appear twice",
                        target.name
                    );
                }
                base
            }
        };
        starts.push(start);
    }
    Ok(starts)
}

/// The last record at or after `from` of `kind` whose payload is one of `lines`.
fn last_record(journal: &Journal, from: u64, kind: Kind, lines: &[Vec<u8>]) -> io::Result<Option<u64>> {
    if lines.is_empty() {
        return Ok(None);
    }
    let lines: HashSet<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let mut reader = journal.reader(from);
    let limit = journal.committed_seq();
    let mut last = None;
    while let Some(record) = reader.next(limit)? {
        if record.meta.kind == kind && lines.contains(&*record.payload) {
            last = Some(record.meta.seq);
        }
    }
    Ok(last)
}

/// The (target index, position) pairs the dead-letter file holds at or past each target's
/// start: finished before the crash, not to be delivered again.
pub(super) fn dead_lettered(
    data_dir: &Path,
    targets: &[Target],
    starts: &[u64],
) -> io::Result<HashSet<(usize, u64)>> {
    let path = data_dir.join(DEAD_LETTER_FILE);
    let mut file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    let len = file.metadata()?.len();
    let from = len.saturating_sub(DEAD_LETTER_SCAN_BYTES);
    file.seek(SeekFrom::Start(from))?;
    let mut text = Vec::with_capacity((len - from) as usize);
    file.read_to_end(&mut text)?;
    // A scan that starts mid-file starts at the first whole line.
    let text = match from {
        0 => &text[..],
        _ => text.iter().position(|&b| b == b'\n').map_or(&[][..], |at| &text[at + 1..]),
    };
    let names: Vec<Vec<u8>> = targets
        .iter()
        .map(|t| {
            let mut quoted = String::new();
            let _ = write_json_string(&mut quoted, &t.name);
            quoted.into_bytes()
        })
        .collect();
    let mut found = HashSet::new();
    for line in text.split(|&b| b == b'\n') {
        let Some((sink, seq)) = sink_and_seq(line) else { continue };
        if let Some(n) = names.iter().position(|name| name == sink) {
            if seq >= starts[n] {
                found.insert((n, seq));
            }
        }
    }
    if !found.is_empty() {
        log::info!("{} records dead-lettered after the last checkpoint are not delivered again", found.len());
    }
    Ok(found)
}

/// The quoted sink name and the `seq` of a dead-letter line
/// (`{"sink":"…","reason":"…","attempts":N,"seq":N,…`); `None` for anything else (a torn last
/// line).
fn sink_and_seq(line: &[u8]) -> Option<(&[u8], u64)> {
    let rest = line.strip_prefix(b"{\"sink\":")?;
    let sink_len = json_string_len(rest)?;
    let (sink, rest) = rest.split_at(sink_len);
    let rest = rest.strip_prefix(b",\"reason\":")?;
    let rest = &rest[json_string_len(rest)?..];
    let rest = rest.strip_prefix(b",\"attempts\":")?;
    let rest = &rest[rest.iter().position(|b| !b.is_ascii_digit())?..];
    let rest = rest.strip_prefix(b",\"seq\":")?;
    let digits = rest.iter().position(|b| !b.is_ascii_digit())?;
    let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some((sink, seq))
}

/// The length of the JSON string at the start of `text`, quotes included.
fn json_string_len(text: &[u8]) -> Option<usize> {
    if text.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatch::SinkStats;
    use crate::journal::format::push_record;
    use crate::journal::memory::MemStorage;
    use crate::journal::{Append, JournalConfig, Meta};
    use crate::sink::{SinkOptions, SinkSpec};
    use std::sync::Arc;

    /// A journal of `n` events whose payloads are `{"n":N}`, N their position.
    fn journal(n: u64) -> Journal {
        let (journal, _) = Journal::open(Arc::new(MemStorage::new()), &JournalConfig::default()).unwrap();
        let mut bytes = Vec::new();
        for seq in 1..=n {
            let meta = Meta { kind: Kind::Event, seq: 0, accepted_ms: 1, key: seq, order: seq };
            push_record(&mut bytes, &meta, &[format!("{{\"n\":{seq}}}").as_bytes()]);
        }
        assert_eq!(journal.append(bytes), Append::Committed);
        journal
    }

    fn jsonl_target(path: &Path) -> Target {
        let spec = SinkSpec::Jsonl(path.to_path_buf());
        Target {
            name: spec.name(),
            sink: Sink::open(&spec, &SinkOptions::default()).unwrap(),
            accepts: Kind::Event,
            stats: SinkStats::default(),
        }
    }

    #[test]
    fn a_jsonl_sink_resumes_after_the_last_journaled_line_its_file_holds() {
        let temp = crate::test_dir::TempDir::new("resume-starts");
        let path = temp.path().join("events.jsonl");
        let journal = journal(9);
        let lines: String = (1..=5).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        std::fs::write(&path, lines).unwrap();
        // A checkpoint at 2 and no mark (written by an older version, or set aside): the file
        // says records up to 5 are in it.
        let target = jsonl_target(&path);
        let checkpoint = Checkpoint { sinks: vec![(target.name.clone(), 2)], ..Checkpoint::default() };
        assert_eq!(starts(&[target], &checkpoint, &journal).unwrap(), vec![6]);
        // No checkpoint at all: the same, from the oldest record.
        assert_eq!(starts(&[jsonl_target(&path)], &Checkpoint::default(), &journal).unwrap(), vec![6]);
        // A last line no journaled record has: from the checkpoint (or the oldest record).
        std::fs::write(&path, "{\"n\":99}\n").unwrap();
        let target = jsonl_target(&path);
        let checkpoint = Checkpoint { sinks: vec![(target.name.clone(), 2)], ..Checkpoint::default() };
        assert_eq!(starts(&[target], &checkpoint, &journal).unwrap(), vec![2]);
    }

    #[test]
    fn records_dead_lettered_past_the_start_are_not_delivered_again() {
        let temp = crate::test_dir::TempDir::new("resume-dead-letter");
        let dir = temp.path();
        let targets = [jsonl_target(&dir.join("a.jsonl")), jsonl_target(&dir.join("b \"q\".jsonl"))];
        assert!(dead_lettered(dir, &targets, &[5, 5]).unwrap().is_empty(), "no file: nothing");
        let line = |sink: &str, seq: u64| {
            let mut quoted = String::new();
            write_json_string(&mut quoted, sink).unwrap();
            format!("{{\"sink\":{quoted},\"reason\":\"r\",\"attempts\":8,\"seq\":{seq},\"acceptedMs\":1,\"event\":{{}}}}\n")
        };
        let text = [
            line(&targets[0].name, 3), // below the start: finished before the checkpoint
            line(&targets[0].name, 7),
            line(&targets[1].name, 5),
            line("exec:/gone", 9), // a sink no longer configured
            "{\"sink\":\"torn".to_string(),
        ]
        .concat();
        std::fs::write(dir.join(DEAD_LETTER_FILE), text).unwrap();
        let found = dead_lettered(dir, &targets, &[5, 5]).unwrap();
        assert_eq!(found, HashSet::from([(0, 7), (1, 5)]));
    }

    #[test]
    fn reads_the_sink_and_position_of_a_dead_letter_line() {
        let line = br#"{"sink":"exec:/bin/a \"b\"","reason":"x \"seq\":9 \\","attempts":8,"seq":42,"acceptedMs":7,"event":{}}"#;
        assert_eq!(sink_and_seq(line), Some((&br#""exec:/bin/a \"b\"""#[..], 42)));
        let in_the_number = line.windows(2).position(|w| w == b"42").unwrap() + 1;
        for torn in [&line[..20], &line[..70], &line[..in_the_number], b"", b"{\"sink\":5}"] {
            assert_eq!(sink_and_seq(torn), None, "{}", String::from_utf8_lossy(torn));
        }
    }
}
