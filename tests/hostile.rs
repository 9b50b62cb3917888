//! Hostile inputs: each loader gets a valid file of its format cut short at (nearly) every
//! point, with bytes overwritten by 0, 0xFF, 0x7F and a flipped top bit, with large integers
//! written over its header fields, and with each number of its JSON replaced by absurd ones.
//! Every answer must be an `Err` or a valid result, never a panic: each `Ok` goes through
//! `tests/fuzz/valid.rs` (whole images of the shape asked for, labels that name classes,
//! shapes that hold their values, settings that validate), and an accepted weights file or
//! config builds its model. A panic is caught, the input saved, and the test fails listing
//! them.

#[path = "fuzz/seeds.rs"]
mod seeds;
#[path = "fuzz/valid.rs"]
mod valid;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use burn::tensor::Device;
use serde_json::Value;
use tabdiffusion::checkpoint::{self, DiffusersFolder};
use tabdiffusion::data::{self, Manifest};
use tabdiffusion::model::from_diffusers_config;
use tabdiffusion::train::Trainer;

/// Collects the inputs that made a loader panic.
struct Panics {
    what: &'static str,
    saved: Vec<(String, PathBuf)>,
    runs: usize,
}

impl Panics {
    fn new(what: &'static str) -> Self {
        Self { what, saved: Vec::new(), runs: 0 }
    }

    fn run(&mut self, how: &str, input: &[u8], load: &dyn Fn(&[u8])) {
        self.runs += 1;
        if catch_unwind(AssertUnwindSafe(|| load(input))).is_err() {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile").join(self.what);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{}.bin", self.saved.len()));
            std::fs::write(&path, input).unwrap();
            self.saved.push((how.to_string(), path));
        }
    }

    fn assert_none(self) {
        let list: Vec<String> = self.saved.iter().take(10).map(|(how, path)| format!("{how}: {}", path.display())).collect();
        assert!(
            self.saved.is_empty(),
            "{}: {} of {} hostile inputs panicked; first ones:\n{}",
            self.what,
            self.saved.len(),
            self.runs,
            list.join("\n")
        );
    }
}

/// Offsets to cut at or overwrite: every one below `dense`, then every `stride`-th, and the
/// last 16.
fn offsets(len: usize, dense: usize, stride: usize) -> Vec<usize> {
    let mut at: Vec<usize> = (0..len.min(dense)).chain((dense..len).step_by(stride.max(1))).collect();
    at.extend(len.saturating_sub(16)..len);
    at.sort();
    at.dedup();
    at
}

/// Truncations, byte overwrites and large integers over the header bytes of `valid`.
fn byte_attacks(panics: &mut Panics, valid: &[u8], dense: usize, stride: usize, load: &dyn Fn(&[u8])) {
    for at in offsets(valid.len(), dense, stride) {
        panics.run(&format!("cut at {at}"), &valid[..at], load);
        for value in [0x00, 0xff, 0x7f, valid[at] ^ 0x80] {
            let mut bytes = valid.to_vec();
            bytes[at] = value;
            panics.run(&format!("byte {at} = {value:#04x}"), &bytes, load);
        }
    }
    for at in 0..valid.len().min(dense.min(64)) {
        for value in [u64::MAX, 1 << 63, 1 << 40, 0xffff_ffff, 0x8000_0000, 0x7fff_ffff] {
            for bytes in [value.to_le_bytes(), value.to_be_bytes(), (value as u32 as u64).to_le_bytes()] {
                let mut input = valid.to_vec();
                let end = (at + 8).min(input.len());
                input[at..end].copy_from_slice(&bytes[..end - at]);
                panics.run(&format!("{value:#x} written at {at}"), &input, load);
            }
        }
    }
}

const ABSURD: [&str; 10] = ["0", "-1", "1", "7", "2147483648", "4294967296", "9223372036854775808", "1e308", "0.5", "null"];

