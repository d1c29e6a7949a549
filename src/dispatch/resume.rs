//! Where each sink resumes after a restart, so that what reached a file before a crash is not
//! written to it again, and so that a sink is not taken for a new one because its path is spelled
//! differently.
//!
//! * [`identify`] finds each sink's checkpoint entry. A sink's name (`SinkSpec::name`) is NAME or
//!   the canonical path of its file, and names of files inside the data directory are stored
//!   relative to it (`checkpoint.rs`), so most restarts find it by name. When not, an entry an
//!   older version stored under another spelling is adopted: one whose path resolves to the
//!   sink's file (relative, through a symbolic link, or, for `NAME=SPEC`, the path before it was
//!   named), or, for a file inside the data directory, one that named the same file inside the
//!   directory's old path, now gone (a data directory moved or restored elsewhere). The adoption
//!   is logged once: the next checkpoint stores the entry under the new name.
//! * A sink resumes at its checkpointed position. A sink without an entry starts at the oldest
//!   journaled record (with `--sink-start end`: at the journal's next record), and a warning says
//!   how many records it is about to receive.
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
use super::{SinkIdentity, SinkStart, QUARANTINE};
use crate::journal::{Journal, Kind};
use crate::json::write_json_string;
use crate::sink::{canonical_path, resolve_sink_name, Resume, Sink};

/// Bytes at the end of the dead-letter file read at start for lines past the checkpoint. They
/// are at most the records in flight then (a few thousand lines, a few MiB); older lines are of
/// records below every checkpoint and need not be read.
pub const DEAD_LETTER_SCAN_BYTES: u64 = 64 << 20;

/// The checkpoint with each target's entry under the target's name, and per target the older
/// name its entry was adopted from (for the dead-letter file, whose lines carry that name).
pub(super) fn identify(
    targets: &[Target],
    identity: &SinkIdentity,
    data_dir: &Path,
    checkpoint: &Checkpoint,
) -> (Checkpoint, Vec<Option<String>>) {
    let mut renamed = checkpoint.clone();
    let mut adopted = vec![None; targets.len()];
    // Entries no target has by name: the only ones another target may adopt.
    let mut free: Vec<&str> = checkpoint
        .sinks
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !targets.iter().any(|t| t.name == *name))
        .collect();
    if free.is_empty() {
        return (renamed, adopted);
    }
    let data_dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| canonical_path(data_dir));
    for (n, target) in targets.iter().enumerate() {
        if checkpoint.position(&target.name).is_some() {
            continue;
        }
        let Some(path_name) = path_name(target, identity) else { continue };
        let found = same_file(&free, &path_name).map(|k| (k, "the same file")).or_else(|| {
            moved_data_dir(&free, &path_name, &data_dir)
                .map(|k| (k, "the same file in the data directory's old path"))
        });
        let Some((k, why)) = found else { continue };
        let old = free.remove(k);
        log::info!(
            "{}: the checkpoint entry stored as {old} ({why}) is this sink's: it resumes at record {}; \
             the entry is stored under the new name from now on",
            target.name,
            checkpoint.position(old).unwrap_or(0)
        );
        renamed.rename(old, &target.name);
        adopted[n] = Some(old.to_string());
    }
    (renamed, adopted)
}

/// `jsonl:PATH` or `exec:PROGRAM`, canonical, for a target that writes a file: its name, or for
/// `NAME=SPEC` the path NAME stands for.
fn path_name(target: &Target, identity: &SinkIdentity) -> Option<String> {
    if target.name.starts_with("jsonl:") || target.name.starts_with("exec:") {
        return Some(target.name.clone());
    }
    identity.named.iter().find(|(name, _)| *name == target.name).map(|(_, path)| path.clone())
}

/// The entry whose name, spelled as an older version spelled it, resolves to `path_name`.
fn same_file(free: &[&str], path_name: &str) -> Option<usize> {
    free.iter().position(|old| *old == path_name || resolve_sink_name(old).as_deref() == Some(path_name))
}

