//! `egnyte-receiver check FILE...`: validate captured webhook bodies offline.
//!
//! One line per element on stdout: `ok <eventType> <domain> <eventId>` or
//! `invalid #<index>: <reason>`; with several files each line starts with `<file>: `. A file
//! that cannot be read or is not a batch at all gets one `egnyte-receiver: <file>: <error>` line
//! on stderr. Exit status: 0 all valid, 1 some element invalid, 2 some file unreadable or not a
//! JSON array/object (the worst over all files wins).
//!
//! Values are printed with `\\`, whitespace and control characters escaped, so that every `ok`
//! line has exactly four space-separated fields whatever the ids contain.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use egnyte_receiver::{Element, Parser};

use super::Command;

/// Every element valid.
const EXIT_OK: u8 = 0;
/// Some element invalid.
const EXIT_INVALID: u8 = 1;
/// Some file unreadable or not a batch.
const EXIT_UNREADABLE: u8 = 2;

pub(super) const HELP: &str = "\
Validate captured Egnyte webhook bodies offline.

Usage: egnyte-receiver check FILE...

Reads each FILE (`-` reads standard input) as one webhook body, a JSON array of events or a
single event object, and prints one line per element:
  ok <eventType> <domain> <eventId>
  invalid #<index>: <reason>
With several files, each line starts with `<file>: `.

Exit status: 0 every element valid; 1 some element invalid; 2 some file unreadable or not a
JSON array/object (invalid JSON or UTF-8, nested too deep, too many events).
";

/// The arguments of `check`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    files: Vec<PathBuf>,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut files = Vec::new();
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(HELP.into())),
                Value(path) => files.push(PathBuf::from(path)),
                _ => return Err(arg.unexpected()),
            }
        }
        if files.is_empty() {
            return Err("check needs at least one FILE (`-` for standard input)".into());
        }
        Ok(Command::Check(Args { files }))
    }
}

/// Checks every file; returns the exit status.
pub(super) fn run(args: &Args) -> u8 {
    let mut parser = Parser::default();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut status = EXIT_OK;
    let mut line = String::new();
    for path in &args.files {
        let prefix = if args.files.len() > 1 { format!("{}: ", path.display()) } else { String::new() };
        let body = match read(path) {
            Ok(body) => body,
            Err(error) => {
                status = status.max(unreadable(&mut out, path, &error));
                continue;
            }
        };
        let batch = match parser.parse(&body) {
            Ok(batch) => batch,
            Err(error) => {
                status = status.max(unreadable(&mut out, path, &error));
                continue;
            }
        };
        for element in batch.elements() {
            line.clear();
            line.push_str(&prefix);
            match element {
                Element::Valid(event) => {
                    line.push_str("ok ");
                    escaped(&mut line, event.event_type().as_str());
                    line.push(' ');
                    escaped(&mut line, event.domain());
                    line.push(' ');
                    escaped(&mut line, event.event_id());
                }
                Element::Invalid(invalid) => {
                    status = status.max(EXIT_INVALID);
                    let _ = write!(line, "invalid #{}: {}", invalid.index(), invalid.reason());
                }
            }
            line.push('\n');
            if out.write_all(line.as_bytes()).is_err() {
                // The reader went away (`| head`): stop printing, keep the verdict.
                return status;
            }
        }
    }
    let _ = out.flush();
    status
}

/// Reports a file that could not be checked at all, after the lines printed before it.
fn unreadable(out: &mut impl Write, path: &Path, error: &dyn std::fmt::Display) -> u8 {
    let _ = out.flush();
    eprintln!("egnyte-receiver: {}: {error}", path.display());
    EXIT_UNREADABLE
}

fn read(path: &Path) -> io::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut body = Vec::new();
        io::stdin().lock().read_to_end(&mut body)?;
        Ok(body)
    } else {
        std::fs::read(path)
    }
}

/// Appends `value` with backslash, whitespace and control characters escaped.
fn escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_whitespace() || c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}
