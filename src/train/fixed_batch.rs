//! The training objective on one fixed batch: the same x₀, t and ε every time it is measured,
//! so that its value before and after some steps shows whether training improved the model.
//! The step's own loss cannot show that over a few steps: each step has new images and new
//! draws of t, and with v-prediction and min-SNR weighting its jitter hides the trend.

use burn::module::Module;
use burn::tensor::Tensor;

use super::{Batch, LabelError, Trainer, denoising_loss, step_draws};
use crate::data::ImageSet;
use crate::diffusion::RandomStream;
use crate::model::DenoiserConfig;

/// The seed of the fixed batch's t, ε and label-dropout coins. A stream of their own: measuring
/// draws nothing from the run's stream, so a run trains exactly as it would without being
/// measured, and runs of any seed are measured on the same draws.
pub const FIXED_BATCH_SEED: u64 = 0xF1BA7C4;

/// Why the fixed-batch loss cannot be measured.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum FixedBatchError {
    #[error("there are no training images yet to measure the loss on")]
    NoImages,
    #[error(transparent)]
    Labels(#[from] LabelError),
}

impl Trainer {
    /// The fixed batch's images: the first B of `set` (B the run's batch size, or all of a
    /// smaller set), in order and not flipped, with their labels for a class-conditional model.
    /// The labels are not yet dropped: a step given this batch drops them as it always does.
    pub fn fixed_batch(&self, set: &ImageSet) -> Result<Batch, FixedBatchError> {
        let indices: Vec<usize> = (0..self.config.batch_size.min(set.len())).collect();
        if indices.is_empty() {
            return Err(FixedBatchError::NoImages);
        }
        Ok(Batch { images: set.batch(&indices, &self.device), classes: self.labels_of(set, &indices)? })
    }

    /// The training objective on [`Trainer::fixed_batch`], as a step computes it, without
    /// taking one: the same draws in the same order (t, ε, then the label-dropout coins), from a
    /// stream seeded with [`FIXED_BATCH_SEED`] instead of the run's, and the same loss (the
    /// run's prediction target, min-SNR weighting and schedule). On the online weights, those
    /// the step trains (the EMA, which samples, follows them with a lag): a trainer seeded with
    /// [`FIXED_BATCH_SEED`] whose next step is on the fixed batch reports this very loss. The
    /// network runs as in evaluation: a model with dropout (`ddpm-cifar10`) is measured without
    /// it, so that the measurement stays the same for the same weights.
    pub fn fixed_batch_loss(&self, set: &ImageSet) -> Result<Tensor<1>, FixedBatchError> {
        let Batch { images, classes } = self.fixed_batch(set)?;
        let mut rng = RandomStream::new(FIXED_BATCH_SEED);
        let null = DenoiserConfig::null_class(&self.model_config);
        let (timesteps, noise, classes) =
            step_draws(&mut rng, self.schedule.len(), null, self.config.class_dropout, images.dims(), classes, &self.device);
        let model = self.model.valid();
        Ok(denoising_loss(&model, &self.schedule, images, noise, &timesteps, classes.as_deref(), self.config.min_snr_gamma))
    }
}
