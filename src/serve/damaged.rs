//! Damaged state files never keep the receiver from receiving: a checkpoint, dedup key file or
//! dedup secret that cannot be read is set aside (renamed `NAME.damaged-<UTC time>`, never
//! deleted, for a post-mortem), reported, and rebuilt, and the receiver starts.
//!
//! What each costs (the README's "Sinks and delivery" says the same):
//! * `checkpoint`: every sink starts again at the oldest record still in the journal, so the
//!   events since then are delivered again (at least once), and the dedup keys are rebuilt from
//!   the journal alone;
//! * `dedup.keys`: rebuilt from the events still in the journal; events older than the journal
//!   are no longer recognised as duplicates;
//! * `dedup.key` (the secret): a new one, which makes every stored key meaningless, so
//!   `dedup.keys` is set aside too and rebuilt the same way.
//!
//! Only data the receiver can read but not make sense of (`InvalidData`) is set aside; a file
//! it cannot read at all (permissions, I/O errors) still stops the start, with the error.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Renames `path` to `PATH.damaged-<UTC time>` and makes the rename durable; returns the new
/// name.
pub(super) fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{}", crate::time::file_stamp(SystemTime::now())));
    let aside = PathBuf::from(name);
    std::fs::rename(path, &aside)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(aside)
}

/// True for errors that mean "read, but not understood": the file is damaged, not unreadable.
pub(super) fn is_damage(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
}

/// Sets `path` aside after `error`, with one error line saying what it costs; the count of files
/// set aside so far goes up. A failure to rename is returned (the data dir cannot be written).
pub(super) fn report(path: &Path, error: &io::Error, cost: &str, count: &mut u64) -> io::Result<()> {
    let aside = set_aside(path)?;
    *count += 1;
    log::error!("{error}: damaged; set aside as {} and rebuilt ({cost})", aside.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn a_damaged_file_is_renamed_never_deleted() {
        let dir = TempDir::new("damaged");
        let path = dir.path().join("checkpoint");
        std::fs::write(&path, "garbage").unwrap();
        let mut count = 0;
        let error = io::Error::new(io::ErrorKind::InvalidData, "checkpoint: line 1");
        report(&path, &error, "sinks start over", &mut count).unwrap();
        assert_eq!(count, 1);
        assert!(!path.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(aside.len(), 1);
        let name = aside[0].to_string_lossy().into_owned();
        assert!(name.starts_with("checkpoint.damaged-") && name.ends_with('Z'), "{name}");
        assert_eq!(std::fs::read_to_string(dir.path().join(&aside[0])).unwrap(), "garbage");
        assert!(is_damage(&error) && !is_damage(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }
}
