//! A quality measurement, as both shells take it (`tabdiffusion eval`, the tab's quality
//! chart): samples in seeded batches rounded to 8-bit pixels as an image file holds them,
//! features of samples and real images in a feature network, their FID, precision and recall,
//! beside the floor (the same scores for real images the model never saw). The shells load
//! the networks and images and render the scores; this holds what is measured.

use burn::tensor::{Device, Tensor};

use super::{Guidance, GuidanceError, SampleRun, sample_batches};
use crate::checkpoint::ClassifierCard;
use crate::data::{ImageSet, to_pixels};
use crate::diffusion::{SamplerKind, Schedule};
use crate::eval::{Features, Scores};
use crate::features::{ClassifierConfig, features};
use crate::model::{UNet, UNetConfig};

/// Whether a classifier's features can judge samples of `dataset` (images `size`×`size`×
/// `channels`): it must have been trained on that dataset, at that shape.
pub fn check_classifier(card: &ClassifierCard, config: &ClassifierConfig, dataset: &str, size: usize, channels: usize) -> Result<(), String> {
    if card.dataset != dataset {
        return Err(format!("it was trained on {}, not {dataset}: its features would not mean much here", card.dataset));
    }
    if (config.sample_size, config.in_channels) != (size, channels) {
        return Err(format!("it takes {0}×{0}×{1} images, and {dataset} has {size}×{size}×{channels}", config.sample_size, config.in_channels));
    }
    Ok(())
}

/// Features of the first `count` images of `set` in the network `net` (`batch` images at a
/// time).
pub async fn embed_first(set: &ImageSet, count: usize, batch: usize, device: &Device, net: impl Fn(Tensor<4>) -> Tensor<2>) -> Result<Features, String> {
    let first: Vec<usize> = (0..count.min(set.len())).collect();
    let values = features(set.batch(&first, device), batch, net).await?;
    Features::new(values.len() / first.len().max(1), values).map_err(|e| e.to_string())
}

/// What every measurement compares with: the real images' features and the floor's scores.
#[derive(Clone, Debug)]
pub struct QualityReference {
    pub real: Features,
    /// The scores of real images the model never saw, against `real`: what a perfect model
    /// would reach with this many images.
    pub floor: Scores,
}

impl QualityReference {
    /// The reference of `real`'s features, with `floor`'s (other real images') as the floor.
    pub fn new(real: Features, floor: &Features) -> Result<Self, String> {
        let floor = Scores::of(&real, floor).map_err(|e| e.to_string())?;
        Ok(Self { real, floor })
    }

    /// The scores of samples' features.
    pub fn score(&self, samples: &Features) -> Result<Scores, String> {
        Scores::of(&self.real, samples).map_err(|e| e.to_string())
    }
}

/// What one call of [`QualitySamples::step`] did.
pub enum QualityStep {
    /// A sampler step of the batch of images `first..first + count`: step `index` of `len`.
    Stepped { first: usize, count: usize, index: usize, len: usize },
    /// A batch is done: read its values and hand them to [`QualitySamples::add_batch`].
    BatchDone(Tensor<4>),
    /// Every batch is done.
    Done,
}

/// The samples of a measurement: `count` images in batches of `batch`, batch k from seed
/// `seed + k` (so that `eval` and the tab sample the same images); with guidance `(K, w)`,
/// image i over all batches is guided to class i mod K.
pub struct QualitySamples {
    config: UNetConfig,
    kind: SamplerKind,
    schedule: Schedule,
    batches: std::vec::IntoIter<(usize, usize, u64)>,
    guidance: Option<(usize, f64)>,
    run: Option<(usize, usize, SampleRun)>,
    pixels: Vec<u8>,
    classes: Vec<u8>,
    device: Device,
}

impl QualitySamples {
    pub fn new(
        config: &UNetConfig,
        kind: SamplerKind,
        schedule: &Schedule,
        (count, batch, seed): (usize, usize, u64),
        guidance: Option<(usize, f64)>,
        device: &Device,
    ) -> Result<Self, GuidanceError> {
        if guidance.is_some() && config.num_classes().is_none() {
            return Err(GuidanceError::Unconditional);
        }
        let (c, s) = (config.in_channels, config.sample_size);
        Ok(Self {
            config: config.clone(),
            kind,
            schedule: schedule.clone(),
            batches: sample_batches(count, batch, seed).into_iter(),
            guidance,
            run: None,
            pixels: Vec::with_capacity(count.saturating_mul(c * s * s)),
            classes: Vec::new(),
            device: device.clone(),
        })
    }

