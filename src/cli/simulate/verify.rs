//! `--verify-jsonl FILE`: after the run, check that every acknowledged event reached the sink
//! file exactly once.
//!
//! Delivery runs behind the acknowledgement (journal first, sinks later), so the file is tailed:
//! read from where the last poll stopped, every [`POLL_INTERVAL`], until every acknowledged
//! (domain, eventId) has been seen or `--verify-timeout` passes, then read once more so that a
//! copy delivered right after the last one is still counted. Lines are read with the receiver's
//! own parser (a line is one event object as received).
//!
//! Memory: one byte per generated event for what was acknowledged ([`Acknowledged`]) and one
//! for what was seen, indexed by the id's connection and sequence number (see `events.rs` for
//! the id layout), so a run of tens of millions of events verifies in tens of megabytes.
//!
//! Verdict: `missing` (acknowledged, never seen) and `duplicated` (acknowledged, seen more than
//! once) fail the run. `unacknowledged` (ids of this run whose batch never got its 200, yet
//! arrived: the receiver stored it but the answer was lost, which at-least-once allows) and
//! `unknown` (ids this run never sent: earlier content of the file, another sender) are
//! reported and do not.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egnyte_receiver::{Element, Parser};

use super::events::EventKey;

/// Pause between two reads of a file that does not yet hold every acknowledged event.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Bytes read per `read` call.
const READ_CHUNK: usize = 1 << 20;
/// Longest line taken apart (the receiver's default body limit): a longer one is counted as
/// unreadable and skipped up to its newline, without being buffered.
const MAX_LINE_BYTES: usize = 16 << 20;
/// Marks a sequence number whose event was not acknowledged.
pub(super) const NOT_ACKNOWLEDGED: u8 = u8::MAX;

/// What the run acknowledged: per connection, per sequence number, the domain index of the
/// acknowledged event or [`NOT_ACKNOWLEDGED`].
#[derive(Debug, Clone, Default)]
pub(super) struct Acknowledged {
    /// The run's nonce (the first group of every id).
    pub nonce: u32,
    /// The run's domains, by index.
    pub domains: Vec<String>,
    /// Indexed by connection, then sequence number.
    pub connections: Vec<Vec<u8>>,
}

