//! Counts the lines the receiver appends to `DATA_DIR/events.jsonl`, while it runs, and (unless
//! asked not to) punches the counted part out of the file so that the file's page cache is
//! recycled instead of growing (see "Page cache" in `load.rs`'s docs for why).
//!
//! Only complete lines are counted: the count stops after the last `\n` seen, and the bytes after
//! it (a batch being appended right now) are counted on the next pass. A line is complete once its
//! `\n` is inside the file size, since the kernel moves the size only past copied data.
//! Punching frees whole 4 KiB blocks strictly before the counted offset, so it never touches the
//! bytes being appended at the end of the file, and the file keeps its size (appends continue).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Punched ranges are whole blocks of this size (the page size).
const BLOCK: u64 = 4096;
/// Most bytes punched by one call.
const PUNCH_STEP: u64 = 1 << 20;

/// The count so far.
pub(crate) struct Tail {
    file: Option<File>,
    /// Bytes counted: the offset just after the last complete line.
    offset: u64,
    /// Complete lines counted.
    pub lines: u64,
    /// Bytes freed from the start of the file.
    punched: u64,
    punch: bool,
    buffer: Vec<u8>,
}

impl Tail {
    /// Counts `path` (which may not exist yet) from its start; `punch` frees what was counted.
    pub(crate) fn new(punch: bool) -> Tail {
        Tail { file: None, offset: 0, lines: 0, punched: 0, punch, buffer: vec![0; 1 << 20] }
    }

    /// Counts the complete lines added since the last call, then punches them out if asked.
    pub(crate) fn advance(&mut self, path: &Path) -> io::Result<()> {
        if self.file.is_none() {
            match File::options().read(true).write(true).open(path) {
                Ok(file) => self.file = Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let file = self.file.as_ref().expect("opened above");
        let end = file.metadata()?.len();
        let mut position = self.offset;
        while position < end {
            let want = (end - position).min(self.buffer.len() as u64) as usize;
            let n = file.read_at(&mut self.buffer[..want], position)?;
            if n == 0 {
                break;
            }
            let chunk = &self.buffer[..n];
            let lines = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(last) = chunk.iter().rposition(|&b| b == b'\n') {
                self.lines += lines;
                self.offset = position + last as u64 + 1;
            }
            position += n as u64;
        }
        if self.punch {
            // In small steps: a punch holds the file's lock, and the receiver appends under it.
            let until = self.offset / BLOCK * BLOCK;
            while self.punched < until {
                let step = (until - self.punched).min(PUNCH_STEP);
                punch_hole(file, self.punched, step)?;
                self.punched += step;
            }
        }
        Ok(())
    }
}

fn punch_hole(file: &File, offset: u64, length: u64) -> io::Result<()> {
    // SAFETY: FFI on a file descriptor we own, no memory passed.
    let result = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            length as libc::off_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
