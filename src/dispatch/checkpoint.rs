//! The checkpoint: each sink's delivered position and the dedup key file's extent, replaced
//! atomically (write a temporary file, `fsync` it, rename it over the old one, `fsync` the
//! directory), so a crash leaves either the old checkpoint or the new one, never a mix.
//!
//! `DATA_DIR/checkpoint` is text, for operators to read:
//! ```text
//! egnyte-receiver checkpoint v1
//! keys 1048576 1048601
//! sink 1048590 jsonl:$DATA_DIR/events.jsonl
//! file 73400320 2049 131077
//! sink 1048590 exec:/usr/local/bin/on-event
//! sink 1048601 quarantine
//! file 0 2049 131080
//! ```
//! `keys COUNT THROUGH`: the key file holds the dedup keys of the first COUNT events, which are
//! all the events below sequence number THROUGH. `sink POSITION NAME`: every record below
//! POSITION was delivered to the sink NAME (the rest of the line: `SinkSpec::name`). The name
//! of a `jsonl` or `exec` sink whose file is inside the data directory is stored relative to it,
//! [`DATA_DIR_PREFIX`] standing for the directory's real path (so a data directory restored or
//! moved under another path keeps its positions); in memory, after [`Checkpoint::load_or_default`],
//! every name is the sink's name, absolute. `file LENGTH DEVICE INODE`,
//! after the `sink` line of a file sink: that sink's file (the one with this device and inode
//! number) held exactly the lines of the records below POSITION in its first LENGTH bytes,
//! durably (see [`FileMark`]). Any other line makes the file damaged (`InvalidData`): `serve`
//! sets it aside and every sink starts again at the oldest journaled record
//! (`serve/damaged.rs`) rather than guess where delivery stands.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::sink::FileMark;

/// File name in the data directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
const HEADER: &str = "egnyte-receiver checkpoint v1";
/// What stands for the data directory in a stored sink name: `jsonl:$DATA_DIR/events.jsonl`.
pub const DATA_DIR_PREFIX: &str = "$DATA_DIR";
/// The sink kinds whose names hold a path.
const PATH_KINDS: [&str; 2] = ["jsonl:", "exec:"];

/// Where delivery and the key file stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Dedup keys in the key file.
    pub keys_count: u64,
    /// The key file holds the keys of every event below this sequence number.
    pub keys_through: u64,
    /// (sink name, position): every record below the position was delivered.
    pub sinks: Vec<(String, u64)>,
    /// (sink name, mark): where a file sink's file stood at that position.
    pub marks: Vec<(String, FileMark)>,
}

impl Checkpoint {
    /// Reads `DATA_DIR/checkpoint`, or the empty checkpoint of a fresh data directory; names
    /// stored relative to the data directory come back absolute (under its real path now).
    pub fn load_or_default(data_dir: &Path) -> io::Result<Checkpoint> {
        load(data_dir).map(Option::unwrap_or_default)
    }

    /// Gives the entry (position and mark) of sink `from` to sink `to` (a sink found under an
    /// older name, see `resume::identify`).
    pub(super) fn rename(&mut self, from: &str, to: &str) {
        for (name, _) in &mut self.sinks {
            if name == from {
                *name = to.to_string();
            }
        }
        for (name, _) in &mut self.marks {
            if name == from {
                *name = to.to_string();
            }
        }
    }

    /// The stored position of sink `name`.
    pub fn position(&self, name: &str) -> Option<u64> {
        self.sinks.iter().find(|(n, _)| n == name).map(|&(_, p)| p)
    }

    /// The stored file mark of sink `name`.
    pub fn mark(&self, name: &str) -> Option<FileMark> {
        self.marks.iter().find(|(n, _)| n == name).map(|&(_, m)| m)
    }

    /// The highest position anything refers to: no new record may be numbered below it.
    pub fn high_water(&self) -> u64 {
        self.sinks.iter().map(|&(_, p)| p).chain([self.keys_through, 1]).max().unwrap_or(1)
    }