impl Acknowledged {
    fn total(&self) -> u64 {
        self.connections.iter().flatten().filter(|&&d| d != NOT_ACKNOWLEDGED).count() as u64
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Verdict {
    /// Acknowledged events.
    pub acknowledged: u64,
    /// Acknowledged events seen at least once.
    pub found: u64,
    /// Acknowledged events never seen.
    pub missing: u64,
    /// Acknowledged events seen more than once.
    pub duplicated: u64,
    /// Lines holding an event of this run that was never acknowledged.
    pub unacknowledged: u64,
    /// Lines holding an event this run never sent.
    pub unknown: u64,
    /// Lines that are not one valid event.
    pub unreadable: u64,
}

impl Verdict {
    /// True when every acknowledged event is in the file exactly once.
    pub(super) fn passed(&self) -> bool {
        self.missing == 0 && self.duplicated == 0
    }
}

/// The sink file could not be read.
#[derive(Debug)]
pub(super) struct VerifyError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--verify-jsonl {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for VerifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Tails `path` until every acknowledged event was seen or `timeout` passed.
pub(super) fn verify(
    path: &Path,
    acknowledged: &Acknowledged,
    timeout: Duration,
) -> Result<Verdict, VerifyError> {
    let error = |source| VerifyError { path: path.to_owned(), source };
    let deadline = Instant::now() + timeout;
    let mut tally = Tally::new(acknowledged);
    let mut file = loop {
        match File::open(path) {
            Ok(file) => break file,
            // The sink creates its file on the first delivery.
            Err(e) if e.kind() == io::ErrorKind::NotFound && Instant::now() < deadline => {
                std::thread::sleep(POLL_INTERVAL)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && tally.verdict.acknowledged == 0 => {
                return Ok(tally.finish())
            }
            Err(e) => return Err(error(e)),
        }
    };
    let mut reader = LineReader::default();
    loop {
        reader.read_new(&mut file, &mut |line| tally.line(line)).map_err(error)?;
        if tally.verdict.found == tally.verdict.acknowledged || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    // A copy delivered just after the last one counted.
    std::thread::sleep(POLL_INTERVAL);
    reader.read_new(&mut file, &mut |line| tally.line(line)).map_err(error)?;
    Ok(tally.finish())
}

/// The counts so far, and what was seen per event.
struct Tally<'a> {
    acknowledged: &'a Acknowledged,
    seen: Vec<Vec<u8>>,
    parser: Parser,
    verdict: Verdict,
}

impl<'a> Tally<'a> {
    fn new(acknowledged: &'a Acknowledged) -> Tally<'a> {
        let seen = acknowledged.connections.iter().map(|c| vec![0; c.len()]).collect();
        let verdict = Verdict { acknowledged: acknowledged.total(), ..Verdict::default() };
        Tally { acknowledged, seen, parser: Parser::default(), verdict }
    }

    /// Counts one line (without its newline).
    fn line(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        let Ok(batch) = self.parser.parse(line) else {
            self.verdict.unreadable += 1;
            return;
        };
        let mut elements = batch.elements();
        let (Some(Element::Valid(event)), None) = (elements.next(), elements.next()) else {
            self.verdict.unreadable += 1;
            return;
        };
        let Some(key) = EventKey::parse(event.event_id()).filter(|k| k.nonce == self.acknowledged.nonce)
        else {
            self.verdict.unknown += 1;
            return;
        };
        let connection = usize::from(key.connection);
        let Some(&domain) =
            self.acknowledged.connections.get(connection).and_then(|c| c.get(key.sequence as usize))
        else {
            self.verdict.unknown += 1;
            return;
        };
        if domain == NOT_ACKNOWLEDGED {
            self.verdict.unacknowledged += 1;
            return;
        }
        if self.acknowledged.domains.get(usize::from(domain)).map(String::as_str) != Some(event.domain()) {
            // Our id under another domain: not an event this run sent.
            self.verdict.unknown += 1;
            return;
        }
        let seen = &mut self.seen[connection][key.sequence as usize];
        match *seen {
            0 => self.verdict.found += 1,
            1 => self.verdict.duplicated += 1,
            _ => {}
        }
        *seen = seen.saturating_add(1);
    }

    fn finish(mut self) -> Verdict {
        self.verdict.missing = self.verdict.acknowledged - self.verdict.found;
        self.verdict
    }
}

/// Splits what was appended to a file since the last call into lines.
#[derive(Debug, Default)]
struct LineReader {
    offset: u64,
    /// The start of a line whose newline has not been read yet.
    partial: Vec<u8>,
    /// True while skipping the rest of a line longer than [`MAX_LINE_BYTES`].
    skipping: bool,
}

impl LineReader {
    /// Reads from the last offset to the current end, handing every complete line to `each`.
    fn read_new(&mut self, file: &mut File, each: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = vec![0; READ_CHUNK];
        loop {
            let n = match file.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            self.split(&chunk[..n], each);
        }
    }

    fn split(&mut self, mut bytes: &[u8], each: &mut dyn FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            if self.skipping {
                self.skipping = false;
                each(b"\x00"); // counted as unreadable
            } else if self.partial.is_empty() {
                each(&bytes[..end]);
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                each(&self.partial);
                self.partial.clear();
            }
            bytes = &bytes[end + 1..];
        }
        if self.skipping {
            return;
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > MAX_LINE_BYTES {
            self.partial = Vec::new();
            self.skipping = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egnyte_receiver::test_dir::TempDir;

    fn line(id: EventKey, domain: &str) -> String {
        let mut text = String::from("{\"eventId\":\"");
        id.write(&mut text);
        text.push_str(&format!(
            "\",\"domain\":\"{domain}\",\"timestamp\":1,\"actionSource\":\"WebUI\",\"eventType\":\"fs:add_file\",\"data\":{{}}}}\n"
        ));
        text
    }

    #[test]
    fn counts_found_missing_duplicated_unacknowledged_and_unknown() {
        let key = |sequence| EventKey { nonce: 7, connection: 1, sequence };
        let acknowledged = Acknowledged {
            nonce: 7,
            domains: vec!["acme".into()],
            connections: vec![vec![], vec![0, 0, 0, NOT_ACKNOWLEDGED]],
        };
        let dir = TempDir::new("simulate-verify");
        let path = dir.path().join("events.jsonl");
        let other = EventKey { nonce: 8, connection: 1, sequence: 0 };
        let text = [
            "{\"eventId\":\"prior\",\"domain\":\"acme\",\"timestamp\":1,\"actionSource\":\"x\",\"eventType\":\"x\",\"data\":{}}\n".to_owned(),
            line(key(0), "acme"),
            line(key(1), "acme"),
            line(key(1), "acme"),
            line(key(3), "acme"),
            line(key(9), "acme"),
            line(key(2), "globex"),
            line(other, "acme"),
            "not json\n".to_owned(),
        ]
        .concat();
        std::fs::write(&path, text).unwrap();
        let verdict = verify(&path, &acknowledged, Duration::from_millis(300)).unwrap();
        assert_eq!(
            verdict,
            Verdict {
                acknowledged: 3,
                found: 2,
                missing: 1,
                duplicated: 1,
                unacknowledged: 1,
                unknown: 4,
                unreadable: 1
            }
        );
        assert!(!verdict.passed());
    }

    #[test]
    fn lines_split_across_reads_and_overlong_lines() {
        let mut reader = LineReader::default();
        let mut lines = Vec::new();
        reader.split(b"ab", &mut |l| lines.push(l.to_vec()));
        reader.split(b"c\nd\n\ne", &mut |l| lines.push(l.to_vec()));
        assert_eq!(lines, [b"abc".to_vec(), b"d".to_vec(), b"".to_vec()]);
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        reader.split(&long, &mut |l| lines.push(l.to_vec()));
        reader.split(b"xx\nok\n", &mut |l| lines.push(l.to_vec()));
        assert_eq!(&lines[3..], [b"\x00".to_vec(), b"ok".to_vec()]);
    }
}
