//! What a user may change of a recipe: the one merge of the CLI's flags and the tab's address
//! into a [`RunSpec`]. A shell parses into [`Overrides`] and holds no defaults of its own.

use super::RunSpec;
use crate::data::Dataset;
use crate::diffusion::{BetaSchedule, Prediction};

/// The settings a user gave; `None` keeps the recipe's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub dataset: Option<Dataset>,
    pub steps: Option<usize>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub adam_beta_2: Option<f64>,
    /// A fixed EMA decay (it replaces a recipe's power-function EMA).
    pub ema_decay: Option<f64>,
    /// The power-function EMA's γ (it replaces a recipe's fixed decay).
    pub ema_power: Option<f64>,
    pub random_flip: Option<bool>,
    pub schedule: Option<BetaSchedule>,
    pub prediction: Option<Prediction>,
    pub zero_terminal_snr: Option<bool>,
    pub class_conditional: Option<bool>,
    pub class_dropout: Option<f64>,
    /// γ, or 0 for none ([`min_snr_setting`]).
    pub min_snr_gamma: Option<f64>,
    pub warmup_steps: Option<usize>,
    /// Decay the rate along a half cosine to 0 at the last of the run's steps (it replaces the
    /// recipe's inverse square root decay).
    pub cosine_decay: Option<bool>,
    /// The step the inverse square root decay starts from, or 0 for none
    /// ([`inverse_sqrt_decay_setting`]).
    pub inverse_sqrt_decay: Option<usize>,
    pub seed: Option<u64>,
    pub guidance: Option<f64>,
    pub save_every: Option<usize>,
    pub preview_every: Option<usize>,
    pub preview_steps: Option<usize>,
    pub sample_steps: Option<usize>,
    pub count: Option<usize>,
    pub quality_every: Option<usize>,
    pub quality_count: Option<usize>,
    pub quality_steps: Option<usize>,
}

/// Min-SNR-γ as a user gives it (`--min-snr-gamma`, `?min_snr=`): γ, or 0 for none, DDPM's
/// plain mean (so that a default γ can be turned off).
pub fn min_snr_setting(gamma: f64) -> Option<f64> {
    (gamma != 0.0).then_some(gamma)
}

/// The inverse square root decay as a user gives it (`--inverse-sqrt-decay`,
/// `?inverse_sqrt_decay=`): the step it starts from, or 0 for none.
pub fn inverse_sqrt_decay_setting(from: usize) -> Option<usize> {
    (from != 0).then_some(from)
}

impl Overrides {
    /// `recipe` with these overrides (not yet validated: [`RunSpec::with_overrides`] does).
    pub fn apply(&self, recipe: RunSpec) -> RunSpec {
        let mut spec = recipe;
        macro_rules! take {
            ($($field:ident),+) => { $(if let Some(value) = self.$field { spec.$field = value; })+ };
        }
        take!(
            dataset, steps, batch_size, learning_rate, adam_beta_2, random_flip, schedule, prediction, zero_terminal_snr,
            class_conditional, class_dropout, warmup_steps, seed, guidance, save_every, preview_every, preview_steps,
            sample_steps, count, quality_every, quality_count, quality_steps
        );
        if let Some(decay) = self.ema_decay {
            (spec.ema_decay, spec.ema_power) = (decay, None);
        }
        if let Some(gamma) = self.ema_power {
            spec.ema_power = Some(gamma);
        }
        if let Some(gamma) = self.min_snr_gamma {
            spec.min_snr_gamma = min_snr_setting(gamma);
        }
        if let Some(from) = self.inverse_sqrt_decay {
            (spec.inverse_sqrt_decay_from, spec.decay_steps) = (inverse_sqrt_decay_setting(from), None);
        }
        if self.cosine_decay == Some(true) {
            (spec.decay_steps, spec.inverse_sqrt_decay_from) = (Some(spec.steps), None);
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn a_preset_brings_its_own_recipe_and_the_user_s_values_win() {
        let none = Overrides::default();
        assert_eq!(RunSpec::with_overrides(Some(Preset::DdpmCifar10), &none), Ok(RunSpec::PAPER));
        assert_eq!(RunSpec::with_overrides(None, &none), Ok(RunSpec::SMALL_DATA));
        assert_eq!(RunSpec::with_overrides(Some(Preset::Tiny), &none).unwrap().preset, Preset::Tiny);
        let given = Overrides { batch_size: Some(8), learning_rate: Some(1e-3), min_snr_gamma: Some(0.0), ..Overrides::default() };
        let spec = RunSpec::with_overrides(Some(Preset::DdpmCifar10), &given).unwrap();
        assert_eq!((spec.batch_size, spec.learning_rate, spec.min_snr_gamma, spec.ema_decay), (8, 1e-3, None, RunSpec::PAPER.ema_decay));
    }

    #[test]
    fn one_decay_and_one_ema_at_a_time() {
        let cosine = Overrides { cosine_decay: Some(true), steps: Some(500), ..Overrides::default() };
        let spec = RunSpec::with_overrides(None, &cosine).unwrap();
        assert_eq!((spec.decay_steps, spec.inverse_sqrt_decay_from), (Some(500), None));
        let off = RunSpec::with_overrides(None, &Overrides { inverse_sqrt_decay: Some(0), ..Overrides::default() }).unwrap();
        assert_eq!(off.inverse_sqrt_decay_from, None);
        let power = RunSpec::with_overrides(None, &Overrides { ema_power: Some(6.94), ..Overrides::default() }).unwrap();
        assert_eq!(power.ema_power, Some(6.94));
        let fixed = Overrides { ema_decay: Some(0.99), ..Overrides::default() }.apply(power);
        assert_eq!((fixed.ema_decay, fixed.ema_power), (0.99, None));
    }

    #[test]
    fn a_value_that_cannot_train_is_refused_once_in_words() {
        let zero = Overrides { batch_size: Some(0), ..Overrides::default() };
        assert_eq!(RunSpec::with_overrides(None, &zero).unwrap_err(), "batch_size is 0; it must be at least 1");
        let steps = Overrides { steps: Some(0), ..Overrides::default() };
        assert_eq!(RunSpec::with_overrides(None, &steps).unwrap_err(), "steps is 0; it must be at least 1");
        let dropout = Overrides { class_dropout: Some(1.5), ..Overrides::default() };
        assert_eq!(RunSpec::with_overrides(None, &dropout).unwrap_err(), "class_dropout is 1.5; it must be between 0 and 1");
    }
}
