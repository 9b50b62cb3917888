//! The training panel's quality chart: FID, precision and recall (k = 3) of the EMA's samples
//! in the dataset's classifier features, against as many test images, beside the floor (as many
//! training images), measured as `tabdiffusion eval` measures them: the same sampler batches
//! and seeds, samples rounded to 8-bit pixels, the first test and training images. The
//! classifiers ship with the site (`www/classifiers/`, written by `scripts/fixtures/classifiers`).

use super::{Session, read_values};
use crate::checkpoint::load_classifier;
use crate::data::{ImageSet, decode_tile, tile_count, to_pixels};
use crate::diffusion::{SamplerKind, SamplerName};
use crate::eval::{Features, Scores};
use crate::features::Classifier;
use crate::pipeline::{SampleRun, sample_batches};
use crate::features::{FEATURE_BATCH, features};
use crate::web::browser::{fetch_bytes, yield_now};
use crate::web::protocol::{QualityPoint, Update};

/// What every measurement compares with: the feature network, the test images' features and
/// the floor's scores, for `count` images.
pub(super) struct Reference {
    net: Classifier,
    real: Features,
    floor: Scores,
    count: usize,
}

async fn embed(net: &Classifier, set: &ImageSet, count: usize, device: &burn::tensor::Device) -> Result<Features, String> {
    let first: Vec<usize> = (0..count).collect();
    let values = features(set.batch(&first, device), FEATURE_BATCH, |x| net.features(x)).await?;
    Features::new(values.len() / count.max(1), values).map_err(|e| e.to_string())
}

impl Session {
    /// The address of the dataset's feature classifier on the site.
    fn classifier_url(&self) -> String {
        format!("classifiers/{}.safetensors", self.manifest.name)
    }

    /// Loads the classifier and the reference images once (again if the count changed).
    async fn reference(&mut self) -> Result<(), String> {
        let count = self.settings.spec.quality_count;
        if self.quality.as_ref().is_some_and(|q| q.count == count) {
            return Ok(());
        }
        let name = self.manifest.name.clone();
        let url = self.classifier_url();
        let bytes = fetch_bytes(&url).await.map_err(|e| {
            format!("No feature network for {name} ships with this site ({e}), so its samples' quality cannot be measured here: MNIST and Fashion-MNIST have one.")
        })?;
        let (net, config, card) = load_classifier(&bytes, &self.device).map_err(|e| format!("{url}: {e}"))?;
        let (h, c) = (self.manifest.height, self.manifest.channels);
        if card.dataset != name || (config.sample_size, config.in_channels) != (h, c) {
            return Err(format!("{url} was trained on {} ({}×{}×{}), not on {name}", card.dataset, config.sample_size, config.sample_size, config.in_channels));
        }
        if self.data.len() < count {
            return Err(format!("{count} training images are needed for the floor; {} have arrived", self.data.len()));
        }
        let test = &self.manifest.test;
        let tile_url = format!("{}/{}", self.settings.spec.dataset.folder(), test.tiles.first().ok_or("the dataset has no test images")?);
        let tile = decode_tile(&fetch_bytes(&tile_url).await?, tile_count(test.count, 0), h, self.manifest.width, c).map_err(|e| format!("{tile_url}: {e}"))?;
        if tile.len() < count {
            return Err(format!("{count} test images are needed; the first test part has {}", tile.len()));
        }
        self.out.send(Update::QualityNote(format!("Embedding {count} test and {count} training images with {name}'s classifier…")));
        let real = embed(&net, &tile, count, &self.device).await?;
        let floor = Scores::of(&real, &embed(&net, &self.data, count, &self.device).await?).map_err(|e| e.to_string())?;
        self.quality = Some(Reference { net, real, floor, count });
        Ok(())
    }

    /// Samples `quality_count` images from the EMA weights (DDIM with `quality_steps` steps, the
    /// run's seed, `eval`'s batches) and measures them against the reference.
    pub(super) async fn measure_quality(&mut self) -> Result<(), String> {
        self.reference().await?;
        let count = self.settings.spec.quality_count;
        let (config, schedule) = (self.trainer.model_config.clone(), self.trainer.schedule.clone());
        let kind = SamplerKind::new(SamplerName::Ddim, self.settings.spec.quality_steps, 0.0, None, &schedule.config);
        let ema = self.trainer.ema.clone();
        let (c, s) = (config.in_channels, config.sample_size);
        let mut pixels = Vec::with_capacity(count * c * s * s);
        for (first, n, seed) in sample_batches(count, self.settings.spec.sample_batch, self.settings.spec.seed) {
            let mut run = SampleRun::new(&config, kind, &schedule, n, seed, &self.device);
            while run.step(&ema).is_some() {
                self.out.send(Update::QualityNote(format!(
                    "Measuring sample quality: images {}–{} of {count}, {} step {}/{}…",
                    first + 1,
                    first + n,
                    kind.family(),
                    run.index,
                    run.len()
                )));
                yield_now(0).await;
            }
            pixels.extend(to_pixels(&read_values(run.sample).await?, n, c, s, s));
        }
        let samples = ImageSet::new(s, s, c, pixels, Vec::new()).map_err(|e| e.to_string())?;
        let reference = self.quality.as_ref().ok_or("no reference")?;
        let generated = embed(&reference.net, &samples, count, &self.device).await?;
        let model = Scores::of(&reference.real, &generated).map_err(|e| e.to_string())?;
        let point = QualityPoint { step: self.trainer.step, count, sampler: kind.describe(), model, floor: reference.floor };
        self.out.send(Update::QualityNote(String::new()));
        self.out.send(Update::Quality(Some(point.clone())));
        self.last_quality = Some(point);
        self.show_card();
        Ok(())
    }

    /// A measurement the training loop asked for. Data without a feature network (your
    /// images, CIFAR-10) trains on; the note says why the chart stays empty.
    pub(super) async fn measure_quality_while_training(&mut self) {
        if let Err(message) = self.measure_quality().await {
            self.out.send(Update::QualityNote(message));
        }
        self.out.send(Update::Status("Training…".into()));
    }

    /// The model card's words on the last measurement (empty before the first).
    pub(super) fn quality_line(&self) -> String {
        match &self.last_quality {
            None => String::new(),
            Some(q) => format!(
                " · at step {}: FID {:.2}, precision {:.3}, recall {:.3} ({} samples, {}; floor FID {:.2})",
                q.step, q.model.fid, q.model.precision, q.model.recall, q.count, q.sampler, q.floor.fid
            ),
        }
    }
}
