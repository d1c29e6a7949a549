//! The `jsonl:PATH` sink: each event becomes one line of PATH, its bytes as received then `\n`.
//!
//! It owns one open file, a buffer of whole lines not yet written, and the file's length as far
//! as this sink wrote it. All of it sits under one mutex: workers deliver concurrently, and each
//! line is appended whole, under the lock, so lines never interleave.
//!
//! Invariants:
//! * The buffer holds only whole lines; `len` is the file's length at the end of the last whole
//!   line written. A write that fails (full disk, quota) is undone by cutting the file back to
//!   `len` (`set_len`); the buffer is kept, so events already acknowledged are not lost and a
//!   retried event is never written as half a line followed by the whole line. If even the cut
//!   fails, the next write retries the cut before writing anything.
//! * Why not `std::io::BufWriter`: when its flush fails it has already dropped the bytes that
//!   made it to the file, so the file cannot be cut back to a line boundary and then rewritten.
//! * `sync` writes the buffer and `fdatasync`s the file (and, after the file was created or
//!   rotated, fsyncs its directory): when it returns `Ok`, every line acknowledged before it is
//!   durable. Rotation and reopening do the same for the file they leave behind.
//! * Rotation (when a maximum size is set): before a line that would take a non-empty file over
//!   the maximum, the file is made durable, renamed to `PATH.<UTC time>` (a `.N` suffix when that
//!   name exists) and a fresh PATH is opened; a line longer than the maximum still goes, alone,
//!   into a fresh file. Only this sink may rotate PATH: the free-name check is not atomic.
//! * Following PATH: SIGHUP ([`reopen`](JsonlSink::reopen)) is the fast path after logrotate,
//!   but a reload that failed must not leave the sink writing into `PATH.1`, or into a deleted
//!   file, for ever. So `sync` (which the dispatcher calls at most every 200 ms, and only after
//!   deliveries) first compares `stat(PATH)` with the open file's (device, inode), at most every
//!   [`PATH_CHECK_INTERVAL`]: one `stat` beside the `fdatasync` `sync` does anyway (an open file
//!   keeps its inode, so its number cannot come back at PATH while the sink holds it). When PATH
//!   names another file or none, the sink switches: at once when the open file has no link left
//!   (deleted: its lines are lost to every reader), else once PATH has been seen elsewhere for
//!   [`MOVE_GRACE`] (renamed: its lines are still there, and logrotate's SIGHUP, on its way, is
//!   left to do it, so that the warning a switch logs means that no SIGHUP came). A switch makes
//!   what was written to the old file durable there (the checkpoint about to move covers it),
//!   opens PATH (creating it) and puts the lines still buffered, delivered but not yet written,
//!   into it; the mark `sync` then returns names the new file, so a restart resumes as after a
//!   SIGHUP. The sink's own size rotations never trigger it (they switch files under the same
//!   lock), and a replay never follows.
//! * A failed `fdatasync` is sticky: Linux reports a writeback error to one `fdatasync` and
//!   then forgets it, with the pages marked clean and their lines perhaps never written, so the
//!   next `fdatasync` succeeds. The sink keeps the first failure and fails every later `sync`
//!   with it: no checkpoint moves past those lines (the journal keeps them, up to
//!   `--max-journal-bytes`), and a restart delivers them again. Lines go on being appended.
//!
//! * Exactly once across a crash: lines are appended in position order (the dispatcher gives
//!   all of a serial sink's records to one worker), so `sync` can say which file, how long, and
//!   through which record ([`Synced`]); the checkpoint stores that mark with the position. After a
//!   restart, [`resume`](JsonlSink::resume) cuts PATH back to the mark when PATH still is the
//!   marked file (the lines after it are of records past the checkpoint, delivered again at
//!   once), and when PATH is another file (rotated since the mark) it cuts nothing: it finds the
//!   record of the last line the files hold, and delivery resumes after it.
//!
//! It must never create PATH's directory (a typo in a path should fail loudly at start-up), and
//! never write to a file that no longer is PATH after a rotation or reopen that failed half-way.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::{Failure, FileMark, Synced};
use crate::private_files;

/// Default for [`SinkOptions::jsonl_max_bytes`](super::SinkOptions::jsonl_max_bytes): 0, never
/// rotate. A service host usually already runs logrotate (which sends SIGHUP, see
/// [`JsonlSink::reopen`]); two rotation schemes on one file would fight, so size rotation is
/// something an operator asks for.
pub const DEFAULT_JSONL_MAX_BYTES: u64 = 0;

/// Bytes of whole lines kept in memory before they are written: a line that does not fit
/// triggers a write of the buffer first, and a line longer than this is written on its own.
/// Events are 0.3-2 KiB, so 64 KiB spreads one `write` over tens of events; more would gain
/// little, since every `sync` writes the buffer out anyway.
pub const JSONL_BUFFER_BYTES: usize = 64 << 10;

/// Most `.N` suffixes tried for a rotated file's name when `PATH.<UTC time>` exists; beyond it
/// rotation fails (and the event is retried), which only happens if rotated files are never
/// cleared away and more than this many rotations land in one millisecond.
pub const MAX_ROTATION_SUFFIX: u32 = 1000;

/// Least time between two looks at whether PATH still is the open file (see the module docs):
/// half the dispatcher's checkpoint interval, so that each of its syncs looks, while a caller
/// that syncs in a loop does not `stat` more than ten times a second.
const PATH_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// How long PATH must have been seen naming another file or none, while the open file is still
/// linked somewhere (renamed), before the sink reopens it by itself: logrotate's reload sends
/// SIGHUP within milliseconds of its rename, so the sink's own switch (and its warning) happens
/// only when none came. A deleted file is left at once.
const MOVE_GRACE: Duration = Duration::from_millis(500);

/// Appends events as lines to one file. See the module docs.
#[derive(Debug)]
pub struct JsonlSink {
    name: String,
    path: PathBuf,
    /// 0: never rotate.
    max_bytes: u64,
    /// `sync` notices that PATH was moved or deleted and opens it again (not for `replay`).
    follows_path: bool,
    state: Mutex<State>,
}

/// The open file and what is known about it; only touched under [`JsonlSink::state`].
#[derive(Debug)]
struct State {
    file: File,
    /// The file's length at the end of the last whole line written.
    len: u64,
    /// Whole lines accepted but not yet written.
    buffer: Vec<u8>,
    /// A failed write could not be cut back: the file may extend past `len`.
    torn: bool,
    /// `file` no longer is PATH (a rotation or reopen failed after moving away from it): PATH
    /// must be opened before anything is written.
    detached: bool,
    /// PATH was (re)opened, perhaps created, since the directory was last fsynced.
    dir_unsynced: bool,
    /// The first failed `fdatasync`: every later `sync` fails with it.
    sync_failed: Option<String>,
    /// `file`'s (device, inode).
    identity: (u64, u64),
    /// The position of the record whose line was appended last (buffered or written).
    last_position: Option<u64>,
    /// When `sync` next looks whether PATH still is `file`.
    path_check_due: Instant,
    /// When a look first found PATH naming another file or none (`file` still linked).
    moved_seen: Option<Instant>,
    /// Times PATH was found moved or deleted and opened again.
    moves_followed: u64,
}

