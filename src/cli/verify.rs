//! `egnyte-receiver journal verify`: what the next start would find damaged in a data directory,
//! without changing anything. The journal is checked record by record as recovery checks it
//! (`journal::check`), and each state file is read as `serve` reads it; what earlier starts set
//! aside (`*.damaged-*`, `corrupt/`) is listed. `Ok(true)`: all sound.

use std::io::{self, Write};
use std::path::Path;

use egnyte_receiver::dedup::SECRET_FILE;
use egnyte_receiver::dispatch::{Checkpoint, KeyFile, CHECKPOINT_FILE, KEYS_FILE};
use egnyte_receiver::journal::{self, DirStorage, CORRUPT_DIR, JOURNAL_DIR};

/// Bytes in the dedup secret file.
const SECRET_BYTES: u64 = 16;

/// Writes the report; `Ok(false)` when damage was found, `Err` when something cannot be read.
pub(super) fn verify(data_dir: &Path, out: &mut impl Write) -> io::Result<bool> {
    let journal_dir = data_dir.join(JOURNAL_DIR);
    let storage = DirStorage::existing(&journal_dir)?;
    let checks = journal::check(&storage)?;
    let mut sound = true;
    let records: u64 = checks.iter().map(|c| c.records).sum();
    writeln!(out, "journal {}: {} segments, {records} records", journal_dir.display(), checks.len())?;
    for (n, check) in checks.iter().enumerate() {
        let name = format!("{:020}.seg", check.id);
        for &(first, lost) in &check.earlier_gaps {
            writeln!(out, "  {name}: {} lost to damage found at an earlier start", positions(first, lost))?;
        }
        for &(offset, bytes, first, lost) in &check.damage {
            sound = false;
            writeln!(
                out,
                "  {name}: DAMAGED: {bytes} bytes at byte {offset}: {} lost; the next start keeps every \
                 record after them",
                positions(first, lost)
            )?;
        }
        if let Some((offset, bytes, why)) = check.bad_tail {
            sound = false;
            match checks.get(n + 1) {
                Some(next) => {
                    let first = check.end_seq;
                    writeln!(
                        out,
                        "  {name}: DAMAGED: the last {bytes} bytes from byte {offset} ({why}): {} lost",
                        positions(first, next.id.saturating_sub(first))
                    )?;
                }
                None => writeln!(
                    out,
                    "  {name}: TORN TAIL: the last {bytes} bytes from byte {offset} ({why}): a write cut by a \
                     crash (never acknowledged with fsync durability), or one in progress; the next start cuts it"
                )?,
            }
        }
    }
    writeln!(out, "state files:")?;
    sound &= state_file(out, CHECKPOINT_FILE, Checkpoint::load_or_default(data_dir).map(|_| ()))?;
    sound &= state_file(out, SECRET_FILE, secret(data_dir))?;
    sound &= state_file(out, KEYS_FILE, KeyFile::capacity_in(data_dir).map(|_| ()))?;
    let (aside, saved) = set_aside(data_dir)?;
    for name in aside {
        writeln!(out, "  {name}: set aside as damaged by an earlier start")?;
    }
    if saved > 0 {
        writeln!(out, "  {CORRUPT_DIR}/: {saved} spans of damaged journal bytes saved by earlier starts")?;
    }
    writeln!(out, "{}", if sound { "verdict: sound" } else { "verdict: DAMAGE FOUND" })?;
    Ok(sound)
}

/// What earlier starts set aside: the state files renamed `*.damaged-*`, and how many spans of
/// damaged journal bytes are in `corrupt/`.
pub(super) fn set_aside(data_dir: &Path) -> io::Result<(Vec<String>, usize)> {
    let mut aside: Vec<String> = std::fs::read_dir(data_dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains(".damaged-"))
        .collect();
    aside.sort();
    let saved = std::fs::read_dir(data_dir.join(CORRUPT_DIR)).map_or(0, |entries| entries.count());
    Ok((aside, saved))
}

/// `record N` or `records A-B (N)`.
fn positions(first: u64, lost: u64) -> String {
    match lost {
        0 => "no record".to_string(),
        1 => format!("record {first}"),
        n => format!("records {first}-{} ({n})", first + n - 1),
    }
}

/// One state file's line; `Ok(false)` when it is damaged, `Err` when it cannot be read.
fn state_file(out: &mut impl Write, name: &str, read: io::Result<()>) -> io::Result<bool> {
    match read {
        Ok(()) => {
            writeln!(out, "  {name}: ok")?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            writeln!(out, "  {name}: DAMAGED ({e}): the next start sets it aside and rebuilds it")?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The dedup secret is 16 bytes (or absent: a fresh directory).
fn secret(data_dir: &Path) -> io::Result<()> {
    let path = data_dir.join(SECRET_FILE);
    match std::fs::metadata(&path) {
        Ok(m) if m.len() == SECRET_BYTES => Ok(()),
        Ok(m) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {} bytes, not {SECRET_BYTES}", path.display(), m.len()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
