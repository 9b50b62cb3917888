//! Datasets from bytes: IDX files, PNG tiles, minibatches. No I/O here.

mod datasets;
mod decode;
mod idx;
mod images;
mod npy;
mod points;
mod tiles;
mod upload;

pub use datasets::Dataset;
pub use crate::limits::OverLimit;
use crate::limits;
pub use decode::{CIFAR10_CLASSES, FASHION_MNIST_CLASSES, images_from_cifar_binary, images_from_files};
pub use idx::{Idx, parse_idx};
pub use images::{ImageSet, to_pixels};
pub use npy::{decode_npy, encode_npy};
pub use points::{Gaussian, GaussianMixture, MAX_COORDINATE, PointSet, PointShape, points_tensor, tensor_points};
pub use tiles::{COLUMNS, PER_TILE, decode_tile, encode_tile, grid};
pub use upload::{images_from_upload, is_image_or_zip, labelled_images, unzip_images, upload_from_bytes, upload_to_bytes};

use serde::{Deserialize, Serialize};

/// Why data could not be used.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DataError {
    /// A size the data declares (or has) is over one of the [`limits`].
    #[error(transparent)]
    TooLarge(#[from] OverLimit),
    /// The bytes are not in the format they are read as.
    #[error("{format}: {why}")]
    Malformed { format: Format, why: String },
    /// A zip that does not open, or an entry of it that does not read.
    #[error("{name} is not a readable zip: {why}")]
    BadZip { name: String, why: String },
    /// An image file that does not decode, or holds no pixels.
    #[error("{name} is not a readable PNG or JPEG image: {why}")]
    BadImage { name: String, why: String },
    /// Files of which none is an image or a zip of images.
    #[error("no PNG or JPEG images (or zips of them) in {among}")]
    NoImages { among: String },
    /// Parts that do not fit together: labels and images, pixels and their shape.
    #[error("{0}")]
    Mismatch(String),
    /// A shape the loaders cannot make (channels other than 1 or 3, a size of 0).
    #[error("{0}")]
    Unsupported(String),
}

/// The formats data is read from, as [`DataError::Malformed`] names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Idx,
    Npy,
    Tile,
    CifarBinary,
    /// The tab's stored copy of an upload ([`upload_to_bytes`]).
    StoredImages,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Idx => "IDX",
            Self::Npy => ".npy",
            Self::Tile => "tile",
            Self::CifarBinary => "CIFAR-10 binary",
            Self::StoredImages => "the stored images",
        })
    }
}

/// One split of a tiled dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SplitFields")]
pub struct SplitManifest {
    /// Number of images.
    pub count: usize,
    /// Tile files, in order; each holds up to `PER_TILE` images.
    pub tiles: Vec<String>,
    /// File of one label byte per image.
    pub labels: String,
    /// Bytes of the split's files (tiles and labels): what loading it downloads, shown before
    /// a dataset is chosen. 0 where unknown (manifests written before it was recorded).
    pub bytes: u64,
}

impl SplitManifest {
    /// Bytes to download for the split, if the manifest says.
    pub fn download_size(&self) -> Option<u64> {
        (self.bytes > 0).then_some(self.bytes)
    }
}

/// `manifest.json` of a tiled dataset folder. Deserialising checks it (see
/// [`Manifest::check`]), so a manifest read with serde is one the loaders can follow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ManifestFields")]
pub struct Manifest {
    pub name: String,
    /// Class names, in label order (empty where the images have no labels).
    #[serde(default)]
    pub classes: Vec<String>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub train: SplitManifest,
    pub test: SplitManifest,
}

/// The fields of [`SplitManifest`] as a file holds them, before they are checked.
#[derive(Deserialize)]
struct SplitFields {
    count: usize,
    tiles: Vec<String>,
    labels: String,
    #[serde(default)]
    bytes: u64,
}

impl TryFrom<SplitFields> for SplitManifest {
    type Error = String;
    fn try_from(f: SplitFields) -> Result<Self, String> {
        let count = limits::at_most("manifest: count", f.count, limits::MAX_DATASET_IMAGES)?;
        let tiles = count.div_ceil(PER_TILE);
        if f.tiles.len() != tiles {
            return Err(format!("manifest: {} tiles listed for {count} images ({tiles} expected)", f.tiles.len()));
        }
        for tile in &f.tiles {
            limits::file_name("manifest: tile", tile)?;
        }
        limits::file_name("manifest: labels", &f.labels)?;
        Ok(Self { count, tiles: f.tiles, labels: f.labels, bytes: f.bytes })
    }
}

/// The fields of [`Manifest`] as a file holds them, before they are checked.
#[derive(Deserialize)]
struct ManifestFields {
    name: String,
    #[serde(default)]
    classes: Vec<String>,
    height: usize,
    width: usize,
    channels: usize,
    train: SplitManifest,
    test: SplitManifest,
}