/// Where a restarted sink stands against its checkpoint (see [`JsonlSink::resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// The files hold the lines of the records below the checkpoint's position and nothing
    /// after them (any later bytes were cut): delivery starts at that position.
    AtCheckpoint,
    /// The files hold lines written after the checkpoint, the last of them this record's:
    /// delivery starts after it.
    After(u64),
    /// Nothing tells where the files stand: delivery starts at the checkpoint's position, and
    /// lines written after it may be written again.
    Unknown,
}

impl JsonlSink {
    /// Opens PATH for appending, creating the file (never its directory). A file left ending in
    /// the middle of a line (a crash during a write) is cut back to its last whole line: that
    /// write was never synced, so its events are past the checkpoint and delivered again whole.
    pub fn open(name: String, path: &Path, max_bytes: u64) -> io::Result<JsonlSink> {
        let (file, len, identity) = open_path(path, private_files::FILE_MODE)?;
        lock_or_warn(&file, path);
        let state = State::new(file, len, identity);
        Ok(JsonlSink {
            name,
            path: path.to_path_buf(),
            max_bytes,
            follows_path: true,
            state: Mutex::new(state),
        })
    }

    /// Opens PATH for `replay`, which must not disturb a receiver: refused when a running
    /// receiver writes PATH (it holds a lock on the file while it writes it) and when PATH
    /// ends in the middle of a line (not this process's to cut). The lock is then held by the
    /// replay, which never rotates and keeps its file if it is moved (opening PATH again could
    /// land in a file a receiver writes meanwhile).
    pub fn open_for_replay(name: String, path: &Path) -> io::Result<JsonlSink> {
        let file = open_append(path, private_files::FILE_MODE)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                    "{}: a running receiver writes this file; replay into another file (or stop it first)",
                    path.display()
                ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(with_path(path, e)),
        }
        let metadata = file.metadata().map_err(|e| with_path(path, e))?;
        let len = metadata.len();
        if !ends_a_line(&file, len).map_err(|e| with_path(path, e))? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: ends in the middle of a line; not writing after it", path.display()),
            ));
        }
        let state = State::new(file, len, (metadata.dev(), metadata.ino()));
        Ok(JsonlSink {
            name,
            path: path.to_path_buf(),
            max_bytes: 0,
            follows_path: false,
            state: Mutex::new(state),
        })
    }

    /// `jsonl:PATH`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends `payload` and `\n` (buffered: durable after the next [`sync`](Self::sync)), the
    /// line of the record at `position`. A payload containing `\n` is refused; every other
    /// failure is the file's ([`Failure::medium`]: retried until it can be written).
    pub fn deliver(&self, payload: &[u8], position: u64) -> Result<(), Failure> {
        super::one_line(payload)?;
        let mut state = self.lock();
        if state.detached {
            state.attach(&self.path).map_err(|e| Failure::medium(format!("cannot reopen: {e}")))?;
        }
        let line_len = payload.len() as u64 + 1;
        let stream_len = state.stream_len();
        if self.max_bytes > 0 && stream_len > 0 && stream_len + line_len > self.max_bytes {
            self.rotate(&mut state).map_err(|e| Failure::medium(format!("rotation failed: {e}")))?;
        }
        state.append(payload).map_err(|e| Failure::medium(format!("write failed: {e}")))?;
        state.last_position = Some(position);
        Ok(())
    }

    /// Writes the buffer and `fdatasync`s the file: every line delivered before is durable, and
    /// the answer says where the file stands. First, if PATH was moved or deleted, opens it again
    /// (see the module docs).
    pub fn sync(&self) -> io::Result<Synced> {
        let mut state = self.lock();
        self.follow_path(&mut state)?;
        if state.detached && !state.buffer.is_empty() {
            // Lines kept from a switch that could not open PATH: they wait for PATH (and the
            // checkpoint waits for them), never going into the file left.
            state.attach(&self.path).map_err(|e| io::Error::new(e.kind(), format!("cannot reopen: {e}")))?;
        }
        state.flush()?;
        state.sync_data()?;
        if state.dir_unsynced {
            sync_dir(&self.path)?;
            state.dir_unsynced = false;
        }
        let (device, inode) = state.identity;
        Ok(Synced {
            mark: FileMark { len: state.len, device, inode },
            next: state.last_position.map_or(0, |p| p + 1),
        })
    }

    /// After a restart, before the first delivery: brings PATH in line with the checkpoint's
    /// `mark` (`None`: no mark stored, as after a damaged checkpoint or for a new sink).
    /// `find(lines)` answers which is the last record past the checkpoint whose line is one of
    /// `lines` (`None`: none is).
    ///
    /// * PATH is the marked file: bytes past the mark are lines of records past the checkpoint
    ///   (written, perhaps synced, before the crash), cut off so that they are written once, now.
    ///   A file shorter than its mark was cut by someone else; nothing is cut then.
    /// * PATH is another file, or there is no mark: the file was rotated (or moved) since, once
    ///   or many times. Nothing is cut, in PATH or in any file that moved: the last lines of PATH
    ///   and of the files next to it named after it (`PATH.*`) say how far delivery got, and it
    ///   resumes after the last record one of them holds.
    pub fn resume(
        &self,
        mark: Option<FileMark>,
        find: impl FnOnce(&[Vec<u8>]) -> io::Result<Option<u64>>,
    ) -> io::Result<Resume> {
        let mut state = self.lock();
        debug_assert!(state.buffer.is_empty() && state.last_position.is_none());
        if let Some(mark) = mark.filter(|m| (m.device, m.inode) == state.identity) {
            if state.len < mark.len {
                log::warn!(
                    "{}: {} bytes shorter than at the last checkpoint (cut by something else?); \
                     events after the checkpoint are written again",
                    self.name,
                    mark.len - state.len
                );
                return Ok(Resume::AtCheckpoint);
            }
            if ends_a_line(&state.file, mark.len)? {
                if state.len > mark.len {
                    log::info!(
                        "{}: cutting off the {} bytes written after the last checkpoint; their events \
                         are written again now",
                        self.name,
                        state.len - mark.len
                    );
                    state.file.set_len(mark.len).map_err(|e| with_path(&self.path, e))?;
                    state.file.sync_data().map_err(|e| with_path(&self.path, e))?;
                    state.len = mark.len;
                }
                return Ok(Resume::AtCheckpoint);
            }
            // The same inode number but no line ends at the mark: another file that reuses it.
        }
        let mut tails = Vec::new();
        if let Some(line) = last_line(&state.file, state.len).map_err(|e| with_path(&self.path, e))? {
            tails.push(line);
        }
        let mut marked = None;
        for path in rotated_siblings(&self.path)? {
            // One open file at a time; one that vanished or cannot be read is no evidence.
            let Ok(file) = File::open(&path) else { continue };
            let metadata = file.metadata().map_err(|e| with_path(&path, e))?;
            if mark.is_some_and(|m| (m.device, m.inode) == (metadata.dev(), metadata.ino())) {
                marked = Some(metadata.len());
            }
            let len = whole_lines_len(&file, metadata.len()).map_err(|e| with_path(&path, e))?;
            if let Some(line) = last_line(&file, len).map_err(|e| with_path(&path, e))? {
                tails.push(line);
            }
        }
        if let Some(position) = find(&tails)? {
            return Ok(Resume::After(position));
        }
        // No file holds a line past the checkpoint: if the marked file is there, unchanged since
        // the mark, nothing was written after it.
        match (mark, marked) {
            (Some(mark), Some(len)) if len == mark.len => Ok(Resume::AtCheckpoint),
            _ => Ok(Resume::Unknown),
        }
    }

    /// For logrotate (SIGHUP): makes what was written to the current file durable, then opens
    /// PATH again, creating it if it was moved away. If PATH cannot be opened, deliveries fail
    /// until it can (rather than feeding a file logrotate may delete).
    pub fn reopen(&self) -> io::Result<()> {
        let mut state = self.lock();
        if !state.detached {
            state.retire()?;
            state.detached = true;
        }
        // Detached: the file left was made durable then, and lines buffered since wait for PATH.
        state.attach(&self.path)
    }

    /// When due, looks whether PATH still names the open file; when it names another or none
    /// (the open file deleted, or renamed [`MOVE_GRACE`] ago), makes what was written to the
    /// open file durable and opens PATH (see the module docs). Returns whether it switched. A
    /// `stat` error other than "not found" tells nothing: the open file is kept (opening PATH
    /// would most likely fail the same way).
    fn follow_path(&self, state: &mut State) -> io::Result<bool> {
        let now = Instant::now();
        if !self.follows_path || state.detached || now < state.path_check_due {
            return Ok(false);
        }
        state.path_check_due = now + PATH_CHECK_INTERVAL;
        match fs::metadata(&self.path) {
            Ok(metadata) if (metadata.dev(), metadata.ino()) == state.identity => {
                state.moved_seen = None;
                return Ok(false);
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                log::debug!("{}: cannot tell whether it was moved: {error}", self.path.display());
                return Ok(false);
            }
        }
        let deleted = state.file.metadata().is_ok_and(|metadata| metadata.nlink() == 0);
        if !deleted {
            let seen = *state.moved_seen.get_or_insert(now);
            if now.duration_since(seen) < MOVE_GRACE {
                return Ok(false);
            }
        }
        state.leave()?;
        state.detached = true;
        state.moves_followed += 1;
        state.attach(&self.path).map_err(|e| {
            io::Error::new(e.kind(), format!("was moved or deleted, and cannot be reopened: {e}"))
        })?;
        log::warn!(
            "{} was moved or deleted: reopened (send SIGHUP after rotating to make it immediate)",
            self.path.display()
        );
        Ok(true)
    }

    /// Moves the current file to `PATH.<UTC time>` and starts a fresh PATH.
    fn rotate(&self, state: &mut State) -> io::Result<()> {
        state.retire()?;
        let target = rotation_target(&self.path, &crate::time::file_stamp(SystemTime::now()))?;
        fs::rename(&self.path, &target).map_err(|e| with_path(&self.path, e))?;
        state.detached = true;
        state.attach(&self.path)?;
        // The rename and the new file are durable only once the directory is.
        sync_dir(&self.path)?;
        state.dir_unsynced = false;
        log::info!("{}: rotated to {}", self.name, target.display());
        Ok(())
    }

    /// The state stays consistent across a panic of a holder (every field is updated only after
    /// the operation it records succeeded), so a poisoned lock is taken anyway.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for JsonlSink {
    /// Best effort: lines still buffered reach the file (not necessarily the disk). Events not
    /// covered by a successful `sync` are delivered again after a restart anyway.
    fn drop(&mut self) {
        let mut state = self.lock();
        if state.detached {
            // Lines kept for a PATH that could not be opened: never into the file left.
            return;
        }
        if let Err(error) = state.flush() {
            log::error!("{}: lines lost at close: {error}", self.name);
        }
    }
}

