//! Named training recipes: the defaults of a run, in one place for the tab and the CLI. The
//! shells read these and hold no numbers of their own.

use super::TrainConfig;
use crate::data::Dataset;
use crate::diffusion::{BetaSchedule, Prediction, ScheduleConfig, Spacing};
use crate::model::Preset;

/// The defaults of a training run and of the samples it shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// The dataset a run trains on unless told otherwise.
    pub dataset: Dataset,
    /// The model a fresh run starts from.
    pub preset: Preset,
    /// Training steps of the CLI's `train` (the tab trains until paused).
    pub steps: usize,
    /// Images per step.
    pub batch: usize,
    /// The noise schedule of a fresh model.
    pub schedule: BetaSchedule,
    /// What a fresh model learns to predict.
    pub prediction: Prediction,
    /// Which timesteps a fresh model's few-step samplers visit (its scheduler config's
    /// `timestep_spacing`; `None`: each sampler's diffusers default, leading for DDIM).
    pub timestep_spacing: Option<Spacing>,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Adam's β₂.
    pub adam_beta_2: f64,
    /// EMA decay of the sampling weights.
    pub ema_decay: f64,
    /// The power-function EMA's γ instead (Karras et al. 2024; `None`: `ema_decay`).
    pub ema_power: Option<f64>,
    /// Mirror training images left–right at random.
    pub random_flip: bool,
    /// How often a class label is dropped to the null class (Ho & Salimans 2022: 0.1).
    pub class_dropout: f64,
    /// Min-SNR-γ loss weighting (`None`: the plain mean, as DDPM).
    pub min_snr_gamma: Option<f64>,
    /// Steps of linear learning-rate warm-up (0: none).
    pub warmup_steps: usize,
    /// Decay the rate as `√(from / step)` from this step on (EDM2's; `None`: constant).
    pub inverse_sqrt_decay_from: Option<usize>,
    /// Classifier-free guidance scale w of samples from a class-conditional model.
    pub guidance: f64,
    /// Save the whole training state every this many steps.
    pub save_every: usize,
    /// Show a grid of samples every this many steps (the tab; the CLI's `--grid-every`).
    pub preview_every: usize,
    /// DDIM steps of a preview grid.
    pub preview_steps: usize,
    /// DDIM steps of a sampling run and of the final grid.
    pub sample_steps: usize,
    /// Images per grid.
    pub count: usize,
    /// Images per sampling batch of `eval` and of the tab's quality measurement (batch k from
    /// seed + k, so both sample the same images).
    pub sample_batch: usize,
    /// Measure sample quality (FID, precision, recall in the dataset's classifier features)
    /// every this many steps in the tab; 0: only when asked.
    pub quality_every: usize,
    /// Samples, and as many test and training images, per quality measurement in the tab.
    pub quality_count: usize,
}

impl Recipe {
    /// For small datasets (MNIST, Fashion-MNIST, your images) and small models: what the tab
    /// and `train` use by default. Runs are thousands of steps, not hundreds of thousands, so a
    /// larger learning rate (2e-3, warmed up over 80 steps, then ∝ 1/√step from step 100 on,
    /// EDM2's decay) and a shorter EMA than the paper's; v-prediction with the loss weighted by
    /// min-SNR-γ = 5 (Hang et al. 2023), on Nichol & Dhariwal's cosine ᾱ schedule (2021 §3.2:
    /// DDPM's linear β leaves small images near pure noise for the last part of the steps), its
    /// few-step samplers on trailing timesteps (Lin et al. 2024 §3.3: DDIM-50 starts at
    /// t = 999, where training's last step is, not at leading spacing's 980). Of
    /// the recipes whose rate does not depend on the run's length, these together learned the
    /// most per training image in the recipe study (README, `scripts/recipe-sweep`): the tab
    /// trains until paused, and a run that `train --resume`
    /// extends goes on exactly as one that ran that long. With `--cosine-decay` instead, for a
    /// run of known length, the same recipe did a little better.
    pub const SMALL_DATA: Self = Self {
        dataset: Dataset::Mnist,
        preset: Preset::MnistSmall,
        steps: 2000,
        batch: 32,
        schedule: BetaSchedule::Cosine,
        prediction: Prediction::V,
        timestep_spacing: Some(Spacing::Trailing),
        learning_rate: 2e-3,
        adam_beta_2: 0.999,
        ema_decay: 0.999,
        ema_power: None,
        random_flip: false,
        class_dropout: 0.1,
        min_snr_gamma: Some(5.0),
        warmup_steps: 80,
        inverse_sqrt_decay_from: Some(100),
        guidance: 3.0,
        save_every: 200,
        preview_every: 200,
        preview_steps: 20,
        sample_steps: 50,
        count: 16,
        sample_batch: 100,
        quality_every: 1000,
        quality_count: 200,
    };

