//! Helpers for the project's own tests and benchmarks (the unit tests, `tests/` and `benches/`),
//! kept here once so that every one of them shares them. Not part of the API for embedders: it is
//! hidden from the documentation and may change at any time.
//!
//! * [`TempDir`]: a fresh, empty directory (unique per process, tag and call), removed when the
//!   guard drops, also when a test fails or a bench returns an error; a bench can [`keep`] it.
//! * [`free_port`] and [`free_port_v6`]: a loopback port nobody listens on right now.
//!
//! [`keep`]: TempDir::keep

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory, removed when dropped unless [`TempDir::keep`] was called.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `egnyte-test-TAG-PID-N` under the system temp dir, empty; panics when it cannot.
    pub fn new(tag: &str) -> TempDir {
        TempDir::create(&std::env::temp_dir(), tag).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates `egnyte-test-TAG-PID-N` under `parent`, empty (a leftover of that name, from an
    /// earlier process with the same PID, is removed first). The error names the directory.
    pub fn create(parent: &Path, tag: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = parent.join(format!("egnyte-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(TempDir { path, keep: false })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory when the guard drops (for a look at what a failed run left), and
    /// says so on stderr then.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A port on `127.0.0.1` nobody listens on right now (bound, then released: whoever binds it
/// next may still lose a race for it, so a server started on it should be retried); panics when
/// no loopback port can be bound.
pub fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr")
}

/// A free port on `[::1]`, as [`free_port`]; `None` when the machine has no IPv6 loopback.
pub fn free_port_v6() -> Option<SocketAddr> {
    TcpListener::bind("[::1]:0").ok()?.local_addr().ok()
}

/// A test CA and a certificate it signed for `localhost` (not for 127.0.0.1).
#[derive(Debug)]
pub struct Pki {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The server's certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

impl Pki {
    /// Makes them in `dir` (created) with `openssl` (Debian: `apt-get install openssl`).
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let run = |args: &[&str]| {
            let status = Command::new("openssl").args(args).current_dir(dir).output();
            let output = status.expect("the TLS tests need the openssl command (apt-get install openssl)");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let ca =
            ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=egnyte-receiver test CA"];
        let ca_extensions =
            ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"];
        run(&[&["req", "-x509"], &ec[..], &ca[..], &ca_extensions[..]].concat());
        run(&[&["req"], &ec[..], &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]]
            .concat());
        std::fs::write(
            dir.join("ext.cnf"),
            "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Pki {
            dir: dir.to_path_buf(),
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

impl Pki {
    /// A rustls server configuration serving the `localhost` certificate, with the crypto
    /// provider the receiver's client uses (ring).
    pub fn server_config(&self) -> std::sync::Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs =
            CertificateDer::pem_file_iter(&self.cert).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(&self.key).unwrap();
        // Deprecated for lacking post-quantum key exchange; it is the provider ureq uses (ring).
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        std::sync::Arc::new(config)
    }
}
