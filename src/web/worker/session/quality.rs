//! The training panel's quality chart: FID, precision and recall (k = 3) of the EMA's samples
//! in the dataset's classifier features, against as many test images, beside the floor (as many
//! training images), measured as `tabdiffusion eval` measures them: the same sampler batches
//! and seeds, samples rounded to 8-bit pixels, the first test and training images. The
//! classifiers ship with the site (`www/classifiers/`, written by `scripts/fixtures/classifiers`).

use super::{Session, read_values};
use crate::checkpoint::load_classifier;
use crate::data::{decode_tile, tile_count};
use crate::diffusion::{SamplerKind, SamplerName};
use crate::features::{Classifier, FEATURE_BATCH};
use crate::pipeline::{QualityReference, QualitySamples, QualityStep, check_classifier, embed_first};
use crate::web::browser::{fetch_bytes, yield_now};
use crate::web::protocol::{QualityPoint, Update};

/// The quality chart's state: its reference once loaded, and the last measurement.
#[derive(Default)]
pub(super) struct Quality {
    /// The feature network and reference images, once loaded.
    reference: Option<Reference>,
    /// The last measurement, for the model card.
    pub(super) last: Option<QualityPoint>,
}

/// What every measurement compares with: the feature network, the test images' features and
/// the floor's scores, for `count` images.
struct Reference {
    net: Classifier,
    reference: QualityReference,
    count: usize,
}

impl Session {
    /// The address of the dataset's feature classifier on the site.
    fn classifier_url(&self) -> String {
        format!("classifiers/{}.safetensors", self.manifest.name)
    }

    /// Loads the classifier and the reference images once (again if the count changed).
    async fn reference(&mut self) -> Result<(), String> {
        let count = self.settings.spec.quality_count;
        if self.quality.reference.as_ref().is_some_and(|q| q.count == count) {
            return Ok(());
        }
        let name = self.manifest.name.clone();
        let url = self.classifier_url();
        let bytes = fetch_bytes(&url).await.map_err(|e| {
            format!("No feature network for {name} ships with this site ({e}), so its samples' quality cannot be measured here: MNIST and Fashion-MNIST have one.")
        })?;
        let (net, config, card) = load_classifier(&bytes, &self.device).map_err(|e| format!("{url}: {e}"))?;
        let (h, c) = (self.manifest.height, self.manifest.channels);
        check_classifier(&card, &config, &name, h, c).map_err(|e| format!("{url}: {e}"))?;
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
        let real = embed_first(&tile, count, FEATURE_BATCH, &self.device, |x| net.features(x)).await?;
        let floor = embed_first(&self.data, count, FEATURE_BATCH, &self.device, |x| net.features(x)).await?;
        self.quality.reference = Some(Reference { reference: QualityReference::new(real, &floor)?, net, count });
        Ok(())
    }

    /// Samples `quality_count` images from the EMA weights (DDIM with `quality_steps` steps, the
    /// run's seed, `eval`'s batches) and measures them against the reference.
    pub(super) async fn measure_quality(&mut self) -> Result<(), String> {
        self.reference().await?;
        let spec = &self.settings.spec;
        let count = spec.quality_count;
        let (config, schedule) = (self.training.trainer.model_config.clone(), self.training.trainer.schedule.clone());
        let kind = SamplerKind::new(SamplerName::Ddim, spec.quality_steps, 0.0, None, &schedule.config);
        let ema = self.training.trainer.ema.clone();
        let mut sampling =
            QualitySamples::new(&config, kind, &schedule, (count, spec.sample_batch, spec.seed), None, &self.device).map_err(|e| e.to_string())?;
        loop {
            match sampling.step(&ema).map_err(|e| e.to_string())? {
                QualityStep::Stepped { first, count: n, index, len } => {
                    self.out.send(Update::QualityNote(format!(
                        "Measuring sample quality: images {}–{} of {count}, {} step {index}/{len}…",
                        first + 1,
                        first + n,
                        kind.family(),
                    )));
                    yield_now(0).await;
                }
                QualityStep::BatchDone(sample) => sampling.add_batch(&read_values(sample).await?),
                QualityStep::Done => break,
            }
        }
        let samples = sampling.into_images()?;
        let Reference { net, reference, .. } = self.quality.reference.as_ref().ok_or("no reference")?;
        let generated = embed_first(&samples, count, FEATURE_BATCH, &self.device, |x| net.features(x)).await?;
        let model = reference.score(&generated)?;
        let point = QualityPoint { step: self.training.trainer.step, count, sampler: kind.describe(), model, floor: reference.floor };
        self.out.send(Update::QualityNote(String::new()));
        self.out.send(Update::Quality(Some(point.clone())));
        self.quality.last = Some(point);
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
        match &self.quality.last {
            None => String::new(),
            Some(q) => format!(
                " · at step {}: FID {:.2}, precision {:.3}, recall {:.3} ({} samples, {}; floor FID {:.2})",
                q.step, q.model.fid, q.model.precision, q.model.recall, q.count, q.sampler, q.floor.fid
            ),
        }
    }
}