    /// Ho et al. 2020's CIFAR-10 run (§4 and Appendix B): the 35.7M U-Net predicting ε, batch
    /// 128, Adam at a constant 2e-4, EMA 0.9999, random flips, 800,000 steps.
    pub const PAPER: Self = Self {
        dataset: Dataset::Cifar10,
        preset: Preset::DdpmCifar10,
        steps: 800_000,
        batch: 128,
        schedule: BetaSchedule::Linear,
        prediction: Prediction::Epsilon,
        timestep_spacing: None,
        learning_rate: 2e-4,
        warmup_steps: 0,
        inverse_sqrt_decay_from: None,
        ema_decay: 0.9999,
        random_flip: true,
        min_snr_gamma: None,
        save_every: 1000,
        ..Self::SMALL_DATA
    };

    /// A fresh model's scheduler config: the recipe's β schedule, prediction target and spacing,
    /// diffusers' defaults otherwise.
    pub fn schedule_config(&self) -> ScheduleConfig {
        ScheduleConfig {
            beta_schedule: self.schedule,
            prediction_type: self.prediction,
            timestep_spacing: self.timestep_spacing,
            ..ScheduleConfig::default()
        }
    }

    /// The recipe a preset trains with: the paper's for its model, the small-data one for the
    /// others.
    pub fn for_preset(preset: Preset) -> Self {
        match preset {
            Preset::DdpmCifar10 => Self::PAPER,
            Preset::Tiny | Preset::MnistSmall => Self { preset, ..Self::SMALL_DATA },
        }
    }

    /// The optimisation settings of this recipe, seeded.
    pub fn train_config(&self, seed: u64) -> TrainConfig {
        TrainConfig::new()
            .with_batch_size(self.batch)
            .with_learning_rate(self.learning_rate)
            .with_adam_beta_2(self.adam_beta_2)
            .with_ema_decay(self.ema_decay)
            .with_ema_power(self.ema_power)
            .with_random_flip(self.random_flip)
            .with_class_dropout(self.class_dropout)
            .with_min_snr_gamma(self.min_snr_gamma)
            .with_warmup_steps(self.warmup_steps)
            .with_inverse_sqrt_decay_from(self.inverse_sqrt_decay_from)
            .with_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipe_trains_with_valid_settings() {
        for recipe in [Recipe::SMALL_DATA, Recipe::PAPER] {
            recipe.train_config(0).validate().unwrap();
            recipe.preset.config().check_batch(recipe.batch).unwrap();
        }
        assert_eq!(Recipe::for_preset(Preset::DdpmCifar10), Recipe::PAPER);
        assert_eq!(Recipe::for_preset(Preset::Tiny).batch, Recipe::SMALL_DATA.batch);
        assert_eq!(Recipe::PAPER.min_snr_gamma, None, "the paper's recipe is DDPM's plain mean");
        assert_eq!((Recipe::PAPER.prediction, Recipe::PAPER.warmup_steps, Recipe::PAPER.inverse_sqrt_decay_from), (Prediction::Epsilon, 0, None), "and ε at a constant rate");
        assert_eq!(Recipe::PAPER.schedule, BetaSchedule::Linear, "on the paper's linear β");
        // google/ddpm-cifar10-32's scheduler_config.json names no spacing: DDIM's leading.
        assert_eq!(Recipe::PAPER.schedule_config(), ScheduleConfig::default());
        let small = Recipe::SMALL_DATA.schedule_config();
        assert_eq!((small.beta_schedule, small.prediction_type, small.timestep_spacing), (BetaSchedule::Cosine, Prediction::V, Some(Spacing::Trailing)));
    }
}