    /// One sampler step with `model` (starting the next batch when one is done).
    pub fn step(&mut self, model: &UNet) -> Result<QualityStep, GuidanceError> {
        if self.run.is_none() {
            let Some((first, count, seed)) = self.batches.next() else { return Ok(QualityStep::Done) };
            let mut run = SampleRun::new(&self.config, self.kind, &self.schedule, count, seed, &self.device);
            if let Some((classes, scale)) = self.guidance {
                let guided: Vec<usize> = (first..first + count).map(|i| i % classes).collect();
                self.classes.extend(guided.iter().map(|&class| class as u8));
                run = run.with_guidance(&self.config, Guidance { classes: guided, scale })?;
            }
            self.run = Some((first, count, run));
        }
        let (first, count, run) = self.run.as_mut().expect("a batch is running");
        let (first, count) = (*first, *count);
        if run.step(model).is_some() {
            return Ok(QualityStep::Stepped { first, count, index: run.index, len: run.len() });
        }
        let (_, _, run) = self.run.take().expect("a batch is running");
        Ok(QualityStep::BatchDone(run.sample))
    }

    /// The values `[n, C, H, W]` of a finished batch, read back by the shell.
    pub fn add_batch(&mut self, values: &[f32]) {
        let (c, s) = (self.config.in_channels, self.config.sample_size);
        self.pixels.extend(to_pixels(values, values.len() / (c * s * s), c, s, s));
    }

    /// The samples as 8-bit images, labelled with the class each was guided to (none
    /// unguided).
    pub fn into_images(self) -> Result<ImageSet, String> {
        let (c, s) = (self.config.in_channels, self.config.sample_size);
        ImageSet::new(s, s, c, self.pixels, self.classes).map_err(|e| e.to_string())
    }

    /// Samples every batch, reading each back with `read` (the CLI's blocking read).
    pub fn finish(mut self, model: &UNet, mut read: impl FnMut(Tensor<4>) -> Vec<f32>) -> Result<ImageSet, String> {
        loop {
            match self.step(model).map_err(|e| e.to_string())? {
                QualityStep::Stepped { .. } => {}
                QualityStep::BatchDone(sample) => self.add_batch(&read(sample)),
                QualityStep::Done => return self.into_images(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::ClassifierKind;
    use crate::model::Preset;

    #[test]
    fn a_classifier_of_other_data_is_refused_in_words() {
        let card = ClassifierCard { dataset: "mnist".into(), steps: 1, test_accuracy: 0.99 };
        let config = ClassifierConfig::new(ClassifierKind::LeNet, 28, 1, 10);
        assert_eq!(check_classifier(&card, &config, "mnist", 28, 1), Ok(()));
        assert_eq!(check_classifier(&card, &config, "fashion-mnist", 28, 1).unwrap_err(), "it was trained on mnist, not fashion-mnist: its features would not mean much here");
        assert_eq!(check_classifier(&card, &config, "mnist", 32, 3).unwrap_err(), "it takes 28×28×1 images, and mnist has 32×32×3");
    }

    /// The samples are `SampleRun`'s, batch k from seed + k, as `sample_batches` splits them.
    #[test]
    fn the_samples_are_the_seeded_batches_rounded_to_pixels() {
        let device = Device::flex();
        let config = Preset::Tiny.config();
        let model = config.init(&device);
        let (kind, schedule) = (SamplerKind::ddim(2), Schedule::ddpm());
        let read = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        let images = QualitySamples::new(&config, kind, &schedule, (3, 2, 5), None, &device).unwrap().finish(&model, read).unwrap();
        assert_eq!((images.len(), images.labels.len()), (3, 0));
        let second = SampleRun::new(&config, kind, &schedule, 1, 6, &device).finish(&model);
        let expected = to_pixels(&read(second), 1, 1, 28, 28);
        assert_eq!(&images.pixels[2 * 784..], &expected[..], "the third image is the second batch's first, from seed 5 + 1");
        assert!(QualitySamples::new(&config, kind, &schedule, (3, 2, 5), Some((10, 3.0)), &device).is_err(), "an unconditional model cannot be guided");
    }
}
