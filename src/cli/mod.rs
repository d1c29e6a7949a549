//! The command line: which command to run, with which arguments.
//!
//! Parsing uses `lexopt` (a small, pedantic parser: no derive, no global state); each command's
//! options live beside the command. Help texts are written by hand so they read like a manual.

mod check;
mod serve;

use std::ffi::OsString;
use std::process::ExitCode;

/// Exit status for a command line that could not be understood.
pub const EXIT_USAGE: u8 = 2;

const VERSION: &str = concat!("egnyte-receiver ", env!("CARGO_PKG_VERSION"));

const HELP: &str = "\
egnyte-receiver: a durable, hardened receiver for Egnyte Connect webhooks

Usage: egnyte-receiver <COMMAND> [ARGS]

Commands:
  serve           Receive webhooks over HTTP (see: egnyte-receiver serve --help)
  check FILE...   Validate captured webhook bodies offline (one line per event)
  help            Print this help

Options:
  -h, --help      Print help (also: egnyte-receiver <COMMAND> --help)
  -V, --version   Print version
";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print the top-level help.
    Help,
    /// Print the version.
    Version,
    /// `check FILE...`
    Check(check::Args),
    /// `serve [OPTIONS]`
    Serve(serve::Args),
    /// Print one command's help.
    HelpText(String),
}

impl Command {
    /// Reads the arguments after the program name.
    pub fn from_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, lexopt::Error> {
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
                _ => Err(format!("unknown command {name:?}").into()),
            },
            Some(arg) => Err(arg.unexpected()),
        }
    }

    /// Runs the command; the return value is the process's exit status.
    pub fn run(self) -> ExitCode {
        match self {
            Command::Help => print(HELP),
            Command::Version => print(&format!("{VERSION}\n")),
            Command::HelpText(text) => print(&text),
            Command::Check(args) => ExitCode::from(check::run(&args)),
            Command::Serve(args) => {
                init_logging();
                ExitCode::from(serve::run(&args))
            }
        }
    }
}

/// Logs to stderr through `log` + `env_logger`: `RUST_LOG` adds to (and can override) the
/// default, which is `info` with may's per-connection chatter silenced.
fn init_logging() {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters("info,may_minihttp=off,generator=off,may=warn");
    if let Ok(filters) = std::env::var("RUST_LOG") {
        builder.parse_filters(&filters);
    }
    builder.init();
}

fn print(text: &str) -> ExitCode {
    use std::io::Write;
    // A closed stdout (`| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
