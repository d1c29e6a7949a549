//! `egnyte-receiver journal stats|dump`: look into a data directory's journal, checkpoint and
//! dedup key file, read-only, while the receiver runs or not.
//!
//! `stats` prints one block per subject (segments, sinks, dedup); `dump` prints the journaled
//! events (or quarantined elements) that pass the filters, one JSON line each, exactly as
//! received. Neither ever writes: a record being written right now, or a torn tail the next start
//! will cut, just ends its segment's part of the output.

use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use egnyte_receiver::dispatch::{Checkpoint, KeyFile, DEAD_LETTER_FILE};
use egnyte_receiver::journal::{self, DirStorage, Kind, Record, Scan, JOURNAL_DIR};
use egnyte_receiver::time::{now_ms, parse_time, rfc3339_ms};
use egnyte_receiver::{Element, EventType, Parser};

use super::data_dir::DataDir;
use super::Command;

/// Exit status when the data directory cannot be read.
const EXIT_FAILED: u8 = 1;

pub(super) const HELP: &str = "\
Look into a receiver's journal, read-only (also while it runs).

Usage: egnyte-receiver journal stats [--data-dir DIR]
       egnyte-receiver journal dump [--data-dir DIR] [FILTERS] [--quarantined]
       egnyte-receiver journal verify [--data-dir DIR]

stats: segments (records, bytes, acceptance times, a tail being written), each sink's
checkpointed position and lag, the dedup key file's fill, and the dead-letter file's lines
(re-deliver them with: egnyte-receiver replay --dead-letter).
dump: the journaled events, one JSON line each, exactly as received, oldest first.
verify: checks every record of every segment and every state file as the next start would,
changing nothing: damaged records (which positions are lost, where the valid ones resume), bad
tails, damaged checkpoint, dedup.key or dedup.keys, and what earlier starts set aside. Exit
status 0 all sound, 1 damage found, 2 cannot read. On a running receiver the tail being written
can look torn: stop it for a definite answer.

Options:
  --data-dir DIR     the receiver's data directory [default: the service's, see below]
  --since TIME       only events accepted at or after TIME: 2026-11-28T08:00:00Z, a date, a Unix
                     time (s or ms), or an age like 90m or 2d
  --from SEQ         only records numbered SEQ or later (see stats and the checkpoint)
  --type T           only this eventType; `fs:*` (or `fs:`) for a whole family
  --domain D         only this domain
  --quarantined      dump the quarantined elements instead of the events

Data directory without --data-dir: $EGNYTE_RECEIVER_DATA_DIR, else an EGNYTE_RECEIVER_DATA_DIR=
line of /etc/egnyte-receiver/env, else ./egnyte-data if it exists here, else the service's
/var/lib/egnyte-receiver if it exists, else ./egnyte-data. /var/lib/egnyte-receiver is read as
/var/lib/private/egnyte-receiver when only that exists (the unit's DynamicUser=yes; run as
root). The directory used and why are printed first, on stderr.
";

/// The filters `dump` and `replay` share.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Accepted at or after (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Sequence number at or after.
    pub from_seq: Option<u64>,
    /// An event type, or a family prefix ending in `:` (`fs:*` is read as `fs:`).
    pub event_type: Option<String>,
    /// A domain.
    pub domain: Option<String>,
}

