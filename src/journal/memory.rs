//! Segments in memory, with the faults a disk can have: failing `fsync`, a full disk (ENOSPC),
//! short writes, failing writes, and a power loss that keeps only what was synced (plus, if
//! asked, a torn part of what was not). Tests drive the journal through every failure with it;
//! it is public so that integration tests, the fuzz target and benchmarks can use it too.
//!
//! A clone shares the same segments, like a second handle on the same disk.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::storage::{Segment, Storage};

/// Faults to inject; all off by default.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// While set, every `sync` fails with an I/O error.
    pub fail_sync: bool,
    /// While set, every write fails with an I/O error and writes nothing.
    pub fail_write: bool,
    /// Writes fail with "no space left" once all segments hold this many bytes.
    pub space: Option<u64>,
    /// Each write call writes at most this many bytes (short writes).
    pub short_writes: Option<usize>,
    /// While set, a write panics (a bug in a storage layer): the journal must not hang.
    pub panic_on_write: bool,
    /// While set, a write waits (a disk that stalls), polling every millisecond.
    pub stall_writes: bool,
    /// While set, creating a segment fails with this OS error (EMFILE: no free descriptor).
    pub create_error: Option<i32>,
}

#[derive(Debug, Default)]
struct File {
    data: Vec<u8>,
    /// Bytes that survive a power loss.
    synced: usize,
}

#[derive(Debug, Default)]
struct Disk {
    files: BTreeMap<u64, File>,
    faults: Faults,
    syncs: u64,
}

/// An in-memory [`Storage`] with fault injection.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    disk: Arc<Mutex<Disk>>,
}

impl MemStorage {
    /// An empty disk.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.disk().faults = faults;
    }

    /// Successful syncs so far.
    pub fn syncs(&self) -> u64 {
        self.disk().syncs
    }

    /// A copy of segment `id`'s bytes.
    pub fn bytes(&self, id: u64) -> Option<Vec<u8>> {
        self.disk().files.get(&id).map(|f| f.data.clone())
    }

    /// Replaces segment `id`'s bytes (all counted as synced): corruption on purpose.
    pub fn set_bytes(&self, id: u64, data: Vec<u8>) {
        let synced = data.len();
        self.disk().files.insert(id, File { data, synced });
    }

    /// A power loss: each segment keeps its synced bytes plus `torn(unsynced)` of the bytes
    /// written after them (0 keeps none).
    pub fn power_loss(&self, torn: impl Fn(usize) -> usize) {
        for file in self.disk().files.values_mut() {
            let unsynced = file.data.len().saturating_sub(file.synced);
            file.data.truncate(file.synced + torn(unsynced).min(unsynced));
            file.synced = file.data.len();
        }
    }
}

fn no_such(id: u64) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("memory segment {id}: not found"))
}

impl Storage for MemStorage {
    fn segments(&self) -> io::Result<Vec<u64>> {
        Ok(self.disk().files.keys().copied().collect())
    }

    /// Names are always kept: a power loss here tears only unsynced bytes (see
    /// [`MemStorage::power_loss`]), whatever `durable` says.
    fn create(&self, id: u64, _durable: bool) -> io::Result<Box<dyn Segment>> {
        let mut disk = self.disk();
        if let Some(errno) = disk.faults.create_error {
            return Err(io::Error::from_raw_os_error(errno));
        }
        if disk.files.contains_key(&id) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("memory segment {id}: exists")));
        }
        disk.files.insert(id, File::default());
        Ok(Box::new(MemSegment { id, disk: Arc::clone(&self.disk) }))
    }

    fn open(&self, id: u64) -> io::Result<Box<dyn Segment>> {
        if !self.disk().files.contains_key(&id) {
            return Err(no_such(id));
        }
        Ok(Box::new(MemSegment { id, disk: Arc::clone(&self.disk) }))
    }

    fn remove(&self, id: u64) -> io::Result<()> {
        self.disk().files.remove(&id).map(drop).ok_or_else(|| no_such(id))
    }

    fn describe(&self, id: u64) -> String {
        format!("memory segment {id}")
    }
}

/// A handle on one in-memory segment.
#[derive(Debug)]
struct MemSegment {
    id: u64,
    disk: Arc<Mutex<Disk>>,
}

impl MemSegment {
    fn with<T>(&self, f: impl FnOnce(&mut File, &Faults, u64) -> io::Result<T>) -> io::Result<T> {
        let mut disk = self.disk.lock().unwrap_or_else(PoisonError::into_inner);
        let used: u64 = disk.files.values().map(|f| f.data.len() as u64).sum();
        let Disk { files, faults, .. } = &mut *disk;
        let file = files.get_mut(&self.id).ok_or_else(|| no_such(self.id))?;
        f(file, faults, used)
    }
}

impl Segment for MemSegment {
    fn size(&self) -> io::Result<u64> {
        self.with(|file, _, _| Ok(file.data.len() as u64))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.with(|file, _, _| {
            let start = (offset as usize).min(file.data.len());
            let n = buf.len().min(file.data.len() - start);
            buf[..n].copy_from_slice(&file.data[start..start + n]);
            Ok(n)
        })
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        while self.disk.lock().unwrap_or_else(std::sync::PoisonError::into_inner).faults.stall_writes {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.with(|file, faults, used| {
            assert!(!faults.panic_on_write, "injected panic in a segment write");
            if faults.fail_write {
                return Err(io::Error::other("injected write failure"));
            }
            let mut n = buf.len().min(faults.short_writes.unwrap_or(usize::MAX));
            if let Some(space) = faults.space {
                let grows = (offset as usize + n).saturating_sub(file.data.len()) as u64;
                let free = space.saturating_sub(used);
                if grows > free {
                    if free == 0 {
                        return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                    }
                    n -= (grows - free) as usize;
                }
            }
            let offset = offset as usize;
            if file.data.len() < offset + n {
                file.data.resize(offset + n, 0);
            }
            file.data[offset..offset + n].copy_from_slice(&buf[..n]);
            Ok(n)
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        let synced = self.with(|file, faults, _| {
            if faults.fail_sync {
                return Err(io::Error::other("injected fsync failure"));
            }
            file.synced = file.data.len();
            Ok(())
        });
        if synced.is_ok() {
            self.disk.lock().unwrap_or_else(PoisonError::into_inner).syncs += 1;
        }
        synced
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|file, _, _| {
            file.data.resize(len as usize, 0);
            file.synced = file.synced.min(file.data.len());
            Ok(())
        })
    }
}
