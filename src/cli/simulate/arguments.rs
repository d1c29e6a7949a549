//! `simulate`'s command line: every option ([`OPTIONS`], which the help text lists, so none is
//! missed), the raw values as given ([`Args`], parsed with the other commands' arguments) and their
//! check into the [`Options`] of one run when the command starts (an error there is a usage
//! error).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::Url;
use super::events::{BatchSize, Domain};
use super::verify::NOT_ACKNOWLEDGED;
use crate::cli::Command;

/// Most connections (each is a thread); more is refused as a usage error.
const MAX_CONNECTIONS: usize = 4096;
/// Most events per batch: the receiver's parser refuses larger arrays.
const MAX_BATCH_EVENTS: u32 = egnyte_receiver::parse::MAX_EVENTS as u32;
/// Most domains: verification keeps a domain index per event in one byte (255 = not acknowledged).
const MAX_DOMAINS: usize = NOT_ACKNOWLEDGED as usize;

/// Every option: (name, value placeholder, default shown in help, description).
const OPTIONS: [(&str, &str, &str, &str); 17] = [
    (
        "url",
        "URL",
        "required",
        "http://HOST[:PORT]/PATH of the receiver (https is not supported: use the plain-HTTP side)",
    ),
    ("connections", "N", "4", "keep-alive connections, one thread each, each with one request in flight"),
    ("batch-size", "N|MIN-MAX", "10", "events per request (a range draws each size uniformly)"),
    ("rate", "R", "as fast as possible", "new batches per second over all connections (retries come on top)"),
    ("duration", "SECS", "10 (none with --requests)", "start no new batch after this long"),
    ("requests", "N", "no limit", "start no new batch after this many (first attempts, duplicates included)"),
    ("duplicates", "FRACTION", "0.1", "share of requests that re-send an acknowledged batch verbatim"),
    ("unknown-types", "FRACTION", "0.02", "share of events with an undocumented type (storage:add_file, …)"),
    ("auth-token", "TOKEN", "none", "send this value in --auth-header with every request"),
    ("auth-token-file", "FILE", "none", "read the token from FILE (trailing newline removed)"),
    (
        "auth-header",
        "NAME",
        "Authorization",
        "the header that carries the token (Egnyte's docs say Authentication)",
    ),
    ("domain", "D[,D…]", "acme", "the Egnyte domain(s) of the events; each batch has one"),
    (
        "seed",
        "N",
        "from the clock (printed)",
        "fixes types, sizes, paths and duplicates; ids stay unique per run",
    ),
    ("timeout", "SECS", "10", "time for one request, connect to last byte of the answer"),
    ("retry-for", "SECS", "60", "how long a batch is retried before it counts as failed"),
    ("verify-jsonl", "FILE", "none", "afterwards, check every acknowledged event is in FILE exactly once"),
    ("verify-timeout", "SECS", "30", "how long to wait for delivery to FILE (it runs behind the 200)"),
];

/// `simulate --help`: the text above, then every option from [`OPTIONS`] (so none is missed).
fn help() -> String {
    let mut text = String::from(
        "Send Egnyte-shaped webhook traffic to a receiver and report what came back.\n\n\
         Usage: egnyte-receiver simulate --url URL [OPTIONS]\n\n\
         Each connection POSTs JSON arrays of realistic events of all 34 types (and a share of\n\
         unknown ones). Like Egnyte, only a 200 acknowledges a batch: any other status, a network\n\
         error or a timeout is retried with delays from 100 ms doubling up to 5 s (Egnyte's grow\n\
         to an hour; compressed here) for --retry-for, then the batch counts as failed. No new\n\
         batch starts after --duration or --requests; retries in flight go on for at most\n\
         --retry-for.\n\nOptions:\n",
    );
    for (name, value, default, meaning) in OPTIONS {
        let _ = writeln!(text, "  --{name} {value}\n      {meaning} [default: {default}]");
    }
    text.push_str(
        "  --progress SECS\n      progress line on stderr every SECS, 0 for none [default: 1]\n\
         \x20 -h, --help\n      print this help\n\n\
         Output: a progress line on stderr while running; the summary on stdout, one `name: key value, …`\n\
         line per topic (run, batches, requests, events, answers, duplicates, status, latency, verify,\n\
         result). Exit status: 0 every batch acknowledged (and verified); 1 some batch failed after\n\
         --retry-for, or verification found a missing or duplicated event; 2 usage error.\n",
    );
    text
}

