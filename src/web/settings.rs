//! The tab's settings from its URL (`?data=cifar10&model=tiny&batch=8`): a pure function of
//! the query, so that it builds and is tested natively. The address only names a preset and
//! what it changes of the preset's recipe ([`Overrides`]); the run's settings are the core's
//! [`RunSpec`] of those, validated once. Names parse with the core's enums, and an unknown one
//! is an error listing the valid ones.

use std::str::FromStr;

use crate::diffusion::{Objective, ScheduleConfig};
use crate::model::Preset;
use crate::spec::{Overrides, RunSpec};

/// Settings of a session, from the URL.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The preset of `?model=` (absent: the small-data recipe's), whose recipe the run takes.
    pub preset: Preset,
    /// What the address changes of that recipe.
    pub overrides: Overrides,
    /// The run's settings: the preset's recipe with the address's overrides, validated.
    pub spec: RunSpec,
    /// Load at most this many data tiles (10,000 images each; `?tiles=`; absent: all).
    pub max_tiles: Option<usize>,
    /// Measure instead of waiting for Train: this many timed training steps, then DDIM-50
    /// (`?bench=5`; the numbers appear as JSON in the `bench` element).
    pub bench: Option<usize>,
    /// For the page's fault tests only: destroy the GPU device (a real device loss, through
    /// wgpu's `destroy`) right after this training step (`?test_lose_gpu_at=2`).
    pub lose_gpu_at: Option<usize>,
    /// For the page's fault tests only: panic in this training step (`?test_panic_at=2`).
    pub panic_at: Option<usize>,
    /// For the page's fault tests only: the tuned build alone panics as this training step starts
    /// (Train pressed with the run one step before it; `?test_tuned_panic_at=3`), a fault of its
    /// kernels that the page must fall back from.
    pub tuned_panic_at: Option<usize>,
}

impl Default for Settings {
    /// An empty address: the small-data recipe, as `train` uses it.
    fn default() -> Self {
        Self::from_query(|_| None).expect("the small-data recipe is valid")
    }
}

/// `?key=value` as a `T`, or why not.
fn parse<T: FromStr>(get: &impl Fn(&str) -> Option<String>, key: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    get(key).map(|v| v.parse().map_err(|e| format!("?{key}={v}: {e}"))).transpose()
}

impl Settings {
    /// The settings of a query, `get` giving each parameter's value.
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let preset: Option<Preset> = parse(&get, "model")?;
        let switch = |key: &str| get(key).map(|v| flag(key, &v)).transpose();
        let overrides = Overrides {
            dataset: parse(&get, "data")?,
            batch_size: parse(&get, "batch")?,
            learning_rate: parse(&get, "lr")?,
            adam_beta_2: parse(&get, "adam_beta2")?,
            ema_decay: parse(&get, "ema")?,
            ema_power: parse(&get, "ema_power")?,
            schedule: parse(&get, "schedule")?,
            prediction: parse(&get, "prediction")?,
            zero_terminal_snr: switch("zero_snr")?,
            class_conditional: switch("classes")?,
            min_snr_gamma: parse(&get, "min_snr")?,
            warmup_steps: parse(&get, "warmup")?,
            inverse_sqrt_decay: parse(&get, "inverse_sqrt_decay")?,
            seed: parse(&get, "seed")?,
            save_every: parse(&get, "autosave")?,
            preview_every: parse(&get, "preview_every")?,
            preview_steps: parse(&get, "preview_steps")?,
            count: parse(&get, "count")?,
            quality_every: parse(&get, "quality_every")?,
            quality_count: parse(&get, "quality_count")?,
            quality_steps: parse(&get, "quality_steps")?,
            ..Overrides::default()
        };
        let spec = RunSpec::with_overrides(preset, &overrides).map_err(|e| format!("The settings in the address cannot train: {e}."))?;
        if spec.save_every == 0 {
            return Err("?autosave=0: the tab saves the run every N steps, N at least 1".into());
        }
        let max_tiles: Option<usize> = parse(&get, "tiles")?;
        if max_tiles == Some(0) {
            return Err("?tiles=0: load at least 1 part of the dataset".into());
        }
        Ok(Self {
            preset: spec.preset,
            overrides,
            spec,
            max_tiles,
            bench: parse(&get, "bench")?,
            lose_gpu_at: parse(&get, "test_lose_gpu_at")?,
            panic_at: parse(&get, "test_panic_at")?,
            tuned_panic_at: parse(&get, "test_tuned_panic_at")?,
        })
    }

    /// The scheduler config of a new model with these settings.
    pub fn schedule_config(&self) -> ScheduleConfig {
        self.spec.schedule_config()
    }

    /// The loss a new model with these settings trains with.
    pub fn objective(&self) -> Objective {
        Objective::new(&self.schedule_config(), self.spec.min_snr_gamma)
    }

    /// The value of `?classes=` for a model that is class-conditional or not.
    pub fn classes_param(conditional: bool) -> &'static str {
        if conditional { "1" } else { "0" }
    }
}

