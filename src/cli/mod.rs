//! The command line: which command to run, with which arguments.
//!
//! Parsing uses `lexopt` (a small, pedantic parser: no derive, no global state); each command's
//! options live beside the command. Help texts are written by hand so they read like a manual.

mod check;
mod data_dir;
mod journal;
mod notify;
mod preflight;
mod replay;
mod serve;
mod signals;
mod simulate;
mod verify;
mod webhook;

use std::ffi::OsString;
use std::process::ExitCode;

/// Exit status for a command line that could not be understood.
pub(crate) const EXIT_USAGE: u8 = 2;

/// The commit the binary was built from: `abc1234`, `abc1234+dirty` or `unknown` (build.rs).
const REVISION: &str = match option_env!("EGNYTE_RECEIVER_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// `--version`: the release, the commit, and the journal format it reads and writes (a new
/// format cannot be read by an older binary: see the changelog before a downgrade).
fn version() -> String {
    format!(
        "egnyte-receiver {}\ncommit: {REVISION}\njournal format: {}\n",
        env!("CARGO_PKG_VERSION"),
        egnyte_receiver::journal::format::VERSION
    )
}

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
  webhook         Register and manage webhooks at Egnyte (see: egnyte-receiver webhook --help)
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
    /// `webhook ACTION [ID] [OPTIONS]`
    Webhook(webhook::Args),
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
                Some("webhook") => webhook::Args::parse(&mut parser),
                _ => Err(format!("unknown command {name:?}").into()),
            },
            Some(arg) => Err(arg.unexpected()),
        }
    }

    /// Runs the command; the return value is the process's exit status.
    pub(crate) fn run(self) -> ExitCode {
        match self {
            Command::Help => print(HELP),
            Command::Version => print(&version()),
            Command::HelpText(text) => print(&text),
            Command::Check(args) => ExitCode::from(check::run(&args)),
            Command::Journal(args) => ExitCode::from(journal::run(&args)),
            Command::Replay(args) => ExitCode::from(replay::run(&args)),
            Command::Simulate(args) => ExitCode::from(simulate::run(&args)),
            Command::Webhook(args) => ExitCode::from(webhook::run(&args)),
            Command::Serve(args) => match LogFormat::of(&args) {
                Ok(format) => {
                    init_logging(format);
                    ExitCode::from(serve::run(&args))
                }
                Err(message) => {
                    eprintln!("egnyte-receiver: {message}");
                    ExitCode::from(EXIT_USAGE)
                }
            },
        }
    }
}

/// How `serve` writes its log lines (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// `[2026-11-28T08:18:05.123Z INFO  target] message`; under journald `<6>target: message`.
    Text,
    /// `{"ts":"2026-11-28T08:18:05.123Z","level":"INFO","target":"…","msg":"…"}`; under journald
    /// with the same `<N>` prefix before it, which journald takes off (the message stays JSON).
    Json,
}

impl LogFormat {
    /// `--log-format`, else `EGNYTE_RECEIVER_LOG_FORMAT`, else text. Read before logging starts,
    /// so a bad value is an error on stderr, as every other option's is.
    fn of(args: &serve::Args) -> Result<LogFormat, String> {
        match args.get("log-format") {
            None => Ok(LogFormat::Text),
            Some(value) => match value.to_str() {
                Some("text") => Ok(LogFormat::Text),
                Some("json") => Ok(LogFormat::Json),
                _ => Err(format!(
                    "--log-format (or EGNYTE_RECEIVER_LOG_FORMAT): {value:?} is not text or json"
                )),
            },
        }
    }
}

/// Logs to stderr through `log` + `env_logger`: `RUST_LOG` adds to (and can override) the
/// default, which is `info` with may's per-connection chatter silenced. Each record is one line
/// ([`log_line`]): text with an RFC 3339 UTC time, or JSON. When stderr is journald's stream
/// (`$JOURNAL_STREAM` names it), lines carry a syslog `<N>` priority prefix, so journald keeps
/// each line's level, and text lines no time (journald adds its own).
fn init_logging(format: LogFormat) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters("info,generator=off,may=warn");
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    let journal = stderr_is_journal();
    builder.format(move |out, record| {
        use std::io::Write;
        let mut line = String::with_capacity(160);
        let now = egnyte_receiver::time::now_ms();
        log_line(&mut line, format, journal, now, record.level(), record.target(), record.args());
        out.write_all(line.as_bytes())
    });
    let logger = builder.build();
    log::set_max_level(logger.filter());
    // Fails only if a logger is already set (it is not: this runs once, first thing).
    let _ = log::set_boxed_logger(Box::new(Demote(logger)));
}

/// Appends one log record to `line`, ending in `\n`: see [`LogFormat`] for the shapes. In JSON
/// the target and message are JSON strings (quotes, backslashes and control characters
/// escaped), so a message with a line break stays one line.
fn log_line(
    line: &mut String,
    format: LogFormat,
    journal: bool,
    now_ms: u64,
    level: log::Level,
    target: &str,
    message: &dyn std::fmt::Display,
) {
    use std::fmt::Write;
    if journal {
        let _ = write!(line, "<{}>", syslog_priority(level));
    }
    let time = egnyte_receiver::time::rfc3339_ms(now_ms);
    match format {
        LogFormat::Text if journal => {
            let _ = write!(line, "{target}: {message}");
        }
        LogFormat::Text => {
            let _ = write!(line, "[{time} {level:<5} {target}] {message}");
        }
        LogFormat::Json => {
            let _ = write!(line, "{{\"ts\":\"{time}\",\"level\":\"{level}\",\"target\":");
            let _ = egnyte_receiver::json::write_json_string(line, target);
            line.push_str(",\"msg\":");
            let _ = egnyte_receiver::json::write_json_string(line, &message.to_string());
            line.push('}');
        }
    }
    line.push('\n');
}

