//! Judging a model's MNIST samples with the LeNet-5 that ships with the site
//! (`www/classifiers/mnist.safetensors`, 98.4% test accuracy, `tests/classifiers.rs`): the share
//! it names with confidence, and FID, precision and recall in its features against MNIST's test
//! digits. Used by `tests/example.rs` (the shipped example) and `tests/default_recipe.rs` (a
//! run of the default recipe).

#![allow(dead_code)] // not every test that shares `common` judges digits

use std::path::PathBuf;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};
use tabdiffusion::checkpoint::load_classifier;
use tabdiffusion::data::{ImageSet, Manifest, decode_tile, tile_count, to_pixels};
use tabdiffusion::diffusion::{SamplerKind, SamplerName, Schedule};
use tabdiffusion::eval::{Features, Scores};
use tabdiffusion::features::Classifier;
use tabdiffusion::model::{UNet, UNetConfig};
use tabdiffusion::pipeline::SampleRun;

/// The softmax probability at which the classifier "names" an image. At 0.9 LeNet named 39%
/// of an untrained model's samples (seeded, 100 DDIM-20): its softmax is overconfident on
/// noise, so a share at 0.9 barely tells trained from untrained. At 0.99 it names 0% of an
/// untrained model's samples (four seeds), 47% of the shipped example's and 89% of real test
/// digits (`tests/example.rs` prints all three; 0.98 already names 7% of the untrained ones).
pub const CONFIDENT: f32 = 0.99;

/// The judge and the real digits it compares against.
pub struct Judge {
    pub net: Classifier,
    /// MNIST's first test images (prepared by `scripts/setup`).
    pub test: ImageSet,
    device: Device,
}

/// What the judge says of a set of images.
#[derive(Debug)]
pub struct Verdict {
    /// The share named with probability ≥ [`CONFIDENT`].
    pub confident: f64,
    /// FID, precision and recall against the test digits, in the classifier's features.
    pub scores: Scores,
}

impl Judge {
    pub fn new(device: &Device) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let classifier = std::fs::read(root.join("www/classifiers/mnist.safetensors")).unwrap();
        let (net, _, _) = load_classifier(&classifier, device).unwrap();
        let dir = super::prepared_data("mnist");
        let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let tile = std::fs::read(dir.join(&manifest.test.tiles[0])).unwrap();
        let test = decode_tile(&tile, tile_count(manifest.test.count, 0), 28, 28, 1).unwrap();
        Self { net, test, device: device.clone() }
    }

    /// The share of `set`'s first `count` images named with confidence, and their features.
    fn look(&self, set: &ImageSet, count: usize) -> (f64, Features) {
        let first: Vec<usize> = (0..count).collect();
        let x = set.batch(&first, &self.device);
        let probabilities: Tensor<2> = softmax(self.net.forward(x.clone()), 1);
        let top = probabilities.max_dim(1).into_data().try_to_vec::<f32>().unwrap();
        let share = top.iter().filter(|&&p| p >= CONFIDENT).count() as f64 / count as f64;
        let features = self.net.features(x);
        let dim = features.dims()[1];
        (share, Features::new(dim, features.into_data().try_to_vec::<f32>().unwrap()).unwrap())
    }

    /// The verdict on `set`'s first `count` images, against as many test digits.
    pub fn judge(&self, set: &ImageSet, count: usize) -> Verdict {
        let (confident, features) = self.look(set, count);
        let (_, real) = self.look(&self.test, count);
        Verdict { confident, scores: Scores::of(&real, &features).unwrap() }
    }

    /// The verdict on `count` test digits against the next `count` ones: what real digits reach.
    pub fn real_digits(&self, count: usize) -> Verdict {
        let size = self.test.image_size();
        let (h, w, c) = (self.test.height, self.test.width, self.test.channels);
        let next = ImageSet::new(h, w, c, self.test.pixels[count * size..2 * count * size].to_vec(), Vec::new()).unwrap();
        self.judge(&next, count)
    }
}

/// `count` DDIM-`steps` samples (seed 0, the model's own schedule), as 8-bit images.
pub fn samples(model: &UNet, config: &UNetConfig, schedule: &Schedule, count: usize, steps: usize, device: &Device) -> ImageSet {
    let kind = SamplerKind::new(SamplerName::Ddim, steps, 0.0, None, &schedule.config);
    let run = SampleRun::new(config, kind, schedule, count, 0, device);
    let values = run.finish(model).into_data().try_to_vec::<f32>().unwrap();
    let (c, s) = (config.in_channels, config.sample_size);
    ImageSet::new(s, s, c, to_pixels(&values, count, c, s, s), Vec::new()).unwrap()
}