impl Filter {
    /// The long options [`Filter::take`] reads.
    pub(crate) const OPTIONS: [&'static str; 4] = ["since", "from", "type", "domain"];

    /// Reads the value of filter option `name` (one of [`Filter::OPTIONS`]).
    pub(crate) fn take(&mut self, name: &str, parser: &mut lexopt::Parser) -> Result<(), lexopt::Error> {
        let value = parser.value()?.into_string().map_err(|_| format!("--{name}: not valid UTF-8"))?;
        match name {
            "since" => {
                let now = now_ms();
                self.since_ms = Some(parse_time(&value, now).map_err(|e| format!("--since: {e}"))?);
            }
            "from" => {
                self.from_seq =
                    Some(value.parse().map_err(|_| format!("--from: {value:?} is not a record number"))?);
            }
            "type" => self.event_type = Some(value.strip_suffix('*').unwrap_or(&value).to_string()),
            _ => self.domain = Some(value),
        }
        Ok(())
    }

    /// The first sequence number worth reading.
    pub(crate) fn first_seq(&self) -> u64 {
        self.from_seq.unwrap_or(1)
    }

    /// True when the record's header passes (time, position); the event itself is checked by
    /// [`Filter::matches_event`].
    pub(crate) fn matches_meta(&self, record: &Record) -> bool {
        self.since_ms.is_none_or(|since| record.meta.accepted_ms >= since)
            && self.from_seq.is_none_or(|from| record.meta.seq >= from)
    }

    /// True when the event's type and domain pass.
    pub(crate) fn matches_event(&self, event_type: EventType<'_>, domain: &str) -> bool {
        let type_ok = self.event_type.as_deref().is_none_or(|wanted| {
            let name = event_type.as_str();
            if wanted.ends_with(':') {
                name.starts_with(wanted)
            } else {
                name == wanted
            }
        });
        type_ok && self.domain.as_deref().is_none_or(|wanted| wanted == domain)
    }

    /// True when neither type nor domain is filtered (no parse needed).
    pub(crate) fn needs_event(&self) -> bool {
        self.event_type.is_some() || self.domain.is_some()
    }
}

/// A scan of the journal in `data_dir`, read-only.
pub(super) fn scan(data_dir: &Path, from_seq: u64) -> io::Result<Scan> {
    let storage = DirStorage::existing(&data_dir.join(JOURNAL_DIR))?;
    Scan::new(Arc::new(storage), from_seq)
}

/// What `journal` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Args {
    /// `journal stats`
    Stats { data_dir: DataDir },
    /// `journal verify`
    Verify { data_dir: DataDir },
    /// `journal dump`
    Dump { data_dir: DataDir, filter: Filter, quarantined: bool },
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let what = match parser.next()? {
            Some(Short('h') | Long("help")) | None => return Ok(Command::HelpText(HELP.into())),
            Some(Value(what)) => what,
            Some(arg) => return Err(arg.unexpected()),
        };
        let (mut dir, mut filter, mut quarantined) = (None, Filter::default(), false);
        let (dump, verify) = match what.to_str() {
            Some("stats") => (false, false),
            Some("dump") => (true, false),
            Some("verify") => (false, true),
            _ => return Err(format!("journal {what:?}: expected stats, dump or verify").into()),
        };
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(HELP.into())),
                Long("data-dir") => dir = Some(parser.value()?),
                Long("quarantined") if dump => quarantined = true,
                Long(name) if dump && Filter::OPTIONS.contains(&name) => {
                    let name = name.to_owned();
                    filter.take(&name, parser)?;
                }
                _ => return Err(arg.unexpected()),
            }
        }
        let data_dir = DataDir::find(dir);
        Ok(Command::Journal(if dump {
            Args::Dump { data_dir, filter, quarantined }
        } else if verify {
            Args::Verify { data_dir }
        } else {
            Args::Stats { data_dir }
        }))
    }
}

/// Runs `journal stats`, `dump` or `verify`; returns the exit status.
pub(super) fn run(args: &Args) -> u8 {
    let (Args::Stats { data_dir } | Args::Verify { data_dir } | Args::Dump { data_dir, .. }) = args;
    data_dir.announce();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if let Args::Verify { data_dir } = args {
        let verdict = super::verify::verify(&data_dir.path, &mut out);
        return match verdict.and_then(|sound| out.flush().map(|()| sound)) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(e) => {
                eprintln!("egnyte-receiver: {e}");
                2
            }
        };
    }
    let result = match args {
        Args::Stats { data_dir } => stats(&data_dir.path, &mut out),
        Args::Dump { data_dir, filter, quarantined } => dump(&data_dir.path, filter, *quarantined, &mut out),
        Args::Verify { .. } => unreachable!("handled above"),
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => 0,
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("egnyte-receiver: {e}");
            EXIT_FAILED
        }
    }
}

/// Bytes for people: `812 B`, `3.4 KiB`, `61.0 MiB`, `1.2 GiB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", bytes as f64 / 1_073_741_824.0),
    }
}

