//! Delivery: from the journal's committed records to every sink, at least once, in order per
//! (domain, path), with checkpoints that survive crashes.
//!
//! ```text
//! Journal ─(doorbell)─► dispatcher thread: shared Reader ─► per-sink lane: window ─► its workers ─► sink
//!                                          (a lane that fell behind: its own Reader)      │
//!                          finished (sink, seq) ◄─────────────────────────────────────────┘
//!                       every 200 ms: sync sinks, write dedup keys, store checkpoint, drop segments
//! ```
//! * `run.rs`: the dispatcher loop; `lane.rs`: one sink's window, workers and catch-up reader,
//!   and when it counts as stuck; `worker.rs`: delivery with retries and dead-lettering;
//!   `progress.rs`: a sink's in-flight window and position; `checkpoint.rs` and `keys.rs`: the
//!   two files that make a restart resume where the last one stopped; `dead_letter.rs`: where
//!   undeliverable events go; `resume.rs`: where each sink starts after a restart.
//! * Sinks are isolated: each has its own workers and its own window of [`MAX_IN_FLIGHT`]
//!   records, and a sink whose window is full falls back to a journal reader of its own (see
//!   `lane.rs`), so one that fails, blocks or is slow delays only itself. One that has not moved
//!   for [`STUCK_AFTER`] while records wait is reported stuck (`/healthz`, metrics, log); the
//!   receiver stays healthy, because the journal keeps its records.
//! * Channels are bounded and can never fill: a sink is handed at most [`MAX_IN_FLIGHT`]
//!   records not yet finished, each of its workers' channels holds that many messages, and the
//!   channel back holds every sink's window plus one last message per worker.

//! # Guarantees
//! * A sink's checkpointed position P means: every record below P was delivered to it (or
//!   dead-lettered) and the sink made it durable (`Sink::sync`) before P was stored; for a file
//!   sink, the checkpoint also says where its file stood then (`sink::FileMark`). After a crash,
//!   delivery resumes at P, except where `resume.rs` can tell that records past P already
//!   reached the sink: a jsonl file's own tail, and the dead-letter file's. Records past P that
//!   reached an `exec`, `stdout` or handler sink (at most [`CHECKPOINT_INTERVAL`] of traffic plus
//!   the sink's in-flight window) are delivered again. After a graceful stop that finished in time,
//!   nothing is delivered twice.
//! * A sink is known in the checkpoint by its name (`sink::SinkSpec::name`: NAME, or the canonical
//!   path of its file), so respelling its path, or moving the data directory (names of files in it
//!   are stored relative to it, `jsonl:$DATA_DIR/…`), keeps its position; an entry stored under an
//!   older spelling is adopted (`resume.rs`). A sink the checkpoint does not know starts at the
//!   oldest record still in the journal (said with a warning and the count), or with
//!   `--sink-start end` ([`SinkStart`]) at the journal's next record; a sink removed from the
//!   configuration is dropped from the checkpoint.
//! * Segments are removed once every sink's position and the key file are past them and they
//!   are older than `--journal-retention` (kept for `replay`), or sooner, oldest first, while the
//!   journal is over `--max-journal-bytes`: undelivered records always win the disk.

mod checkpoint;
mod dead_letter;
mod keys;
mod lane;
mod progress;
mod resume;
mod run;
mod worker;

pub use checkpoint::DATA_DIR_PREFIX;
pub use checkpoint::{Checkpoint, CHECKPOINT_FILE};
pub use dead_letter::DEAD_LETTER_FILE;
pub use keys::{KeyFile, KEYS_FILE};
pub use lane::STUCK_AFTER;
pub use progress::{MAX_IN_FLIGHT, MAX_IN_FLIGHT_BYTES, MAX_SINKS};
pub use resume::DEAD_LETTER_SCAN_BYTES;
pub use run::{restore_keys, Dispatcher, KeyRestore, Stopped};
pub use worker::{SinkStats, Target, DEFAULT_DELIVERY_ATTEMPTS, FIRST_RETRY_DELAY, MAX_RETRY_DELAY};

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::sink::SinkSpec;

