//! `egnyte-receiver replay --sink SPEC [FILTERS]`: deliver journaled events again to a sink, for
//! example after a downstream outage sent them to the dead-letter file.
//!
//! It reads the journal read-only (the receiver may be running: see `journal.rs`), opens the sink
//! itself with the same code as `serve`, delivers each event that passes the filters, in journal
//! order, with a few retries, syncs the sink, and reports. It never touches the receiver's
//! checkpoint: a replay is an extra delivery, not a move of the sink's position. Events already
//! past `--journal-retention` are gone from the journal and cannot be replayed.
//!
//! `replay --dead-letter [--sink SPEC]` (the redrive) re-delivers exactly the lines of
//! `DATA_DIR/dead-letter.jsonl`, from the file itself (each line holds its event as received, so
//! this works after the journal let the records go), to SPEC or to the sink each line names, and
//! moves each redelivered line to `dead-letter.archived.jsonl`:
//! 1. one redrive at a time: it holds an exclusive `flock` on the archive for its whole run;
//! 2. under the receiver's lock on `dead-letter.jsonl` (see `dispatch/dead_letter.rs`: every
//!    append holds it) it reads the file, and lets go;
//! 3. it leaves alone every line the receiver still needs: at start the receiver reads back the
//!    lines of records at or past each sink's checkpointed position and does not deliver those
//!    records to that sink again (`dispatch/resume.rs`). Removing such a line would make the next
//!    start deliver its record to that sink once more, after the redrive already did. So a line
//!    is redriven only when its record is below its sink's position in the checkpoint on disk
//!    (positions only move forward; a dead-lettered record counts as finished, so the position
//!    passes it within a checkpoint interval), or no longer journaled, or its sink is not in the
//!    checkpoint at all (not configured: a sink configured again later starts over at the oldest
//!    journaled record anyway). Without a readable checkpoint, every line whose record is still
//!    journaled is left (the next start delivers those records again and relies on the lines);
//! 4. it delivers each line's event (3 attempts; one delivery per sink and record even when
//!    several lines hold it, for several failed sinks) and syncs the sinks, without any lock held;
//! 5. under the lock again, it re-reads the file (the receiver may have appended), writes every
//!    line but the redelivered ones to a new file (same owner and mode) and syncs it, appends the
//!    redelivered lines to the archive and syncs that, renames the new file over
//!    `dead-letter.jsonl`, syncs the directory, and lets go. The receiver's next append finds
//!    its old file gone and opens the new one. A crash between the archive and the rename leaves
//!    the lines in both: the next redrive delivers them again (at least once, never lost).
//!
//! Lines that fail again, and lines skipped (malformed, a sink that cannot be rebuilt, still
//! needed by the receiver) stay in `dead-letter.jsonl` exactly as they were.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use egnyte_receiver::dispatch::{Checkpoint, CHECKPOINT_FILE, DEAD_LETTER_FILE, QUARANTINE};
use egnyte_receiver::journal::{DirStorage, Kind, Storage, JOURNAL_DIR};
use egnyte_receiver::json::write_json_string;
use egnyte_receiver::sink::{Delivery, Failure, Sink, SinkOptions, SinkSpec};
use egnyte_receiver::{Element, Event, Parser};

use super::data_dir::DataDir;
use super::journal::{scan, Filter};
use super::Command;

/// Attempts per event before it is reported failed.
const ATTEMPTS: u32 = 3;
/// Wait before the second attempt; doubled before each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Most failures listed one by one on stderr (the rest are counted).
const LISTED_FAILURES: u64 = 20;
/// Where redriven dead-letter lines go, in the data directory.
pub(super) const ARCHIVE_FILE: &str = "dead-letter.archived.jsonl";
/// The redrive's new dead-letter file before it is renamed over the old one.
const REWRITE_FILE: &str = "dead-letter.jsonl.redrive";
/// Most times in a row the dead-letter file is found moved between opening and locking it.
const MAX_MOVED: usize = 8;

pub(super) const HELP: &str = "\
Deliver journaled events again to a sink (after a downstream outage, or to fill a new sink), or
re-deliver the dead-letter file's events (--dead-letter).

Usage: egnyte-receiver replay --sink SPEC [--data-dir DIR] [--since TIME | --from SEQ]
                              [--type T] [--domain D]
       egnyte-receiver replay --dead-letter [--sink SPEC] [--data-dir DIR]

Reads the journal read-only (the receiver may be running), delivers each event that passes the
filters to SPEC in the order it was accepted (3 attempts each), then makes the sink durable.
Only events still in the journal can be replayed: delivered ones stay --journal-retention
(1 hour by default). The receiver's own checkpoints are not changed.

