//! `egnyte-receiver replay --sink SPEC [FILTERS]`: deliver journaled events again to a sink, for
//! example after a downstream outage sent them to the dead-letter file.
//!
//! It reads the journal read-only (the receiver may be running: see `journal.rs`), opens the sink
//! itself with the same code as `serve`, delivers each event that passes the filters, in journal
//! order, with a few retries, syncs the sink, and reports. It never touches the receiver's
//! checkpoint: a replay is an extra delivery, not a move of the sink's position. Events already
//! past `--journal-retention` are gone from the journal and cannot be replayed.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use egnyte_receiver::journal::Kind;
use egnyte_receiver::sink::{Delivery, Sink, SinkOptions, SinkSpec};
use egnyte_receiver::{Element, Parser};

use super::journal::{data_dir, scan, Filter};
use super::Command;

/// Attempts per event before it is reported failed.
const ATTEMPTS: u32 = 3;
/// Wait before the second attempt; doubled before each further one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// Most failures listed one by one on stderr (the rest are counted).
const LISTED_FAILURES: u64 = 20;

pub(super) const HELP: &str = "\
Deliver journaled events again to a sink (after a downstream outage, or to fill a new sink).

Usage: egnyte-receiver replay --sink SPEC [--data-dir DIR] [--since TIME | --from SEQ]
                              [--type T] [--domain D]

Reads the journal read-only (the receiver may be running), delivers each event that passes the
filters to SPEC in the order it was accepted (3 attempts each), then makes the sink durable.
Only events still in the journal can be replayed: delivered ones stay --journal-retention
(1 hour by default). The receiver's own checkpoints are not changed.

Options:
  --sink SPEC          jsonl:PATH, exec:PROGRAM or stdout (as for serve)
  --data-dir DIR       the receiver's data directory [default: ./egnyte-data, or
                       EGNYTE_RECEIVER_DATA_DIR]
  --since TIME         only events accepted at or after TIME: 2026-11-28T08:00:00Z, a date, a
                       Unix time (s or ms), or an age like 90m or 2d
  --from SEQ           only records numbered SEQ or later (a dead-letter line's \"seq\")
  --type T             only this eventType; `fs:*` for a whole family
  --domain D           only this domain
  --exec-timeout SECS  for an exec sink [default: 30]

Exit status: 0 every selected event delivered; 1 some failed (listed on stderr) or the journal
could not be read; 2 usage error.
";

/// The arguments of `replay`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    sink: String,
    data_dir: PathBuf,
    filter: Filter,
    exec_timeout: Duration,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let (mut sink, mut dir, mut filter) = (None, None, Filter::default());
        let mut exec_timeout = SinkOptions::default().exec_timeout;
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(HELP.into())),
                Long("sink") => {
                    sink = Some(parser.value()?.into_string().map_err(|_| "--sink: not valid UTF-8")?)
                }
                Long("data-dir") => dir = Some(parser.value()?),
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
        let sink = sink.ok_or("replay needs --sink SPEC")?;
        if filter.since_ms.is_some() && filter.from_seq.is_some() {
            return Err("give --since or --from, not both".into());
        }
        Ok(Command::Replay(Args { sink, data_dir: data_dir(dir), filter, exec_timeout }))
    }
}

/// Replays; returns the exit status.
pub(super) fn run(args: &Args) -> u8 {
    let spec: SinkSpec = match args.sink.parse() {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("egnyte-receiver: --sink: {e}");
            return super::EXIT_USAGE;
        }
    };
    let options = SinkOptions { exec_timeout: args.exec_timeout, ..SinkOptions::default() };
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

fn replay(args: &Args, sink: &Sink) -> std::io::Result<Tally> {
    let mut scan = scan(&args.data_dir, args.filter.first_seq())?;
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
        let mut delay = FIRST_RETRY_DELAY;
        let mut delivery = Delivery { position: record.meta.seq, attempt: 1 };
        let mut outcome = sink.deliver(&record.payload, &event, &delivery);
        for attempt in 2..=ATTEMPTS {
            if outcome.is_ok() {
                break;
            }
            std::thread::sleep(delay);
            delay *= 2;
            delivery.attempt = attempt;
            outcome = sink.deliver(&record.payload, &event, &delivery);
        }
        match outcome {
            Ok(()) => tally.delivered += 1,
            Err(failure) => fail(&mut tally, record.meta.seq, &failure.reason),
        }
    }
    sink.sync()?;
    let _ = std::io::stdout().flush();
    Ok(tally)
}

fn fail(tally: &mut Tally, seq: u64, reason: &str) {
    tally.failed += 1;
    if tally.failed <= LISTED_FAILURES {
        eprintln!("egnyte-receiver: record {seq}: {reason}");
    } else if tally.failed == LISTED_FAILURES + 1 {
        eprintln!("egnyte-receiver: (further failures are only counted)");
    }
}
