//! How a journal is opened ([`JournalConfig`]) and when a batch counts as stored
//! ([`Durability`]).
//!
//! The façade (`facade.rs`) takes these settings at open and the writer thread (`writer.rs`) acts
//! on them; they live here, apart from both, so that neither has to import the other for them.
//! What each durability means for a crash is in the journal's module docs ([`super`]).

/// Default `--journal-segment-bytes`: 64 MiB, a few seconds of traffic at full speed and the
/// unit in which delivered events free disk space.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// When a batch counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After its records were written and `fdatasync`ed (`--durability fsync`).
    #[default]
    Fsync,
    /// After it was handed to the writer (`--durability none`): see the journal's module docs
    /// ([`super`]) for what a crash can lose.
    None,
}

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> Result<Durability, String> {
        match s {
            "fsync" => Ok(Durability::Fsync),
            "none" => Ok(Durability::None),
            _ => Err(format!("expected fsync or none, not {s:?}")),
        }
    }
}

/// How to open a journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// When a batch counts as stored.
    pub durability: Durability,
    /// Size after which a new segment is started.
    pub segment_bytes: u64,
    /// No record will get a sequence number below this (the positions the checkpoints hold).
    pub first_seq: u64,
    /// Where recovery copies damaged bytes before it steps over them (`DATA_DIR/corrupt`);
    /// `None`: nowhere (they are lost).
    pub corrupt_dir: Option<std::path::PathBuf>,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            durability: Durability::Fsync,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            first_seq: 1,
            corrupt_dir: None,
        }
    }
}