--dead-letter re-delivers exactly the events in DATA_DIR/dead-letter.jsonl, read from that file
(so also those the journal no longer holds), to SPEC, or without --sink to the sink each line
names (jsonl:/PATH, exec:/PROGRAM or stdout; the NAME of a NAME=SPEC sink, a handler:NAME or a
relative path cannot be rebuilt here: give --sink). Quarantined elements are never re-delivered
(see journal dump --quarantined). Each redelivered line is appended to
dead-letter.archived.jsonl (synced), then removed from dead-letter.jsonl; a line that fails
again, or is skipped, stays there as it was. Safe while the receiver runs (the file is locked
around the receiver's appends); a line for a record the receiver has not checkpointed past yet
is left for a later run, because its next start relies on it. Nothing else is re-delivered.

Options:
  --sink SPEC          jsonl:PATH, exec:PROGRAM or stdout (as for serve)
  --dead-letter        re-deliver the dead-letter file's lines (see above)
  --data-dir DIR       the receiver's data directory [default: the service's, see below]
  --since TIME         only events accepted at or after TIME: 2026-11-28T08:00:00Z, a date, a
                       Unix time (s or ms), or an age like 90m or 2d
  --from SEQ           only records numbered SEQ or later (a dead-letter line's \"seq\")
  --type T             only this eventType; `fs:*` for a whole family
  --domain D           only this domain
  --exec-timeout SECS  for an exec sink [default: 30]
  --http-sign-secret-file FILE
                       sign an http sink's POSTs as serve does (Standard Webhooks, whsec_ secret)
(The filters select journaled events; --dead-letter takes none.)

Data directory without --data-dir: $EGNYTE_RECEIVER_DATA_DIR, else an EGNYTE_RECEIVER_DATA_DIR=
line of /etc/egnyte-receiver/env, else ./egnyte-data if it exists here, else the service's
/var/lib/egnyte-receiver if it exists, else ./egnyte-data. /var/lib/egnyte-receiver is read as
/var/lib/private/egnyte-receiver when only that exists (the unit's DynamicUser=yes; run as
root). The directory used and why are printed first, on stderr.

Exit status: 0 every selected event (every dead-letter line) delivered; 1 some failed or were
skipped (listed on stderr), or the journal or dead-letter file could not be read; 2 usage error.
";

/// The arguments of `replay`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    sink: Option<String>,
    data_dir: DataDir,
    filter: Filter,
    exec_timeout: Duration,
    /// `--http-sign-secret-file`: an http sink signs as `serve`'s does.
    sign_secret: Option<std::path::PathBuf>,
    dead_letter: bool,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let (mut sink, mut dir, mut filter, mut dead_letter) = (None, None, Filter::default(), false);
        let mut exec_timeout = SinkOptions::default().exec_timeout;
        let mut sign_secret = None;
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(HELP.into())),
                Long("sink") => {
                    sink = Some(parser.value()?.into_string().map_err(|_| "--sink: not valid UTF-8")?)
                }
                Long("dead-letter") => dead_letter = true,
                Long("data-dir") => dir = Some(parser.value()?),
                Long("http-sign-secret-file") => sign_secret = Some(parser.value()?.into()),
                Long("exec-timeout") => {
                    let secs: u64 = parser.value()?.parse()?;
                    exec_timeout = Duration::from_secs(secs.max(1));
                }
                Long(name) if Filter::OPTIONS.contains(&name) => {
                    let name = name.to_owned();
                    filter.take(&name, parser)?;
                }
                _ => return Err(arg.unexpected()),
            }
        }
        if dead_letter && filter != Filter::default() {
            return Err("--dead-letter re-delivers every line of the dead-letter file: it takes no \
                        --since, --from, --type or --domain"
                .into());
        }
        if !dead_letter && sink.is_none() {
            return Err("replay needs --sink SPEC (or --dead-letter)".into());
        }
        if filter.since_ms.is_some() && filter.from_seq.is_some() {
            return Err("give --since or --from, not both".into());
        }
        let data_dir = DataDir::find(dir);
        Ok(Command::Replay(Args { sink, data_dir, filter, exec_timeout, sign_secret, dead_letter }))
    }
}

/// Replays; returns the exit status.
pub(super) fn run(args: &Args) -> u8 {
    let options = SinkOptions {
        exec_timeout: args.exec_timeout,
        http_sign_secret_file: args.sign_secret.clone(),
        ..SinkOptions::default()
    };
    let spec: Option<SinkSpec> = match args.sink.as_deref().map(str::parse).transpose() {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("egnyte-receiver: --sink: {e}");
            return super::EXIT_USAGE;
        }
    };
    args.data_dir.announce();
    if args.dead_letter {
        return redrive(&args.data_dir.path, spec.as_ref(), &options);
    }
    let spec = spec.expect("parse requires --sink without --dead-letter");
    let sink = match Sink::open_for_replay(&spec, &options) {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("egnyte-receiver: sink {}: {e}", spec.name());
            return 1;
        }
    };
    match replay(args, &sink) {
        Ok(tally) => {
            // stdout may be the sink itself (`--sink stdout`): the report goes to stderr.
            eprintln!(
                "replayed {} events to {} ({} records read, {} left out by the filters, {} failed)",
                tally.delivered,
                spec.name(),
                tally.read,
                tally.skipped,
                tally.failed
            );
            u8::from(tally.failed > 0)
        }
        Err(e) => {
            eprintln!("egnyte-receiver: {e}");
            1
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    read: u64,
    skipped: u64,
    delivered: u64,
    failed: u64,
}

fn replay(args: &Args, sink: &Sink) -> io::Result<Tally> {
    let mut scan = scan(&args.data_dir.path, args.filter.first_seq())?;
    let mut parser = Parser::default();
    let mut tally = Tally::default();
    while let Some(record) = scan.next_record()? {
        tally.read += 1;
        if record.meta.kind != Kind::Event || !args.filter.matches_meta(&record) {
            tally.skipped += 1;
            continue;
        }
        let batch = match parser.parse(&record.payload) {
            Ok(batch) => batch,
            Err(e) => {
                fail(&mut tally, record.meta.seq, &format!("journaled event does not parse: {e}"));
                continue;
            }
        };
        let Some(Element::Valid(event)) = batch.elements().next() else {
            fail(&mut tally, record.meta.seq, "journaled event is not a valid event");
            continue;
        };
        if !args.filter.matches_event(event.event_type(), event.domain()) {
            tally.skipped += 1;
            continue;
        }
        match deliver(sink, &record.payload, &event, record.meta.seq) {
            Ok(()) => tally.delivered += 1,
            Err(failure) => fail(&mut tally, record.meta.seq, &failure.reason),
        }
    }
    sink.sync()?;
    let _ = io::stdout().flush();
    Ok(tally)
}

/// Delivers one event, with [`ATTEMPTS`] attempts.
fn deliver(sink: &Sink, payload: &[u8], event: &Event<'_>, position: u64) -> Result<(), Failure> {
    let mut delay = FIRST_RETRY_DELAY;
    let mut delivery = Delivery { position, attempt: 1 };
    let mut outcome = sink.deliver(payload, event, &delivery);
    for attempt in 2..=ATTEMPTS {
        if outcome.is_ok() {
            break;
        }
        std::thread::sleep(delay);
        delay *= 2;
        delivery.attempt = attempt;
        outcome = sink.deliver(payload, event, &delivery);
    }
    outcome
}

fn fail(tally: &mut Tally, seq: u64, reason: &str) {
    tally.failed += 1;
    if tally.failed <= LISTED_FAILURES {
        eprintln!("egnyte-receiver: record {seq}: {reason}");
    } else if tally.failed == LISTED_FAILURES + 1 {
        eprintln!("egnyte-receiver: (further failures are only counted)");
    }
}

// ---------------------------------------------------------------------------------------------
// The dead-letter redrive (`--dead-letter`): see the module documentation.

/// One line of the dead-letter file, as `dispatch/dead_letter.rs` writes it:
/// `{"sink":S,"reason":R,"attempts":N,"seq":N,"acceptedMs":N,"event":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeadLine<'a> {
    sink: String,
    reason: String,
    attempts: u64,
    seq: u64,
    accepted_ms: u64,
    /// The event exactly as received.
    event: &'a [u8],
}

