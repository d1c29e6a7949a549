//! Which data directory the operator tools (`journal`, `replay`) look into when `--data-dir` is
//! not given: the one the service uses, found as the service finds it.
//!
//! In order, the first that applies:
//! 1. `--data-dir DIR`;
//! 2. `$EGNYTE_RECEIVER_DATA_DIR` (as `serve` reads it);
//! 3. an `EGNYTE_RECEIVER_DATA_DIR=…` line of `/etc/egnyte-receiver/env`, the unit's
//!    `EnvironmentFile=` (comments and blank lines ignored, the last assignment wins, as systemd
//!    reads it);
//! 4. `./egnyte-data` when it exists here (a receiver started by hand in this directory);
//! 5. the unit's own `Environment=EGNYTE_RECEIVER_DATA_DIR=/var/lib/egnyte-receiver` when that
//!    directory (or its DynamicUser form below) exists;
//! 6. `./egnyte-data`, `serve`'s default.
//!
//! With the unit's `DynamicUser=yes` the data lives in `/var/lib/private/egnyte-receiver` and
//! `/var/lib/egnyte-receiver` is a symlink to it that systemd manages: when that path is a
//! dangling symlink or absent while the private one exists, the private one is used, whatever
//! the source of the value.
//!
//! The tool prints the directory and why on stderr, one line, before anything else. No new
//! environment variable is read (`serve` refuses `EGNYTE_RECEIVER_*` names it does not know).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `serve`'s default `--data-dir`.
pub(super) const DEFAULT_DATA_DIR: &str = "./egnyte-data";
/// The variable `serve` reads its data directory from.
pub(super) const VARIABLE: &str = "EGNYTE_RECEIVER_DATA_DIR";
/// The unit's `EnvironmentFile=` (installed by the .deb from `deploy/env`).
const ENV_FILE: &str = "/etc/egnyte-receiver/env";
/// What the unit sets `EGNYTE_RECEIVER_DATA_DIR` to (`StateDirectory=egnyte-receiver`).
const UNIT_DATA_DIR: &str = "/var/lib/egnyte-receiver";
/// Where systemd keeps a `DynamicUser=yes` unit's `StateDirectory=`.
const PRIVATE_DATA_DIR: &str = "/var/lib/private/egnyte-receiver";

/// The data directory a tool uses, and why (for the one line on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// Where it came from, for people.
    pub why: String,
}

/// The paths discovery looks at: the system's in production, temporary ones in tests.
#[derive(Debug, Clone)]
pub(super) struct Places {
    /// The unit's environment file.
    pub env_file: PathBuf,
    /// The unit's data directory as it names it.
    pub unit_dir: PathBuf,
    /// Where DynamicUser=yes keeps it.
    pub private_dir: PathBuf,
    /// `serve`'s default (relative to the working directory).
    pub default_dir: PathBuf,
}

impl Places {
    /// The real ones.
    pub(super) fn system() -> Places {
        Places {
            env_file: PathBuf::from(ENV_FILE),
            unit_dir: PathBuf::from(UNIT_DATA_DIR),
            private_dir: PathBuf::from(PRIVATE_DATA_DIR),
            default_dir: PathBuf::from(DEFAULT_DATA_DIR),
        }
    }
}

impl DataDir {
    /// The directory from `--data-dir` (`flag`), else as the service finds it (see the module
    /// documentation).
    pub(super) fn find(flag: Option<OsString>) -> DataDir {
        DataDir::discover(flag, std::env::var_os(VARIABLE), &Places::system())
    }

    /// [`find`](DataDir::find) with the environment's value and the places given.
    pub(super) fn discover(flag: Option<OsString>, env: Option<OsString>, places: &Places) -> DataDir {
        let found = if let Some(flag) = flag {
            DataDir { path: flag.into(), why: "from --data-dir".into() }
        } else if let Some(env) = env.filter(|v| !v.is_empty()) {
            DataDir { path: env.into(), why: format!("from ${VARIABLE}") }
        } else {
            match env_file_value(&places.env_file) {
                Ok(Some(value)) => {
                    DataDir { path: value, why: format!("from {VARIABLE} in {}", places.env_file.display()) }
                }
                Ok(None) | Err(_) if places.default_dir.is_dir() => DataDir {
                    path: places.default_dir.clone(),
                    why: format!(
                        "{} exists here; no --data-dir, ${VARIABLE} or setting in {}",
                        places.default_dir.display(),
                        places.env_file.display()
                    ),
                },
                unset => {
                    let service = places.unit_dir.is_dir()
                        || (!places.unit_dir.exists() && places.private_dir.is_dir());
                    let env_file = match unset {
                        Ok(_) => format!("{} does not set {VARIABLE}", places.env_file.display()),
                        Err(e) => format!("{}: {e}", places.env_file.display()),
                    };
                    if service {
                        DataDir {
                            path: places.unit_dir.clone(),
                            why: format!(
                                "the service's: the unit sets {VARIABLE}={}, {env_file}",
                                places.unit_dir.display()
                            ),
                        }
                    } else {
                        DataDir {
                            path: places.default_dir.clone(),
                            why: format!(
                                "the default: no --data-dir, no ${VARIABLE}, {env_file}, no service data \
                                 directory {}",
                                places.unit_dir.display()
                            ),
                        }
                    }
                }
            }
        };
        found.dynamic_user(places)
    }