/// may's event loop logs an `epoll_wait` interrupted by a stop and continue (SIGSTOP and
/// SIGCONT: a debugger, `docker pause`, a suspended VM) as an error, although it just waits
/// again. That one message is passed on at debug level; every other record as it is.
struct Demote(env_logger::Logger);

impl Demote {
    const EVENT_LOOP: &'static str = "may::io::event_loop";

    /// ureq's trace level dumps the raw bytes of each request, bearer tokens and bodies
    /// included: never passed on, whatever `RUST_LOG` says (its debug level redacts them).
    fn secret_bearing(metadata: &log::Metadata<'_>) -> bool {
        metadata.level() == log::Level::Trace && metadata.target().starts_with("ureq")
    }

    fn interrupted(record: &log::Record<'_>) -> bool {
        record.target() == Self::EVENT_LOOP && record.args().to_string().contains("Interrupted")
    }
}

impl log::Log for Demote {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        !Self::secret_bearing(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if Self::secret_bearing(record.metadata()) {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T08:18:05.123Z.
    const AT: u64 = 1_795_853_885_123;

    fn line(format: LogFormat, journal: bool, level: log::Level, target: &str, message: &str) -> String {
        let mut out = String::new();
        log_line(&mut out, format, journal, AT, level, target, &message);
        out
    }

    #[test]
    fn text_lines_carry_a_utc_time_with_milliseconds_outside_journald() {
        assert_eq!(egnyte_receiver::time::rfc3339_ms(AT), "2026-11-28T08:18:05.123Z");
        let text = line(LogFormat::Text, false, log::Level::Info, "egnyte_receiver::serve", "listening");
        assert_eq!(text, "[2026-11-28T08:18:05.123Z INFO  egnyte_receiver::serve] listening\n");
        let text = line(LogFormat::Text, false, log::Level::Error, "t", "failed");
        assert_eq!(text, "[2026-11-28T08:18:05.123Z ERROR t] failed\n");
    }

    #[test]
    fn under_journald_text_has_a_priority_and_no_time_and_json_keeps_both() {
        assert_eq!(line(LogFormat::Text, true, log::Level::Warn, "t", "m"), "<4>t: m\n");
        assert_eq!(
            line(LogFormat::Json, true, log::Level::Error, "t", "m"),
            "<3>{\"ts\":\"2026-11-28T08:18:05.123Z\",\"level\":\"ERROR\",\"target\":\"t\",\"msg\":\"m\"}\n"
        );
    }

    #[test]
    fn json_lines_are_one_escaped_object_each() {
        let message = "say \"hi\"\\ then\nnext line\r\ttab \u{1}\u{1f} é ✓ \u{7f}";
        let json = line(LogFormat::Json, false, log::Level::Debug, "may::io", message);
        assert_eq!(
            json,
            "{\"ts\":\"2026-11-28T08:18:05.123Z\",\"level\":\"DEBUG\",\"target\":\"may::io\",\"msg\":\
             \"say \\\"hi\\\"\\\\ then\\nnext line\\r\\ttab \\u0001\\u001f é ✓ \u{7f}\"}\n"
        );
        assert_eq!(json.matches('\n').count(), 1, "one line: {json:?}");
        let value: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
        assert_eq!(value["msg"], message);
        assert_eq!(value["target"], "may::io");
        assert_eq!(value["level"], "DEBUG");
        assert_eq!(value["ts"], "2026-11-28T08:18:05.123Z");
        assert_eq!(value.as_object().map(|o| o.len()), Some(4));
    }

    #[test]
    fn the_log_format_comes_from_the_serve_arguments() {
        let format = |flags: &[&str]| {
            let args = ["serve"].iter().chain(flags).map(OsString::from);
            match Command::from_args(args).unwrap() {
                Command::Serve(args) => LogFormat::of(&args),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(format(&["--log-format", "json"]), Ok(LogFormat::Json));
        assert_eq!(format(&["--log-format", "json", "--log-format", "text"]), Ok(LogFormat::Text));
        assert!(format(&["--log-format", "JSON"]).unwrap_err().contains("\"JSON\" is not text or json"));
        if std::env::var_os("EGNYTE_RECEIVER_LOG_FORMAT").is_none() {
            assert_eq!(format(&[]), Ok(LogFormat::Text));
        }
    }

    #[test]
    fn the_version_names_the_commit_and_the_journal_format() {
        assert_eq!(Command::from_args(["--version"].map(OsString::from)).unwrap(), Command::Version);
        let version = version();
        let lines: Vec<&str> = version.lines().collect();
        assert_eq!(lines[0], concat!("egnyte-receiver ", env!("CARGO_PKG_VERSION")));
        let commit = lines[1].strip_prefix("commit: ").unwrap();
        let hash = commit.strip_suffix("+dirty").unwrap_or(commit);
        assert!(
            commit == "unknown" || (hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
            "{version}"
        );
        assert_eq!(lines[2], format!("journal format: {}", egnyte_receiver::journal::format::VERSION));
    }
}