/// `json` with one number (or one array entry or null) replaced by each of [`ABSURD`], for
/// every number in it: (where, the new JSON).
fn json_attacks(json: &str) -> Vec<(String, String)> {
    fn walk(value: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push(i.to_string());
                    walk(v, path, out);
                    path.pop();
                }
            }
            Value::Number(_) | Value::Null => out.push(path.clone()),
            _ => {}
        }
    }
    let root: Value = serde_json::from_str(json).unwrap();
    let mut paths = Vec::new();
    walk(&root, &mut Vec::new(), &mut paths);
    let mut out = Vec::new();
    for path in paths {
        for absurd in ABSURD {
            let mut value = root.clone();
            let mut slot = &mut value;
            for key in &path {
                slot = match slot {
                    Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
                    other => &mut other[key.as_str()],
                };
            }
            *slot = serde_json::from_str(absurd).unwrap_or(Value::Null);
            out.push((format!("{} = {absurd}", path.join(".")), value.to_string()));
        }
    }
    out
}

/// The same safetensors bytes with metadata `key` replaced.
fn with_metadata(bytes: &[u8], key: &str, json: &str) -> Vec<u8> {
    use safetensors::SafeTensors;
    let (_, metadata) = SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = metadata.metadata().clone().unwrap();
    metadata.insert(key.to_string(), json.to_string());
    let file = SafeTensors::deserialize(bytes).unwrap();
    safetensors::serialize(file.tensors(), Some(metadata)).unwrap()
}

fn metadata(bytes: &[u8], key: &str) -> String {
    let (_, metadata) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    metadata.metadata().as_ref().unwrap()[key].clone()
}

/// `.npy` bytes: an error or an array whose shape holds its values.
fn npy(bytes: &[u8]) {
    if let Ok((shape, values)) = data::decode_npy(bytes) {
        valid::npy(&shape, &values);
    }
}

/// IDX images and labels: an error or gray images with a label each.
fn idx(images: &[u8], labels: &[u8]) {
    if let Ok(set) = data::images_from_idx(images, labels) {
        valid::images(&set);
        assert_eq!((set.channels, set.labels.len()), (1, set.len()), "IDX images are gray, with a label each");
    }
}

/// A tile: an error or `count` images of the shape asked for.
fn tile(png: &[u8], count: usize, h: usize, w: usize, c: usize) {
    if let Ok(set) = data::decode_tile(png, count, h, w, c) {
        valid::tile(&set, count, (h, w, c));
    }
}

/// The safetensors header's length: the bytes worth cutting and overwriting densely.
fn header_end(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

#[test]
fn hostile_weights_files_give_errors_or_models() {
    let valid = seeds::tiny_checkpoint();
    let device = Device::flex();
    let load = |bytes: &[u8]| {
        if let Ok(checkpoint) = checkpoint::decode(bytes) {
            valid::checkpoint(&checkpoint);
            let _ = checkpoint.load(&device);
        }
    };
    let mut panics = Panics::new("checkpoint");
    // A byte flipped inside the weights gives other weights: a valid result; a sample suffices.
    byte_attacks(&mut panics, &valid, header_end(&valid) + 64, 1999, &|b| {
        if let Ok(checkpoint) = checkpoint::decode(b) {
            valid::checkpoint(&checkpoint);
        }
    });
    for key in ["config", "scheduler", "model_card"] {
        for (how, json) in json_attacks(&metadata(&valid, key)) {
            panics.run(&format!("{key}: {how}"), &with_metadata(&valid, key, &json), &load);
        }
    }
    panics.assert_none();
}

#[test]
fn hostile_training_states_give_errors_or_runs() {
    let valid = seeds::tiny_state();
    let device = Device::flex();
    let read = |bytes: &[u8]| {
        if let Ok(state) = Trainer::read_state(bytes) {
            valid::saved_state(&state);
        }
    };
    let load = |bytes: &[u8]| {
        read(bytes);
        let _ = Trainer::from_state_bytes(bytes, &device);
    };
    let mut panics = Panics::new("train_state");
    let header = header_end(&valid);
    // Cuts and overwrites every 7th header byte (the header is long) and a sample beyond.
    let mut at = offsets(valid.len(), 64, 7);
    at.retain(|&a| a < header + 64 || a % 4999 == 0);
    for &a in &at {
        panics.run(&format!("cut at {a}"), &valid[..a], &read);
        for value in [0x00, 0xff, 0x7f] {
            let mut bytes = valid.clone();
            bytes[a] = value;
            panics.run(&format!("byte {a} = {value:#04x}"), &bytes, &read);
        }
    }
    for key in ["config", "scheduler", "train", "model_card", "step", "adam_time", "rng_position"] {
        for (how, json) in json_attacks(&metadata(&valid, key)) {
            panics.run(&format!("{key}: {how}"), &with_metadata(&valid, key, &json), &load);
        }
    }
    // A few whole loads of overwritten files (most of the above fail before any model is built).
    for a in at.iter().step_by(97) {
        let mut bytes = valid.clone();
        bytes[*a] = 0x7f;
        panics.run(&format!("byte {a} = 0x7f, loaded"), &bytes, &load);
    }
    panics.assert_none();
}

#[test]
fn hostile_npy_files_give_errors_or_arrays() {
    let valid = seeds::npy();
    let mut panics = Panics::new("npy");
    byte_attacks(&mut panics, &valid, valid.len(), 1, &|b| {
        npy(b);
    });
    let header_len = usize::from(u16::from_le_bytes([valid[8], valid[9]]));
    let header = std::str::from_utf8(&valid[10..10 + header_len]).unwrap();
    for absurd in ["18446744073709551615", "18446744073709551616", "4294967296", "-1", "0"] {
        let header = header.replacen("(2, 1,", &format!("({absurd}, 1,"), 1);
        let mut bytes = valid[..8].to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.into_bytes());
        bytes.extend_from_slice(&valid[10 + header_len..]);
        panics.run(&format!("shape[0] = {absurd}"), &bytes, &|b| {
            npy(b);
        });
    }
    panics.assert_none();
}

