//! The fuzz targets: one function per parser of outside bytes. Each takes any bytes and must
//! return without panicking, aborting or looping, with an `Err` or a valid result (checked by
//! `tests/fuzz/valid.rs`). Written once, used
//! by the time-boxed mutation loop of `tests/fuzz.rs` (stable toolchain, every `cargo test`)
//! and by the coverage-guided cargo-fuzz targets of `fuzz/` (nightly, `scripts/dev/fuzz`).

use tabdiffusion::checkpoint::{self, DiffusersFolder};
use tabdiffusion::data::{self, Manifest};
use tabdiffusion::train::Trainer;

use super::valid;

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
    if let Ok((shape, values)) = data::decode_npy(data) {
        valid::npy(&shape, &values);
    }
}

/// An IDX image file and its label file: the first 4 bytes (u32, little-endian) are the
/// length of the image file, which follows; the labels are the rest.
pub fn idx(data: &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<4>() else { return };
    let at = (u32::from_le_bytes(*length) as usize).min(rest.len());
    let (images, labels) = rest.split_at(at);
    if let Ok(set) = data::images_from_idx(images, labels) {
        valid::images(&set);
        assert_eq!((set.channels, set.labels.len()), (1, set.len()), "IDX images are gray, with a label each");
    }
}

/// Image shapes a tile is decoded as: (height, width, channels).
pub const TILE_SHAPES: [(usize, usize, usize); 4] = [(4, 3, 3), (2, 2, 1), (28, 28, 1), (32, 32, 3)];

/// A PNG tile: byte 0 picks the image shape of [`TILE_SHAPES`], byte 1 the number of images
/// (0–255); the PNG is the rest.
pub fn tile(data: &[u8]) {
    let [shape, count, png @ ..] = data else { return };
    let (h, w, c) = TILE_SHAPES[usize::from(*shape) % TILE_SHAPES.len()];
    if let Ok(set) = data::decode_tile(png, usize::from(*count), h, w, c) {
        valid::tile(&set, usize::from(*count), (h, w, c));
    }
}

/// One uploaded PNG or JPEG, decoded at 8×8 RGB.
pub fn image(data: &[u8]) {
    if let Ok(set) = data::images_from_files([("x.png", data, 0)], 8, 3) {
        valid::images_of(&set, (8, 8, 3));
        assert_eq!(set.len(), 1, "one image file is one image");
    }
}

/// An uploaded zip of images (with class folders), decoded at 8×8 gray.
pub fn upload(data: &[u8]) {
    if let Ok((set, classes)) = data::images_from_upload(vec![("upload.zip".to_string(), data.to_vec())], 8, 1) {
        valid::images_of(&set, (8, 8, 1));
        valid::labelled(&set, &classes);
    }
}

/// The tab's stored upload (safetensors of pixels and labels).
pub fn stored_upload(data: &[u8]) {
    if let Ok((set, classes)) = data::upload_from_bytes(data) {
        valid::labelled(&set, &classes);
    }
}

/// Our weights file (safetensors with the config in its metadata).
pub fn checkpoint(data: &[u8]) {
    if let Ok(checkpoint) = checkpoint::decode(data) {
        valid::checkpoint(&checkpoint);
    }
}

/// A training-state file, read and checked (no model is built: [`Trainer::read_state`]).
pub fn train_state(data: &[u8]) {
    if let Ok(state) = Trainer::read_state(data) {
        valid::saved_state(&state);
    }
}

/// A diffusers folder's `config.json` and `scheduler_config.json`, separated by a 0 byte.
pub fn diffusers_config(data: &[u8]) {
    let mut parts = data.splitn(2, |&b| b == 0);
    let config = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let scheduler = parts.next().map(String::from_utf8_lossy);
    if let Ok((config, schedule, _)) = DiffusersFolder::from_files(&config, None, scheduler.as_deref()) {
        config.validate().expect("an accepted config validates");
        schedule.validate().expect("an accepted schedule validates");
    }
}

/// A tiled dataset's `manifest.json`.
pub fn manifest(data: &[u8]) {
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(data) {
        valid::manifest(&manifest);
    }
}