/// For a file inside the data directory (`data_dir`, its real path) at RELATIVE: the one entry,
/// if exactly one, of the same kind naming a file at RELATIVE inside another directory, outside
/// this one and gone: the data directory's path before it was moved or restored elsewhere.
fn moved_data_dir(free: &[&str], path_name: &str, data_dir: &Path) -> Option<usize> {
    let (kind, path) = path_name.split_once(':')?;
    let relative = Path::new(path).strip_prefix(data_dir).ok().filter(|r| !r.as_os_str().is_empty())?;
    let mut found = free.iter().enumerate().filter(|(_, old)| {
        let Some(resolved) = resolve_sink_name(old) else { return false };
        let Some((old_kind, old_path)) = resolved.split_once(':') else { return false };
        let old_path = Path::new(old_path);
        old_kind == kind
            && old_path.ends_with(relative)
            && !old_path.starts_with(data_dir)
            && std::fs::symlink_metadata(old_path).is_err()
    });
    match (found.next(), found.next()) {
        (Some((k, _)), None) => Some(k),
        _ => None,
    }
}

/// Each target's first position to deliver. `checkpoint` names the targets as they are named now
/// (see [`identify`]).
pub(super) fn starts(
    targets: &[Target],
    checkpoint: &Checkpoint,
    journal: &Journal,
    start: SinkStart,
) -> io::Result<Vec<u64>> {
    let oldest = journal.segments().first().map_or(1, |s| s.id);
    let next = journal.committed_seq().max(oldest);
    // Without any entry the checkpoint was lost or set aside as damaged, not a sink added: every
    // sink starts at the oldest record, whatever `start` says, or undelivered events would be
    // skipped.
    let known = !checkpoint.sinks.is_empty();
    let mut starts = Vec::with_capacity(targets.len());
    for target in targets {
        let stored = checkpoint.position(&target.name);
        let at_end = stored.is_none() && start == SinkStart::End && known && target.name != QUARANTINE;
        let base = stored.unwrap_or(if at_end { next } else { oldest });
        let first = match &target.sink {
            Sink::Jsonl(sink) => {
                let mark = checkpoint.mark(&target.name);
                let find = |lines: &[Vec<u8>]| last_record(journal, base, target.accepts, lines);
                match sink.resume(mark, find)? {
                    Resume::AtCheckpoint => base,
                    Resume::After(position) => {
                        let first = base.max(position + 1);
                        if first > base {
                            log::info!(
                                "{}: the file already holds the lines of records {base} to {position}; \
                                 delivery resumes at {first}",
                                target.name
                            );
                        }
                        first
                    }
                    Resume::Unknown => {
                        if mark.is_some() {
                            log::warn!(
                                "{}: the file the last checkpoint describes is no longer there (rotated \
                                 and compressed, or moved away) and the current file's last line is not \
                                 journaled: events after record {base} are written again, and some may \
                                 appear twice",
                                target.name
                            );
                        }
                        base
                    }
                }
            }
            _ => base,
        };
        if stored.is_none() {
            report_new(target, journal, first, at_end, known)?;
        }
        starts.push(first);
    }
    Ok(starts)
}

/// Says where a target without a checkpoint entry starts, and what it is about to receive: a
/// warning when that is records already journaled (an operator who meant the sink to continue
/// an old one, under another path or name, sees it before thousands of duplicates).
fn report_new(target: &Target, journal: &Journal, first: u64, at_end: bool, known: bool) -> io::Result<()> {
    let name = &target.name;
    if at_end {
        log::info!(
            "{name} is new: it starts at the journal's next record ({first}), as --sink-start end asks; \
             records journaled before it are not delivered to it"
        );
        return Ok(());
    }
    let count = count_records(journal, first, target.accepts)?;
    if count == 0 {
        if known {
            log::info!("{name} is new: it starts at record {first}");
        }
    } else if name == QUARANTINE {
        log::info!(
            "{name} is new: it receives the {count} quarantined records still in the journal (from \
             record {first})"
        );
    } else if known {
        log::warn!(
            "{name} is new: it will receive the {count} records still in the journal (from record {first}); \
             --sink-start end starts new sinks at the end instead"
        );
    } else {
        log::warn!(
            "{name} has no checkpoint entry (the checkpoint is missing, or was set aside as damaged): it \
             will receive the {count} records still in the journal (from record {first})"
        );
    }
    Ok(())
}

