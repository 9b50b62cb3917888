//! One run's settings, [`RunSpec`]: a preset's recipe plus the user's overrides, validated once.
//! The CLI's flags and the tab's address only parse into [`Overrides`]; the run spec builds the
//! model's, the schedule's and the optimiser's settings, and is saved in the training state and
//! in the model card. Every default of a run has its home here, in [`RunSpec::SMALL_DATA`] and
//! [`RunSpec::PAPER`].

mod legacy;
mod overrides;
mod rates;

pub use overrides::{Overrides, inverse_sqrt_decay_setting, min_snr_setting};

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::diffusion::{BetaSchedule, Prediction, ScheduleConfig, Spacing};
use crate::limits;
use crate::model::{Preset, UNetConfig};

/// The settings of one training run and of the samples it shows (DDPM §4 unless noted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The dataset a run trains on unless told otherwise.
    pub dataset: Dataset,
    /// The model a fresh run starts from.
    pub preset: Preset,
    /// Training steps of the CLI's `train` (the tab trains until paused).
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// The noise schedule of a fresh model.
    pub schedule: BetaSchedule,
    /// What a fresh model learns to predict.
    pub prediction: Prediction,
    /// Which timesteps a fresh model's few-step samplers visit (its scheduler config's
    /// `timestep_spacing`; `None`: each sampler's diffusers default, leading for DDIM).
    pub timestep_spacing: Option<Spacing>,
    /// Zero terminal SNR for a fresh model (Lin et al. 2024): β rescaled so that the last step
    /// is pure noise, v-prediction unless it predicts x_0, and trailing spacing.
    pub zero_terminal_snr: bool,
    /// A fresh model conditioned on the dataset's class labels, for classifier-free guidance.
    pub class_conditional: bool,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Adam's β₂, the decay of its squared-gradient average: 0.999 in Kingma & Ba and DDPM;
    /// EDM2 (Karras et al. 2024) uses 0.99, whose average forgets the large early gradients of
    /// a short run sooner.
    pub adam_beta_2: f64,
    /// Clip the global gradient norm to this (1.0 in DDPM, whose code clips by global norm).
    pub grad_clip: f32,
    /// EMA decay of the sampling weights, warmed up as diffusers' `EMAModel` does.
    pub ema_decay: f64,
    /// Karras et al. 2024's power-function EMA with exponent γ instead of `ema_decay`: an
    /// average whose length is a fixed share of the run (γ = 6.94: σ_rel = 0.10).
    pub ema_power: Option<f64>,
    /// Mirror each training image left–right with probability ½ (DDPM on CIFAR-10).
    pub random_flip: bool,
    /// Probability of replacing an image's class label with the null class, so that one
    /// network learns both ε(x_t, c) and ε(x_t) for classifier-free guidance (Ho & Salimans
    /// 2022, p_uncond; 0.1 there). Used only by class-conditional models.
    pub class_dropout: f64,
    /// Min-SNR-γ loss weighting (Hang et al. 2023; γ = 5 there): `None` is DDPM's plain mean.
    pub min_snr_gamma: Option<f64>,
    /// Warm the learning rate up linearly from 0 over this many steps (0: no warm-up).
    pub warmup_steps: usize,
    /// Decay the learning rate to 0 along a half cosine, from the end of the warm-up to this
    /// step (Loshchilov & Hutter 2017); `None`: no cosine decay.
    pub decay_steps: Option<usize>,
    /// From this step on, decay the rate as `√(from / step)` (EDM2's inverse square root
    /// decay): it needs no run length, so a run continued for longer goes on exactly as one
    /// that was always that long; `None`: none.
    pub inverse_sqrt_decay_from: Option<usize>,
    /// Seed of every random draw of training (weights, timesteps, noise, minibatches) and of
    /// the samples shown.
    pub seed: u64,
    /// Classifier-free guidance scale w of samples from a class-conditional model.
    pub guidance: f64,
    /// Save the whole training state every this many steps (0: only at the end).
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
    /// Measure sample quality every this many steps in the tab; 0: only when asked.
    pub quality_every: usize,
    /// Samples, and as many test and training images, per quality measurement in the tab.
    pub quality_count: usize,
    /// DDIM steps of the quality measurement's samples (`eval --steps`).
    pub quality_steps: usize,
}