/// Reads one dead-letter line (without its `\n`); the error says what is wrong with it.
fn parse_dead_line(line: &[u8]) -> Result<DeadLine<'_>, String> {
    fn field<'t>(rest: &'t [u8], name: &str) -> Result<&'t [u8], String> {
        rest.strip_prefix(format!(",\"{name}\":").as_bytes())
            .ok_or_else(|| format!("no \"{name}\" where expected (not a dead-letter line, or a torn one)"))
    }
    fn string<'t>(rest: &'t [u8], name: &str) -> Result<(String, &'t [u8]), String> {
        let (value, len) = json_string(rest).ok_or_else(|| format!("\"{name}\" is not a JSON string"))?;
        Ok((value, &rest[len..]))
    }
    fn number<'t>(rest: &'t [u8], name: &str) -> Result<(u64, &'t [u8]), String> {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let value = std::str::from_utf8(&rest[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("\"{name}\" is not a number"))?;
        Ok((value, &rest[digits..]))
    }
    let rest =
        line.strip_prefix(b"{\"sink\":").ok_or("does not start with {\"sink\": (not a dead-letter line)")?;
    let (sink, rest) = string(rest, "sink")?;
    let (reason, rest) = string(field(rest, "reason")?, "reason")?;
    let (attempts, rest) = number(field(rest, "attempts")?, "attempts")?;
    let (seq, rest) = number(field(rest, "seq")?, "seq")?;
    let (accepted_ms, rest) = number(field(rest, "acceptedMs")?, "acceptedMs")?;
    let event = field(rest, "event")?
        .strip_suffix(b"}")
        .filter(|event| event.starts_with(b"{") && event.ends_with(b"}"))
        .ok_or("the event does not end the line as one JSON object (a torn line?)")?;
    Ok(DeadLine { sink, reason, attempts, seq, accepted_ms, event })
}

/// The JSON string at the start of `text`, unescaped, and its length quotes included.
fn json_string(text: &[u8]) -> Option<(String, usize)> {
    if text.first() != Some(&b'"') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match *text.get(i)? {
            b'"' => return Some((String::from_utf8(out).ok()?, i + 1)),
            b'\\' => {
                let escaped = *text.get(i + 1)?;
                i += 2;
                let c = match escaped {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hex = |at: usize| {
                            let digits = std::str::from_utf8(text.get(at..at + 4)?).ok()?;
                            u32::from_str_radix(digits, 16).ok()
                        };
                        let first = hex(i)?;
                        i += 4;
                        let code = if (0xd800..0xdc00).contains(&first) {
                            if text.get(i..i + 2)? != b"\\u" {
                                return None;
                            }
                            let second = hex(i + 2).filter(|s| (0xdc00..0xe000).contains(s))?;
                            i += 6;
                            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
                        } else {
                            first
                        };
                        char::from_u32(code)?
                    }
                    _ => return None,
                };
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            0..0x20 => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// Why a line is left in the dead-letter file without an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Skip {
    Malformed,
    Quarantine,
    NotRebuildable,
    StillNeeded,
}

impl Skip {
    fn label(self) -> &'static str {
        match self {
            Skip::Malformed => "malformed",
            Skip::Quarantine => "quarantined elements, not events",
            Skip::NotRebuildable => "sink not rebuildable here: give --sink",
            Skip::StillNeeded => "not yet past the receiver's checkpoint: run again shortly",
        }
    }
}

/// What became of one line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Redelivered,
    Failed(String),
    Skipped(Skip, String),
}

