//! Access to the committed payloads in `tests/fixtures/`.

use std::path::{Path, PathBuf};

/// The fixture root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `*.json` file of one fixture folder with its bytes, sorted by name.
pub(crate) fn json_files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}
