//! Files that hold other people's data: events carry file paths, user names and email
//! addresses, so everything the receiver creates is readable by its own user only, whatever the
//! umask it was started with: directories 0700 ([`DIR_MODE`]), files 0600 ([`FILE_MODE`]).
//!
//! Only creation is governed here. A file that already exists keeps its mode: an operator who
//! wants a sink file group-readable creates it (or chmods it) that way, and a jsonl sink's next
//! file after a rotation takes the mode of the one it replaces. An existing data directory is not
//! changed either, but [`warn_if_shared`] says so at start when other users can read it.

use std::fs::{DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file the receiver creates (the umask can only take bits away).
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory the receiver creates.
pub const DIR_MODE: u32 = 0o700;

/// `OpenOptions` whose files, when created, get [`FILE_MODE`].
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Creates `dir` and any missing parent with [`DIR_MODE`] (existing ones are left as they are).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// The permission bits of `path` when users other than its owner may read or enter it.
pub fn shared_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// Logs a warning when users other than the owner may read or enter `dir`.
pub fn warn_if_shared(dir: &Path) {
    if let Some(mode) = shared_mode(dir) {
        log::warn!(
            "data directory {} has mode {mode:03o}: other local users may read the events in it \
             (chmod 700 it; the receiver creates its files 0600)",
            dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TempDir;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_files_and_directories_are_private_whatever_the_umask() {
        // The test process runs with the usual umask (022), which would give 0755 and 0644.
        let temp = TempDir::new("private");
        let dir = temp.path().join("a/b");
        create_dir_all(&dir).unwrap();
        assert_eq!((mode(&temp.path().join("a")), mode(&dir)), (DIR_MODE, DIR_MODE));
        let file = dir.join("f");
        options().write(true).create(true).truncate(true).open(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        // An existing file keeps its mode.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        options().append(true).create(true).open(&file).unwrap();
        assert_eq!(mode(&file), 0o640);
    }
}
