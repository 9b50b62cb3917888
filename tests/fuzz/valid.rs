//! What an `Ok` from a parser of outside bytes must be: a value the rest of the crate can use
//! without a further check. The fuzz targets (`tests/fuzz/targets.rs`) and the hostile-input
//! tests (`tests/hostile.rs`) pass every `Ok` they get through these; a failed assertion is a
//! panic, which both count as a failure and save the input of. "An error or a valid result"
//! is only checked where the valid result is.

#![allow(dead_code)] // each test file uses the checks of its own parsers

use tabdiffusion::checkpoint::{Checkpoint, Tensors};
use tabdiffusion::data::{ImageSet, Manifest, PER_TILE, tile_count};
use tabdiffusion::train::SavedState;

/// A set of whole images of one shape, with one label per image or none.
pub fn images(set: &ImageSet) {
    let size = set.height * set.width * set.channels;
    assert!(size > 0, "an accepted image set of {}×{}×{}", set.height, set.width, set.channels);
    assert!(matches!(set.channels, 1 | 3 | 4), "{} channels", set.channels);
    assert_eq!(set.pixels.len() % size, 0, "pixels that are not whole images");
    assert!(set.labels.is_empty() || set.labels.len() == set.len(), "{} labels for {} images", set.labels.len(), set.len());
}

/// Images decoded at the shape the caller asked for.
pub fn images_of(set: &ImageSet, (height, width, channels): (usize, usize, usize)) {
    images(set);
    assert_eq!((set.height, set.width, set.channels), (height, width, channels), "decoded at another shape than asked");
}

/// `count` images of the shape asked for (a tile).
pub fn tile(set: &ImageSet, count: usize, shape: (usize, usize, usize)) {
    images_of(set, shape);
    assert_eq!(set.len(), count, "a tile decoded to another number of images than asked");
}

/// Uploaded images and their class names (`data::labelled_images`): a label per image, each
/// naming a class; with no class folders there are no names and every label is 0.
pub fn labelled(set: &ImageSet, classes: &[String]) {
    images(set);
    assert_eq!(set.labels.len(), set.len(), "uploaded images without a label each");
    let names = classes.len().max(1);
    if let Some(&label) = set.labels.iter().find(|&&l| usize::from(l) >= names) {
        panic!("label {label} names no class (there are {} class names)", classes.len());
    }
}

/// An array whose shape holds its values.
pub fn npy(shape: &[usize], values: &[f32]) {
    let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).expect("an accepted shape's size fits");
    assert_eq!(n, values.len(), "shape {shape:?} for {} values", values.len());
}

/// Tensors whose shapes hold their values.
pub fn tensors(tensors: &Tensors) {
    for (name, (shape, values)) in tensors {
        let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).expect("an accepted shape's size fits");
        assert_eq!(n, values.len(), "{name}: shape {shape:?} for {} values", values.len());
    }
}

/// A weights file: a config and schedule that validate, tensors that fit their shapes.
pub fn checkpoint(checkpoint: &Checkpoint) {
    checkpoint.config.validate().expect("an accepted config validates");
    checkpoint.schedule.validate().expect("an accepted schedule validates");
    tensors(&checkpoint.tensors);
}

/// A training state: settings that validate, counters that agree, tensors that fit.
pub fn saved_state(state: &SavedState) {
    state.model_config.validate().expect("an accepted config validates");
    state.schedule.validate().expect("an accepted schedule validates");
    state.config.validate().expect("accepted training settings validate");
    tensors(&state.tensors);
}

/// A dataset's manifest: a shape the loaders make, and one tile per `PER_TILE` images.
pub fn manifest(manifest: &Manifest) {
    assert!(manifest.height > 0 && manifest.width > 0, "an accepted manifest of {}×{} images", manifest.height, manifest.width);
    assert!(matches!(manifest.channels, 1 | 3), "an accepted manifest of {} channels", manifest.channels);
    for split in [&manifest.train, &manifest.test] {
        assert_eq!(split.tiles.len(), split.count.div_ceil(PER_TILE), "{} tiles for {} images", split.tiles.len(), split.count);
        let counted: usize = (0..split.tiles.len()).map(|k| tile_count(split.count, k)).sum();
        assert_eq!(counted, split.count, "the tiles hold another number of images than the manifest says");
    }
}