fn stats(data_dir: &Path, out: &mut impl Write) -> io::Result<()> {
    let journal_dir = data_dir.join(JOURNAL_DIR);
    let storage = DirStorage::existing(&journal_dir)?;
    let segments = journal::summarize(&storage)?;
    let events: u64 = segments.iter().map(|s| s.events).sum();
    let quarantined: u64 = segments.iter().map(|s| s.quarantined).sum();
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let next = segments.last().map_or(1, |s| s.end_seq);
    writeln!(
        out,
        "journal {}: {} segments, {} records ({events} events, {quarantined} quarantined), {}; next record {next}",
        journal_dir.display(),
        segments.len(),
        events + quarantined,
        size(bytes)
    )?;
    for s in &segments {
        let times = s.accepted_ms.map_or(String::from("empty"), |(first, last)| {
            format!("accepted {} .. {}", rfc3339_ms(first), rfc3339_ms(last))
        });
        let records = match s.end_seq - s.id {
            0 => String::from("no records"),
            _ => format!("records {}-{}", s.id, s.end_seq - 1),
        };
        write!(out, "  {:020}.seg  {records}  {}  {times}", s.id, size(s.bytes))?;
        match s.tail {
            Some((tail, why)) => writeln!(
                out,
                "  (last {tail} bytes not a record: {why}; being written, or cut at the next start)"
            )?,
            None => writeln!(out)?,
        }
    }
    let (aside, saved) = super::verify::set_aside(data_dir)?;
    if !aside.is_empty() || saved > 0 {
        writeln!(
            out,
            "damage found at earlier starts: {} state files set aside (*.damaged-*), {saved} spans of \
             journal bytes saved in corrupt/ (see: journal verify)",
            aside.len()
        )?;
    }
    let checkpoint = Checkpoint::load_or_default(data_dir)?;
    writeln!(out, "checkpoint {}:", data_dir.join(egnyte_receiver::dispatch::CHECKPOINT_FILE).display())?;
    if checkpoint.sinks.is_empty() {
        writeln!(out, "  no sink has checkpointed yet")?;
    }
    let oldest_undelivered = |position: u64| -> io::Result<Option<u64>> {
        let mut scan = scan(data_dir, position)?;
        Ok(scan.next_record()?.map(|r| r.meta.accepted_ms))
    };
    let now = now_ms();
    for (name, position) in &checkpoint.sinks {
        let lag = next.saturating_sub(*position);
        write!(out, "  sink {name}: position {position}, lag {lag} records")?;
        match oldest_undelivered(*position)? {
            Some(at) if lag > 0 => writeln!(
                out,
                ", oldest undelivered accepted {} ({} s ago)",
                rfc3339_ms(at),
                now.saturating_sub(at) / 1000
            )?,
            _ => writeln!(out)?,
        }
    }
    match KeyFile::capacity_in(data_dir)? {
        Some(capacity) => {
            let kept = checkpoint.keys_count.min(capacity);
            let tail = segments
                .iter()
                .filter(|s| s.end_seq > checkpoint.keys_through)
                .map(|s| s.events)
                .sum::<u64>();
            writeln!(
                out,
                "dedup: {kept} of {capacity} keys in {} ({:.1}% full), through record {}; journaled events after it: up to {tail}",
                egnyte_receiver::dispatch::KEYS_FILE,
                kept as f64 * 100.0 / capacity as f64,
                checkpoint.keys_through
            )?;
        }
        None => writeln!(out, "dedup: no key file yet")?,
    }
    let dead_letter = data_dir.join(DEAD_LETTER_FILE);
    match std::fs::read(&dead_letter) {
        Ok(bytes) => {
            let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
            let redrive =
                if lines > 0 { " (re-deliver them: egnyte-receiver replay --dead-letter)" } else { "" };
            writeln!(out, "dead letters: {lines} lines in {}{redrive}", dead_letter.display())?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            writeln!(out, "dead letters: no dead-letter file yet")?
        }
        Err(e) => writeln!(out, "dead letters: {}: {e}", dead_letter.display())?,
    }
    Ok(())
}

fn dump(data_dir: &Path, filter: &Filter, quarantined: bool, out: &mut impl Write) -> io::Result<()> {
    let mut scan = scan(data_dir, filter.first_seq())?;
    let mut parser = Parser::default();
    let wanted = if quarantined { Kind::Quarantined } else { Kind::Event };
    while let Some(record) = scan.next_record()? {
        if record.meta.kind != wanted || !filter.matches_meta(&record) {
            continue;
        }
        if wanted == Kind::Event && filter.needs_event() {
            let Ok(batch) = parser.parse(&record.payload) else { continue };
            let passes = match batch.elements().next() {
                Some(Element::Valid(event)) => filter.matches_event(event.event_type(), event.domain()),
                _ => false,
            };
            if !passes {
                continue;
            }
        }
        out.write_all(&record.payload)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn filter(args: &[&str]) -> Result<Filter, String> {
        let mut parser = lexopt::Parser::from_args(args.iter().map(OsString::from));
        let mut filter = Filter::default();
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            let lexopt::Arg::Long(name) = arg else { return Err(format!("not a filter: {arg:?}")) };
            let name = name.to_owned();
            filter.take(&name, &mut parser).map_err(|e| e.to_string())?;
        }
        Ok(filter)
    }

    #[test]
    fn filters_read_their_options_and_match() {
        let f =
            filter(&["--type", "fs:*", "--domain", "acme", "--from", "7", "--since", "2026-11-28T00:00:00Z"])
                .unwrap();
        assert_eq!(f.event_type.as_deref(), Some("fs:"));
        assert_eq!((f.from_seq, f.since_ms), (Some(7), Some(1_795_824_000_000)));
        assert!(f.matches_event(EventType::AddFile, "acme"));
        assert!(f.matches_event(EventType::parse("fs:some_future_event"), "acme"));
        assert!(!f.matches_event(EventType::CreateDownloadLink, "acme"));
        assert!(!f.matches_event(EventType::AddFile, "globex"));
        let exact = filter(&["--type", "fs:add_file"]).unwrap();
        assert!(
            exact.matches_event(EventType::AddFile, "x") && !exact.matches_event(EventType::AddFolder, "x")
        );
        assert!(!Filter::default().needs_event() && exact.needs_event());
        for bad in [&["--from", "x"][..], &["--since", "yesterday"], &["--type"]] {
            assert!(filter(bad).is_err(), "{bad:?}");
        }
    }
}