    /// `/var/lib/egnyte-receiver` read as `/var/lib/private/egnyte-receiver` when the former is a
    /// dangling symlink or absent and the latter exists (DynamicUser=yes).
    fn dynamic_user(self, places: &Places) -> DataDir {
        if self.path != places.unit_dir || self.path.exists() || !places.private_dir.is_dir() {
            return self;
        }
        let what = if places.unit_dir.symlink_metadata().is_ok() { "a dangling symlink" } else { "absent" };
        DataDir {
            why: format!(
                "{}; {} is {what}, so its DynamicUser=yes form {}",
                self.why,
                places.unit_dir.display(),
                places.private_dir.display()
            ),
            path: places.private_dir.clone(),
        }
    }

    /// Prints which directory and why, one line on stderr.
    pub(super) fn announce(&self) {
        eprintln!("egnyte-receiver: data directory {} ({})", self.path.display(), self.why);
    }
}

/// The value of the last `EGNYTE_RECEIVER_DATA_DIR=` line of an environment file, as systemd's
/// `EnvironmentFile=` reads it: `#` and `;` start comments, blanks around the name and the value
/// are dropped, a value in matching double or single quotes loses them, and an empty value
/// counts as unset. `Ok(None)` when the file does not exist or sets nothing.
pub(super) fn env_file_value(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut value = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((name, rest)) = line.split_once('=') else { continue };
        if name.trim() != VARIABLE {
            continue;
        }
        let rest = rest.trim();
        let unquoted = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|&(open, close)| rest.strip_prefix(open)?.strip_suffix(close))
            .unwrap_or(rest);
        value = (!unquoted.is_empty()).then(|| PathBuf::from(unquoted));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use egnyte_receiver::test_dir::TempDir;

    /// Places under a temporary directory, none of which exists yet.
    fn places(temp: &TempDir) -> Places {
        let root = temp.path();
        Places {
            env_file: root.join("etc-env"),
            unit_dir: root.join("var-lib/egnyte-receiver"),
            private_dir: root.join("var-lib/private/egnyte-receiver"),
            default_dir: root.join("cwd/egnyte-data"),
        }
    }

    fn discover(flag: Option<&str>, env: Option<&str>, places: &Places) -> DataDir {
        DataDir::discover(flag.map(OsString::from), env.map(OsString::from), places)
    }

    #[test]
    fn the_flag_then_the_environment_then_the_env_file() {
        let temp = TempDir::new("data-dir-order");
        let places = places(&temp);
        std::fs::write(&places.env_file, "EGNYTE_RECEIVER_DATA_DIR=/from/file\n").unwrap();
        let found = discover(Some("/flag"), Some("/env"), &places);
        assert_eq!((found.path, found.why), (PathBuf::from("/flag"), "from --data-dir".to_string()));
        let found = discover(None, Some("/env"), &places);
        assert_eq!(
            (found.path, found.why),
            (PathBuf::from("/env"), "from $EGNYTE_RECEIVER_DATA_DIR".to_string())
        );
        // An empty variable is unset (as for serve's options).
        let found = discover(None, Some(""), &places);
        assert_eq!(found.path, PathBuf::from("/from/file"));
        assert!(
            found.why.starts_with("from EGNYTE_RECEIVER_DATA_DIR in ") && found.why.contains("etc-env"),
            "{found:?}"
        );
    }

    #[test]
    fn env_file_lines_are_read_as_systemd_reads_them() {
        let temp = TempDir::new("data-dir-env-file");
        let path = temp.path().join("env");
        assert_eq!(env_file_value(&path).unwrap(), None, "no file");
        for (text, want) in [
            ("#EGNYTE_RECEIVER_DATA_DIR=/commented\n", None),
            ("; EGNYTE_RECEIVER_DATA_DIR=/commented\n", None),
            ("EGNYTE_RECEIVER_DATA_DIRX=/other\nEGNYTE_RECEIVER_LISTEN=x\n", None),
            ("EGNYTE_RECEIVER_DATA_DIR=\n", None),
            ("EGNYTE_RECEIVER_DATA_DIR=/a\n", Some("/a")),
            ("  EGNYTE_RECEIVER_DATA_DIR = /spaced  \r\n", Some("/spaced")),
            ("EGNYTE_RECEIVER_DATA_DIR=\"/quoted dir\"\n", Some("/quoted dir")),
            ("EGNYTE_RECEIVER_DATA_DIR='/single'\n", Some("/single")),
            ("EGNYTE_RECEIVER_DATA_DIR=/first\n# later\nEGNYTE_RECEIVER_DATA_DIR=/last", Some("/last")),
            ("EGNYTE_RECEIVER_DATA_DIR=/set\nEGNYTE_RECEIVER_DATA_DIR=\n", None),
            ("garbage line without equals\nEGNYTE_RECEIVER_DATA_DIR=/ok\n", Some("/ok")),
        ] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(env_file_value(&path).unwrap(), want.map(PathBuf::from), "{text:?}");
        }
    }

    #[test]
    fn without_any_setting_the_service_directory_or_the_default() {
        let temp = TempDir::new("data-dir-fallback");
        let places = places(&temp);
        // Nothing anywhere: serve's default.
        let found = discover(None, None, &places);
        assert_eq!(found.path, places.default_dir);
        assert!(found.why.starts_with("the default"), "{found:?}");
        // The stock env file (every line commented out) and the service's directory: that one.
        std::fs::write(&places.env_file, "#EGNYTE_RECEIVER_DATA_DIR=/var/lib/egnyte-receiver\n").unwrap();
        std::fs::create_dir_all(&places.unit_dir).unwrap();
        let found = discover(None, None, &places);
        assert_eq!(found.path, places.unit_dir);
        assert!(found.why.contains("the service's") && found.why.contains("does not set"), "{found:?}");
        // A ./egnyte-data here wins over the service's (a receiver started by hand here).
        std::fs::create_dir_all(&places.default_dir).unwrap();
        let found = discover(None, None, &places);
        assert_eq!(found.path, places.default_dir);
        assert!(found.why.contains("exists here"), "{found:?}");
    }

    #[test]
    fn the_unit_directory_is_read_as_its_dynamic_user_form_when_only_that_exists() {
        let temp = TempDir::new("data-dir-dynamic");
        let places = places(&temp);
        let unit = places.unit_dir.to_str().unwrap().to_string();
        std::fs::write(&places.env_file, format!("EGNYTE_RECEIVER_DATA_DIR={unit}\n")).unwrap();
        // Neither exists: the value as it is.
        assert_eq!(discover(None, None, &places).path, places.unit_dir);
        // Only the private one exists: it is used, from any source.
        std::fs::create_dir_all(&places.private_dir).unwrap();
        let found = discover(None, None, &places);
        assert_eq!(found.path, places.private_dir);
        assert!(found.why.contains("is absent, so its DynamicUser=yes form"), "{found:?}");
        assert_eq!(discover(None, Some(&unit), &places).path, places.private_dir);
        assert_eq!(discover(Some(&unit), None, &places).path, places.private_dir);
        // Without any setting either (the service's directory in its DynamicUser form).
        std::fs::remove_file(&places.env_file).unwrap();
        let found = discover(None, None, &places);
        assert_eq!(found.path, places.private_dir);
        assert!(found.why.contains("the service's"), "{found:?}");
        // A dangling symlink: the private one.
        std::fs::create_dir_all(places.unit_dir.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(temp.path().join("nowhere"), &places.unit_dir).unwrap();
        let found = discover(None, Some(&unit), &places);
        assert_eq!(found.path, places.private_dir);
        assert!(found.why.contains("a dangling symlink"), "{found:?}");
        // A symlink that resolves: the unit's path as it is.
        std::fs::remove_file(&places.unit_dir).unwrap();
        std::os::unix::fs::symlink(&places.private_dir, &places.unit_dir).unwrap();
        assert_eq!(discover(None, Some(&unit), &places).path, places.unit_dir);
        // Another directory is never mapped.
        assert_eq!(discover(None, Some("/srv/data"), &places).path, PathBuf::from("/srv/data"));
    }
}