impl TryFrom<ManifestFields> for Manifest {
    type Error = String;
    fn try_from(f: ManifestFields) -> Result<Self, String> {
        let manifest = Manifest {
            name: f.name,
            classes: f.classes,
            height: f.height,
            width: f.width,
            channels: f.channels,
            train: f.train,
            test: f.test,
        };
        manifest.check()?;
        Ok(manifest)
    }
}

impl Manifest {
    /// Checks the image shape and names against [`limits`] and each split's bytes against
    /// [`limits::MAX_DATASET_BYTES`] (the splits' own fields are checked as they are read).
    pub fn check(&self) -> Result<(), String> {
        limits::at_most("manifest: name length", self.name.len(), limits::MAX_NAME_BYTES)?;
        limits::at_most("manifest: classes", self.classes.len(), limits::MAX_CLASSES)?;
        for class in &self.classes {
            limits::at_most("manifest: class name length", class.len(), limits::MAX_NAME_BYTES)?;
        }
        for (what, side) in [("height", self.height), ("width", self.width)] {
            if side == 0 {
                return Err(format!("manifest: {what} is 0"));
            }
            limits::at_most(&format!("manifest: {what}"), side, limits::MAX_DATASET_SIDE)?;
        }
        if !(self.channels == 1 || self.channels == 3) {
            return Err(format!("manifest: channels: {}; 1 (gray) or 3 (RGB)", self.channels));
        }
        for (what, split) in [("train", &self.train), ("test", &self.test)] {
            let dims = [split.count, self.height, self.width, self.channels].map(|d| d as u64);
            limits::product_at_most(&format!("manifest: {what} pixel bytes"), &dims, limits::MAX_DATASET_BYTES)?;
        }
        Ok(())
    }
}

impl SplitManifest {
    /// Checks a split's label file: one byte per image (or none for unlabelled images).
    pub fn check_labels(&self, labels: &[u8]) -> Result<(), DataError> {
        if labels.is_empty() || labels.len() == self.count {
            Ok(())
        } else {
            Err(DataError::Mismatch(format!("{}: {} labels for {} images", self.labels, labels.len(), self.count)))
        }
    }
}

/// Pairs an IDX image file (`[N, H, W]`) with its IDX label file (`[N]`).
pub fn images_from_idx(images: &[u8], labels: &[u8]) -> Result<ImageSet, DataError> {
    let images = parse_idx(images)?;
    let labels = parse_idx(labels)?;
    if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
        return Err(DataError::Mismatch(format!(
            "IDX images {:?} and labels {:?} do not pair up",
            images.dims, labels.dims
        )));
    }
    limits::at_most("IDX: images", images.dims[0], limits::MAX_DATASET_IMAGES)?;
    for (what, side) in [("IDX: height", images.dims[1]), ("IDX: width", images.dims[2])] {
        limits::at_most(what, side, limits::MAX_DATASET_SIDE)?;
    }
    ImageSet::new(images.dims[1], images.dims[2], 1, images.values, labels.values)
}

/// Splits a set into tiles: `(file name, PNG bytes)` per tile, plus the split's manifest.
pub fn to_tiles(set: &ImageSet, split: &str) -> (Vec<(String, Vec<u8>)>, SplitManifest) {
    let indices: Vec<usize> = (0..set.len()).collect();
    let tiles: Vec<(String, Vec<u8>)> = indices
        .chunks(PER_TILE)
        .enumerate()
        .map(|(k, chunk)| (format!("{split}-{k}.png"), encode_tile(set, chunk)))
        .collect();
    let manifest = SplitManifest {
        count: set.len(),
        tiles: tiles.iter().map(|(name, _)| name.clone()).collect(),
        labels: format!("{split}-labels.bin"),
        bytes: (tiles.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() + set.len()) as u64,
    };
    (tiles, manifest)
}

/// Number of images in tile `k` of a split of `count` images.
pub fn tile_count(count: usize, k: usize) -> usize {
    count.saturating_sub(k.saturating_mul(PER_TILE)).min(PER_TILE)
}

/// `[B, C, H, W]` values in [−1, 1] as one image: a grid with ⌈√B⌉ images per row.
pub fn samples_grid(values: &[f32], batch: usize, channels: usize, size: usize) -> image::DynamicImage {
    let columns = (batch as f64).sqrt().ceil() as usize;
    values_grid(values, batch, channels, size, columns)
}

/// `[B, C, H, W]` values in [−1, 1] as one image: a grid with `columns` images per row.
pub fn values_grid(values: &[f32], batch: usize, channels: usize, size: usize, columns: usize) -> image::DynamicImage {
    let pixels = to_pixels(values, batch, channels, size, size);
    let set = ImageSet { height: size, width: size, channels, pixels, labels: Vec::new() };
    let indices: Vec<usize> = (0..batch).collect();
    grid(&set, &indices, columns.max(1))
}

/// [`samples_grid`] encoded as PNG.
pub fn samples_png(values: &[f32], batch: usize, channels: usize, size: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    samples_grid(values, batch, channels, size)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("PNG encoding to memory");
    bytes
}