impl RunSpec {
    /// For small datasets (MNIST, Fashion-MNIST, your images) and small models: what the tab
    /// and `train` use by default. Runs are thousands of steps, not hundreds of thousands, so a
    /// larger learning rate (2e-3, warmed up over 80 steps, then ∝ 1/√step from step 100 on,
    /// EDM2's decay) and a shorter EMA than the paper's; v-prediction with the loss weighted by
    /// min-SNR-γ = 5 (Hang et al. 2023), on Nichol & Dhariwal's cosine ᾱ schedule (2021 §3.2:
    /// DDPM's linear β leaves small images near pure noise for the last part of the steps), its
    /// few-step samplers on trailing timesteps (Lin et al. 2024 §3.3: DDIM-50 starts at
    /// t = 999, where training's last step is, not at leading spacing's 980). Of the recipes
    /// whose rate does not depend on the run's length, these together learned the most per
    /// training image in the recipe study (docs/recipe-study.md, `scripts/study/recipe-sweep`):
    /// the tab trains until paused, and a run that `train --resume` extends goes on exactly as
    /// one that ran that long. With `--cosine-decay` instead, for a run of known length, the
    /// same recipe did a little better.
    pub const SMALL_DATA: Self = Self {
        dataset: Dataset::Mnist,
        preset: Preset::MnistSmall,
        steps: 2000,
        batch_size: 32,
        schedule: BetaSchedule::Cosine,
        prediction: Prediction::V,
        timestep_spacing: Some(Spacing::Trailing),
        zero_terminal_snr: false,
        class_conditional: false,
        learning_rate: 2e-3,
        adam_beta_2: 0.999,
        grad_clip: 1.0,
        ema_decay: 0.999,
        ema_power: None,
        random_flip: false,
        class_dropout: 0.1,
        min_snr_gamma: Some(5.0),
        warmup_steps: 80,
        decay_steps: None,
        inverse_sqrt_decay_from: Some(100),
        seed: 0,
        guidance: 3.0,
        save_every: 200,
        preview_every: 200,
        preview_steps: 20,
        sample_steps: 50,
        count: 16,
        sample_batch: 100,
        quality_every: 1000,
        quality_count: 200,
        quality_steps: 50,
    };

