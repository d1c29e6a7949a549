//! Where segments live: a directory of files ([`DirStorage`]), or memory with injected faults
//! (`memory.rs`, for tests). The journal sees only these two traits.
//!
//! A segment is named by its first record's sequence number (`00000000000000000001.seg`, 20
//! digits so names sort by number). Creating or removing one makes the directory entry durable
//! (`fsync` of the directory) before returning: a segment that a 200 depends on never
//! disappears with a power loss.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// File name suffix of a segment.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// A set of segments, each named by its first sequence number.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Every segment's id, ascending.
    fn segments(&self) -> io::Result<Vec<u64>>;
    /// Creates segment `id`, empty; fails if it exists. The name is durable on return.
    ///
    /// `durable`: its name survives a crash of the machine once this returns (the directory is
    /// synced). Without it the name is written back by the kernel like any other change: a
    /// crash of the process loses nothing, a crash of the machine may lose the new file.
    fn create(&self, id: u64, durable: bool) -> io::Result<Box<dyn Segment>>;
    /// Opens segment `id` for reading and writing.
    fn open(&self, id: u64) -> io::Result<Box<dyn Segment>>;
    /// Removes segment `id`; the removal is durable on return. Its file may be kept as a
    /// spare that a later [`create`](Storage::create) reuses (then it still holds old bytes
    /// past the new segment's records: see the end mark in `journal/mod.rs`).
    fn remove(&self, id: u64) -> io::Result<()>;
    /// Where the segments are, for messages.
    fn describe(&self, id: u64) -> String;
    /// False once the storage is no longer where it was opened (its directory removed, or
    /// replaced by another): what is written then is written into nothing.
    fn intact(&self) -> io::Result<bool> {
        Ok(true)
    }
    /// When segment `id` was last written, if the storage knows (it ages delivered segments out).
    fn modified(&self, id: u64) -> io::Result<Option<std::time::SystemTime>> {
        let _ = id;
        Ok(None)
    }
}

/// One open segment file.
pub trait Segment: Send + fmt::Debug {
    /// Its length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `offset`; fewer bytes than asked only at the end of the file.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes some prefix of `buf` at `offset` and says how much (a short write is allowed).
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<usize>;
    /// Makes every write so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// False once the segment's file has no name left (deleted while open).
    fn linked(&self) -> io::Result<bool> {
        Ok(true)
    }
}

/// Writes all of `buf` at `offset`, looping over short writes.
pub(super) fn write_all_at(segment: &mut dyn Segment, mut offset: u64, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match segment.write_at(offset, buf) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "segment write made no progress")),
            Ok(n) => {
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes at `offset`, looping over short reads; returns how many.
pub(super) fn read_full_at(segment: &dyn Segment, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match segment.read_at(offset + done as u64, &mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Most removed segment files a [`DirStorage`] keeps for reuse (`<id>.spare`): one is enough
/// for a rotation, the second covers a removal that lags one. They take at most this many
/// segments' worth of disk beside the journal.
pub const MAX_SPARES: usize = 2;
/// Suffix of a spare segment file.
pub const SPARE_SUFFIX: &str = ".spare";

/// Segments as files in one directory; removed ones are kept as spares (see [`MAX_SPARES`]).
#[derive(Debug)]
pub struct DirStorage {
    dir: PathBuf,
    /// The directory's (device, inode) when opened.
    identity: (u64, u64),
}

impl DirStorage {
    /// Uses `dir`, creating it if needed.
    pub fn new(dir: &Path) -> io::Result<DirStorage> {
        crate::private_files::create_dir_all(dir).map_err(|e| context(dir, e))?;
        Ok(DirStorage { dir: dir.to_path_buf(), identity: identity(dir)? })
    }

    /// Uses `dir`, which must exist (the inspection tools never create a journal).
    pub fn existing(dir: &Path) -> io::Result<DirStorage> {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no journal here", dir.display()),
            ));
        }
        Ok(DirStorage { dir: dir.to_path_buf(), identity: identity(dir)? })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}{SEGMENT_SUFFIX}"))
    }

    fn spare_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}{SPARE_SUFFIX}"))
    }

    /// The spare files, by name.
    fn spares(&self) -> io::Result<Vec<PathBuf>> {
        let mut spares = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| context(&self.dir, e))? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(|name| name.ends_with(SPARE_SUFFIX)) {
                spares.push(entry.path());
            }
        }
        spares.sort();
        Ok(spares)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| context(&self.dir, e))
    }
}

/// (device, inode) of a path.
fn identity(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = fs::metadata(path).map_err(|e| context(path, e))?;
    Ok((metadata.dev(), metadata.ino()))
}

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Storage for DirStorage {
    fn segments(&self) -> io::Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| context(&self.dir, e))? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else { continue };
            if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
                ids.push(stem.parse().map_err(|_| io::Error::other(format!("bad segment name {stem}")))?);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reuses a spare file when there is one (renamed to the segment's name; it keeps its old
    /// bytes until overwritten), else creates the file.
    fn create(&self, id: u64, durable: bool) -> io::Result<Box<dyn Segment>> {
        let path = self.path(id);
        if path.exists() {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: exists", path.display())));
        }
        let spare = self.spares()?.pop();
        if let Some(spare) = &spare {
            fs::rename(spare, &path).map_err(|e| context(spare, e))?;
        }
        let opened =
            crate::private_files::options().read(true).write(true).create_new(spare.is_none()).open(&path);
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                // No segment was made (no free descriptor, say): the spare goes back to being one,
                // so that the next try finds neither a stray segment nor a lost spare.
                if let Some(spare) = &spare {
                    let _ = fs::rename(&path, spare);
                }
                return Err(context(&path, e));
            }
        };
        if durable {
            self.sync_dir()?;
        }
        Ok(Box::new(FileSegment { file, path }))
    }

    fn open(&self, id: u64) -> io::Result<Box<dyn Segment>> {
        let path = self.path(id);
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| context(&path, e))?;
        Ok(Box::new(FileSegment { file, path }))
    }

    fn remove(&self, id: u64) -> io::Result<()> {
        let path = self.path(id);
        if self.spares()?.len() < MAX_SPARES {
            let spare = self.spare_path(id);
            fs::rename(&path, &spare).map_err(|e| context(&path, e))?;
        } else {
            fs::remove_file(&path).map_err(|e| context(&path, e))?;
        }
        self.sync_dir()
    }

    fn describe(&self, id: u64) -> String {
        self.path(id).display().to_string()
    }

    fn intact(&self) -> io::Result<bool> {
        match identity(&self.dir) {
            Ok(now) => Ok(now == self.identity),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn modified(&self, id: u64) -> io::Result<Option<std::time::SystemTime>> {
        let path = self.path(id);
        fs::metadata(&path).and_then(|m| m.modified()).map(Some).map_err(|e| context(&path, e))
    }
}

/// A segment file.
#[derive(Debug)]
struct FileSegment {
    file: File,
    path: PathBuf,
}

impl Segment for FileSegment {
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata().map_err(|e| context(&self.path, e))?.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<usize> {
        self.file.write_at(buf, offset)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data().map_err(|e| context(&self.path, e))
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len).map_err(|e| context(&self.path, e))
    }

    fn linked(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata().map_err(|e| context(&self.path, e))?.nlink() > 0)
    }
}