/// What the receiver's next start needs from the dead-letter file (see the module
/// documentation, step 3).
#[derive(Debug)]
struct Needs {
    /// The stored checkpoint; `None` when missing or damaged (the reason in `without`).
    checkpoint: Option<Checkpoint>,
    without: String,
    /// The first record still journaled; `None` without a journal.
    oldest: Option<u64>,
}

impl Needs {
    fn load(data_dir: &Path) -> io::Result<Needs> {
        let (checkpoint, without) = if !data_dir.join(CHECKPOINT_FILE).exists() {
            (None, "there is no checkpoint".to_string())
        } else {
            match Checkpoint::load_or_default(data_dir) {
                Ok(checkpoint) => (Some(checkpoint), String::new()),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    (None, format!("the checkpoint is damaged ({e})"))
                }
                Err(e) => return Err(e),
            }
        };
        let oldest = match DirStorage::existing(&data_dir.join(JOURNAL_DIR)) {
            Ok(storage) => storage.segments()?.first().copied(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Needs { checkpoint, without, oldest })
    }

    /// Why the receiver still needs the line of `sink` for record `seq`, if it does.
    fn why_needed(&self, sink: &str, seq: u64) -> Option<String> {
        if self.oldest.is_none_or(|oldest| seq < oldest) {
            return None; // Not journaled: never delivered again by the receiver.
        }
        match &self.checkpoint {
            Some(checkpoint) => {
                checkpoint.position(sink).filter(|&position| seq >= position).map(|position| {
                    format!(
                    "the receiver has not checkpointed {sink} past record {seq} yet (position {position}): \
                     its next start would rely on this line not to deliver it again"
                )
                })
            }
            None => Some(format!(
                "{}: the receiver's next start delivers every journaled record again and relies on this \
                 line not to deliver record {seq} to {sink}",
                self.without
            )),
        }
    }
}

/// The sink to redeliver a line of `sink` to, without `--sink`.
fn rebuild(sink: &str) -> Result<SinkSpec, String> {
    let spec: SinkSpec = sink.parse().map_err(|_| {
        format!("sink {sink} cannot be rebuilt by this tool (only jsonl:, exec: and stdout can): give --sink SPEC")
    })?;
    match &spec {
        SinkSpec::Jsonl(path) | SinkSpec::Exec(path) if path.is_relative() => Err(format!(
            "sink {sink} names a relative path (relative to the receiver's working directory): give --sink SPEC"
        )),
        _ => Ok(spec),
    }
}

/// A line and what to do with it.
#[derive(Debug)]
struct Entry<'a> {
    /// 1-based line number in the file as read.
    number: usize,
    line: &'a [u8],
    parsed: Option<DeadLine<'a>>,
    /// The sink it goes to (by spec name), when it is to be delivered.
    target: Option<String>,
    verdict: Option<Verdict>,
}

/// Runs the redrive; returns the exit status.
fn redrive(data_dir: &Path, spec: Option<&SinkSpec>, options: &SinkOptions) -> u8 {
    match redrive_in(data_dir, spec, options) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("egnyte-receiver: {e}");
            1
        }
    }
}

