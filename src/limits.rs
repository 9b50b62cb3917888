//! Every limit on a size that comes from outside (a file, a config, an upload, a URL), in one
//! place, named for what it bounds.
//!
//! A loader compares each size a file declares with the bytes present and with these limits
//! before it allocates anything, and says which field broke which limit ("zip: 70000 members;
//! the limit is 65536"). The limits are far above anything a real dataset or model reaches
//! (MNIST's 70,000 images, CIFAR-10's 60,000, the DDPM paper's 35.7M-parameter U-Net, an
//! upload of a few thousand photos) and stop only absurd values: a zip bomb, a header that
//! claims a 2^40-pixel image, a tensor larger than the file holding it.

/// Width or height of any PNG or JPEG decoded (a photo, a tile): 16384 px (a 48 MP phone
/// photo is 8064 × 6048; a tile of 100 × 100 CIFAR images is 3200 × 3200).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Pixels of one decoded image (width × height): 64 Mi (8192 × 8192).
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;

/// Bytes the image decoder may allocate for one image (image's `Limits::max_alloc`): 512 MiB,
/// the image crate's own default, and 64 Mi pixels of 16-bit RGBA.
pub const MAX_IMAGE_ALLOC: u64 = 512 << 20;

/// Height or width of a dataset's images (a manifest, an IDX file, the size uploads are
/// resized to): 256 px (MNIST is 28, CIFAR-10 32). A tile holds up to 100 × 100 images, so a
/// tile is at most 25,600 px a side.
pub const MAX_DATASET_SIDE: usize = 256;

/// Images in one dataset split (a manifest's `count`, an IDX file's first dimension): 10
/// million (MNIST has 60,000 training images).
pub const MAX_DATASET_IMAGES: usize = 10_000_000;

/// Bytes of pixels in one dataset split (count × height × width × channels): 4 GiB.
pub const MAX_DATASET_BYTES: u64 = 4 << 30;

/// Bytes of one tile file as downloaded: 1 GiB. A tile holds up to 100 × 100 images of up to
/// 256 × 256 × 3 bytes (2 GB raw), which PNG compresses; MNIST's are 2.5 MB, CIFAR-10's 24 MB.
pub const MAX_TILE_FILE_BYTES: u64 = 1 << 30;

/// Classes of a labelled dataset: labels are one byte.
pub const MAX_CLASSES: usize = 256;

/// Length of a name inside a file (a class, a dataset, a file named by a manifest): 255 bytes,
/// a file name's limit on common file systems.
pub const MAX_NAME_BYTES: usize = 255;

/// Entries of one zip (files and folders): 200,000 (all of MNIST as PNGs is 70,000).
pub const MAX_ZIP_MEMBERS: usize = 200_000;

/// Uncompressed bytes of one zip entry: 256 MiB (a photo is a few MB).
pub const MAX_ZIP_MEMBER_BYTES: u64 = 256 << 20;

/// Uncompressed bytes of all images of one upload (zips and loose files together): 4 GiB.
pub const MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// Images in one upload: 200,000.
pub const MAX_UPLOAD_IMAGES: usize = 200_000;

/// Points of a 2-D playground dataset (drawn by the user, or generated): 100,000. The
/// playground trains on a few thousand.
pub const MAX_POINTS: usize = 100_000;

/// Dimensions of an `.npy` array or an IDX file: 32 (NumPy 1.x's `NPY_MAXDIMS`).
pub const MAX_ARRAY_DIMS: usize = 32;

/// Bytes of one tensor in a weights file (data as stored): 2 GiB. The largest tensor of the
/// 35.7M-parameter U-Net is 2.4 MB; Inception-v3's is 8 MB.
pub const MAX_TENSOR_BYTES: u64 = 2 << 30;

/// Tensors in one weights or training-state file: 100,000 (a training state of the 35.7M
/// model holds about 1,500).
pub const MAX_TENSORS: usize = 100_000;

/// Bytes of a weights, training-state or `.pth` file: 8 GiB (a training state of the 35.7M
/// model is about 0.7 GB).
pub const MAX_WEIGHTS_FILE_BYTES: u64 = 8 << 30;

/// Diffusion timesteps T of a noise schedule: 100,000 (DDPM uses 1000, improved DDPM 4000).
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

/// Training steps, and Adam's step count, in a training state: 10^12.
pub const MAX_TRAINING_STEPS: u64 = 1_000_000_000_000;

/// Images per training step in a training state: 65,536.
pub const MAX_BATCH_SIZE: usize = 65_536;

/// Images of one grid of samples (the tab's `?count=`, a run's `count`).
pub const MAX_GRID_IMAGES: usize = 64;

/// Samples of one quality measurement in the tab, at most (the test split's first tile holds
/// 10,000 images; more would keep the worker from training for minutes).
pub const MAX_QUALITY_SAMPLES: usize = 2000;

/// Samples of one quality measurement, at least: a few for precision and recall's k = 3
/// nearest neighbours.
pub const MIN_QUALITY_SAMPLES: usize = 8;

