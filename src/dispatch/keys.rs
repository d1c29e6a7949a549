//! The dedup key file: the keys of the most recent events, so the dedup ring comes back after a
//! restart (graceful or `kill -9`) without keeping old journal segments around.
//!
//! `DATA_DIR/dedup.keys` is a ring of `capacity` 64-bit keys behind a 16-byte header:
//! ```text
//! offset size  field
//!      0    4  magic "EGRK"
//!      4    4  version, 1 (u32 LE)
//!      8    8  capacity C (u64 LE)
//!     16  8·C  slots: the i-th event's key (u64 LE) is in slot i mod C
//! ```
//! How many keys were ever written (COUNT) is not in this file but in the checkpoint, next to
//! the journal position they cover, so the two move together. The dispatcher writes the keys
//! of the events it reads, syncs the file, then stores the checkpoint; after a crash between
//! the two, slots past the old COUNT hold newer keys than the checkpoint says: restoring then
//! reads a few newest keys in place of the oldest (which the journal tail replays anyway), so
//! the ring remembers at least `capacity` − (events per checkpoint interval) keys.
//!
//! A different `--dedup-capacity` than the file's rewrites the file once, keeping the newest
//! keys that fit.
//!
//! It lives here, not in `dedup`, because the dispatcher owns it: the keys come from the
//! journal records it reads, and the file must be synced before the checkpoint that counts
//! them is stored, which only the dispatcher's checkpoint step can order. `dedup` keeps only
//! its secret on disk, which nothing else writes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// File name in the data directory.
pub const KEYS_FILE: &str = "dedup.keys";
const MAGIC: [u8; 4] = *b"EGRK";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;

/// The open key file.
#[derive(Debug)]
pub struct KeyFile {
    file: File,
    path: PathBuf,
    capacity: u64,
    count: u64,
}

fn context(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn header(capacity: u64) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..4].copy_from_slice(&MAGIC);
    header[4..8].copy_from_slice(&VERSION.to_le_bytes());
    header[8..].copy_from_slice(&capacity.to_le_bytes());
    header
}

impl KeyFile {
    /// Opens `DATA_DIR/dedup.keys` for `capacity` keys, of which the checkpoint says `count`
    /// were written; returns it with the keys it remembers, oldest first.
    pub fn open(data_dir: &Path, capacity: u64, count: u64) -> io::Result<(KeyFile, Vec<u64>)> {
        let path = data_dir.join(KEYS_FILE);
        let (old_capacity, keys) = match File::open(&path) {
            Ok(file) => read(&file, &path, count)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if count > 0 {
                    log::warn!("{} is missing: the dedup keys come from the journal alone", path.display());
                }
                (0, Vec::new())
            }
            Err(e) => return Err(context(&path)(e)),
        };
        if old_capacity == capacity {
            let file = OpenOptions::new().write(true).open(&path).map_err(context(&path))?;
            return Ok((KeyFile { file, path, capacity, count }, keys));
        }
        // New, or a new capacity: write a fresh file holding the newest keys that fit.
        let keep = &keys[keys.len().saturating_sub(capacity as usize)..];
        let temporary = data_dir.join(format!("{KEYS_FILE}.tmp"));
        let file = crate::private_files::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)
            .map_err(context(&temporary))?;
        file.write_all_at(&header(capacity), 0).map_err(context(&temporary))?;
        file.set_len(HEADER_LEN + 8 * capacity).map_err(context(&temporary))?;
        let mut key_file = KeyFile { file, path: path.clone(), capacity, count: 0 };
        key_file.append(keep)?;
        key_file.sync()?;
        fs::rename(&temporary, &path).map_err(context(&path))?;
        File::open(data_dir).and_then(|d| d.sync_all()).map_err(context(&path))?;
        Ok((key_file, keep.to_vec()))
    }

    /// The capacity of `DATA_DIR/dedup.keys` (its header only), `None` when there is none.
    pub fn capacity_in(data_dir: &Path) -> io::Result<Option<u64>> {
        let path = data_dir.join(KEYS_FILE);
        let mut head = [0u8; HEADER_LEN as usize];
        match File::open(&path).and_then(|mut f| f.read_exact(&mut head)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(context(&path)(e)),
        }
        let capacity = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
        if head != header(capacity) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a dedup key file", path.display()),
            ));
        }
        Ok(Some(capacity))
    }

    /// Keys written so far (the next checkpoint's COUNT).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the keys of the next events (not yet durable: see [`KeyFile::sync`]).
    pub fn append(&mut self, keys: &[u64]) -> io::Result<()> {
        let mut rest = keys;
        while !rest.is_empty() {
            let slot = self.count % self.capacity;
            let run = rest.len().min((self.capacity - slot) as usize);
            let bytes: Vec<u8> = rest[..run].iter().flat_map(|k| k.to_le_bytes()).collect();
            self.file.write_all_at(&bytes, HEADER_LEN + 8 * slot).map_err(context(&self.path))?;
            self.count += run as u64;
            rest = &rest[run..];
        }
        Ok(())
    }

    /// Makes every key written so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data().map_err(context(&self.path))
    }
}