    /// The text stored in a data directory whose real path is `base` (`None`: names as they are).
    fn render(&self, base: Option<&Path>) -> String {
        let mut text = format!("{HEADER}\nkeys {} {}\n", self.keys_count, self.keys_through);
        for (name, position) in &self.sinks {
            text.push_str(&format!("sink {position} {}\n", relative_name(name, base)));
            if let Some(m) = self.mark(name) {
                text.push_str(&format!("file {} {} {}\n", m.len, m.device, m.inode));
            }
        }
        text
    }

    /// Reads the stored text of a data directory whose real path is `base` (`None`: names as they
    /// are).
    fn parse(text: &str, base: Option<&Path>) -> Result<Checkpoint, String> {
        let mut lines = text.lines().enumerate();
        if lines.next().map(|(_, l)| l) != Some(HEADER) {
            return Err(format!("line 1: expected {HEADER:?}"));
        }
        let mut checkpoint = Checkpoint::default();
        for (n, line) in lines {
            let bad = || format!("line {}: cannot read {line:?}", n + 1);
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("keys"), Some(count), Some(through)) => {
                    checkpoint.keys_count = count.parse().map_err(|_| bad())?;
                    checkpoint.keys_through = through.parse().map_err(|_| bad())?;
                }
                (Some("sink"), Some(position), Some(name)) if !name.is_empty() => {
                    checkpoint.sinks.push((absolute_name(name, base), position.parse().map_err(|_| bad())?));
                }
                (Some("file"), Some(len), Some(rest)) => {
                    let (name, _) = checkpoint.sinks.last().ok_or_else(bad)?;
                    let mut numbers = rest.split(' ').map(str::parse::<u64>);
                    let (Some(Ok(device)), Some(Ok(inode)), None) =
                        (numbers.next(), numbers.next(), numbers.next())
                    else {
                        return Err(bad());
                    };
                    let len = len.parse().map_err(|_| bad())?;
                    if checkpoint.mark(name).is_some() {
                        return Err(bad());
                    }
                    checkpoint.marks.push((name.clone(), FileMark { len, device, inode }));
                }
                _ => return Err(bad()),
            }
        }
        Ok(checkpoint)
    }
}

/// The name a sink is stored under: a `jsonl` or `exec` path inside `base` (the data
/// directory's real path) made relative to it, `$DATA_DIR/…`.
fn relative_name(name: &str, base: Option<&Path>) -> String {
    let (Some(base), Some(kind)) = (base, PATH_KINDS.iter().find(|kind| name.starts_with(**kind))) else {
        return name.to_string();
    };
    match Path::new(&name[kind.len()..]).strip_prefix(base) {
        Ok(inside) if !inside.as_os_str().is_empty() => {
            format!("{kind}{DATA_DIR_PREFIX}/{}", inside.display())
        }
        _ => name.to_string(),
    }
}

/// A stored name back in memory: `$DATA_DIR/…` under `base`, the data directory's real path now.
fn absolute_name(stored: &str, base: Option<&Path>) -> String {
    let (Some(base), Some(kind)) = (base, PATH_KINDS.iter().find(|kind| stored.starts_with(**kind))) else {
        return stored.to_string();
    };
    match stored[kind.len()..].strip_prefix(DATA_DIR_PREFIX).and_then(|rest| rest.strip_prefix('/')) {
        Some(inside) if !inside.is_empty() => format!("{kind}{}", base.join(inside).display()),
        _ => stored.to_string(),
    }
}

/// The data directory's real path, which `$DATA_DIR` stands for (as a sink's name resolves its
/// directory, see `sink::canonical_path`).
fn real_data_dir(data_dir: &Path) -> PathBuf {
    fs::canonicalize(data_dir).unwrap_or_else(|_| crate::sink::canonical_path(data_dir))
}

