//! The command line: which command to run, with which arguments.
//!
//! Parsing uses `lexopt` (a small, pedantic parser: no derive, no global state); each command's
//! options live beside the command. Help texts are written by hand so they read like a manual.

mod check;
mod journal;
mod notify;
mod preflight;
mod replay;
mod serve;
mod signals;
mod simulate;
mod verify;

use std::ffi::OsString;
use std::process::ExitCode;

/// Exit status for a command line that could not be understood.
pub(crate) const EXIT_USAGE: u8 = 2;

const VERSION: &str = concat!("egnyte-receiver ", env!("CARGO_PKG_VERSION"));

const HELP: &str = "\
egnyte-receiver: a durable, hardened receiver for Egnyte Connect webhooks

Usage: egnyte-receiver <COMMAND> [ARGS]

Commands:
  serve           Receive webhooks over HTTP (see: egnyte-receiver serve --help)
  check FILE...   Validate captured webhook bodies offline (one line per event)
  journal stats   Segments, sinks' positions and lag, dedup fill of a data directory
  journal verify  Check every journal record and state file, read-only (exit 1: damage)
  journal dump    Print journaled events as JSON lines (filters: time, position, type, domain)
  replay          Deliver journaled events again to a sink
  simulate        Send Egnyte-shaped traffic to a receiver (see: egnyte-receiver simulate --help)
  help            Print this help

Options:
  -h, --help      Print help (also: egnyte-receiver <COMMAND> --help)
  -V, --version   Print version
";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Print the top-level help.
    Help,
    /// Print the version.
    Version,
    /// `check FILE...`
    Check(check::Args),
    /// `serve [OPTIONS]`
    Serve(serve::Args),
    /// `journal stats|dump`
    Journal(journal::Args),
    /// `replay --sink SPEC`
    Replay(replay::Args),
    /// `simulate --url URL [OPTIONS]`
    Simulate(simulate::Args),
    /// Print one command's help.
    HelpText(String),
}

impl Command {
    /// Reads the arguments after the program name.
    pub(crate) fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut parser = lexopt::Parser::from_args(args);
        match parser.next()? {
            None => Err("a command is required (for example: check FILE)".into()),
            Some(Short('h') | Long("help")) => Ok(Command::Help),
            Some(Short('V') | Long("version")) => Ok(Command::Version),
            Some(Value(name)) => match name.to_str() {
                Some("help") => Ok(Command::Help),
                Some("check") => check::Args::parse(&mut parser),
                Some("serve") => serve::Args::parse(&mut parser),
                Some("journal") => journal::Args::parse(&mut parser),
                Some("replay") => replay::Args::parse(&mut parser),
                Some("simulate") => simulate::Args::parse(&mut parser),
                _ => Err(format!("unknown command {name:?}").into()),
            },
            Some(arg) => Err(arg.unexpected()),
        }
    }

    /// Runs the command; the return value is the process's exit status.
    pub(crate) fn run(self) -> ExitCode {
        match self {
            Command::Help => print(HELP),
            Command::Version => print(&format!("{VERSION}\n")),
            Command::HelpText(text) => print(&text),
            Command::Check(args) => ExitCode::from(check::run(&args)),
            Command::Journal(args) => ExitCode::from(journal::run(&args)),
            Command::Replay(args) => ExitCode::from(replay::run(&args)),
            Command::Simulate(args) => ExitCode::from(simulate::run(&args)),
            Command::Serve(args) => {
                init_logging();
                ExitCode::from(serve::run(&args))
            }
        }
    }
}

/// Logs to stderr through `log` + `env_logger`: `RUST_LOG` adds to (and can override) the
/// default, which is `info` with may's per-connection chatter silenced. When stderr is journald's
/// stream (`$JOURNAL_STREAM` names it), lines carry a syslog `<N>` priority prefix instead of a
/// timestamp, so journald keeps each line's level and adds its own time.
fn init_logging() {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters("info,generator=off,may=warn");
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    if stderr_is_journal() {
        builder.format(|out, record| {
            use std::io::Write;
            writeln!(out, "<{}>{}: {}", syslog_priority(record.level()), record.target(), record.args())
        });
    }
    let logger = builder.build();
    log::set_max_level(logger.filter());
    // Fails only if a logger is already set (it is not: this runs once, first thing).
    let _ = log::set_boxed_logger(Box::new(Demote(logger)));
}

/// may's event loop logs an `epoll_wait` interrupted by a stop and continue (SIGSTOP and
/// SIGCONT: a debugger, `docker pause`, a suspended VM) as an error, although it just waits
/// again. That one message is passed on at debug level; every other record as it is.
struct Demote(env_logger::Logger);

impl Demote {
    const EVENT_LOOP: &'static str = "may::io::event_loop";

    fn interrupted(record: &log::Record<'_>) -> bool {
        record.target() == Self::EVENT_LOOP && record.args().to_string().contains("Interrupted")
    }
}

impl log::Log for Demote {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() == log::Level::Error && Self::interrupted(record) {
            let demoted = log::Record::builder()
                .args(*record.args())
                .level(log::Level::Debug)
                .target(record.target())
                .build();
            if self.0.enabled(demoted.metadata()) {
                self.0.log(&demoted);
            }
            return;
        }
        self.0.log(record);
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// The syslog priority journald reads from a `<N>` prefix.
fn syslog_priority(level: log::Level) -> u8 {
    match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    }
}

/// True when `$JOURNAL_STREAM` (`DEVICE:INODE`) is the file stderr is open on, as systemd sets it
/// for a service whose output goes to the journal (and not, say, for a child that redirected it).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else { return false };
    let Some((device, inode)) = stream.split_once(':') else { return false };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else { return false };
    device.parse() == Ok(stderr.dev()) && inode.parse() == Ok(stderr.ino())
}

fn print(text: &str) -> ExitCode {
    use std::io::Write;
    // A closed stdout (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