impl State {
    /// A file just opened, `len` bytes of whole lines long.
    fn new(file: File, len: u64, identity: (u64, u64)) -> State {
        State {
            file,
            len,
            buffer: Vec::with_capacity(JSONL_BUFFER_BYTES),
            torn: false,
            detached: false,
            dir_unsynced: true,
            sync_failed: None,
            identity,
            last_position: None,
            path_check_due: Instant::now(),
            moved_seen: None,
            moves_followed: 0,
        }
    }

    /// The file's length once the buffer is written.
    fn stream_len(&self) -> u64 {
        self.len + self.buffer.len() as u64
    }

    /// Appends one line, buffered when it fits in [`JSONL_BUFFER_BYTES`].
    fn append(&mut self, payload: &[u8]) -> io::Result<()> {
        let line_len = payload.len() + 1;
        if self.buffer.len() + line_len > JSONL_BUFFER_BYTES {
            self.flush()?;
        }
        if line_len > JSONL_BUFFER_BYTES {
            return self.write_line(&[payload, b"\n"]);
        }
        self.buffer.extend_from_slice(payload);
        self.buffer.push(b'\n');
        Ok(())
    }

    /// Writes the buffered lines; on failure they stay buffered and the file is cut back.
    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let result = self.write_line(&[&buffer]);
        self.buffer = buffer;
        if result.is_ok() {
            self.buffer.clear();
        }
        result
    }

    /// Writes `parts` (whole lines together) at the end of the file, or cuts the file back to
    /// `len` and returns the error.
    fn write_line(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        for part in parts {
            if let Err(error) = self.file.write_all(part) {
                // The file is opened for appending, so once cut back the next write lands at `len`.
                self.torn = self.file.set_len(self.len).is_err();
                return Err(error);
            }
        }
        self.len += parts.iter().map(|part| part.len() as u64).sum::<u64>();
        Ok(())
    }

    /// `fdatasync`, failing for good after the first writeback error (see the module docs).
    fn sync_data(&mut self) -> io::Result<()> {
        if let Some(error) = &self.sync_failed {
            return Err(io::Error::other(format!(
                "an earlier fdatasync failed ({error}): lines since the last checkpoint may be missing \
                 from the file; restart the receiver to deliver them again"
            )));
        }
        self.file.sync_data().inspect_err(|error| self.sync_failed = Some(error.to_string()))
    }

    /// Makes everything written to the current file durable before the sink lets go of it.
    /// After a failed writeback it cannot be made durable any more, and needs not be: no
    /// checkpoint moves past its lines (`sync` fails), so moving on to a new file loses nothing.
    fn retire(&mut self) -> io::Result<()> {
        self.flush()?;
        self.leave()
    }

    /// Makes what was written to the current file durable, leaving the buffer for the next
    /// file: cuts off a torn write the last failed cut left, then `fdatasync`s (not after a
    /// failed writeback: see [`retire`](Self::retire)).
    fn leave(&mut self) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        if self.sync_failed.is_some() {
            return Ok(());
        }
        self.sync_data()
    }

    /// Opens PATH as the current file, after [`retire`](Self::retire) or [`leave`](Self::leave)
    /// (buffered lines, if any, go into the new file).
    fn attach(&mut self, path: &Path) -> io::Result<()> {
        // A file created here takes the mode of the one it replaces (an operator may have made
        // it group-readable), else the receiver's private mode.
        let mode = self.file.metadata().map_or(private_files::FILE_MODE, |m| m.permissions().mode() & 0o777);
        let (file, len, identity) = open_path(path, mode)?;
        lock_or_warn(&file, path);
        self.file = file;
        self.len = len;
        self.identity = identity;
        self.torn = false;
        self.detached = false;
        self.dir_unsynced = true;
        self.moved_seen = None;
        Ok(())
    }
}

