//! One receiver per data directory: an exclusive `flock` on `DATA_DIR/lock`, held for the life
//! of the process.
//!
//! Two receivers on one data directory both append to the same journal segment and both deliver
//! it, so events are lost and repeated while every request was answered 200. The lock is taken
//! before anything in the directory is read or written, and a second `serve` stops at once with
//! the holder's PID in its message.
//!
//! Why `flock` on an open file: the kernel releases it when the last descriptor of that open file
//! closes, which includes any exit, SIGKILL and a crash, so there is never a stale lock to clean
//! up by hand. The file is opened close-on-exec (std always does), so an `exec` sink's child never
//! inherits it and cannot keep the lock alive after the receiver died. The PID written into the
//! file is only for the message; the lock itself is the truth.
//!
//! The read-only tools (`journal stats|dump`, `replay`, which opens the journal read-only) take no
//! lock and keep working beside a running receiver.

use std::fs::{File, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "lock";

/// The held lock; dropping it (or the process ending in any way) releases it.
#[derive(Debug)]
pub(super) struct DataDirLock {
    /// Kept open: the lock lives as long as this descriptor.
    _file: File,
}

/// Why the data directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds the lock; its PID when the file names one.
    Held {
        /// The data directory.
        dir: PathBuf,
        /// The PID written by the holder, if readable.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { dir, pid: Some(pid) } => write!(
                f,
                "data directory {} is in use by another egnyte-receiver (PID {pid}); \
                 one receiver per data directory",
                dir.display()
            ),
            LockError::Held { dir, pid: None } => write!(
                f,
                "data directory {} is in use by another egnyte-receiver; one receiver per data directory",
                dir.display()
            ),
            LockError::Io(path, e) => write!(f, "cannot lock {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for LockError {}

impl DataDirLock {
    /// Takes the lock on `dir` (which must exist) without waiting, and writes this process's PID
    /// into the lock file.
    pub(super) fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_error = |e| LockError::Io(path.clone(), e);
        // Not truncated on open: the holder's PID must stay readable for the message.
        let mut file = crate::private_files::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held { dir: dir.to_path_buf(), pid: holder(&mut file) })
            }
            Err(TryLockError::Error(e)) => return Err(io_error(e)),
        }
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        Ok(DataDirLock { _file: file })
    }
}

/// The PID the holder wrote, if the file holds one.
fn holder(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_one_is_free_again() {
        let dir = TempDir::new("lock");
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in the same process conflicts too.
        match DataDirLock::acquire(dir.path()) {
            Err(error @ LockError::Held { pid: Some(pid), .. }) => {
                assert_eq!(pid, std::process::id());
                let message = error.to_string();
                assert!(message.contains(&dir.path().display().to_string()), "{message}");
                assert!(message.contains(&format!("PID {pid}")), "{message}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = TempDir::new("lock-missing");
        let gone = dir.path().join("nope");
        assert!(matches!(DataDirLock::acquire(&gone), Err(LockError::Io(..))));
    }
}