/// Channels of a dataset's images: 1 (gray) to 4.
pub const MAX_DATASET_CHANNELS: usize = 4;

// The sizes of a U-Net: what `UNetConfig::validate` accepts, far above any U-Net this crate
// is meant for (the DDPM paper's CIFAR-10 model has 35.7M parameters and 256 channels;
// diffusers' 256×256 `UNet2DModel`s about 114M and 512), and low enough that a config asking
// for more is refused in words before anything is allocated for it.

/// Parameters of a U-Net in all: 2^30, 4.3 GB of float32 weights (training holds about five copies).
pub const MAX_PARAMS: u64 = 1 << 30;
/// A U-Net's image height and width.
pub const MAX_SAMPLE_SIZE: usize = 1024;
/// A U-Net's image channels in and out.
pub const MAX_MODEL_IMAGE_CHANNELS: usize = 64;
/// Channels of one level, of a time embedding, of an attention head, GroupNorm groups.
pub const MAX_LAYER_CHANNELS: usize = 8192;
/// A U-Net's resolution levels (each halves the image).
pub const MAX_LEVELS: usize = 8;
/// A U-Net's ResNet blocks per level.
pub const MAX_LAYERS_PER_BLOCK: usize = 16;
/// Class labels of a class-conditional U-Net (with its null class).
pub const MAX_CLASS_EMBEDS: usize = 1 << 16;
/// Elements of the largest activation of one forward pass (a level's feature map, or an
/// attention's score matrix) for a whole batch: 2^31, 8.6 GB of float32. The DDPM paper's
/// model at its batch of 128 needs 16.8M.
pub const MAX_ACTIVATION: u64 = 1 << 31;

/// A value from outside over its limit: "`{what}`: {value}; the limit is {limit}".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {value}; the limit is {limit}")]
pub struct OverLimit {
    /// The field, with where it was read ("zip: members", "tensor down.0.weight: bytes").
    pub what: String,
    /// The value it had, as written.
    pub value: String,
    /// The limit, as written.
    pub limit: String,
}

impl OverLimit {
    pub fn new(what: &str, value: impl std::fmt::Display, limit: impl std::fmt::Display) -> Self {
        Self { what: what.to_string(), value: value.to_string(), limit: limit.to_string() }
    }

    /// The same, found inside `context` (a file's name).
    pub fn within(self, context: &str) -> Self {
        Self { what: format!("{context}: {}", self.what), ..self }
    }
}

impl From<OverLimit> for String {
    fn from(e: OverLimit) -> Self {
        e.to_string()
    }
}

/// `value` if it is at most `limit`.
pub fn at_most<T: PartialOrd + std::fmt::Display>(what: &str, value: T, limit: T) -> Result<T, OverLimit> {
    if value <= limit { Ok(value) } else { Err(OverLimit::new(what, value, limit)) }
}

/// The product of `factors` if it fits in a `u64` and is at most `limit` (the product never
/// overflows: it is computed with `checked_mul`).
pub fn product_at_most(what: &str, factors: &[u64], limit: u64) -> Result<u64, OverLimit> {
    let mut product: u64 = 1;
    for &f in factors {
        product = product.checked_mul(f).ok_or_else(|| OverLimit::new(what, format!("{factors:?} multiplied overflows"), limit))?;
    }
    if product > limit { Err(OverLimit::new(what, product, limit)) } else { Ok(product) }
}

/// A name that is safe to join to a folder: not empty, no more than [`MAX_NAME_BYTES`], no
/// path separators, not `.` or `..`.
pub fn file_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) || name.contains(':') {
        return Err(format!("{what}: {name:?} is not a plain file name"));
    }
    at_most(&format!("{what}: name length"), name.len(), MAX_NAME_BYTES).map(|_| ()).map_err(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_that_overflow_or_pass_the_limit_are_refused_with_the_field_and_the_limit() {
        assert_eq!(product_at_most("x", &[2, 3], 6), Ok(6));
        assert_eq!(product_at_most("x", &[2, 4], 6).unwrap_err().to_string(), "x: 8; the limit is 6");
        let overflow = product_at_most("npy: shape", &[u64::MAX, 2], 10).unwrap_err().to_string();
        assert!(overflow.starts_with("npy: shape:") && overflow.ends_with("the limit is 10"), "{overflow}");
        let members = at_most("zip: members", 70_000, 65_536).unwrap_err();
        assert_eq!((members.value.as_str(), members.limit.as_str()), ("70000", "65536"));
        assert_eq!(members.within("a.zip").to_string(), "a.zip: zip: members: 70000; the limit is 65536");
    }

    #[test]
    fn file_names_may_not_leave_their_folder() {
        assert!(file_name("tile", "train-0.png").is_ok());
        for bad in ["", "..", "../x", "/etc/passwd", "a\\b", "c:x"] {
            assert!(file_name("tile", bad).is_err(), "{bad}");
        }
        assert!(file_name("tile", &"a".repeat(300)).unwrap_err().contains("the limit is 255"));
    }
}
