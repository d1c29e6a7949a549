//! Build script: records which commit the binary was built from, for `--version` (and the
//! `build_info` metric), as `EGNYTE_RECEIVER_REVISION`:
//!
//! * `abc1234`: the short hash of `HEAD`, when the working tree matches it;
//! * `abc1234+dirty`: `git status --porcelain` lists a change (untracked files included);
//! * `unknown`: not built from a git checkout, or no `git` on the machine. Never a build failure.
//!
//! It reruns when `HEAD` moves (a checkout, a commit: `.git/HEAD`, the ref it points to, or
//! `packed-refs` when that ref is packed), when the index changes (`git add`, a commit), and
//! when the sources the binary is built from change, so the value stays right without full
//! rebuilds. A change elsewhere that nothing rebuilds for (only README.md edited, say) shows up at
//! the next rebuild. Git is asked with optional locks off, so the build never rewrites the index.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    for source in ["build.rs", "Cargo.toml", "Cargo.lock", "src"] {
        if root.join(source).exists() {
            println!("cargo:rerun-if-changed={source}");
        }
    }
    for path in git_paths(&root) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=EGNYTE_RECEIVER_REVISION={}", revision(&root));
}

/// Runs `git ARGS` in `root`; its trimmed standard output when it succeeds.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        // `git status` would otherwise refresh (write) the index of the tree being built.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

/// `abc1234`, `abc1234+dirty` or `unknown`.
fn revision(root: &Path) -> String {
    let Some(hash) = git(root, &["rev-parse", "--short", "HEAD"]).filter(|hash| !hash.is_empty()) else {
        return "unknown".to_owned();
    };
    match git(root, &["status", "--porcelain"]) {
        Some(changes) if changes.is_empty() => hash,
        // Changes, or a status git could not give: not known to be the commit.
        _ => format!("{hash}+dirty"),
    }
}

/// The files whose change moves `HEAD` or the index, as they exist (cargo would rerun a build
/// script on every build for a path that does not exist). Empty outside a git checkout.
fn git_paths(root: &Path) -> Vec<PathBuf> {
    // `--git-path` resolves each name in a linked worktree or a submodule too (`.git` a file).
    let path = |name: &str| git(root, &["rev-parse", "--git-path", name]).map(|p| root.join(p));
    let Some(head) = path("HEAD") else { return Vec::new() };
    let mut paths = vec![head.clone()];
    if let Some(index) = path("index") {
        paths.push(index);
    }
    let target = std::fs::read_to_string(&head).ok();
    if let Some(reference) = target.as_deref().and_then(|t| t.trim().strip_prefix("ref: ")) {
        match path(reference) {
            Some(loose) if loose.exists() => paths.push(loose),
            // A packed ref (after `git gc`) lives in packed-refs until it moves again.
            _ => paths.extend(path("packed-refs")),
        }
    }
    paths.retain(|p| p.exists());
    paths
}