fn redrive_in(data_dir: &Path, spec: Option<&SinkSpec>, options: &SinkOptions) -> io::Result<u8> {
    let path = data_dir.join(DEAD_LETTER_FILE);
    if !data_dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no data directory here", data_dir.display()),
        ));
    }
    // 1. One redrive at a time.
    let archive_path = data_dir.join(ARCHIVE_FILE);
    let mut archive = open_archive(&archive_path, data_dir)?;
    // 2. The file as it is now.
    let Some(text) = read_locked(&path)? else {
        eprintln!(
            "dead-letter {}: no such file: 0 redelivered, 0 still failing (kept), 0 skipped",
            path.display()
        );
        return Ok(0);
    };
    let mut entries: Vec<Entry<'_>> = text
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| Entry { number: n + 1, line, parsed: None, target: None, verdict: None })
        .collect();
    // 3. What may be delivered and removed.
    let needs = Needs::load(data_dir)?;
    let mut parser = Parser::default();
    let mut specs: HashMap<String, SinkSpec> = HashMap::new();
    for entry in &mut entries {
        let dead = match parse_dead_line(entry.line) {
            Ok(dead) => dead,
            Err(why) => {
                entry.verdict = Some(Verdict::Skipped(Skip::Malformed, why));
                continue;
            }
        };
        let skip = if dead.sink == QUARANTINE {
            Some((
                Skip::Quarantine,
                "a quarantined element, not an event (see: journal dump --quarantined)".into(),
            ))
        } else if !matches!(
            parser.parse(dead.event).map(|b| matches!(b.elements().next(), Some(Element::Valid(_)))),
            Ok(true)
        ) {
            Some((Skip::Malformed, "its event is not one valid event".to_string()))
        } else if let Some(why) = needs.why_needed(&dead.sink, dead.seq) {
            Some((Skip::StillNeeded, why))
        } else {
            match spec.cloned().map_or_else(|| rebuild(&dead.sink), Ok) {
                Ok(spec) => {
                    let name = spec.name();
                    specs.entry(name.clone()).or_insert(spec);
                    entry.target = Some(name);
                    None
                }
                Err(why) => Some((Skip::NotRebuildable, why)),
            }
        };
        if let Some((skip, why)) = skip {
            entry.verdict = Some(Verdict::Skipped(skip, why));
        }
        entry.parsed = Some(dead);
    }
    // 4. Deliver, once per (sink, record), and make each sink durable.
    let mut sinks: HashMap<String, Result<Sink, String>> = HashMap::new();
    let mut outcomes: HashMap<(String, u64, &[u8]), Result<(), String>> = HashMap::new();
    let mut duplicates = 0u64;
    for entry in &mut entries {
        let (Some(target), Some(dead)) = (&entry.target, &entry.parsed) else { continue };
        let key = (target.clone(), dead.seq, dead.event);
        let outcome = if let Some(outcome) = outcomes.get(&key) {
            duplicates += 1;
            outcome.clone()
        } else {
            let sink = sinks.entry(target.clone()).or_insert_with(|| {
                if writes_into(&specs[target], &[&path, &archive_path]) {
                    return Err("refused: that is the dead-letter file or its archive".to_string());
                }
                Sink::open_for_replay(&specs[target], options)
                    .map_err(|e| format!("cannot open the sink: {e}"))
            });
            let outcome = match sink {
                Err(why) => Err(why.clone()),
                Ok(sink) => match parser.parse(dead.event) {
                    Ok(batch) => match batch.elements().next() {
                        Some(Element::Valid(event)) => {
                            deliver(sink, dead.event, &event, dead.seq).map_err(|f| f.reason)
                        }
                        _ => Err("its event is not one valid event".to_string()),
                    },
                    Err(e) => Err(format!("its event does not parse: {e}")),
                },
            };
            outcomes.insert(key, outcome.clone());
            outcome
        };
        entry.verdict = Some(match outcome {
            Ok(()) => Verdict::Redelivered,
            Err(why) => Verdict::Failed(why),
        });
    }
    for (name, sink) in &sinks {
        let Ok(sink) = sink else { continue };
        if let Err(e) = sink.sync() {
            for entry in entries.iter_mut().filter(|e| e.target.as_ref() == Some(name)) {
                if entry.verdict == Some(Verdict::Redelivered) {
                    entry.verdict = Some(Verdict::Failed(format!("the sink could not be made durable: {e}")));
                }
            }
        }
    }
    let _ = io::stdout().flush();
    // 5. Archive the redelivered lines, then take them out of the file.
    let now = egnyte_receiver::time::now_ms();
    let mut archived = Vec::new();
    let mut remove: HashMap<&[u8], usize> = HashMap::new();
    for entry in entries.iter().filter(|e| e.verdict == Some(Verdict::Redelivered)) {
        archived.extend_from_slice(&archive_line(
            entry.line,
            entry.target.as_deref().unwrap_or_default(),
            now,
        ));
        *remove.entry(entry.line).or_default() += 1;
    }
    let mut gone = 0;
    if !archived.is_empty() {
        let lines = remove.values().sum::<usize>();
        gone = commit(&path, data_dir, &mut archive, &archived, remove).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "{e}: {lines} lines were redelivered but not moved out of {}; they stay there, and a \
                     later redrive delivers them again",
                    path.display()
                ),
            )
        })?;
    }
    Ok(report(&path, &archive_path, &entries, spec, duplicates, gone))
}

/// True when `spec` is a jsonl file that is one of `files` (which would deadlock on the lock,
/// or feed the redrive its own output).
fn writes_into(spec: &SinkSpec, files: &[&Path]) -> bool {
    let SinkSpec::Jsonl(target) = spec.without_name() else { return false };
    let Ok(target) = std::fs::metadata(target) else { return false };
    files.iter().any(|file| {
        std::fs::metadata(file).is_ok_and(|file| (file.dev(), file.ino()) == (target.dev(), target.ino()))
    })
}

/// Opens (creating) the archive and takes the redrive's own lock on it.
fn open_archive(path: &Path, data_dir: &Path) -> io::Result<File> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let existed = path.exists();
    let file = egnyte_receiver::private_files::options()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(with_path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{}: another replay --dead-letter is running on this data directory", path.display()),
            ))
        }
        Err(TryLockError::Error(e)) => return Err(with_path(e)),
    }
    if !existed {
        // Its name must be durable before any line it holds counts as archived.
        sync_dir(data_dir)?;
    }
    Ok(file)
}

/// The dead-letter file, locked as the receiver locks it around an append (see
/// `dispatch/dead_letter.rs`), and still the file the path names; `None` when there is none.
fn lock_dead_letter(path: &Path) -> io::Result<Option<File>> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    for _ in 0..MAX_MOVED {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(with_path(e)),
        };
        // The receiver holds it only while it appends and syncs one line.
        file.lock().map_err(with_path)?;
        let held = file.metadata().map_err(with_path)?;
        match std::fs::metadata(path) {
            Ok(now) if held.nlink() > 0 && (now.dev(), now.ino()) == (held.dev(), held.ino()) => {
                return Ok(Some(file))
            }
            // Moved (logrotate) or replaced between the open and the lock: the path's file now.
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(with_path(e)),
        }
    }
    Err(io::Error::other(format!("{}: keeps being replaced", path.display())))
}

/// The dead-letter file's content, read under the lock.
fn read_locked(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let Some(mut file) = lock_dead_letter(path)? else { return Ok(None) };
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(Some(text))
}

/// An archive line: the dead-letter line with when and where it was redelivered in front.
fn archive_line(line: &[u8], to: &str, now_ms: u64) -> Vec<u8> {
    let mut head = format!("{{\"redrivenMs\":{now_ms},\"to\":");
    let _ = write_json_string(&mut head, to);
    head.push(',');
    let mut out = head.into_bytes();
    out.extend_from_slice(&line[1..]);
    out.push(b'\n');
    out
}