/// Opens PATH for reading and appending (creating the file), and returns its length after
/// cutting off a torn last line, and its (device, inode).
///
/// A crash (SIGKILL, power loss) during a write leaves part of a line: the kernel may stop a
/// large write at a page boundary. Those bytes were never synced, so the checkpoint is before
/// their events, which are delivered again whole after the restart; ending the part with `\n`
/// instead would leave a line that is not JSON in front of the event's real line.
fn open_path(path: &Path, mode: u32) -> io::Result<(File, u64, (u64, u64))> {
    let file = open_append(path, mode)?;
    let metadata = file.metadata().map_err(|e| with_path(path, e))?;
    let (len, identity) = (metadata.len(), (metadata.dev(), metadata.ino()));
    let whole = whole_lines_len(&file, len).map_err(|e| with_path(path, e))?;
    if whole < len {
        log::warn!(
            "{}: ends in the middle of a line (a crash during a write?); cutting off its {} bytes \
             (their events are delivered again)",
            path.display(),
            len - whole
        );
        file.set_len(whole).map_err(|e| with_path(path, e))?;
    }
    Ok((file, whole, identity))
}

/// Takes the receiver's lock on a sink file it writes (an exclusive `flock`, held as long as the
/// file is open), which keeps `replay` from writing into it. Receiving never waits for it: if
/// another process holds it, the receiver writes anyway and says so.
fn lock_or_warn(file: &File, path: &Path) {
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => log::warn!(
            "{}: another process holds a lock on it (a replay into this file?); writing anyway",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => log::warn!("{}: cannot lock: {e}", path.display()),
    }
}

/// Opens PATH for reading and appending, creating it with `mode`.
fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(mode)
        .open(path)
        .map_err(|e| with_path(path, e))
}

/// True when the first `len` bytes of `file` end with a whole line (or are empty).
fn ends_a_line(file: &File, len: u64) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    match file.read_exact_at(&mut last, len - 1) {
        Ok(()) => Ok(last[0] == b'\n'),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// The last whole line (without its `\n`) of the first `len` bytes of `file`, which end with
/// one; `None` when they are empty.
pub fn last_line(file: &File, len: u64) -> io::Result<Option<Vec<u8>>> {
    if len == 0 {
        return Ok(None);
    }
    let start = whole_lines_len(file, len - 1)?;
    let mut line = vec![0u8; (len - 1 - start) as usize];
    file.read_exact_at(&mut line, start)?;
    Ok(Some(line))
}

/// Most entries of PATH's directory looked at for files rotated from it.
const MAX_SIBLINGS: usize = 100_000;

/// The regular files next to PATH whose names are PATH's followed by `.` (rotated PATHs, by this
/// sink or by logrotate).
fn rotated_siblings(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = path.file_name() else { return Ok(Vec::new()) };
    let mut prefix = name.as_encoded_bytes().to_vec();
    prefix.push(b'.');
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| with_path(dir, e))?.take(MAX_SIBLINGS) {
        let entry = entry.map_err(|e| with_path(dir, e))?;
        if !entry.file_name().as_encoded_bytes().starts_with(&prefix) {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            found.push(entry.path());
        }
    }
    Ok(found)
}

/// Bytes read at a time when looking for the end of a file's last whole line.
const TAIL_SCAN_BYTES: usize = 64 << 10;