#[test]
fn hostile_diffusers_configs_give_errors_or_models() {
    let (config, scheduler) = seeds::diffusers_configs();
    let device = Device::flex();
    let load = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(config) = from_diffusers_config(&text) {
            config.validate().expect("an accepted config validates");
            let _ = config.init(&device);
        }
    };
    let mut panics = Panics::new("diffusers_config");
    byte_attacks(&mut panics, config.as_bytes(), config.len(), 1, &|b| {
        if let Ok(config) = from_diffusers_config(&String::from_utf8_lossy(b)) {
            config.validate().expect("an accepted config validates");
        }
    });
    for (how, json) in json_attacks(&config) {
        panics.run(&how, json.as_bytes(), &load);
    }
    for (how, json) in json_attacks(&scheduler) {
        panics.run(&format!("scheduler: {how}"), json.as_bytes(), &|b| {
            if let Ok((_, schedule, _)) = DiffusersFolder::from_files(&config, None, Some(&String::from_utf8_lossy(b))) {
                schedule.validate().expect("an accepted schedule validates");
                let _ = tabdiffusion::diffusion::Schedule::new(schedule);
            }
        });
    }
    panics.assert_none();
}

#[test]
fn hostile_idx_pairs_give_errors_or_images() {
    let (images, labels) = seeds::idx_pair();
    let mut panics = Panics::new("idx");
    byte_attacks(&mut panics, &images, images.len(), 1, &|b| {
        idx(b, &labels);
    });
    byte_attacks(&mut panics, &labels, labels.len(), 1, &|b| {
        idx(&images, b);
    });
    panics.assert_none();
}

/// A PNG with its IHDR's width and height replaced (and its checksum made right again).
fn png_with_size(png: &[u8], width: u32, height: u32) -> Vec<u8> {
    let mut out = png.to_vec();
    out[16..20].copy_from_slice(&width.to_be_bytes());
    out[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&out[12..29]);
    out[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    out
}

#[test]
fn hostile_tiles_give_errors_or_images() {
    let valid = seeds::tile();
    let mut panics = Panics::new("tile");
    let decode = |b: &[u8]| {
        tile(b, 5, 4, 3, 3);
    };
    byte_attacks(&mut panics, &valid, valid.len(), 1, &decode);
    for (w, h) in [(u32::MAX, u32::MAX), (0x7fff_ffff, 1), (1, 0x7fff_ffff), (300, 1 << 20), (1 << 16, 1 << 16), (0, 0)] {
        let png = png_with_size(&valid, w, h);
        panics.run(&format!("IHDR {w}×{h}"), &png, &decode);
        let message = data::decode_tile(&png, 5, 4, 3, 3).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("tile:"), "IHDR {w}×{h}: {message}");
    }
    for (count, h, w, c) in [(usize::MAX, 4, 3, 3), (5, usize::MAX, 3, 3), (5, 4, 0, 3), (5, 4, 3, 0), (5, 1 << 20, 1 << 20, 3)] {
        panics.run(&format!("decoded as {count} × {h}×{w}×{c}"), &valid, &|b| {
            tile(b, count, h, w, c);
        });
    }
    panics.assert_none();
}