/// Step 5 of the module documentation. Returns how many redelivered lines were no longer in the
/// file (moved away by logrotate meanwhile; they are archived all the same).
fn commit(
    path: &Path,
    data_dir: &Path,
    archive: &mut File,
    archived: &[u8],
    mut remove: HashMap<&[u8], usize>,
) -> io::Result<usize> {
    let with_path = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let locked = lock_dead_letter(path)?;
    let mut kept = Vec::new();
    let mut removed = 0;
    if let Some(mut file) = locked.as_ref() {
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(|e| with_path(path, e))?;
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match remove.get_mut(line) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    removed += 1;
                }
                _ => {
                    kept.extend_from_slice(line);
                    kept.push(b'\n');
                }
            }
        }
    }
    let rewrite = data_dir.join(REWRITE_FILE);
    if let (Some(file), true) = (locked.as_ref(), removed > 0) {
        // The new file, whole and durable, with the old one's owner and mode (the receiver,
        // maybe a DynamicUser, must go on appending to it).
        let held = file.metadata().map_err(|e| with_path(path, e))?;
        let written = (|| {
            let mut new = egnyte_receiver::private_files::options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&rewrite)?;
            new.set_permissions(std::fs::Permissions::from_mode(held.mode() & 0o7777))?;
            let own = new.metadata()?;
            if (own.uid(), own.gid()) != (held.uid(), held.gid()) {
                std::os::unix::fs::fchown(&new, Some(held.uid()), Some(held.gid()))?;
            }
            new.write_all(&kept)?;
            new.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&rewrite);
            return Err(with_path(&rewrite, e));
        }
    }
    archive.write_all(archived).and_then(|()| archive.sync_data()).map_err(|e| {
        let _ = std::fs::remove_file(&rewrite);
        with_path(&data_dir.join(ARCHIVE_FILE), e)
    })?;
    if locked.is_some() && removed > 0 {
        std::fs::rename(&rewrite, path).map_err(|e| with_path(path, e))?;
        sync_dir(data_dir)?;
    }
    // The lock goes with `locked`, after the rename: an append waiting for it finds its file
    // replaced and opens the new one.
    drop(locked);
    Ok(remove.values().sum())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