/// Reads `DATA_DIR/checkpoint`; `None` on a fresh data directory.
pub(super) fn load(data_dir: &Path) -> io::Result<Option<Checkpoint>> {
    let path = data_dir.join(CHECKPOINT_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Checkpoint::parse(&text, Some(&real_data_dir(data_dir)))
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

/// Replaces `DATA_DIR/checkpoint` atomically and durably.
pub(super) fn store(data_dir: &Path, checkpoint: &Checkpoint) -> io::Result<()> {
    let path = data_dir.join(CHECKPOINT_FILE);
    let temporary = data_dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = crate::private_files::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(context)?;
    file.write_all(checkpoint.render(Some(&real_data_dir(data_dir))).as_bytes()).map_err(context)?;
    file.sync_all().map_err(context)?;
    fs::rename(&temporary, &path).map_err(context)?;
    File::open(data_dir).and_then(|dir| dir.sync_all()).map_err(context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_exactly_the_documented_text() {
        let checkpoint = Checkpoint {
            keys_count: 1048576,
            keys_through: 1048601,
            sinks: vec![
                ("jsonl:/var/lib/egnyte receiver/events.jsonl".into(), 1048590),
                ("quarantine".into(), 1048601),
            ],
            marks: vec![("quarantine".into(), FileMark { len: 7, device: 2049, inode: 131080 })],
        };
        let text = checkpoint.render(None);
        assert_eq!(
            text,
            "egnyte-receiver checkpoint v1\nkeys 1048576 1048601\n\
             sink 1048590 jsonl:/var/lib/egnyte receiver/events.jsonl\nsink 1048601 quarantine\n\
             file 7 2049 131080\n"
        );
        assert_eq!(Checkpoint::parse(&text, None), Ok(checkpoint.clone()));
        assert_eq!(checkpoint.position("quarantine"), Some(1048601));
        assert_eq!(checkpoint.position("stdout"), None);
        assert_eq!(checkpoint.mark("quarantine"), Some(FileMark { len: 7, device: 2049, inode: 131080 }));
        assert_eq!(checkpoint.mark("jsonl:/var/lib/egnyte receiver/events.jsonl"), None);
        assert_eq!(checkpoint.high_water(), 1048601);
    }

    #[test]
    fn anything_unexpected_is_refused_with_its_line() {
        for (text, error) in [
            ("", "line 1"),
            ("egnyte-receiver checkpoint v2\n", "line 1"),
            ("egnyte-receiver checkpoint v1\nkeys 1\n", "line 2"),
            ("egnyte-receiver checkpoint v1\nkeys 1 2\nsink x stdout\n", "line 3"),
            ("egnyte-receiver checkpoint v1\nsink 5 \n", "line 2"),
            ("egnyte-receiver checkpoint v1\nposition 5\n", "line 2"),
            ("egnyte-receiver checkpoint v1\nfile 1 2 3\n", "line 2"),
            ("egnyte-receiver checkpoint v1\nsink 5 stdout\nfile 1 2\n", "line 3"),
            ("egnyte-receiver checkpoint v1\nsink 5 stdout\nfile 1 2 3 4\n", "line 3"),
            ("egnyte-receiver checkpoint v1\nsink 5 stdout\nfile 1 2 x\n", "line 3"),
            ("egnyte-receiver checkpoint v1\nsink 5 stdout\nfile 1 2 3\nfile 1 2 3\n", "line 4"),
        ] {
            let got = Checkpoint::parse(text, Some(Path::new("/d"))).unwrap_err();
            assert!(got.starts_with(error), "{text:?}: {got}");
        }
    }

    #[test]
    fn names_inside_the_data_directory_are_stored_relative_to_it() {
        let mark = FileMark { len: 7, device: 1, inode: 2 };
        let checkpoint = Checkpoint {
            keys_count: 1,
            keys_through: 2,
            sinks: vec![
                ("jsonl:/srv/d/events.jsonl".into(), 3),
                ("exec:/srv/d/hooks/on event".into(), 4),
                // Not inside: a longer directory name, the directory itself, elsewhere.
                ("jsonl:/srv/dd/x.jsonl".into(), 5),
                ("jsonl:/srv/d".into(), 6),
                ("exec:/usr/bin/hook".into(), 7),
                ("events".into(), 8),
                ("stdout".into(), 9),
                ("handler:/srv/d/x".into(), 10),
            ],
            marks: vec![("jsonl:/srv/d/events.jsonl".into(), mark)],
        };
        let text = checkpoint.render(Some(Path::new("/srv/d")));
        assert_eq!(
            text,
            "egnyte-receiver checkpoint v1\nkeys 1 2\nsink 3 jsonl:$DATA_DIR/events.jsonl\nfile 7 1 2\n\
             sink 4 exec:$DATA_DIR/hooks/on event\nsink 5 jsonl:/srv/dd/x.jsonl\nsink 6 jsonl:/srv/d\n\
             sink 7 exec:/usr/bin/hook\nsink 8 events\nsink 9 stdout\nsink 10 handler:/srv/d/x\n"
        );
        // Read back in the same place: the same checkpoint.
        assert_eq!(Checkpoint::parse(&text, Some(Path::new("/srv/d"))), Ok(checkpoint.clone()));
        // Read back where the directory was moved to: the names inside it follow it.
        let moved = Checkpoint::parse(&text, Some(Path::new("/mnt/restored"))).unwrap();
        assert_eq!(moved.position("jsonl:/mnt/restored/events.jsonl"), Some(3));
        assert_eq!(moved.mark("jsonl:/mnt/restored/events.jsonl"), Some(mark));
        assert_eq!(moved.position("exec:/mnt/restored/hooks/on event"), Some(4));
        assert_eq!(moved.position("jsonl:/srv/dd/x.jsonl"), Some(5));
        assert_eq!(moved.position("events"), Some(8));
        // Without a data directory (not how `load` reads), the stored names as they are.
        assert_eq!(Checkpoint::parse(&text, None).unwrap().position("jsonl:$DATA_DIR/events.jsonl"), Some(3));
        // `$DATA_DIR` alone, or not followed by `/`, is no relative name.
        for stored in ["jsonl:$DATA_DIR", "jsonl:$DATA_DIR/", "jsonl:$DATA_DIRx/a", "stdout"] {
            assert_eq!(absolute_name(stored, Some(Path::new("/d"))), stored);
        }
    }

    #[test]
    fn a_moved_data_directory_keeps_its_positions() {
        let temp = crate::test_dir::TempDir::new("checkpoint-moved");
        let (old, new) = (temp.path().join("old"), temp.path().join("new"));
        fs::create_dir(&old).unwrap();
        let name =
            |dir: &Path| format!("jsonl:{}", fs::canonicalize(dir).unwrap().join("events.jsonl").display());
        let checkpoint = Checkpoint { sinks: vec![(name(&old), 5)], ..Checkpoint::default() };
        store(&old, &checkpoint).unwrap();
        let text = fs::read_to_string(old.join(CHECKPOINT_FILE)).unwrap();
        assert!(text.contains("sink 5 jsonl:$DATA_DIR/events.jsonl\n"), "{text}");
        assert_eq!(Checkpoint::load_or_default(&old).unwrap(), checkpoint);
        fs::rename(&old, &new).unwrap();
        let moved = Checkpoint::load_or_default(&new).unwrap();
        assert_eq!(moved.sinks, [(name(&new), 5)]);
    }

    #[test]
    fn rename_moves_the_position_and_the_mark() {
        let mark = FileMark { len: 1, device: 2, inode: 3 };
        let mut checkpoint = Checkpoint {
            sinks: vec![("jsonl:./e.jsonl".into(), 4), ("stdout".into(), 5)],
            marks: vec![("jsonl:./e.jsonl".into(), mark)],
            ..Checkpoint::default()
        };
        checkpoint.rename("jsonl:./e.jsonl", "events");
        assert_eq!(checkpoint.sinks, [("events".to_string(), 4), ("stdout".to_string(), 5)]);
        assert_eq!(checkpoint.mark("events"), Some(mark));
        assert_eq!(checkpoint.position("jsonl:./e.jsonl"), None);
    }

    #[test]
    fn store_replaces_and_load_reads_back() {
        let temp = crate::test_dir::TempDir::new("checkpoint");
        let dir = temp.path();
        assert_eq!(load(dir).unwrap(), None);
        let first = Checkpoint {
            keys_count: 1,
            keys_through: 2,
            sinks: vec![("stdout".into(), 2)],
            ..Default::default()
        };
        store(dir, &first).unwrap();
        let second = Checkpoint {
            keys_count: 3,
            keys_through: 9,
            sinks: vec![("stdout".into(), 7)],
            ..Default::default()
        };
        store(dir, &second).unwrap();
        assert_eq!(load(dir).unwrap(), Some(second));
        assert!(!dir.join("checkpoint.tmp").exists());
        fs::write(dir.join(CHECKPOINT_FILE), "garbage").unwrap();
        assert!(load(dir).unwrap_err().to_string().contains("line 1"));
    }
}