/// The raw option values, checked by [`Options::from_args`] when the command runs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Args {
    values: Vec<(&'static str, OsString)>,
}

impl Args {
    pub(in crate::cli) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut values = Vec::new();
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(help())),
                Long("progress") => values.push(("progress", parser.value()?)),
                Long(name) => match OPTIONS.iter().find(|(option, ..)| *option == name) {
                    Some(&(option, ..)) => values.push((option, parser.value()?)),
                    None => return Err(arg.unexpected()),
                },
                _ => return Err(arg.unexpected()),
            }
        }
        Ok(Command::Simulate(Args { values }))
    }

    /// The last value given for `name`, as text.
    fn text(&self, name: &str) -> Result<Option<String>, String> {
        let value = self.values.iter().rev().find(|(option, _)| *option == name).map(|(_, v)| v.clone());
        value.map(|v| v.into_string().map_err(|_| format!("--{name}: not valid UTF-8"))).transpose()
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.text(name)? {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| format!("--{name}: {v:?} is not a valid number")),
        }
    }

    fn seconds(&self, name: &str, default: f64) -> Result<Duration, String> {
        let seconds = self.number(name, default)?;
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("--{name}: {seconds} is not a duration in seconds"))
    }

    fn fraction(&self, name: &str, default: f64) -> Result<f64, String> {
        let value = self.number(name, default)?;
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("--{name}: {value} is not a fraction between 0.0 and 1.0"));
        }
        Ok(value)
    }
}

/// The checked options of one run.
#[derive(Debug, Clone)]
pub(super) struct Options {
    pub(super) url: Url,
    pub(super) connections: usize,
    pub(super) batch_size: BatchSize,
    pub(super) rate: Option<f64>,
    pub(super) duration: Option<Duration>,
    pub(super) requests: Option<u64>,
    pub(super) duplicates: f64,
    pub(super) unknown_types: f64,
    /// (header name, token)
    pub(super) auth: Option<(String, String)>,
    pub(super) domains: Vec<Domain>,
    pub(super) seed: u64,
    pub(super) timeout: Duration,
    pub(super) retry_for: Duration,
    pub(super) verify: Option<PathBuf>,
    pub(super) verify_timeout: Duration,
    pub(super) progress: Option<Duration>,
}

impl Options {
    pub(super) fn from_args(args: &Args) -> Result<Options, String> {
        let url = Url::parse(
            &args
                .text("url")?
                .ok_or("--url is required (for example --url http://127.0.0.1:8080/egnyte/webhook)")?,
        )?;
        let connections = args.number("connections", 4usize)?;
        if !(1..=MAX_CONNECTIONS).contains(&connections) {
            return Err(format!("--connections: between 1 and {MAX_CONNECTIONS}"));
        }
        let batch_size = batch_size(&args.text("batch-size")?.unwrap_or_else(|| "10".into()))?;
        let rate = args.text("rate")?.map(|_| args.number("rate", 0.0)).transpose()?;
        if rate.is_some_and(|r: f64| !(r > 0.0 && r.is_finite())) {
            return Err("--rate: a positive number of batches per second".into());
        }
        let requests = args.text("requests")?.map(|_| args.number("requests", 0u64)).transpose()?;
        let duration = match (args.text("duration")?, requests) {
            (None, Some(_)) => None,
            _ => Some(args.seconds("duration", 10.0)?),
        };
        let domains: Vec<Domain> = args
            .text("domain")?
            .unwrap_or_else(|| "acme".into())
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(Domain::new)
            .collect();
        if domains.is_empty() || domains.len() > MAX_DOMAINS {
            return Err(format!("--domain: between 1 and {MAX_DOMAINS} comma-separated names"));
        }
        let progress = args.seconds("progress", 1.0)?;
        Ok(Options {
            url,
            connections,
            batch_size,
            rate,
            duration,
            requests,
            duplicates: args.fraction("duplicates", 0.1)?,
            unknown_types: args.fraction("unknown-types", 0.02)?,
            auth: auth(args)?,
            domains,
            seed: args.number("seed", clock_seed())?,
            timeout: args.seconds("timeout", 10.0)?.max(Duration::from_millis(1)),
            retry_for: args.seconds("retry-for", 60.0)?,
            verify: args.text("verify-jsonl")?.map(PathBuf::from),
            verify_timeout: args.seconds("verify-timeout", 30.0)?,
            progress: (!progress.is_zero()).then_some(progress),
        })
    }
}