/// Reads a key file's capacity and its newest `count` keys (at most capacity), oldest first.
fn read(mut file: &File, path: &Path, count: u64) -> io::Result<(u64, Vec<u64>)> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
    let mut head = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut head).map_err(|_| bad("shorter than its header"))?;
    let capacity = u64::from_le_bytes(head[8..].try_into().expect("8 bytes"));
    if head != header(capacity) || capacity == 0 {
        return Err(bad("not a dedup key file (bad magic, version or capacity)"));
    }
    // The file's own size bounds what is read, before any allocation.
    let len = file.metadata().map_err(context(path))?.len();
    if len < HEADER_LEN + 8 * capacity {
        return Err(bad("shorter than its capacity says"));
    }
    let mut slots = vec![0u8; 8 * capacity as usize];
    file.read_exact(&mut slots).map_err(context(path))?;
    let slot = |i: u64| {
        let at = 8 * (i % capacity) as usize;
        u64::from_le_bytes(slots[at..at + 8].try_into().expect("8 bytes"))
    };
    let keys = (count.saturating_sub(capacity)..count).map(slot).collect();
    Ok((capacity, keys))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_dir::TempDir;

    #[test]
    fn the_newest_capacity_keys_come_back_in_order_after_wrapping() {
        let temp = TempDir::new("keys-wrap");
        let dir = temp.path();
        let (mut file, keys) = KeyFile::open(dir, 4, 0).unwrap();
        assert!(keys.is_empty());
        file.append(&[1, 2, 3]).unwrap();
        file.append(&[4, 5, 6]).unwrap();
        file.sync().unwrap();
        assert_eq!(file.count(), 6);
        let bytes = fs::read(dir.join(KEYS_FILE)).unwrap();
        assert_eq!(&bytes[..16], b"EGRK\x01\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00");
        assert_eq!(bytes.len(), 16 + 32);
        assert_eq!(&bytes[16..24], &5u64.to_le_bytes(), "slot 0 holds the 5th key (index 4)");
        let (_, keys) = KeyFile::open(dir, 4, 6).unwrap();
        assert_eq!(keys, [3, 4, 5, 6]);
        // A crash after the keys were written but before the checkpoint counted them: the slots
        // the checkpoint counts were overwritten by newer keys (the documented trade: the journal
        // tail replays those anyway).
        let (_, keys) = KeyFile::open(dir, 4, 2).unwrap();
        assert_eq!(keys, [5, 6], "only as many as the checkpoint counts");
    }

    #[test]
    fn a_new_capacity_keeps_the_newest_keys_that_fit() {
        let temp = TempDir::new("keys-resize");
        let dir = temp.path();
        let (mut file, _) = KeyFile::open(dir, 8, 0).unwrap();
        file.append(&[10, 11, 12, 13, 14]).unwrap();
        file.sync().unwrap();
        let (smaller, keys) = KeyFile::open(dir, 2, 5).unwrap();
        assert_eq!((keys, smaller.count()), (vec![13, 14], 2));
        let (larger, keys) = KeyFile::open(dir, 16, 2).unwrap();
        assert_eq!((keys, larger.count()), (vec![13, 14], 2));
    }

    #[test]
    fn a_damaged_file_is_refused() {
        let temp = TempDir::new("keys-damaged");
        let dir = temp.path();
        fs::write(dir.join(KEYS_FILE), b"EGRK").unwrap();
        assert!(KeyFile::open(dir, 4, 1).unwrap_err().to_string().contains("header"));
        let mut short = header(1000).to_vec();
        short.extend([0; 8]);
        fs::write(dir.join(KEYS_FILE), short).unwrap();
        assert!(KeyFile::open(dir, 1000, 1).unwrap_err().to_string().contains("capacity"));
        fs::write(dir.join(KEYS_FILE), [0u8; 64]).unwrap();
        assert!(KeyFile::open(dir, 4, 1).unwrap_err().to_string().contains("magic"));
    }
}