/// Committed records of `kind` at or after `from`.
fn count_records(journal: &Journal, from: u64, kind: Kind) -> io::Result<u64> {
    let limit = journal.committed_seq();
    if from >= limit {
        return Ok(0);
    }
    let mut reader = journal.reader(from);
    let mut count = 0;
    while let Some(record) = reader.next(limit)? {
        count += u64::from(record.meta.kind == kind);
    }
    Ok(count)
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
/// start: finished before the crash, not to be delivered again. A line names the target by its
/// name or by the older name its entry was adopted from (`adopted`, see [`identify`]).
pub(super) fn dead_lettered(
    data_dir: &Path,
    targets: &[Target],
    adopted: &[Option<String>],
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
    let quote = |name: &str| {
        let mut quoted = String::new();
        let _ = write_json_string(&mut quoted, name);
        quoted.into_bytes()
    };
    let mut names: Vec<(usize, Vec<u8>)> =
        targets.iter().enumerate().map(|(n, t)| (n, quote(&t.name))).collect();
    for (n, old) in adopted.iter().enumerate() {
        if let Some(old) = old {
            names.push((n, quote(old)));
        }
    }
    let mut found = HashSet::new();
    for line in text.split(|&b| b == b'\n') {
        let Some((sink, seq)) = sink_and_seq(line) else { continue };
        if let Some(&(n, _)) = names.iter().find(|(_, name)| name == sink) {
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
    use crate::sink::{FileMark, SinkOptions, SinkSpec};
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
        assert_eq!(starts(&[target], &checkpoint, &journal, SinkStart::Oldest).unwrap(), vec![6]);
        // No checkpoint at all: the same, from the oldest record.
        let none = Checkpoint::default();
        assert_eq!(starts(&[jsonl_target(&path)], &none, &journal, SinkStart::Oldest).unwrap(), vec![6]);
        // A last line no journaled record has: from the checkpoint (or the oldest record).
        std::fs::write(&path, "{\"n\":99}\n").unwrap();
        let target = jsonl_target(&path);
        let checkpoint = Checkpoint { sinks: vec![(target.name.clone(), 2)], ..Checkpoint::default() };
        assert_eq!(starts(&[target], &checkpoint, &journal, SinkStart::Oldest).unwrap(), vec![2]);
    }

    #[test]
    fn records_dead_lettered_past_the_start_are_not_delivered_again() {
        let temp = crate::test_dir::TempDir::new("resume-dead-letter");
        let dir = temp.path();
        let targets = [jsonl_target(&dir.join("a.jsonl")), jsonl_target(&dir.join("b \"q\".jsonl"))];
        let adopted = [None, Some("jsonl:./old spelling.jsonl".to_string())];
        assert!(dead_lettered(dir, &targets, &adopted, &[5, 5]).unwrap().is_empty(), "no file: nothing");
        let line = |sink: &str, seq: u64| {
            let mut quoted = String::new();
            write_json_string(&mut quoted, sink).unwrap();
            format!("{{\"sink\":{quoted},\"reason\":\"r\",\"attempts\":8,\"seq\":{seq},\"acceptedMs\":1,\"event\":{{}}}}\n")
        };
        let text = [
            line(&targets[0].name, 3), // below the start: finished before the checkpoint
            line(&targets[0].name, 7),
            line(&targets[1].name, 5),
            // Stored before its entry was adopted under the new name.
            line("jsonl:./old spelling.jsonl", 6),
            line("exec:/gone", 9), // a sink no longer configured
            "{\"sink\":\"torn".to_string(),
        ]
        .concat();
        std::fs::write(dir.join(DEAD_LETTER_FILE), text).unwrap();
        let found = dead_lettered(dir, &targets, &adopted, &[5, 5]).unwrap();
        assert_eq!(found, HashSet::from([(0, 7), (1, 5), (1, 6)]));
    }

    /// A target named `name` (what `identify` and `starts` look at besides a jsonl file).
    fn named_target(name: &str) -> Target {
        Target {
            name: name.to_string(),
            sink: Sink::open(&SinkSpec::Stdout, &SinkOptions::default()).unwrap(),
            accepts: Kind::Event,
            stats: SinkStats::default(),
        }
    }

    /// `path` spelled relative to the working directory (`../../tmp/…`).
    fn relative(path: &Path) -> String {
        let up = "../".repeat(std::env::current_dir().unwrap().components().count() - 1);
        format!("{up}{}", path.display().to_string().trim_start_matches('/'))
    }

    #[test]
    fn an_entry_stored_under_another_spelling_of_the_path_is_adopted() {
        let temp = crate::test_dir::TempDir::new("resume-spelling");
        let dir = std::fs::canonicalize(temp.path()).unwrap();
        std::os::unix::fs::symlink(&dir, dir.join("link")).unwrap();
        let target = jsonl_target(&dir.join("events.jsonl"));
        assert_eq!(target.name, format!("jsonl:{}", dir.join("events.jsonl").display()));
        let mark = FileMark { len: 3, device: 4, inode: 5 };
        for old in [
            format!("jsonl:{}", relative(&dir.join("events.jsonl"))),
            format!("jsonl:{}/link/./events.jsonl", dir.display()),
        ] {
            let checkpoint = Checkpoint {
                sinks: vec![(old.clone(), 7), ("stdout".into(), 9)],
                marks: vec![(old.clone(), mark)],
                ..Checkpoint::default()
            };
            let targets = [named_target("stdout"), jsonl_target(&dir.join("events.jsonl"))];
            let (found, adopted) = identify(&targets, &SinkIdentity::default(), &dir, &checkpoint);
            assert_eq!(found.sinks, [(target.name.clone(), 7), ("stdout".to_string(), 9)], "{old}");
            assert_eq!(found.mark(&target.name), Some(mark));
            assert_eq!(adopted, [None, Some(old.clone())]);
        }
        // An entry under the name itself is simply found; nothing is adopted.
        let checkpoint = Checkpoint { sinks: vec![(target.name.clone(), 7)], ..Checkpoint::default() };
        let (found, adopted) =
            identify(&[jsonl_target(&dir.join("events.jsonl"))], &SinkIdentity::default(), &dir, &checkpoint);
        assert_eq!((found, adopted), (checkpoint, vec![None]));
        // Another file, or another kind of sink on the same path, is another sink.
        for other in [
            format!("jsonl:{}/other.jsonl", dir.display()),
            format!("exec:{}", dir.join("events.jsonl").display()),
        ] {
            let checkpoint = Checkpoint { sinks: vec![(other, 7)], ..Checkpoint::default() };
            let (found, adopted) = identify(
                &[jsonl_target(&dir.join("events.jsonl"))],
                &SinkIdentity::default(),
                &dir,
                &checkpoint,
            );
            assert_eq!((found, adopted), (checkpoint, vec![None]));
        }
    }

    #[test]
    fn a_named_sink_adopts_the_entry_of_its_path_and_then_keeps_its_own() {
        let temp = crate::test_dir::TempDir::new("resume-named");
        let dir = std::fs::canonicalize(temp.path()).unwrap();
        let spec: SinkSpec = format!("events=exec:{}", relative(&dir.join("hook"))).parse().unwrap();
        let identity = SinkIdentity::new(SinkStart::Oldest, std::slice::from_ref(&spec));
        assert_eq!(identity.named, [("events".to_string(), format!("exec:{}", dir.join("hook").display()))]);
        // Stored by an older version as `exec:` and the path as it was spelled then.
        let old = format!("exec:{}/./hook", dir.display());
        let checkpoint = Checkpoint { sinks: vec![(old.clone(), 12)], ..Checkpoint::default() };
        let (found, adopted) = identify(&[named_target("events")], &identity, &dir, &checkpoint);
        assert_eq!((found.sinks, adopted), (vec![("events".to_string(), 12)], vec![Some(old)]));
        // Once stored as NAME, the path may change: NAME is found by name.
        let checkpoint = Checkpoint {
            sinks: vec![("events".into(), 15), ("exec:/elsewhere/hook".into(), 3)],
            ..Checkpoint::default()
        };
        let moved: SinkSpec = "events=exec:/elsewhere/new-hook".parse().unwrap();
        let identity = SinkIdentity::new(SinkStart::Oldest, &[moved]);
        let (found, adopted) = identify(&[named_target("events")], &identity, &dir, &checkpoint);
        assert_eq!((found, adopted), (checkpoint, vec![None]));
    }

    #[test]
    fn a_file_of_a_moved_data_directory_adopts_the_entry_of_its_old_path() {
        let temp = crate::test_dir::TempDir::new("resume-moved");
        let base = std::fs::canonicalize(temp.path()).unwrap();
        let data_dir = base.join("new");
        std::fs::create_dir(&data_dir).unwrap();
        std::fs::create_dir(base.join("still-here")).unwrap();
        std::fs::write(base.join("still-here/events.jsonl"), "").unwrap();
        let events = || jsonl_target(&data_dir.join("events.jsonl"));
        let adopt = |entries: &[&str]| {
            let checkpoint = Checkpoint {
                sinks: entries
                    .iter()
                    .enumerate()
                    .map(|(n, name)| (name.to_string(), n as u64 + 10))
                    .collect(),
                ..Checkpoint::default()
            };
            identify(&[events()], &SinkIdentity::default(), &data_dir, &checkpoint).1.remove(0)
        };
        // The data directory was /srv/gone/data (absolute names, written by an older version).
        assert_eq!(
            adopt(&["jsonl:/srv/gone/data/events.jsonl", "stdout"]).as_deref(),
            Some("jsonl:/srv/gone/data/events.jsonl")
        );
        // Not when it is ambiguous, when the old file is still there (another sink's), or of another kind.
        assert_eq!(adopt(&["jsonl:/srv/gone/a/events.jsonl", "jsonl:/srv/gone/b/events.jsonl"]), None);
        let still_here = format!("jsonl:{}", base.join("still-here/events.jsonl").display());
        assert_eq!(adopt(&[&still_here]), None);
        assert_eq!(adopt(&["exec:/srv/gone/data/events.jsonl"]), None);
        assert_eq!(adopt(&["jsonl:/srv/gone/data/other.jsonl"]), None);
        // A file outside the data directory has no relative path to look for.
        let outside = jsonl_target(&base.join("out.jsonl"));
        let checkpoint =
            Checkpoint { sinks: vec![("jsonl:/srv/gone/out.jsonl".into(), 3)], ..Checkpoint::default() };
        assert_eq!(identify(&[outside], &SinkIdentity::default(), &data_dir, &checkpoint).1, [None]);
    }

    #[test]
    fn a_new_sink_starts_at_the_oldest_record_or_with_end_at_the_next() {
        let journal = journal(9);
        let known = Checkpoint { sinks: vec![("stdout".into(), 10)], ..Checkpoint::default() };
        let targets = [named_target("stdout"), named_target("new"), named_target(QUARANTINE)];
        assert_eq!(starts(&targets, &known, &journal, SinkStart::Oldest).unwrap(), [10, 1, 1]);
        // `end`: only the new sink, not the quarantine target.
        assert_eq!(starts(&targets, &known, &journal, SinkStart::End).unwrap(), [10, 10, 1]);
        // With no checkpoint at all (lost, set aside), `end` would skip undelivered events.
        assert_eq!(starts(&targets, &Checkpoint::default(), &journal, SinkStart::End).unwrap(), [1, 1, 1]);
        // A new jsonl sink with `end` ignores the lines its file already holds.
        let temp = crate::test_dir::TempDir::new("resume-end");
        let path = temp.path().join("events.jsonl");
        std::fs::write(&path, "{\"n\":3}\n").unwrap();
        assert_eq!(starts(&[jsonl_target(&path)], &known, &journal, SinkStart::End).unwrap(), [10]);
        assert_eq!(starts(&[jsonl_target(&path)], &known, &journal, SinkStart::Oldest).unwrap(), [4]);
        assert_eq!(count_records(&journal, 4, Kind::Event).unwrap(), 6);
        assert_eq!(count_records(&journal, 4, Kind::Quarantined).unwrap(), 0);
        assert_eq!(count_records(&journal, 10, Kind::Event).unwrap(), 0);
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