/// `N` or `MIN-MAX`.
fn batch_size(text: &str) -> Result<BatchSize, String> {
    let bad =
        || format!("--batch-size: {text:?} is not N or MIN-MAX with 1 ≤ MIN ≤ MAX ≤ {MAX_BATCH_EVENTS}");
    let (min, max) = text.split_once('-').unwrap_or((text, text));
    let min: u32 = min.trim().parse().map_err(|_| bad())?;
    let max: u32 = max.trim().parse().map_err(|_| bad())?;
    if min == 0 || min > max || max > MAX_BATCH_EVENTS {
        return Err(bad());
    }
    Ok(BatchSize { min, max })
}

/// The token header, from `--auth-token` or `--auth-token-file`, and `--auth-header`.
fn auth(args: &Args) -> Result<Option<(String, String)>, String> {
    let header = args.text("auth-header")?.unwrap_or_else(|| "Authorization".into());
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if header.is_empty() || !header.bytes().all(tchar) {
        return Err(format!("--auth-header: {header:?} is not a valid header name"));
    }
    let token = match (args.text("auth-token")?, args.text("auth-token-file")?) {
        (Some(_), Some(_)) => return Err("give --auth-token or --auth-token-file, not both".into()),
        (Some(token), None) => token,
        (None, Some(file)) => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("--auth-token-file {file}: {e}"))?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            text.strip_suffix('\r').unwrap_or(text).to_owned()
        }
        (None, None) => return Ok(None),
    };
    if token.is_empty() || token.bytes().any(|b| b.is_ascii_control()) {
        return Err(
            "the auth token is empty or holds control characters (it goes verbatim into a header)".into()
        );
    }
    Ok(Some((header, token)))
}

/// The clock as a number: `--seed`'s default, and a part of the run's nonce.
pub(super) fn clock_seed() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// The options of a command line of `simulate`'s arguments (without the command name).
#[cfg(test)]
pub(super) fn options(args: &[&str]) -> Result<Options, String> {
    let mut parser = lexopt::Parser::from_args(args.iter().map(OsString::from));
    match Args::parse(&mut parser).map_err(|e| e.to_string())? {
        Command::Simulate(args) => Options::from_args(&args),
        other => panic!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_checks() {
        let o = options(&["--url", "http://127.0.0.1:9/h"]).unwrap();
        assert_eq!(
            (o.connections, o.batch_size, o.rate, o.duration),
            (4, BatchSize { min: 10, max: 10 }, None, Some(Duration::from_secs(10)))
        );
        assert_eq!((o.duplicates, o.unknown_types, o.auth.is_none()), (0.1, 0.02, true));
        assert_eq!(
            (o.timeout, o.retry_for, o.progress),
            (Duration::from_secs(10), Duration::from_secs(60), Some(Duration::from_secs(1)))
        );
        let o = options(&[
            "--url",
            "http://127.0.0.1:9/h",
            "--requests",
            "5",
            "--batch-size",
            "1-7",
            "--auth-token",
            "T",
            "--domain",
            "a, b",
        ])
        .unwrap();
        assert_eq!((o.requests, o.duration, o.batch_size), (Some(5), None, BatchSize { min: 1, max: 7 }));
        assert_eq!(o.auth, Some(("Authorization".into(), "T".into())));
        assert_eq!(o.domains, vec![Domain::new("a"), Domain::new("b")]);
        for (args, message) in [
            (&["--connections", "2"][..], "--url is required"),
            (&["--url", "https://127.0.0.1/h"], "https is not supported"),
            (&["--url", "http://127.0.0.1/h", "--duplicates", "1.5"], "not a fraction"),
            (&["--url", "http://127.0.0.1/h", "--unknown-types", "x"], "not a valid number"),
            (&["--url", "http://127.0.0.1/h", "--batch-size", "0"], "--batch-size"),
            (&["--url", "http://127.0.0.1/h", "--batch-size", "5-2"], "--batch-size"),
            (&["--url", "http://127.0.0.1/h", "--connections", "0"], "--connections"),
            (&["--url", "http://127.0.0.1/h", "--rate", "0"], "--rate"),
            (&["--url", "http://127.0.0.1/h", "--auth-header", "a b", "--auth-token", "t"], "--auth-header"),
            (&["--url", "http://127.0.0.1/h", "--auth-token", "a\nb"], "control characters"),
            (&["--url", "http://127.0.0.1/h", "--duration", "-1"], "--duration"),
        ] {
            let error = options(args).expect_err(&format!("{args:?}"));
            assert!(error.contains(message), "{args:?}: {error}");
        }
    }
}
