//! Datasets from bytes: IDX files, PNG tiles, minibatches. No I/O here.

mod decode;
mod idx;
mod images;
mod npy;
mod tiles;
mod upload;

pub use decode::{CIFAR10_CLASSES, FASHION_MNIST_CLASSES, images_from_cifar_binary, images_from_files};
pub use idx::{Idx, parse_idx};
pub use images::{ImageSet, to_pixels};
pub use npy::{decode_npy, encode_npy};
pub use tiles::{COLUMNS, PER_TILE, decode_tile, encode_tile, grid};
pub use upload::{images_from_upload, is_image_or_zip, labelled_images, unzip_images, upload_from_bytes, upload_to_bytes};

use serde::{Deserialize, Serialize};

/// Why data could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Format(String),
}

/// One split of a tiled dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitManifest {
    /// Number of images.
    pub count: usize,
    /// Tile files, in order; each holds up to `PER_TILE` images.
    pub tiles: Vec<String>,
    /// File of one label byte per image.
    pub labels: String,
}

/// `manifest.json` of a tiled dataset folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// Pairs an IDX image file (`[N, H, W]`) with its IDX label file (`[N]`).
pub fn images_from_idx(images: &[u8], labels: &[u8]) -> Result<ImageSet, DataError> {
    let images = parse_idx(images)?;
    let labels = parse_idx(labels)?;
    if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
        return Err(DataError::Format(format!(
            "IDX images {:?} and labels {:?} do not pair up",
            images.dims, labels.dims
        )));
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
    };
    (tiles, manifest)
}

/// Number of images in tile `k` of a split of `count` images.
pub fn tile_count(count: usize, k: usize) -> usize {
    count.saturating_sub(k * PER_TILE).min(PER_TILE)
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