    /// Ho et al. 2020's CIFAR-10 run (§4 and Appendix B): the 35.7M U-Net predicting ε on
    /// linear β, the plain mean of Algorithm 1, batch 128, Adam at a constant 2e-4, gradients
    /// clipped to norm 1, EMA 0.9999, random flips, 800,000 steps.
    pub const PAPER: Self = Self {
        dataset: Dataset::Cifar10,
        preset: Preset::DdpmCifar10,
        steps: 800_000,
        batch_size: 128,
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

    /// The recipe a preset trains with: the paper's for its model, the small-data one for the
    /// others. A preset always brings its own recipe, whichever shell asks.
    pub fn for_preset(preset: Preset) -> Self {
        match preset {
            Preset::DdpmCifar10 => Self::PAPER,
            Preset::Tiny | Preset::MnistSmall => Self { preset, ..Self::SMALL_DATA },
        }
    }

    /// The recipe of `preset` (the small-data one when the model is not a preset, such as an
    /// imported file) with the user's `overrides`, validated.
    pub fn with_overrides(preset: Option<Preset>, overrides: &Overrides) -> Result<Self, String> {
        let spec = overrides.apply(preset.map_or(Self::SMALL_DATA, Self::for_preset));
        spec.validate()?;
        Ok(spec)
    }

    /// A fresh model's scheduler config: the spec's β schedule, prediction target, spacing and
    /// zero terminal SNR, diffusers' defaults otherwise.
    pub fn schedule_config(&self) -> ScheduleConfig {
        self.schedule_config_on(ScheduleConfig::default())
    }

    /// [`RunSpec::schedule_config`] on `base` (a diffusers config without weights, which starts
    /// fresh): its other fields and its spacing, if it names one, stay.
    pub fn schedule_config_on(&self, base: ScheduleConfig) -> ScheduleConfig {
        let timestep_spacing = base.timestep_spacing.or(self.timestep_spacing);
        let config = ScheduleConfig { beta_schedule: self.schedule, prediction_type: self.prediction, timestep_spacing, ..base };
        if self.zero_terminal_snr { config.with_zero_terminal_snr() } else { config }
    }

    /// The U-Net of a fresh run on images `size`×`size`×`channels` with `classes` classes
    /// (`None`: unconditional), checked: the preset's architecture at the data's size.
    pub fn model_config(&self, size: usize, channels: usize, classes: Option<usize>) -> Result<UNetConfig, String> {
        let mut config = self.preset.config_for(size, channels);
        if let Some(classes) = classes {
            config = config.conditional_on(classes);
        }
        config.validate().map_err(|e| format!("the model {} does not fit {size}×{size}×{channels} images ({e})", self.preset))?;
        config.check_batch(self.batch_size).map_err(|e| format!("batch {}: {e}", self.batch_size))?;
        Ok(config)
    }

    /// Checks the settings before training on them (from a file, the CLI or the URL): what
    /// training would otherwise panic on, allocate without bound (a batch of 2^60 images) or
    /// silently make meaningless (an infinite learning rate, an EMA decay of 7), in words.
    pub fn validate(&self) -> Result<(), String> {
        let at_least_1 = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("preview_every", self.preview_every),
            ("preview_steps", self.preview_steps),
            ("sample_steps", self.sample_steps),
            ("count", self.count),
            ("sample_batch", self.sample_batch),
            ("quality_steps", self.quality_steps),
        ];
        if let Some((name, _)) = at_least_1.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} is 0; it must be at least 1"));
        }
        limits::at_most("batch_size", self.batch_size, limits::MAX_BATCH_SIZE)?;
        limits::at_most("count", self.count, limits::MAX_GRID_IMAGES)?;
        limits::at_most("quality_count", self.quality_count, limits::MAX_QUALITY_SAMPLES)?;
        if self.quality_count < limits::MIN_QUALITY_SAMPLES {
            return Err(format!("quality_count is {}; it must be at least {}", self.quality_count, limits::MIN_QUALITY_SAMPLES));
        }
        let finite_positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{name} is {v}; it must be a positive number")) }
        };
        finite_positive("learning_rate", self.learning_rate)?;
        finite_positive("grad_clip", f64::from(self.grad_clip))?;
        for (name, gamma) in [("min_snr_gamma", self.min_snr_gamma), ("ema_power", self.ema_power)] {
            if let Some(gamma) = gamma {
                finite_positive(name, gamma)?;
            }
        }
        if !self.guidance.is_finite() {
            return Err(format!("guidance is {}; it must be a finite number", self.guidance));
        }
        let steps = [("steps", Some(self.steps)), ("warmup_steps", Some(self.warmup_steps)), ("decay_steps", self.decay_steps)];
        for (name, steps) in steps.into_iter().chain([("inverse_sqrt_decay_from", self.inverse_sqrt_decay_from)]) {
            limits::at_most(name, steps.unwrap_or(0) as u64, limits::MAX_TRAINING_STEPS)?;
        }
        for (name, steps) in [("preview_steps", self.preview_steps), ("sample_steps", self.sample_steps), ("quality_steps", self.quality_steps)] {
            limits::at_most(name, steps, limits::MAX_TRAIN_TIMESTEPS)?;
        }
        if self.decay_steps.is_some_and(|n| n <= self.warmup_steps) {
            return Err(format!("decay_steps must be more than the {} warm-up steps", self.warmup_steps));
        }
        if self.inverse_sqrt_decay_from == Some(0) {
            return Err("inverse_sqrt_decay_from is 0; the decay starts at step 1 or later".into());
        }
        if self.decay_steps.is_some() && self.inverse_sqrt_decay_from.is_some() {
            return Err("decay_steps (cosine) and inverse_sqrt_decay_from are two decays; choose one".into());
        }
        if !(0.0..1.0).contains(&self.adam_beta_2) {
            return Err(format!("adam_beta_2 is {}; it must be at least 0 and less than 1", self.adam_beta_2));
        }
        for (name, v) in [("ema_decay", self.ema_decay), ("class_dropout", self.class_dropout)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} is {v}; it must be between 0 and 1"));
            }
        }
        Ok(())
    }

    /// The settings of a training-state file: this JSON, or the optimisation settings alone
    /// that states held before the run spec (their other fields take the small-data recipe's
    /// values, and the options added since take what those runs used: none).
    pub fn from_state_json(json: &str) -> Option<Self> {
        legacy::from_state_json(json)
    }
}

/// `with_` setters of every field, for code that builds a spec from a recipe.
macro_rules! setters {
    ($($field:ident: $ty:ty => $with:ident),+ $(,)?) => {
        impl RunSpec {
            $(
                #[doc = concat!("This spec with `", stringify!($field), "` set.")]
                #[must_use]
                pub fn $with(mut self, value: $ty) -> Self {
                    self.$field = value;
                    self
                }
            )+
        }
    };
}