/// A switch of the query: `1` on, `0` off.
fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("?{key}={value}: 0 or 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::diffusion::{BetaSchedule, Prediction};
    use crate::limits;

    fn query(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_query(move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    #[test]
    fn an_empty_query_gives_the_small_data_recipe() {
        let settings = query(&[]).unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.spec, RunSpec::SMALL_DATA);
        assert_eq!((settings.spec.dataset, settings.preset), (Dataset::Mnist, Preset::MnistSmall));
    }

    #[test]
    fn a_preset_brings_its_own_recipe_in_the_tab_too() {
        let paper = query(&[("model", "ddpm-cifar10")]).unwrap();
        assert_eq!(paper.spec, RunSpec::PAPER, "as `train --model ddpm-cifar10`");
        let on_mnist = query(&[("model", "ddpm-cifar10"), ("data", "mnist"), ("batch", "8")]).unwrap();
        assert_eq!((on_mnist.spec.dataset, on_mnist.spec.batch_size, on_mnist.spec.learning_rate), (Dataset::Mnist, 8, RunSpec::PAPER.learning_rate));
        assert_eq!(on_mnist.overrides.batch_size, Some(8), "the address named the batch");
    }

    #[test]
    fn names_and_numbers_are_read_from_the_query() {
        let settings = query(&[("data", "cifar10"), ("model", "tiny"), ("schedule", "cosine"), ("batch", "8"), ("classes", "1"), ("count", "64"), ("bench", "3")]).unwrap();
        let spec = &settings.spec;
        assert_eq!((spec.dataset, settings.preset, spec.schedule), (Dataset::Cifar10, Preset::Tiny, BetaSchedule::Cosine));
        assert_eq!((spec.batch_size, spec.class_conditional), (8, true));
        assert_eq!((spec.count, settings.bench), (limits::MAX_GRID_IMAGES, Some(3)));
        let recipe = query(&[("prediction", "v"), ("zero_snr", "1"), ("min_snr", "5"), ("warmup", "100"), ("ema_power", "6.94"), ("inverse_sqrt_decay", "400"), ("adam_beta2", "0.99")]).unwrap().spec;
        assert_eq!((recipe.prediction, recipe.zero_terminal_snr, recipe.min_snr_gamma), (Prediction::V, true, Some(5.0)));
        assert_eq!((recipe.warmup_steps, recipe.ema_power, recipe.inverse_sqrt_decay_from, recipe.adam_beta_2), (100, Some(6.94), Some(400), 0.99));
        assert_eq!(query(&[("min_snr", "0")]).unwrap().spec.min_snr_gamma, None, "0 turns the weighting off");
        let objective = query(&[("prediction", "epsilon"), ("min_snr", "0"), ("schedule", "linear")]).unwrap().objective();
        assert!(objective.is_algorithm_1(), "the address's Algorithm 1: {}", objective.key());
        assert_eq!(query(&[]).unwrap().objective().key(), "prediction=v min_snr=5 schedule=cosine zero_snr=0");
        assert_eq!(query(&[("prediction", "epsilon"), ("zero_snr", "1")]).unwrap().objective().prediction, Prediction::V, "zero SNR cannot train ε");
        for &name in Dataset::ALL {
            assert_eq!(query(&[("data", name.name())]).unwrap().spec.dataset, name);
        }
    }

    #[test]
    fn unknown_names_and_bad_numbers_are_refused_with_the_valid_names() {
        assert_eq!(query(&[("data", "svhn")]).unwrap_err(), "?data=svhn: svhn is not a dataset (pick one of mnist, fashion-mnist, cifar10)");
        assert_eq!(query(&[("model", "huge")]).unwrap_err(), "?model=huge: huge is not a preset (pick one of tiny, mnist-small, ddpm-cifar10)");
        assert_eq!(query(&[("schedule", "sqrt")]).unwrap_err(), "?schedule=sqrt: sqrt is not a schedule (pick one of linear, cosine)");
        assert!(query(&[("batch", "many")]).unwrap_err().starts_with("?batch=many: "));
        assert!(query(&[("bench", "x")]).is_err());
        assert!(query(&[("classes", "yes")]).is_err());
        assert!(query(&[("zero_snr", "2")]).is_err());
        // Values that cannot train are refused in words, not quietly changed.
        assert_eq!(query(&[("batch", "0")]).unwrap_err(), "The settings in the address cannot train: batch_size is 0; it must be at least 1.");
        assert_eq!(query(&[("count", "1000")]).unwrap_err(), "The settings in the address cannot train: count: 1000; the limit is 64.");
        assert!(query(&[("quality_count", "2")]).is_err());
        assert!(query(&[("tiles", "0")]).is_err());
        assert!(query(&[("autosave", "0")]).is_err());
    }
}