/// How often sink positions and dedup keys are made durable (when anything moved).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(200);
/// Name of the quarantine target in checkpoints and metrics.
pub const QUARANTINE: &str = "quarantine";
/// File the quarantine target writes, in the data directory.
pub const QUARANTINE_FILE: &str = "quarantine.jsonl";

/// How to run delivery.
#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Where the checkpoint, the key file and the dead-letter file live.
    pub data_dir: PathBuf,
    /// Worker threads of each parallel sink (`--workers`); a serial sink has one.
    pub workers: usize,
    /// Attempts per (sink, event) before dead-lettering (`--delivery-attempts`).
    pub delivery_attempts: u32,
    /// How long delivered segments stay for `replay` (`--journal-retention`).
    pub retention: std::time::Duration,
    /// Journal bytes beyond which delivered segments go whatever their age
    /// (`--max-journal-bytes`).
    pub max_journal_bytes: u64,
    /// How a sink is found in the checkpoint, and where one that is not starts.
    pub identity: SinkIdentity,
}

/// Where a sink without a checkpoint entry starts (`--sink-start`). A sink with an entry always
/// resumes at it; the quarantine target always starts at the oldest record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SinkStart {
    /// At the oldest record still in the journal: it receives every retained event.
    #[default]
    Oldest,
    /// At the journal's next record: it receives only events accepted from now on. Applies only
    /// while the checkpoint knows other sinks: with no checkpoint at all (lost, or set aside as
    /// damaged), every sink starts at the oldest record, since its undelivered events would be
    /// skipped otherwise.
    End,
}

impl FromStr for SinkStart {
    type Err = String;

    fn from_str(text: &str) -> Result<SinkStart, String> {
        match text {
            "oldest" => Ok(SinkStart::Oldest),
            "end" => Ok(SinkStart::End),
            _ => Err(format!("{text:?}: expected oldest or end")),
        }
    }
}

impl fmt::Display for SinkStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SinkStart::Oldest => "oldest",
            SinkStart::End => "end",
        })
    }
}

/// What the dispatcher needs, beyond each target's name, to find a sink in the checkpoint and
/// to start one it does not find.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkIdentity {
    /// Where a sink without a checkpoint entry starts.
    pub start: SinkStart,
    /// (NAME, path name) of each `NAME=jsonl:PATH` or `NAME=exec:PROGRAM` sink
    /// ([`SinkSpec::path_name`]): when NAME has no entry, the entry of its path (stored before
    /// it was named, under any spelling) is adopted.
    pub named: Vec<(String, String)>,
}

impl SinkIdentity {
    /// The identity settings of these sinks.
    pub fn new(start: SinkStart, specs: &[SinkSpec]) -> SinkIdentity {
        let named = specs
            .iter()
            .filter(|spec| matches!(spec, SinkSpec::Named { .. }))
            .filter_map(|spec| Some((spec.name(), spec.path_name()?)))
            .collect();
        SinkIdentity { start, named }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_start_reads_and_shows_its_two_values() {
        for (text, start) in [("oldest", SinkStart::Oldest), ("end", SinkStart::End)] {
            assert_eq!(text.parse::<SinkStart>(), Ok(start));
            assert_eq!(start.to_string(), text);
        }
        assert_eq!(SinkStart::default(), SinkStart::Oldest);
        assert_eq!("END".parse::<SinkStart>(), Err(r#""END": expected oldest or end"#.to_string()));
        assert!("".parse::<SinkStart>().is_err());
    }

    #[test]
    fn identity_lists_the_paths_of_named_file_sinks() {
        let specs: Vec<SinkSpec> = ["a=jsonl:/x/a.jsonl", "jsonl:/x/b.jsonl", "c=stdout", "d=exec:/x/d"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let identity = SinkIdentity::new(SinkStart::End, &specs);
        assert_eq!(identity.start, SinkStart::End);
        assert_eq!(
            identity.named,
            [("a".to_string(), "jsonl:/x/a.jsonl".to_string()), ("d".to_string(), "exec:/x/d".to_string())]
        );
    }
}