/// The length of the first `len` bytes of `file` up to and including the last `\n` (0 when
/// there is none), reading backwards [`TAIL_SCAN_BYTES`] at a time.
fn whole_lines_len(file: &File, len: u64) -> io::Result<u64> {
    let mut chunk = vec![0u8; TAIL_SCAN_BYTES];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(TAIL_SCAN_BYTES as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.read_exact_at(part, start)?;
        if let Some(at) = part.iter().rposition(|&b| b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Puts the path in front of an I/O error's message (std's messages do not name the file).
fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// fsyncs the directory holding PATH, so that a rename or a creation in it is durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(|e| with_path(dir, e))
}

/// `PATH.STAMP`, or `PATH.STAMP.N` with the smallest N that names no file.
fn rotation_target(path: &Path, stamp: &str) -> io::Result<PathBuf> {
    let mut base = path.as_os_str().to_owned();
    base.push(".");
    base.push(stamp);
    for n in 0..=MAX_ROTATION_SUFFIX {
        let mut candidate = base.clone();
        if n > 0 {
            candidate.push(format!(".{n}"));
        }
        let candidate = PathBuf::from(candidate);
        match fs::symlink_metadata(&candidate) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(candidate),
            Err(error) => return Err(with_path(&candidate, error)),
            Ok(_) => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{}: {MAX_ROTATION_SUFFIX} rotated files already have this name",
            PathBuf::from(base).display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testing::TempDir;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn sink(path: &Path, max_bytes: u64) -> JsonlSink {
        JsonlSink::open(format!("jsonl:{}", path.display()), path, max_bytes).unwrap()
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// The rotated files next to PATH, oldest first.
    fn rotated(path: &Path) -> Vec<PathBuf> {
        let prefix = format!("{}.", path.file_name().unwrap().to_str().unwrap());
        let mut found: Vec<PathBuf> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&prefix))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn lines_are_readable_after_sync() {
        let dir = TempDir::new("jsonl-sync");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        sink.deliver(br#"{"a":1}"#, 0).unwrap();
        sink.deliver(br#"{"b":"x y"}"#, 0).unwrap();
        assert_eq!(read(&path), "", "buffered until sync");
        sink.sync().unwrap();
        assert_eq!(read(&path), "{\"a\":1}\n{\"b\":\"x y\"}\n");
        drop(sink);
        // Reopening appends.
        let sink = self::sink(&path, 0);
        sink.deliver(b"{}", 0).unwrap();
        sink.sync().unwrap();
        assert_eq!(read(&path), "{\"a\":1}\n{\"b\":\"x y\"}\n{}\n");
    }

    #[test]
    fn a_payload_with_a_line_break_is_refused() {
        let dir = TempDir::new("jsonl-newline");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        assert_eq!(sink.deliver(b"{\"a\":\n1}", 0), Err(Failure::event("payload contains a line break")));
        sink.deliver(b"{\"a\":\r1}", 0).unwrap();
        sink.sync().unwrap();
        assert_eq!(read(&path), "{\"a\":\r1}\n");
    }

    #[test]
    fn drop_writes_the_buffer() {
        let dir = TempDir::new("jsonl-drop");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        sink.deliver(b"{}", 0).unwrap();
        drop(sink);
        assert_eq!(read(&path), "{}\n");
    }

    #[test]
    fn lines_longer_than_the_buffer_keep_their_order() {
        let dir = TempDir::new("jsonl-long");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        let long = vec![b'x'; JSONL_BUFFER_BYTES + 10];
        sink.deliver(b"1", 0).unwrap();
        sink.deliver(&long, 0).unwrap();
        sink.deliver(b"2", 0).unwrap();
        sink.sync().unwrap();
        let expected = format!("1\n{}\n2\n", String::from_utf8(long).unwrap());
        assert_eq!(read(&path), expected);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_at_open() {
        let long_torn = format!("{{\"to{}", "x".repeat(2 * TAIL_SCAN_BYTES + 7));
        let tail_at_chunk_edge = format!("{}\n", "y".repeat(TAIL_SCAN_BYTES - 1));
        for (before, after) in [
            ("{\"whole\":1}\n{\"to".to_owned(), "{\"whole\":1}\n"),
            (format!("{{\"whole\":1}}\n{long_torn}"), "{\"whole\":1}\n"),
            ("{\"to".to_owned(), ""),
            (long_torn.clone(), ""),
            ("{\"whole\":1}\n".to_owned(), "{\"whole\":1}\n"),
            (format!("{tail_at_chunk_edge}{long_torn}"), tail_at_chunk_edge.as_str()),
            (String::new(), ""),
        ] {
            let dir = TempDir::new("jsonl-torn");
            let path = dir.path().join("events.jsonl");
            fs::write(&path, &before).unwrap();
            let sink = sink(&path, 0);
            sink.deliver(b"{}", 0).unwrap();
            sink.sync().unwrap();
            assert_eq!(read(&path), format!("{after}{{}}\n"), "file before: {} bytes", before.len());
        }
    }

    #[test]
    fn rotation_at_the_limit_and_one_past_it() {
        // Lines of 10 bytes: a limit of 20 holds two, a limit of 19 only one.
        for (limit, first) in [(20, "aaaaaaaaa\nbbbbbbbbb\n"), (19, "aaaaaaaaa\n")] {
            let dir = TempDir::new("jsonl-rotate");
            let path = dir.path().join("events.jsonl");
            let sink = sink(&path, limit);
            sink.deliver(b"aaaaaaaaa", 0).unwrap();
            sink.deliver(b"bbbbbbbbb", 0).unwrap();
            sink.sync().unwrap();
            if limit == 20 {
                assert!(rotated(&path).is_empty(), "a file of exactly the limit is not rotated");
                sink.deliver(b"ccccccccc", 0).unwrap();
            }
            sink.sync().unwrap();
            let old = rotated(&path);
            assert_eq!(old.len(), 1, "limit {limit}: {old:?}");
            assert_eq!(read(&old[0]), first, "limit {limit}");
            let expected_current = if limit == 20 { "ccccccccc\n" } else { "bbbbbbbbb\n" };
            assert_eq!(read(&path), expected_current, "limit {limit}");
            let name = old[0].file_name().unwrap().to_str().unwrap().to_string();
            assert_rotated_name(&name);
        }
    }

    /// `events.jsonl.YYYYMMDDTHHMMSS.mmmZ`.
    fn assert_rotated_name(name: &str) {
        let stamp = name.strip_prefix("events.jsonl.").unwrap();
        let shape: String = stamp.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect();
        assert_eq!(shape, "99999999T999999.999Z", "{name}");
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_alone_into_a_fresh_file() {
        let dir = TempDir::new("jsonl-oversize");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 5);
        sink.deliver(b"0123456789", 0).unwrap(); // into the empty file: nothing to rotate
        sink.deliver(b"abcdefghij", 0).unwrap(); // rotates, then goes into the fresh file anyway
        sink.sync().unwrap();
        let old = rotated(&path);
        assert_eq!(old.len(), 1, "{old:?}");
        assert_eq!(read(&old[0]), "0123456789\n");
        assert_eq!(read(&path), "abcdefghij\n");
    }

    #[test]
    fn rotated_names_get_a_counter_when_taken() {
        let dir = TempDir::new("jsonl-names");
        let path = dir.path().join("events.jsonl");
        let stamp = "20261128T081805.123Z";
        let first = rotation_target(&path, stamp).unwrap();
        assert_eq!(first, dir.path().join("events.jsonl.20261128T081805.123Z"));
        fs::write(&first, "").unwrap();
        let second = rotation_target(&path, stamp).unwrap();
        assert_eq!(second, dir.path().join("events.jsonl.20261128T081805.123Z.1"));
        fs::write(&second, "").unwrap();
        assert_eq!(
            rotation_target(&path, stamp).unwrap(),
            dir.path().join("events.jsonl.20261128T081805.123Z.2")
        );
    }

    #[test]
    fn many_rotations_keep_every_line_once() {
        let dir = TempDir::new("jsonl-many");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 25);
        for i in 0..20 {
            sink.deliver(format!("line-{i:04}").as_bytes(), 0).unwrap(); // 10 bytes with \n
        }
        sink.sync().unwrap();
        let mut all = String::new();
        for file in rotated(&path) {
            let text = read(&file);
            assert_eq!(text.len(), 20, "{}", file.display());
            all.push_str(&text);
        }
        all.push_str(&read(&path));
        let expected: String = (0..20).map(|i| format!("line-{i:04}\n")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn reopen_after_the_file_was_moved_writes_a_new_file() {
        let dir = TempDir::new("jsonl-reopen");
        let path = dir.path().join("events.jsonl");
        let moved = dir.path().join("events.jsonl.1");
        let sink = sink(&path, 0);
        sink.deliver(b"A", 0).unwrap();
        sink.sync().unwrap();
        fs::rename(&path, &moved).unwrap(); // logrotate
        sink.deliver(b"B", 0).unwrap(); // before SIGHUP: still the moved file
        sink.reopen().unwrap();
        sink.deliver(b"C", 0).unwrap();
        sink.sync().unwrap();
        assert_eq!(read(&moved), "A\nB\n");
        assert_eq!(read(&path), "C\n");
    }

    #[test]
    fn a_new_file_is_private_unless_the_one_it_replaces_was_not() {
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = TempDir::new("jsonl-mode");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        assert_eq!(mode(&path), private_files::FILE_MODE, "created by the sink");
        // The operator shares the file with a group; logrotate then moves it away.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
        sink.reopen().unwrap();
        assert_eq!(mode(&path), 0o640, "the new file takes the mode of the one it replaces");
    }

    /// Makes the next `sync` look whether PATH was moved.
    fn due(sink: &JsonlSink) {
        sink.lock().path_check_due = Instant::now();
    }

    /// Makes the next `sync` look whether PATH was moved, as if it had found it moved
    /// [`MOVE_GRACE`] ago (and no SIGHUP had come since).
    fn grace_over(sink: &JsonlSink) {
        let mut state = sink.lock();
        state.path_check_due = Instant::now();
        state.moved_seen = Some(Instant::now().checked_sub(MOVE_GRACE).unwrap());
    }

    /// Keeps the next `sync`s (for an hour) from looking whether PATH was moved.
    fn unnoticed(sink: &JsonlSink) {
        sink.lock().path_check_due = Instant::now() + Duration::from_secs(3600);
    }

    fn identity_of(path: &Path) -> (u64, u64) {
        let metadata = fs::metadata(path).unwrap();
        (metadata.dev(), metadata.ino())
    }

    #[test]
    fn sync_follows_a_file_moved_or_deleted_without_sighup() {
        for deleted in [false, true] {
            let dir = TempDir::new("jsonl-follow");
            let path = dir.path().join("events.jsonl");
            let moved = dir.path().join("events.jsonl.1");
            let sink = sink(&path, 0);
            sink.deliver(b"A", 1).unwrap();
            sink.sync().unwrap();
            if deleted {
                fs::remove_file(&path).unwrap();
            } else {
                fs::rename(&path, &moved).unwrap();
            }
            sink.deliver(b"B", 2).unwrap();
            sink.lock().flush().unwrap(); // written before the move is noticed (a full buffer)
            sink.deliver(b"C", 3).unwrap();
            if !deleted {
                // Renamed: the first look only notes it (a SIGHUP may be on its way).
                due(&sink);
                sink.sync().unwrap();
                assert_eq!(read(&moved), "A\nB\nC\n");
                assert!(!path.exists());
                assert_eq!(sink.lock().moves_followed, 0);
                sink.deliver(b"D", 4).unwrap();
                grace_over(&sink);
            } else {
                due(&sink); // deleted: switched at the first look
            }
            let before = Instant::now();
            let synced = sink.sync().unwrap();
            let after = Instant::now();
            let (first, next) = if deleted { ("C\n", 4) } else { ("D\n", 5) };
            assert_eq!(read(&path), first, "deleted: {deleted}: the buffered line goes into the new file");
            if !deleted {
                assert_eq!(read(&moved), "A\nB\nC\n", "what was written stays in the moved file");
            }
            let (device, inode) = identity_of(&path);
            assert_eq!(
                synced,
                Synced { mark: FileMark { len: 2, device, inode }, next },
                "the mark names PATH"
            );
            let state = sink.lock();
            assert_eq!(state.moves_followed, 1);
            let next_look = state.path_check_due;
            assert!(next_look >= before + PATH_CHECK_INTERVAL && next_look <= after + PATH_CHECK_INTERVAL);
            drop(state);
            // PATH in place: the next look changes nothing.
            sink.deliver(b"E", 6).unwrap();
            grace_over(&sink);
            sink.sync().unwrap();
            assert_eq!(read(&path), format!("{first}E\n"));
            assert_eq!(sink.lock().moves_followed, 1);
        }
    }

    #[test]
    fn a_sighup_within_the_grace_leaves_nothing_to_follow() {
        let dir = TempDir::new("jsonl-follow-sighup");
        let path = dir.path().join("events.jsonl");
        let moved = dir.path().join("events.jsonl.1");
        let sink = sink(&path, 0);
        sink.deliver(b"A", 1).unwrap();
        sink.sync().unwrap();
        fs::rename(&path, &moved).unwrap(); // logrotate
        sink.deliver(b"B", 2).unwrap();
        due(&sink);
        sink.sync().unwrap(); // seen moved, the SIGHUP not there yet
        sink.reopen().unwrap(); // the SIGHUP
        sink.deliver(b"C", 3).unwrap();
        grace_over(&sink);
        sink.sync().unwrap();
        assert_eq!((read(&moved), read(&path)), ("A\nB\n".to_string(), "C\n".to_string()));
        assert_eq!(sink.lock().moves_followed, 0, "no switch (and no warning) of its own");
    }

    #[test]
    fn own_size_rotations_and_a_replay_do_not_follow() {
        let dir = TempDir::new("jsonl-follow-own");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 32);
        for n in 1..15 {
            sink.deliver(&line(n), n).unwrap();
            grace_over(&sink);
            sink.sync().unwrap();
        }
        assert_eq!(sink.lock().moves_followed, 0, "its own renames are no move");
        assert!(rotated(&path).len() >= 3);
        let all: String = rotated(&path).iter().map(|p| read(p)).chain([read(&path)]).collect();
        assert_eq!(all, lines(1..15));

        let path = dir.path().join("replayed.jsonl");
        let moved = dir.path().join("replayed.jsonl.1");
        let replay = JsonlSink::open_for_replay("r".into(), &path).unwrap();
        replay.deliver(b"A", 1).unwrap();
        replay.sync().unwrap();
        fs::rename(&path, &moved).unwrap();
        replay.deliver(b"B", 2).unwrap();
        grace_over(&replay);
        replay.sync().unwrap();
        assert_eq!(read(&moved), "A\nB\n", "a replay keeps its file");
        assert!(!path.exists());
    }

    #[test]
    fn a_path_that_cannot_be_reopened_holds_its_lines_back_until_it_can() {
        let dir = TempDir::new("jsonl-follow-gone");
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let path = sub.join("events.jsonl");
        let sink = sink(&path, 0);
        sink.deliver(b"A", 1).unwrap();
        sink.sync().unwrap();
        let left = File::open(&path).unwrap();
        fs::remove_dir_all(&sub).unwrap();
        sink.deliver(b"B", 2).unwrap();
        due(&sink);
        let error = sink.sync().unwrap_err();
        assert!(error.to_string().contains("was moved or deleted, and cannot be reopened"), "{error}");
        assert!(sink.sync().unwrap_err().to_string().contains("cannot reopen"), "no checkpoint past B");
        let refused = sink.deliver(b"C", 3).unwrap_err();
        assert!(refused.medium && refused.reason.contains("cannot reopen"), "{refused:?}");
        assert!(sink.reopen().is_err(), "a SIGHUP cannot open it either");
        assert!(!sub.exists(), "its directory is never created");
        fs::create_dir(&sub).unwrap();
        sink.deliver(b"C", 3).unwrap();
        sink.sync().unwrap();
        assert_eq!(read(&path), "B\nC\n");
        assert_eq!(sink.lock().moves_followed, 1);
        assert_eq!(io::read_to_string(left).unwrap(), "A\n", "the file left got nothing after it was left");
    }

    #[test]
    fn concurrent_deliveries_write_every_line_whole_once() {
        const THREADS: usize = 4;
        const EVENTS: usize = 500;
        let dir = TempDir::new("jsonl-concurrent");
        let path = dir.path().join("events.jsonl");
        let sink = Arc::new(sink(&path, 0));
        let padding = "p".repeat(300); // 2000 lines of ~330 bytes: several buffer writes
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let sink = Arc::clone(&sink);
                let padding = &padding;
                scope.spawn(move || {
                    for n in 0..EVENTS {
                        let line = format!(r#"{{"thread":{thread},"n":{n},"pad":"{padding}"}}"#);
                        sink.deliver(line.as_bytes(), 0).unwrap();
                        if n.is_multiple_of(100) {
                            sink.sync().unwrap();
                        }
                    }
                });
            }
        });
        sink.sync().unwrap();
        let text = read(&path);
        assert!(text.ends_with('\n'));
        let mut seen = HashSet::new();
        for line in text.lines() {
            assert!(seen.insert(line.to_string()), "twice: {line}");
        }
        let expected: HashSet<String> = (0..THREADS)
            .flat_map(|thread| (0..EVENTS).map(move |n| (thread, n)))
            .map(|(thread, n)| format!(r#"{{"thread":{thread},"n":{n},"pad":"{padding}"}}"#))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_missing_directory_is_an_open_error_naming_the_path() {
        let dir = TempDir::new("jsonl-missing");
        let path = dir.path().join("no-such-dir").join("events.jsonl");
        let error = JsonlSink::open("x".to_string(), &path, 0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        assert!(!path.parent().unwrap().exists(), "the directory must not be created");
    }

    #[test]
    fn a_failed_write_is_cut_back_and_the_buffer_kept() {
        let dir = TempDir::new("jsonl-fail");
        let path = dir.path().join("events.jsonl");
        fs::write(&path, "old\n").unwrap();
        // A read-only handle: every write fails, as on a full disk (and so does the cut).
        let mut state = State::new(File::open(&path).unwrap(), 4, (0, 0));
        state.buffer = b"kept\n".to_vec();
        assert!(state.flush().is_err());
        assert_eq!(state.buffer, b"kept\n", "acknowledged lines stay buffered");
        assert_eq!(state.len, 4);
        assert!(state.torn, "the failed cut is remembered");
        // A writable handle again (the disk has room): the cut is retried, then the lines go.
        state.file = OpenOptions::new().append(true).open(&path).unwrap();
        fs::write(&path, "old\nhalf a li").unwrap(); // what a partial write would have left
        state.append(b"retried").unwrap();
        state.flush().unwrap();
        assert!(!state.torn);
        assert_eq!(read(&path), "old\nkept\nretried\n");
        assert_eq!(state.len, 17);
    }

    /// A state writing into a pipe: writes succeed (while the pipe has room) and `fdatasync`
    /// fails (EINVAL), as after a failed writeback.
    fn state_on_a_pipe() -> (std::io::PipeReader, State) {
        let (reader, writer) = std::io::pipe().unwrap();
        (reader, State::new(File::from(std::os::fd::OwnedFd::from(writer)), 0, (0, 0)))
    }

    #[test]
    fn a_failed_fdatasync_fails_every_later_sync() {
        let (_reader, mut state) = state_on_a_pipe();
        let first = state.sync_data().unwrap_err();
        assert_eq!(first.raw_os_error(), Some(libc::EINVAL), "{first}");
        // The kernel would now report success; the sink must not.
        let later = state.sync_data().unwrap_err();
        assert!(later.to_string().contains("an earlier fdatasync failed (Invalid argument"), "{later}");
        assert!(later.to_string().contains("restart the receiver"), "{later}");
        assert!(state.sync_data().is_err());
        // Leaving the file (rotation, reopen) is not held up: nothing can move past its lines.
        state.append(b"line").unwrap();
        state.retire().unwrap();
        assert!(state.buffer.is_empty(), "the buffer was still written");
    }

    /// Crash tests: the line of record `n` is `{"n":n}`; `find` knows them all at or past `from`.
    fn line(n: u64) -> Vec<u8> {
        format!("{{\"n\":{n}}}").into_bytes()
    }

    fn lines(range: std::ops::Range<u64>) -> String {
        range.map(|n| format!("{{\"n\":{n}}}\n")).collect()
    }

    fn deliver_range(sink: &JsonlSink, range: std::ops::Range<u64>) {
        for n in range {
            sink.deliver(&line(n), n).unwrap();
        }
    }

    /// What the checkpoint stores after a sync: (position, mark).
    fn checkpoint(sink: &JsonlSink, position: u64) -> (u64, FileMark) {
        let synced = sink.sync().unwrap();
        (position.max(synced.next), synced.mark)
    }

    /// A kill -9: the process ends with the buffer unwritten (the file stays open until then,
    /// as it would: the leak ends with the test process).
    fn kill(sink: JsonlSink) {
        std::mem::forget(sink);
    }

    /// Reopens PATH as a restart does and resumes against `mark`; returns where delivery starts.
    fn restart(path: &Path, max_bytes: u64, (position, mark): (u64, FileMark)) -> (JsonlSink, u64) {
        restart_with(path, max_bytes, position, Some(mark))
    }

    fn restart_with(path: &Path, max_bytes: u64, position: u64, mark: Option<FileMark>) -> (JsonlSink, u64) {
        let sink = sink(path, max_bytes);
        let find = |lines: &[Vec<u8>]| -> io::Result<Option<u64>> {
            let number = |line: &Vec<u8>| -> Option<u64> {
                let text = std::str::from_utf8(line).ok()?;
                text.strip_prefix("{\"n\":")?.strip_suffix('}')?.parse().ok()
            };
            Ok(lines.iter().filter_map(number).filter(|&n| n >= position).max())
        };
        let start = match sink.resume(mark, find).unwrap() {
            Resume::AtCheckpoint | Resume::Unknown => position,
            Resume::After(n) => position.max(n + 1),
        };
        (sink, start)
    }

    /// Restarts, delivers everything from where it resumes up to `end`, and returns what every
    /// file holds (rotated ones first, oldest first).
    fn finish(path: &Path, max_bytes: u64, stored: (u64, FileMark), end: u64) -> String {
        let (sink, start) = restart(path, max_bytes, stored);
        deliver_range(&sink, start..end);
        sink.sync().unwrap();
        let mut all: String = rotated(path).iter().map(|p| read(p)).collect();
        all.push_str(&read(path));
        all
    }

    #[test]
    fn a_crash_at_each_step_between_write_fdatasync_and_checkpoint_writes_every_line_once() {
        // After the checkpoint (position 5, mark): records 5..9 delivered, then the crash
        // (1) with their lines still buffered, (2) written but not fdatasynced, (3) fdatasynced
        // but the checkpoint not stored; (4) the checkpoint stored too.
        for step in 1..=4 {
            let dir = TempDir::new("jsonl-crash-step");
            let path = dir.path().join("events.jsonl");
            let sink = sink(&path, 0);
            deliver_range(&sink, 1..5);
            let mut stored = checkpoint(&sink, 5);
            deliver_range(&sink, 5..9);
            match step {
                1 => {}
                2 => sink.lock().flush().unwrap(),
                3 => {
                    sink.sync().unwrap();
                }
                _ => stored = checkpoint(&sink, 9),
            }
            kill(sink);
            assert_eq!(finish(&path, 0, stored, 12), lines(1..12), "crash at step {step}");
        }
    }

    #[test]
    fn a_crash_after_a_size_rotation_resumes_after_the_last_line_and_cuts_nothing() {
        // Lines of 8 bytes (`{"n":N}\n`), at most 4 per file. Checkpoint at 3 (one file, 2
        // lines), then records 3..N delivered across rotations, then the crash.
        for end in [5, 6, 7, 12] {
            let dir = TempDir::new("jsonl-crash-rotate");
            let path = dir.path().join("events.jsonl");
            let sink = sink(&path, 32);
            deliver_range(&sink, 1..3);
            let stored = checkpoint(&sink, 3);
            deliver_range(&sink, 3..end);
            sink.sync().unwrap(); // on disk, but the checkpoint was not stored
            kill(sink);
            assert_eq!(finish(&path, 32, stored, 15), lines(1..15), "crash after record {}", end - 1);
            assert!(!rotated(&path).is_empty());
        }
    }

    #[test]
    fn a_crash_right_after_a_rotation_finds_the_last_line_in_the_rotated_files() {
        // Records 3, 4 fill the first file; 5 rotates it and waits in the buffer of an empty
        // PATH. Up to 13: two more files filled and rotated, the newest holding the last line.
        for end in [6, 14] {
            let dir = TempDir::new("jsonl-crash-rotated-empty");
            let path = dir.path().join("events.jsonl");
            let sink = sink(&path, 32);
            deliver_range(&sink, 1..3);
            let stored = checkpoint(&sink, 3);
            deliver_range(&sink, 3..end);
            kill(sink);
            assert_eq!(read(&path), "", "the fresh file got nothing before the crash");
            assert_eq!(finish(&path, 32, stored, 16), lines(1..16), "crash after record {}", end - 1);
        }
    }

    #[test]
    fn a_crash_after_logrotate_moved_the_file_and_before_sighup_writes_nothing_twice() {
        for written_after in [false, true] {
            let dir = TempDir::new("jsonl-crash-logrotate");
            let path = dir.path().join("events.jsonl");
            let moved = dir.path().join("events.jsonl.1");
            let sink = sink(&path, 0);
            deliver_range(&sink, 1..4);
            let stored = checkpoint(&sink, 4);
            fs::rename(&path, &moved).unwrap();
            if written_after {
                deliver_range(&sink, 4..6);
                unnoticed(&sink);
                sink.sync().unwrap(); // into the moved file: no SIGHUP yet, the move not noticed
            }
            kill(sink);
            let (sink, start) = restart(&path, 0, stored);
            assert_eq!(start, if written_after { 6 } else { 4 });
            deliver_range(&sink, start..8);
            sink.sync().unwrap();
            assert_eq!(format!("{}{}", read(&moved), read(&path)), lines(1..8));
            let expected_moved = if written_after { lines(1..6) } else { lines(1..4) };
            assert_eq!(read(&moved), expected_moved, "the moved file is never cut or appended to");
        }
    }

    #[test]
    fn a_crash_right_after_the_sink_followed_a_moved_or_deleted_file_writes_every_line_once() {
        // Checkpoint at 4 (the old file's mark); the file moved away or deleted; records 4, 5
        // delivered; then the crash (1) right after the sink opened PATH again, the two lines
        // still buffered, (2) after they were written to the new PATH and fdatasynced, (3) after
        // the checkpoint at 6 (the new file's mark) and record 6 written after it.
        for deleted in [false, true] {
            for step in 1..=3 {
                let dir = TempDir::new("jsonl-crash-follow");
                let path = dir.path().join("events.jsonl");
                let moved = dir.path().join("events.jsonl.1");
                let sink = sink(&path, 0);
                deliver_range(&sink, 1..4);
                let mut stored = checkpoint(&sink, 4);
                if deleted {
                    fs::remove_file(&path).unwrap();
                } else {
                    fs::rename(&path, &moved).unwrap();
                }
                deliver_range(&sink, 4..6);
                grace_over(&sink);
                match step {
                    1 => assert!(sink.follow_path(&mut sink.lock()).unwrap()),
                    2 => {
                        sink.sync().unwrap();
                    }
                    _ => {
                        stored = checkpoint(&sink, 6);
                        deliver_range(&sink, 6..7);
                        sink.sync().unwrap();
                    }
                }
                kill(sink);
                let context = format!("deleted: {deleted}, crash at step {step}");
                let expected = if deleted { lines(4..9) } else { lines(1..9) };
                assert_eq!(finish(&path, 0, stored, 9), expected, "{context}");
                if !deleted {
                    assert_eq!(
                        read(&moved),
                        lines(1..4),
                        "{context}: the moved file is never cut or appended to"
                    );
                }
            }
        }
    }

    #[test]
    fn a_marked_file_that_is_gone_means_at_least_once() {
        let dir = TempDir::new("jsonl-crash-gone");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        deliver_range(&sink, 1..4);
        let stored = checkpoint(&sink, 4);
        deliver_range(&sink, 4..6);
        sink.sync().unwrap();
        kill(sink);
        fs::remove_file(&path).unwrap(); // rotated and compressed: the marked file is gone
        let (_, start) = restart(&path, 0, stored);
        assert_eq!(start, 4);
    }

    #[test]
    fn without_a_mark_delivery_resumes_after_the_last_line_the_file_holds() {
        let dir = TempDir::new("jsonl-no-mark");
        let path = dir.path().join("events.jsonl");
        fs::write(&path, lines(1..7)).unwrap();
        assert_eq!(restart_with(&path, 0, 1, None).1, 7, "a damaged checkpoint: exactly once anyway");
        fs::write(&path, "{\"from\":\"elsewhere\"}\n").unwrap();
        assert_eq!(restart_with(&path, 0, 1, None).1, 1, "a last line that is no record: from the start");
        fs::write(&path, "").unwrap();
        assert_eq!(restart_with(&path, 0, 1, None).1, 1);
    }

    #[test]
    fn a_file_shorter_than_its_mark_or_not_ending_a_line_there_is_not_cut() {
        let dir = TempDir::new("jsonl-short");
        let path = dir.path().join("events.jsonl");
        let sink = sink(&path, 0);
        deliver_range(&sink, 1..4);
        let (position, mark) = checkpoint(&sink, 4);
        drop(sink);
        // Cut by something else: nothing to cut, delivery goes on from the checkpoint.
        fs::write(&path, lines(1..2)).unwrap();
        let (_, start) = restart(&path, 0, (position, mark));
        assert_eq!((start, read(&path)), (4, lines(1..2)));
        // The same inode with other content: no line ends at the mark, so it is not the marked
        // file; its last line says where delivery stands.
        fs::write(&path, "{\"n\":1}\n{\"n\":22}\n{\"n\":3}\n").unwrap();
        let bent = FileMark { len: mark.len - 3, ..mark };
        let (_, start) = restart(&path, 0, (position, bent));
        assert_eq!(start, 4);
        assert_eq!(read(&path).len(), 25, "nothing cut");
    }

    #[test]
    fn last_line_of_files_big_and_small() {
        let dir = TempDir::new("jsonl-last-line");
        let path = dir.path().join("f");
        let long = "z".repeat(3 * TAIL_SCAN_BYTES + 5);
        for (text, last) in [("", None), ("a\n", Some("a")), ("a\nbc\n", Some("bc")), ("\n", Some(""))] {
            fs::write(&path, text).unwrap();
            let got = last_line(&File::open(&path).unwrap(), text.len() as u64).unwrap();
            assert_eq!(got.as_deref(), last.map(str::as_bytes), "{text:?}");
        }
        fs::write(&path, format!("a\n{long}\n")).unwrap();
        let got = last_line(&File::open(&path).unwrap(), long.len() as u64 + 3).unwrap();
        assert_eq!(got.unwrap(), long.as_bytes());
    }

    #[test]
    fn utc_stamps_of_known_times() {
        let at = |millis: u64| crate::time::file_stamp(std::time::UNIX_EPOCH + Duration::from_millis(millis));
        assert_eq!(at(0), "19700101T000000.000Z");
        assert_eq!(at(951_782_400_000), "20000229T000000.000Z");
        assert_eq!(at(1_732_780_800_123), "20241128T080000.123Z");
        assert_eq!(at(4_107_542_399_999), "21000228T235959.999Z");
        assert_eq!(at(1_795_853_885_123), "20261128T081805.123Z");
        assert_eq!(
            crate::time::file_stamp(std::time::UNIX_EPOCH - Duration::from_secs(5)),
            "19700101T000000.000Z"
        );
    }

    #[test]
    fn replay_cannot_open_a_file_a_receiver_writes_nor_one_that_ends_mid_line() {
        let dir = TempDir::new("jsonl-replay");
        let path = dir.path().join("events.jsonl");
        let receiver = sink(&path, 0);
        receiver.deliver(b"{}", 1).unwrap();
        receiver.sync().unwrap();
        let refused = JsonlSink::open_for_replay("r".into(), &path).unwrap_err();
        assert!(refused.to_string().contains("a running receiver writes this file"), "{refused}");
        drop(receiver);
        fs::write(&path, "{}\n{\"to").unwrap();
        let refused = JsonlSink::open_for_replay("r".into(), &path).unwrap_err();
        assert!(refused.to_string().contains("ends in the middle of a line"), "{refused}");
        assert_eq!(read(&path), "{}\n{\"to", "nothing cut");
        fs::write(&path, "{}\n").unwrap();
        let replay = JsonlSink::open_for_replay("r".into(), &path).unwrap();
        replay.deliver(b"{\"again\":1}", 1).unwrap();
        replay.sync().unwrap();
        assert_eq!(read(&path), "{}\n{\"again\":1}\n");
    }
}
