//! Helpers the tests that read the crate's own source share.

use std::path::{Path, PathBuf};

pub mod digits;

/// Every `.rs` file under `dir`, recursively.
#[allow(dead_code)] // not every test that shares this module reads the source
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The folder of a dataset that `scripts/setup` prepares (`www/data/<name>`, its tiles and
/// `manifest.json`). Where it is missing the test fails with the command that prepares it:
/// Rust's test runner cannot count a skip, so no test passes silently without its data.
#[allow(dead_code)] // not every test that shares this module reads a dataset
pub fn prepared_data(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/data").join(name);
    assert!(
        dir.join("manifest.json").is_file(),
        "{} is missing: run `scripts/setup` (it prepares MNIST and Fashion-MNIST; CIFAR-10 with `tabdiffusion data cifar10`)",
        dir.display()
    );
    dir
}
