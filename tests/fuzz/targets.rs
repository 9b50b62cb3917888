//! The fuzz targets: one function per parser of outside bytes. Each takes any bytes and must
//! return (an `Err` is an answer) without panicking, aborting or looping. Written once, used
//! by the time-boxed mutation loop of `tests/fuzz.rs` (stable toolchain, every `cargo test`)
//! and by the coverage-guided cargo-fuzz targets of `fuzz/` (nightly, `scripts/fuzz`).

use tabdiffusion::checkpoint::{self, DiffusersFolder};
use tabdiffusion::data::{self, Manifest};
use tabdiffusion::train::Trainer;

/// A parser under test: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder (`tests/fuzz/corpus/<name>/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("npy", npy),
    ("idx", idx),
    ("tile", tile),
    ("image", image),
    ("upload", upload),
    ("stored_upload", stored_upload),
    ("checkpoint", checkpoint),
    ("train_state", train_state),
    ("diffusers_config", diffusers_config),
    ("manifest", manifest),
];

/// `.npy` (`sample --init-noise`).
pub fn npy(data: &[u8]) {
    let _ = data::decode_npy(data);
}

/// An IDX image file and its label file: the first 4 bytes (u32, little-endian) are the
/// length of the image file, which follows; the labels are the rest.
pub fn idx(data: &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<4>() else { return };
    let at = (u32::from_le_bytes(*length) as usize).min(rest.len());
    let (images, labels) = rest.split_at(at);
    let _ = data::images_from_idx(images, labels);
}

/// Image shapes a tile is decoded as: (height, width, channels).
pub const TILE_SHAPES: [(usize, usize, usize); 4] = [(4, 3, 3), (2, 2, 1), (28, 28, 1), (32, 32, 3)];

/// A PNG tile: byte 0 picks the image shape of [`TILE_SHAPES`], byte 1 the number of images
/// (0–255); the PNG is the rest.
pub fn tile(data: &[u8]) {
    let [shape, count, png @ ..] = data else { return };
    let (h, w, c) = TILE_SHAPES[usize::from(*shape) % TILE_SHAPES.len()];
    let _ = data::decode_tile(png, usize::from(*count), h, w, c);
}

/// One uploaded PNG or JPEG, decoded at 8×8 RGB.
pub fn image(data: &[u8]) {
    let _ = data::images_from_files([("x.png", data, 0)], 8, 3);
}

/// An uploaded zip of images (with class folders), decoded at 8×8 gray.
pub fn upload(data: &[u8]) {
    let _ = data::images_from_upload(vec![("upload.zip".to_string(), data.to_vec())], 8, 1);
}

/// The tab's stored upload (safetensors of pixels and labels).
pub fn stored_upload(data: &[u8]) {
    let _ = data::upload_from_bytes(data);
}

/// Our weights file (safetensors with the config in its metadata).
pub fn checkpoint(data: &[u8]) {
    let _ = checkpoint::decode(data);
}

/// A training-state file, read and checked (no model is built: [`Trainer::read_state`]).
pub fn train_state(data: &[u8]) {
    let _ = Trainer::read_state(data);
}

/// A diffusers folder's `config.json` and `scheduler_config.json`, separated by a 0 byte.
pub fn diffusers_config(data: &[u8]) {
    let mut parts = data.splitn(2, |&b| b == 0);
    let config = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let scheduler = parts.next().map(String::from_utf8_lossy);
    let _ = DiffusersFolder::from_files(&config, None, scheduler.as_deref());
}

/// A tiled dataset's `manifest.json`.
pub fn manifest(data: &[u8]) {
    let _ = serde_json::from_slice::<Manifest>(data);
}