setters!(
    steps: usize => with_steps,
    batch_size: usize => with_batch_size,
    learning_rate: f64 => with_learning_rate,
    adam_beta_2: f64 => with_adam_beta_2,
    grad_clip: f32 => with_grad_clip,
    ema_decay: f64 => with_ema_decay,
    ema_power: Option<f64> => with_ema_power,
    random_flip: bool => with_random_flip,
    class_dropout: f64 => with_class_dropout,
    min_snr_gamma: Option<f64> => with_min_snr_gamma,
    warmup_steps: usize => with_warmup_steps,
    decay_steps: Option<usize> => with_decay_steps,
    inverse_sqrt_decay_from: Option<usize> => with_inverse_sqrt_decay_from,
    seed: u64 => with_seed,
);

impl Default for RunSpec {
    /// The small-data recipe.
    fn default() -> Self {
        Self::SMALL_DATA
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recipe_trains_with_valid_settings() {
        for recipe in [RunSpec::SMALL_DATA, RunSpec::PAPER] {
            recipe.validate().unwrap();
            recipe.preset.config().check_batch(recipe.batch_size).unwrap();
        }
        assert_eq!(RunSpec::for_preset(Preset::DdpmCifar10), RunSpec::PAPER);
        assert_eq!(RunSpec::for_preset(Preset::Tiny).batch_size, RunSpec::SMALL_DATA.batch_size);
        assert_eq!(RunSpec::PAPER.min_snr_gamma, None, "the paper's recipe is DDPM's plain mean");
        assert_eq!((RunSpec::PAPER.prediction, RunSpec::PAPER.warmup_steps, RunSpec::PAPER.inverse_sqrt_decay_from), (Prediction::Epsilon, 0, None), "and ε at a constant rate");
        assert_eq!(RunSpec::PAPER.schedule, BetaSchedule::Linear, "on the paper's linear β");
        // google/ddpm-cifar10-32's scheduler_config.json names no spacing: DDIM's leading.
        assert_eq!(RunSpec::PAPER.schedule_config(), ScheduleConfig::default());
        let small = RunSpec::SMALL_DATA.schedule_config();
        assert_eq!((small.beta_schedule, small.prediction_type, small.timestep_spacing), (BetaSchedule::Cosine, Prediction::V, Some(Spacing::Trailing)));
    }

    #[test]
    fn settings_that_would_break_training_are_refused_in_words() {
        let huge = RunSpec::PAPER.with_batch_size(1 << 40);
        assert_eq!(huge.validate().unwrap_err(), "batch_size: 1099511627776; the limit is 65536");
        assert_eq!(RunSpec::PAPER.with_batch_size(0).validate().unwrap_err(), "batch_size is 0; it must be at least 1");
        assert_eq!(RunSpec::PAPER.with_steps(0).validate().unwrap_err(), "steps is 0; it must be at least 1");
        assert!(RunSpec::PAPER.with_learning_rate(f64::NAN).validate().is_err());
        assert!(RunSpec::PAPER.with_ema_decay(2.0).validate().is_err());
        assert!(RunSpec::PAPER.with_warmup_steps(usize::MAX).validate().is_err());
        assert!(RunSpec::PAPER.with_min_snr_gamma(Some(0.0)).validate().is_err());
        for bad in [1.0, -0.1, f64::NAN] {
            assert!(RunSpec::PAPER.with_adam_beta_2(bad).validate().is_err(), "{bad}");
        }
        assert!(RunSpec::PAPER.with_adam_beta_2(0.99).validate().is_ok());
        assert!(RunSpec::PAPER.with_ema_power(Some(f64::NAN)).validate().is_err());
    }

    #[test]
    fn a_spec_round_trips_through_json() {
        let spec = RunSpec::PAPER.with_seed(7).with_ema_power(Some(6.94)).with_decay_steps(Some(500));
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<RunSpec>(&json).unwrap(), spec);
        assert_eq!(RunSpec::from_state_json(&json), Some(spec));
    }

    #[test]
    fn the_model_of_a_spec_takes_the_data_s_size() {
        let config = RunSpec::SMALL_DATA.model_config(32, 3, Some(10)).unwrap();
        assert_eq!((config.sample_size, config.in_channels, config.num_classes()), (32, 3, Some(10)));
        let err = RunSpec::PAPER.with_batch_size(1 << 16).model_config(32, 3, None).unwrap_err();
        assert!(err.starts_with("batch 65536: "), "{err}");
    }
}