/// Prints what became of each line that was not redelivered (the first few) and the summary;
/// returns the exit status.
fn report(
    path: &Path,
    archive: &Path,
    entries: &[Entry<'_>],
    spec: Option<&SinkSpec>,
    duplicates: u64,
    gone: usize,
) -> u8 {
    let (mut redelivered, mut failed, mut listed) = (0u64, 0u64, 0u64);
    let mut skipped: std::collections::BTreeMap<Skip, u64> = Default::default();
    for entry in entries {
        let what = match entry.verdict.as_ref() {
            Some(Verdict::Redelivered) | None => {
                redelivered += u64::from(entry.verdict.is_some());
                continue;
            }
            Some(Verdict::Failed(why)) => {
                failed += 1;
                format!("still failing, kept: {why}")
            }
            Some(Verdict::Skipped(skip, why)) => {
                *skipped.entry(*skip).or_default() += 1;
                format!("skipped, kept: {why}")
            }
        };
        listed += 1;
        if listed <= LISTED_FAILURES {
            match &entry.parsed {
                Some(dead) => eprintln!(
                    "egnyte-receiver: {} line {} (record {}, sink {}): {what}",
                    DEAD_LETTER_FILE, entry.number, dead.seq, dead.sink
                ),
                None => eprintln!("egnyte-receiver: {} line {}: {what}", DEAD_LETTER_FILE, entry.number),
            }
        } else if listed == LISTED_FAILURES + 1 {
            eprintln!("egnyte-receiver: (further lines are only counted)");
        }
    }
    let skipped_total: u64 = skipped.values().sum();
    let mut summary = format!("dead-letter {}: {redelivered} redelivered", path.display());
    if let Some(spec) = spec {
        summary.push_str(&format!(" to {}", spec.name()));
    }
    summary.push_str(&format!(", {failed} still failing (kept), {skipped_total} skipped"));
    if skipped_total > 0 {
        let why: Vec<String> = skipped.iter().map(|(skip, n)| format!("{n} {}", skip.label())).collect();
        summary.push_str(&format!(" (kept: {})", why.join(", ")));
    }
    if redelivered > 0 {
        summary.push_str(&format!("; moved to {}", archive.display()));
    }
    if duplicates > 0 {
        summary.push_str(&format!("; {duplicates} lines repeated a (sink, record) and were delivered once"));
    }
    if gone > 0 {
        summary.push_str(&format!(
            "; {gone} were no longer in the file (rotated away meanwhile?) and are archived all the same"
        ));
    }
    eprintln!("{summary}");
    u8::from(failed > 0 || skipped_total > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const EVENT: &str = r#"{"eventId":"e1","domain":"acme","timestamp":1,"actionSource":"WebUI","eventType":"fs:add_file","data":{"targetPath":"/Shared/a.txt"}}"#;

    fn line(sink: &str, seq: u64, event: &str) -> String {
        let mut quoted = String::new();
        write_json_string(&mut quoted, sink).unwrap();
        format!("{{\"sink\":{quoted},\"reason\":\"exit status 1\",\"attempts\":8,\"seq\":{seq},\"acceptedMs\":7,\"event\":{event}}}")
    }

    #[test]
    fn reads_dead_letter_lines_as_the_receiver_writes_them() {
        let text = line("exec:/bin/a \"b\" \u{1} é", 42, EVENT);
        let dead = parse_dead_line(text.as_bytes()).unwrap();
        assert_eq!(
            dead,
            DeadLine {
                sink: "exec:/bin/a \"b\" \u{1} é".into(),
                reason: "exit status 1".into(),
                attempts: 8,
                seq: 42,
                accepted_ms: 7,
                event: EVENT.as_bytes(),
            }
        );
        // A reason holding what looks like fields, and every JSON escape.
        let tricky = r#"{"sink":"stdout","reason":"x \",\"seq\":9 \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00","attempts":1,"seq":3,"acceptedMs":0,"event":{"eventId":"}"}}"#;
        let dead = parse_dead_line(tricky.as_bytes()).unwrap();
        assert_eq!(dead.reason, "x \",\"seq\":9 \\ / \u{8}\u{c}\n\r\t é 😀");
        assert_eq!((dead.seq, dead.event), (3, &br#"{"eventId":"}"}"#[..]));
    }

    #[test]
    fn malformed_lines_say_what_is_wrong() {
        let good = line("stdout", 5, EVENT);
        let cut_in_event = &good[..good.len() - 10];
        for (text, wanted) in [
            ("", "does not start"),
            ("garbage", "does not start"),
            ("{\"sink\":5}", "\"sink\" is not a JSON string"),
            ("{\"sink\":\"a\\q\",\"reason\":\"r\"}", "\"sink\" is not a JSON string"),
            ("{\"sink\":\"unterminated", "\"sink\" is not a JSON string"),
            ("{\"sink\":\"a\",\"seq\":1}", "no \"reason\""),
            ("{\"sink\":\"a\",\"reason\":\"r\",\"attempts\":x}", "\"attempts\" is not a number"),
            ("{\"sink\":\"a\",\"reason\":\"r\",\"attempts\":1,\"seq\":}", "\"seq\" is not a number"),
            ("{\"sink\":\"a\",\"reason\":\"r\",\"attempts\":1,\"seq\":2,\"acceptedMs\":3}", "no \"event\""),
            (
                "{\"sink\":\"a\",\"reason\":\"r\",\"attempts\":1,\"seq\":2,\"acceptedMs\":3,\"event\":[]}",
                "torn",
            ),
            (cut_in_event, "torn"),
            ("{\"sink\":\"\\ud800x\",\"reason\":\"r\"}", "\"sink\" is not a JSON string"),
        ] {
            let error = parse_dead_line(text.as_bytes()).expect_err(text);
            assert!(error.contains(wanted), "{text:?}: {error}");
        }
    }

    #[test]
    fn archive_lines_keep_every_field_and_add_when_and_where() {
        let text = line("exec:/x", 5, EVENT);
        let archived = archive_line(text.as_bytes(), "jsonl:/out \"q\".jsonl", 99);
        let archived = String::from_utf8(archived).unwrap();
        assert!(archived.ends_with("}\n"));
        let value: serde_json::Value = serde_json::from_str(&archived).unwrap();
        assert_eq!(value["redrivenMs"], 99);
        assert_eq!(value["to"], "jsonl:/out \"q\".jsonl");
        assert_eq!(value["sink"], "exec:/x");
        assert_eq!(value["seq"], 5);
        assert_eq!(value["event"], serde_json::from_str::<serde_json::Value>(EVENT).unwrap());
        // The receiver never reads an archived line back as a dead letter.
        assert!(!archived.starts_with("{\"sink\":"));
    }

    #[test]
    fn only_command_line_sinks_with_absolute_paths_are_rebuilt() {
        let name = |spec: &str| spec.parse::<SinkSpec>().unwrap().name();
        assert_eq!(rebuild("exec:/bin/x").unwrap().name(), name("exec:/bin/x"));
        assert_eq!(rebuild("jsonl:/var/lib/e.jsonl").unwrap().name(), name("jsonl:/var/lib/e.jsonl"));
        assert_eq!(rebuild("stdout").unwrap().name(), "stdout");
        assert!(rebuild("handler:audit").unwrap_err().contains("cannot be rebuilt"));
        assert!(rebuild("quarantine").unwrap_err().contains("cannot be rebuilt"));
        // A NAME=SPEC sink's lines carry only its NAME.
        assert!(rebuild("audit").unwrap_err().contains("cannot be rebuilt"));
        assert!(rebuild("jsonl:events.jsonl").unwrap_err().contains("relative path"));
    }

    #[test]
    fn a_line_is_needed_while_its_record_is_journaled_at_or_past_its_sinks_position() {
        let checkpoint = Checkpoint { sinks: vec![("exec:/a".into(), 10)], ..Checkpoint::default() };
        let needs = Needs { checkpoint: Some(checkpoint), without: String::new(), oldest: Some(5) };
        assert_eq!(needs.why_needed("exec:/a", 9), None, "below the position");
        assert!(needs.why_needed("exec:/a", 10).unwrap().contains("position 10"));
        assert_eq!(needs.why_needed("exec:/gone", 12), None, "a sink no longer configured");
        let unjournaled = Needs { oldest: Some(20), ..needs };
        assert_eq!(unjournaled.why_needed("exec:/a", 15), None, "no longer journaled");
        let no_journal = Needs { oldest: None, ..unjournaled };
        assert_eq!(no_journal.why_needed("exec:/a", 15), None);
        let damaged =
            Needs { checkpoint: None, without: "the checkpoint is damaged".into(), oldest: Some(5) };
        assert!(damaged.why_needed("exec:/gone", 7).unwrap().starts_with("the checkpoint is damaged"));
        assert_eq!(damaged.why_needed("exec:/gone", 4), None);
    }

    fn args(list: &[&str]) -> Result<Args, String> {
        let all = ["replay"].iter().chain(list).map(std::ffi::OsString::from);
        match Command::from_args(all).map_err(|e| e.to_string())? {
            Command::Replay(args) => Ok(args),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn dead_letter_options() {
        let parsed = args(&["--dead-letter", "--data-dir", "/d"]).unwrap();
        assert!(parsed.dead_letter && parsed.sink.is_none());
        assert_eq!(
            (parsed.data_dir.path, parsed.data_dir.why),
            (PathBuf::from("/d"), "from --data-dir".to_string())
        );
        assert_eq!(args(&["--dead-letter", "--sink", "stdout"]).unwrap().sink.as_deref(), Some("stdout"));
        assert!(args(&["--dead-letter", "--from", "3"]).unwrap_err().contains("takes no"));
        assert!(args(&[]).unwrap_err().contains("replay needs --sink SPEC (or --dead-letter)"));
        assert!(HELP.contains("--dead-letter") && HELP.contains("/etc/egnyte-receiver/env"));
    }

    /// The whole redrive on a data directory without a receiver: a good line, a malformed one,
    /// a handler's, one still needed, one that fails.
    #[test]
    fn redrive_moves_what_it_delivered_and_keeps_the_rest() {
        let temp = egnyte_receiver::test_dir::TempDir::new("redrive");
        let dir = temp.path();
        let out = dir.join("out.jsonl");
        let event = |id: &str| EVENT.replace("e1", id);
        let good = line("exec:/bin/false", 3, &event("good"));
        let twice = line("exec:/bin/true", 3, &event("good"));
        let lines = [
            good.clone(),
            "not a dead letter".to_string(),
            line("handler:audit", 4, &event("h")),
            line("exec:/bin/false", 12, &event("needed")),
            twice.clone(),
            line("exec:/bin/false", 4, r#"{"eventId":"no domain"}"#),
        ];
        std::fs::write(dir.join(DEAD_LETTER_FILE), lines.join("\n") + "\n").unwrap();
        std::fs::write(
            dir.join(CHECKPOINT_FILE),
            "egnyte-receiver checkpoint v1\nkeys 0 1\nsink 10 exec:/bin/false\n",
        )
        .unwrap();
        std::fs::create_dir(dir.join(JOURNAL_DIR)).unwrap();
        std::fs::write(dir.join(JOURNAL_DIR).join(format!("{:020}.seg", 2)), b"").unwrap();
        let spec: SinkSpec = format!("jsonl:{}", out.display()).parse().unwrap();
        assert_eq!(redrive(dir, Some(&spec), &SinkOptions::default()), 1, "some lines are kept");
        // Record 3 once, though two lines (two sinks) dead-lettered it; with --sink, the
        // handler's line goes there too.
        assert_eq!(std::fs::read_to_string(&out).unwrap(), event("good") + "\n" + &event("h") + "\n");
        let left = std::fs::read_to_string(dir.join(DEAD_LETTER_FILE)).unwrap();
        assert_eq!(left, [&lines[1], &lines[3], &lines[5]].map(|l| format!("{l}\n")).concat());
        let archived = std::fs::read_to_string(dir.join(ARCHIVE_FILE)).unwrap();
        let archived: Vec<serde_json::Value> =
            archived.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let sinks: Vec<&str> = archived.iter().map(|a| a["sink"].as_str().unwrap()).collect();
        assert_eq!(sinks, ["exec:/bin/false", "handler:audit", "exec:/bin/true"]);
        assert!(archived.iter().all(|a| a["to"] == spec.name()));
        // Never into the dead-letter file itself (or the archive).
        let itself: SinkSpec = format!("jsonl:{}", dir.join(DEAD_LETTER_FILE).display()).parse().unwrap();
        assert_eq!(redrive(dir, Some(&itself), &SinkOptions::default()), 1);
        assert_eq!(std::fs::read_to_string(dir.join(DEAD_LETTER_FILE)).unwrap(), left);
        // A failing target keeps the line; the archive is unchanged.
        std::fs::write(
            dir.join(CHECKPOINT_FILE),
            "egnyte-receiver checkpoint v1\nkeys 0 1\nsink 20 exec:/bin/false\n",
        )
        .unwrap();
        let failing: SinkSpec = "exec:/bin/false".parse().unwrap();
        assert_eq!(redrive(dir, Some(&failing), &SinkOptions::default()), 1);
        assert_eq!(std::fs::read_to_string(dir.join(DEAD_LETTER_FILE)).unwrap(), left);
        assert_eq!(std::fs::read_to_string(dir.join(ARCHIVE_FILE)).unwrap().lines().count(), 3);
        // Without --sink: the line's own sink, rebuilt (exec:/bin/false fails again).
        assert_eq!(redrive(dir, None, &SinkOptions::default()), 1);
        assert_eq!(std::fs::read_to_string(dir.join(DEAD_LETTER_FILE)).unwrap(), left);
        // No file: nothing to do, status 0.
        std::fs::remove_file(dir.join(DEAD_LETTER_FILE)).unwrap();
        assert_eq!(redrive(dir, Some(&spec), &SinkOptions::default()), 0);
    }
}