#[test]
fn hostile_uploads_give_errors_or_images() {
    let mut panics = Panics::new("upload");
    let upload = |b: &[u8]| {
        if let Ok((set, classes)) = data::images_from_upload(vec![("u.zip".into(), b.to_vec())], 8, 3) {
            valid::images_of(&set, (8, 8, 3));
            valid::labelled(&set, &classes);
        }
    };
    for method in [zip::CompressionMethod::Stored, zip::CompressionMethod::Deflated] {
        let valid = seeds::upload_zip(method);
        byte_attacks(&mut panics, &valid, valid.len(), 1, &upload);
    }
    for image in [seeds::png(6, 4, 1), seeds::jpeg(5, 7)] {
        byte_attacks(&mut panics, &image, image.len(), 1, &|b| {
            if let Ok(set) = data::images_from_files([("x.png", b, 0)], 8, 3) {
                valid::images_of(&set, (8, 8, 3));
            }
        });
        let huge = if image[1] == b'P' { png_with_size(&image, 1 << 20, 1 << 20) } else { image.clone() };
        let message = data::images_from_files([("x.png", huge.as_slice(), 0)], 8, 3).err().map(|e| e.to_string());
        if image[1] == b'P' {
            assert!(message.is_some_and(|m| m.contains("x.png")), "a 2^20 × 2^20 PNG is refused");
        }
    }
    let stored = seeds::stored_upload();
    byte_attacks(&mut panics, &stored, stored.len(), 1, &|b| {
        if let Ok((set, classes)) = data::upload_from_bytes(b) {
            valid::labelled(&set, &classes);
        }
    });
    panics.assert_none();
}

#[test]
fn a_zip_that_declares_a_huge_member_is_refused_before_reading_it() {
    let zip = seeds::upload_zip(zip::CompressionMethod::Stored);
    // The central directory's "uncompressed size" (offset 24 of each PK\x01\x02 record).
    let mut lying = zip.clone();
    for at in (0..zip.len() - 4).filter(|&i| zip[i..i + 4] == *b"PK\x01\x02") {
        lying[at + 24..at + 28].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    }
    let message = data::images_from_upload(vec![("u.zip".into(), lying)], 8, 3).unwrap_err().to_string();
    assert!(message.contains("uncompressed bytes") && message.contains("the limit is"), "{message}");
}

#[test]
fn hostile_manifests_give_errors_or_manifests() {
    let valid = seeds::manifest();
    let mut panics = Panics::new("manifest");
    let parse = |b: &[u8]| {
        if let Ok(manifest) = serde_json::from_slice::<Manifest>(b) {
            valid::manifest(&manifest);
            // What the shells then do with it: one tile's worth of images per tile named.
            for k in 0..manifest.train.tiles.len() {
                let _ = data::tile_count(manifest.train.count, k);
            }
        }
    };
    byte_attacks(&mut panics, &valid, valid.len(), 1, &parse);
    for (how, json) in json_attacks(&String::from_utf8(valid.clone()).unwrap()) {
        panics.run(&how, json.as_bytes(), &parse);
    }
    let escape = String::from_utf8(valid).unwrap().replacen("train-0.png", "../../etc/passwd", 1);
    let message = serde_json::from_slice::<Manifest>(escape.as_bytes()).unwrap_err().to_string();
    assert!(message.contains("not a plain file name"), "{message}");
    panics.assert_none();
}
