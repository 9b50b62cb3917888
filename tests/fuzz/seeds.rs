//! Small valid inputs of every loader, built from the crate's own writers: the seed corpus of
//! the fuzz targets (`tests/fuzz/corpus/`, rewritten by `cargo test --release --test fuzz --
//! --ignored`) and the starting points of `tests/hostile.rs`.

#![allow(dead_code)] // each test crate that includes this file uses a part of it

use std::io::{Cursor, Write};

use burn::tensor::Device;
use tabdiffusion::checkpoint::{self, DiffusersFolder, ModelCard};
use tabdiffusion::data::{self, ImageSet, Manifest};
use tabdiffusion::diffusion::ScheduleConfig;
use tabdiffusion::model::Preset;
use tabdiffusion::train::Trainer;
use tabdiffusion::spec::RunSpec;

/// `n` images of `h × w × c` with varied pixels, labelled 0, 1, 2, 0, …
pub fn image_set(n: usize, h: usize, w: usize, c: usize) -> ImageSet {
    let pixels = (0..n * h * w * c).map(|i| (i * 37 % 251) as u8).collect();
    ImageSet::new(h, w, c, pixels, (0..n).map(|k| (k % 3) as u8).collect()).unwrap()
}

pub fn npy() -> Vec<u8> {
    data::encode_npy(&[2, 1, 2, 2], &(0..8).map(|i| i as f32 / 8.0).collect::<Vec<_>>())
}

/// An IDX image file of three 4×4 images and its label file.
pub fn idx_pair() -> (Vec<u8>, Vec<u8>) {
    let mut images = vec![0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4];
    images.extend((0..48).map(|i| (i * 5) as u8));
    (images, vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 9])
}

/// The input of the `idx` target: the image file's length (u32 LE), the image file, the labels.
pub fn idx_input(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut out = (images.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(images);
    out.extend_from_slice(labels);
    out
}

/// A tile of five 4×3 RGB images (shape 0 of the `tile` target).
pub fn tile() -> Vec<u8> {
    data::encode_tile(&image_set(5, 4, 3, 3), &[0, 1, 2, 3, 4])
}

pub fn png(width: u32, height: u32, value: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::GrayImage::from_fn(width, height, |x, y| image::Luma([value.wrapping_add((x * 16 + y) as u8)]))
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 20) as u8, (y * 20) as u8, 128]))
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Jpeg)
        .unwrap();
    bytes
}

pub fn zip_of(files: &[(&str, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default().compression_method(method)).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A zip upload: two class folders under one top folder, and a file that is not an image.
pub fn upload_zip(method: zip::CompressionMethod) -> Vec<u8> {
    zip_of(
        &[("pets/cats/a.png", png(6, 4, 10)), ("pets/dogs/b.png", png(5, 5, 200)), ("pets/notes.txt", b"hi".to_vec())],
        method,
    )
}

pub fn stored_upload() -> Vec<u8> {
    data::upload_to_bytes(&image_set(2, 4, 4, 1), &["cats".into(), "dogs".into()])
}

/// Our weights file of the `tiny` preset, every tensor in it (about 180 KB).
pub fn tiny_checkpoint() -> Vec<u8> {
    let config = Preset::Tiny.config();
    let model = config.init(&Device::flex());
    let card = ModelCard { dataset: "mnist".into(), steps: 12, images_seen: 96, run: None };
    pollster::block_on(checkpoint::to_bytes(&model, &config, &ScheduleConfig::default(), &card)).unwrap()
}

/// A training state of the `tiny` preset (about 0.7 MB).
pub fn tiny_state() -> Vec<u8> {
    let trainer = Trainer::new(Preset::Tiny.config(), RunSpec::PAPER.with_random_flip(false).with_batch_size(2), &Device::flex());
    pollster::block_on(trainer.state_bytes(&ModelCard::default())).unwrap()
}

/// `bytes` (safetensors) with the same metadata and only the tensors whose names `keep` picks:
/// a seed small enough to commit that the parser still reads whole.
pub fn shrink(bytes: &[u8], keep: impl Fn(&str) -> bool) -> Vec<u8> {
    use safetensors::SafeTensors;
    let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap();
    let file = SafeTensors::deserialize(bytes).unwrap();
    let kept: Vec<_> = file.tensors().into_iter().filter(|(name, _)| keep(name)).collect();
    safetensors::serialize(kept, metadata.metadata().clone()).unwrap()
}

/// A diffusers folder's `config.json` and `scheduler_config.json` for the `tiny` preset.
pub fn diffusers_configs() -> (String, String) {
    DiffusersFolder::configs(&Preset::Tiny.config(), &ScheduleConfig::default())
}

/// The `manifest.json` of a tiled dataset: 5 training and 3 test images of 4×3 RGB.
pub fn manifest() -> Vec<u8> {
    let (_, train) = data::to_tiles(&image_set(5, 4, 3, 3), "train");
    let (_, test) = data::to_tiles(&image_set(3, 4, 3, 3), "test");
    let manifest = Manifest {
        name: "tiny".into(),
        classes: vec!["a".into(), "b".into(), "c".into()],
        height: 4,
        width: 3,
        channels: 3,
        train,
        test,
    };
    serde_json::to_vec_pretty(&manifest).unwrap()
}

/// The seed corpus: (target, file name, bytes), each a valid input of its target.
pub fn corpus() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let (images, labels) = idx_pair();
    let (config, scheduler) = diffusers_configs();
    let state = tiny_state();
    let small_state = shrink(&state, |n| n.ends_with("conv_in.bias") || n == "adam.m.conv_in.bias");
    let small_checkpoint = shrink(&tiny_checkpoint(), |n| n.starts_with("conv_in.") || n.starts_with("time_embedding"));
    let mut tile_input = vec![0, 5];
    tile_input.extend(tile());
    let mut diffusers = config.clone().into_bytes();
    diffusers.push(0);
    diffusers.extend(scheduler.as_bytes());
    vec![
        ("npy", "seed-2x1x2x2.npy", npy()),
        ("idx", "seed-3-images.idx", idx_input(&images, &labels)),
        ("tile", "seed-5-rgb.tile", tile_input),
        ("image", "seed-gray.png", png(6, 4, 10)),
        ("image", "seed-rgb.jpg", jpeg(5, 7)),
        ("upload", "seed-stored.zip", upload_zip(zip::CompressionMethod::Stored)),
        ("upload", "seed-deflated.zip", upload_zip(zip::CompressionMethod::Deflated)),
        ("stored_upload", "seed.safetensors", stored_upload()),
        ("checkpoint", "seed-tiny-partial.safetensors", small_checkpoint),
        ("train_state", "seed-tiny-partial.safetensors", small_state),
        ("diffusers_config", "seed-tiny.json", diffusers),
        ("diffusers_config", "seed-config-only.json", config.into_bytes()),
        ("manifest", "seed.json", manifest()),
    ]
}
