//! `serve --check`: what `serve` needs, tried without starting it, like `nginx -t`.
//!
//! The options and the environment are parsed and checked and the token is read exactly as at
//! start (`Args::config`); then the data directory must be writable, every sink's file writable
//! (or its program runnable, or its URL, signing secret and trust store readable), and the
//! listen address free to bind. Each problem is one line, so an operator fixes them all in one
//! round instead of one restart per typo.
//!
//! Nothing the service will own is created: writability is probed with a file created and
//! removed at once, and a missing data directory or sink file is left for the service to create.
//! A check run as root therefore leaves no root-owned file in a directory that the service's
//! dynamic user must write.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use egnyte_receiver::serve::{ServeConfig, LOCK_FILE};
use egnyte_receiver::sink::{ExecSink, Sink, SinkSpec};

/// What the check found: problems (each stops a start), and notes (worth saying, harmless).
#[derive(Debug, Default)]
pub(super) struct Findings {
    pub(super) problems: Vec<String>,
    pub(super) notes: Vec<String>,
}

/// Tries everything `serve` would need with `config`.
pub(super) fn check(config: &ServeConfig) -> Findings {
    let mut found = Findings::default();
    let dir = &config.data_dir;
    if let Err(e) = writable_dir(dir) {
        found.problems.push(format!("data directory {}: {e}", dir.display()));
    }
    let running = held_by_a_receiver(dir);
    if running {
        found.notes.push(format!("a receiver is running on {} (the check does not stop it)", dir.display()));
    }
    let default = [SinkSpec::Jsonl(dir.join("events.jsonl"))];
    let sinks = if config.sinks.is_empty() { &default[..] } else { &config.sinks[..] };
    for spec in sinks {
        if let Err(e) = sink_ready(spec, config) {
            found.problems.push(format!("sink {}: {e}", spec.name()));
        }
    }
    match TcpListener::bind(config.listen) {
        Ok(listener) => drop(listener),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && running => {
            found
                .notes
                .push(format!("listen {}: in use, as expected while that receiver runs", config.listen));
        }
        Err(e) => found.problems.push(format!("listen {}: {e}", config.listen)),
    }
    found
}

/// The directory (or, when it does not exist yet, the nearest existing one above it, where the
/// service will create it) takes a new file.
fn writable_dir(dir: &Path) -> io::Result<()> {
    let mut existing = dir.to_path_buf();
    while !existing.exists() {
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent.to_path_buf(),
            _ => {
                existing = PathBuf::from(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return Err(io::Error::other(format!("{} is not a directory", existing.display())));
    }
    let probe = existing.join(format!(".egnyte-receiver-check-{}", std::process::id()));
    OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| {
        let what = if existing == dir {
            String::new()
        } else {
            format!(" (to create it in {})", existing.display())
        };
        io::Error::new(e.kind(), format!("cannot write{what}: {e}"))
    })?;
    std::fs::remove_file(&probe)
}

/// A sink's file can be appended to (or created), or its program run.
fn sink_ready(spec: &SinkSpec, config: &ServeConfig) -> io::Result<()> {
    match spec.without_name() {
        SinkSpec::Jsonl(path) if path.is_dir() => Err(io::Error::other("is a directory")),
        SinkSpec::Jsonl(path) if path.exists() => OpenOptions::new().append(true).open(path).map(drop),
        SinkSpec::Jsonl(path) => {
            writable_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
        }
        SinkSpec::Exec(program) => {
            ExecSink::open(spec.name(), program, config.sink_options.exec_timeout).map(drop)
        }
        // Its URL, its signing secret and the trust store (SSL_CERT_FILE) are read; nothing is sent.
        http @ SinkSpec::Http(_) => Sink::open(http, &config.sink_options).map(drop),
        _ => Ok(()),
    }
}

/// True when a process holds the data directory's lock (a receiver runs on it).
fn held_by_a_receiver(dir: &Path) -> bool {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else { return false };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use egnyte_receiver::test_dir::TempDir;
    use std::os::unix::fs::PermissionsExt;

    fn config(dir: &Path) -> ServeConfig {
        ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.join("data"))
    }

    #[test]
    fn a_fresh_setup_passes_and_creates_nothing() {
        let temp = TempDir::new("preflight-ok");
        let found = check(&config(temp.path()));
        assert!(found.problems.is_empty(), "{found:?}");
        assert!(!temp.path().join("data").exists(), "the data directory is left for the service");
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "no probe left behind");
    }

    #[test]
    fn every_problem_is_one_line() {
        let temp = TempDir::new("preflight-problems");
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = config(temp.path());
        config.listen = taken.local_addr().unwrap();
        std::fs::create_dir(temp.path().join("data")).unwrap();
        std::fs::create_dir(temp.path().join("data/events.jsonl")).unwrap();
        let script = temp.path().join("not-executable.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        config.sinks = vec![
            SinkSpec::Jsonl(temp.path().join("data/events.jsonl")),
            SinkSpec::Exec(script),
            SinkSpec::Jsonl(temp.path().join("missing/dir/out.jsonl")),
        ];
        let found = check(&config);
        let text = found.problems.join("\n");
        assert_eq!(found.problems.len(), 3, "{text}");
        assert!(found.problems[0].contains("events.jsonl: is a directory"), "{text}");
        assert!(found.problems[1].starts_with("sink exec:"), "{text}");
        assert!(found.problems[2].starts_with("listen "), "{text}");
        // A jsonl file in a directory that does not exist yet is created there by the service
        // (the nearest existing directory is writable): not a problem.
    }

    #[test]
    fn an_http_sink_whose_secret_cannot_be_read_is_a_problem_and_nothing_is_sent() {
        let temp = TempDir::new("preflight-http");
        let mut config = config(temp.path());
        // Port 9 on loopback: nothing listens, and nothing is sent anyway.
        config.sinks = vec!["http://127.0.0.1:9/hook".parse().unwrap()];
        assert!(check(&config).problems.is_empty(), "{:?}", check(&config));
        config.sink_options.http_sign_secret_file = Some(temp.path().join("missing-secret"));
        let found = check(&config);
        assert_eq!(found.problems.len(), 1, "{found:?}");
        assert!(found.problems[0].starts_with("sink http://127.0.0.1:9/hook: "), "{found:?}");
    }

    #[test]
    fn a_data_directory_that_cannot_be_made_is_a_problem() {
        let temp = TempDir::new("preflight-file");
        std::fs::write(temp.path().join("file"), b"").unwrap();
        let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), temp.path().join("file/data"));
        let found = check(&config);
        assert!(
            found.problems.iter().any(|p| p.starts_with("data directory") && p.contains("not a directory")),
            "{found:?}"
        );
    }
}
