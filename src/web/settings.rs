//! The tab's settings from its URL (`?data=cifar10&model=tiny&batch=8`): a pure function of
//! the query, so that it builds and is tested natively. Defaults are the core's small-data
//! [`Recipe`]; names parse with the core's enums, and an unknown one is an error listing the
//! valid ones.

use std::str::FromStr;

use crate::data::Dataset;
use crate::diffusion::{BetaSchedule, Objective, Prediction, ScheduleConfig};
use crate::model::Preset;
use crate::train::{Recipe, inverse_sqrt_decay_setting, min_snr_setting};

/// The most images a grid of the tab holds (`?count=`).
pub const MAX_COUNT: usize = 64;

/// Samples of one quality measurement in the tab, at most (the test split's first tile holds
/// 10,000 images; more would keep the worker from training for minutes).
pub const MAX_QUALITY_COUNT: usize = 2000;

/// Settings of a session, from the URL or defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub data: Dataset,
    pub preset: Preset,
    pub schedule: BetaSchedule,
    pub batch: usize,
    pub learning_rate: f64,
    /// Adam's β₂ (`?adam_beta2=0.99`; absent: the recipe's).
    pub adam_beta_2: f64,
    pub ema_decay: f64,
    /// The power-function EMA's γ (`?ema_power=6.94`; absent: the recipe's).
    pub ema_power: Option<f64>,
    /// What a new model predicts (`?prediction=epsilon|sample|v`).
    pub prediction: Prediction,
    /// Zero terminal SNR for a new model (`?zero_snr=1`, Lin et al. 2024).
    pub zero_terminal_snr: bool,
    /// Min-SNR-γ loss weighting (`?min_snr=5`, `?min_snr=0` for none; absent: the recipe's).
    pub min_snr_gamma: Option<f64>,
    /// Steps of learning-rate warm-up (`?warmup=500`; absent: the recipe's).
    pub warmup_steps: usize,
    /// The step the inverse square root decay of the rate starts from (`?inverse_sqrt_decay=`,
    /// 0 for none; absent: the recipe's).
    pub inverse_sqrt_decay_from: Option<usize>,
    /// Refresh the preview grid every this many steps.
    pub preview_every: usize,
    /// DDIM steps of the preview grid.
    pub preview_steps: usize,
    /// Measure sample quality every this many steps (`?quality_every=`; 0: only on the button).
    pub quality_every: usize,
    /// Samples per quality measurement (`?quality_count=`, at least 8).
    pub quality_count: usize,
    /// DDIM steps of the quality measurement's samples (`?quality_steps=`; `eval --steps`).
    pub quality_steps: usize,
    /// Seed of the sampling noise (the CLI's `--seed`).
    pub seed: u64,
    /// Images per grid.
    pub count: usize,
    /// Load at most this many data tiles (10,000 images each).
    pub max_tiles: usize,
    /// Save the run to browser storage every this many steps (and on Pause).
    pub autosave_every: usize,
    /// Train a class-conditional model (`?classes=1`) for classifier-free guidance.
    pub conditional: bool,
    /// Whether the URL named the batch size (a resumed run then takes it: the way to continue
    /// with a smaller batch after the GPU ran out of memory).
    pub batch_given: bool,
    /// Measure instead of waiting for Train: this many timed training steps, then DDIM-50
    /// (`?bench=5`; the numbers appear as JSON in the `bench` element).
    pub bench: Option<usize>,
    /// For the page's fault tests only: destroy the GPU device (a real device loss, through
    /// wgpu's `destroy`) right after this training step (`?test_lose_gpu_at=2`).
    pub lose_gpu_at: Option<usize>,
    /// For the page's fault tests only: panic in this training step (`?test_panic_at=2`).
    pub panic_at: Option<usize>,
}

impl Default for Settings {
    /// The small-data recipe, as `train` uses it.
    fn default() -> Self {
        let recipe = Recipe::SMALL_DATA;
        Self {
            data: recipe.dataset,
            preset: recipe.preset,
            schedule: recipe.schedule,
            batch: recipe.batch,
            learning_rate: recipe.learning_rate,
            adam_beta_2: recipe.adam_beta_2,
            ema_decay: recipe.ema_decay,
            ema_power: recipe.ema_power,
            min_snr_gamma: recipe.min_snr_gamma,
            warmup_steps: recipe.warmup_steps,
            inverse_sqrt_decay_from: recipe.inverse_sqrt_decay_from,
            prediction: recipe.prediction,
            zero_terminal_snr: false,
            preview_every: recipe.preview_every,
            quality_every: recipe.quality_every,
            quality_count: recipe.quality_count,
            quality_steps: recipe.sample_steps,
            preview_steps: recipe.preview_steps,
            seed: 0,
            count: recipe.count,
            max_tiles: usize::MAX,
            autosave_every: recipe.save_every,
            conditional: false,
            batch_given: false,
            bench: None,
            lose_gpu_at: None,
            panic_at: None,
        }
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
        let d = Self::default();
        let count = parse(&get, "count")?.unwrap_or(d.count);
        Ok(Self {
            data: parse(&get, "data")?.unwrap_or(d.data),
            preset: parse(&get, "model")?.unwrap_or(d.preset),
            schedule: parse(&get, "schedule")?.unwrap_or(d.schedule),
            batch: parse(&get, "batch")?.unwrap_or(d.batch).max(1),
            learning_rate: parse(&get, "lr")?.unwrap_or(d.learning_rate),
            adam_beta_2: parse(&get, "adam_beta2")?.unwrap_or(d.adam_beta_2),
            ema_decay: parse(&get, "ema")?.unwrap_or(d.ema_decay),
            ema_power: parse(&get, "ema_power")?.or(d.ema_power),
            min_snr_gamma: parse(&get, "min_snr")?.map_or(d.min_snr_gamma, min_snr_setting),
            warmup_steps: parse(&get, "warmup")?.unwrap_or(d.warmup_steps),
            inverse_sqrt_decay_from: parse(&get, "inverse_sqrt_decay")?.map_or(d.inverse_sqrt_decay_from, inverse_sqrt_decay_setting),
            prediction: parse(&get, "prediction")?.unwrap_or(d.prediction),
            zero_terminal_snr: get("zero_snr").map(|v| flag("zero_snr", &v)).transpose()?.unwrap_or(d.zero_terminal_snr),
            preview_every: parse(&get, "preview_every")?.unwrap_or(d.preview_every).max(1),
            quality_every: parse(&get, "quality_every")?.unwrap_or(d.quality_every),
            quality_count: parse(&get, "quality_count")?.unwrap_or(d.quality_count).clamp(8, MAX_QUALITY_COUNT),
            quality_steps: parse(&get, "quality_steps")?.unwrap_or(d.quality_steps).max(1),
            preview_steps: parse(&get, "preview_steps")?.unwrap_or(d.preview_steps).max(1),
            seed: parse(&get, "seed")?.unwrap_or(d.seed),
            count: usize::clamp(count, 1, MAX_COUNT),
            max_tiles: parse(&get, "tiles")?.unwrap_or(d.max_tiles).max(1),
            autosave_every: parse(&get, "autosave")?.unwrap_or(d.autosave_every).max(1),
            batch_given: get("batch").is_some(),
            conditional: get("classes").map(|v| Self::parse_classes(&v)).transpose()?.unwrap_or(d.conditional),
            bench: parse(&get, "bench")?,
            lose_gpu_at: parse(&get, "test_lose_gpu_at")?,
            panic_at: parse(&get, "test_panic_at")?,
        })
    }

    /// The scheduler config of a new model with these settings: the recipe's, with the
    /// address's schedule, prediction and zero terminal SNR.
    pub fn schedule_config(&self) -> ScheduleConfig {
        let config = ScheduleConfig { beta_schedule: self.schedule, prediction_type: self.prediction, ..Recipe::SMALL_DATA.schedule_config() };
        if self.zero_terminal_snr { config.with_zero_terminal_snr() } else { config }
    }

    /// The loss a new model with these settings trains with.
    pub fn objective(&self) -> Objective {
        Objective::new(&self.schedule_config(), self.min_snr_gamma)
    }

    /// `?classes=1` (class-conditional) or `0`.
    pub fn parse_classes(value: &str) -> Result<bool, String> {
        flag("classes", value)
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

    fn query(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_query(move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    }

    #[test]
    fn an_empty_query_gives_the_small_data_recipe() {
        let settings = query(&[]).unwrap();
        assert_eq!(settings, Settings::default());
        let recipe = Recipe::SMALL_DATA;
        assert_eq!((settings.batch, settings.learning_rate, settings.ema_decay), (recipe.batch, recipe.learning_rate, recipe.ema_decay));
        assert_eq!((settings.data, settings.preset), (Dataset::Mnist, Preset::MnistSmall));
    }

    #[test]
    fn names_and_numbers_are_read_from_the_query() {
        let settings = query(&[("data", "cifar10"), ("model", "tiny"), ("schedule", "cosine"), ("batch", "8"), ("classes", "1"), ("count", "1000"), ("bench", "3")]).unwrap();
        assert_eq!((settings.data, settings.preset, settings.schedule), (Dataset::Cifar10, Preset::Tiny, BetaSchedule::Cosine));
        assert_eq!((settings.batch, settings.batch_given, settings.conditional), (8, true, true));
        assert_eq!((settings.count, settings.bench), (MAX_COUNT, Some(3)));
        let recipe = query(&[("prediction", "v"), ("zero_snr", "1"), ("min_snr", "5"), ("warmup", "100"), ("ema_power", "6.94"), ("inverse_sqrt_decay", "400"), ("adam_beta2", "0.99")]).unwrap();
        assert_eq!((recipe.prediction, recipe.zero_terminal_snr, recipe.min_snr_gamma), (Prediction::V, true, Some(5.0)));
        assert_eq!((recipe.warmup_steps, recipe.ema_power, recipe.inverse_sqrt_decay_from, recipe.adam_beta_2), (100, Some(6.94), Some(400), 0.99));
        assert_eq!(query(&[("min_snr", "0")]).unwrap().min_snr_gamma, None, "0 turns the weighting off");
        let objective = query(&[("prediction", "epsilon"), ("min_snr", "0"), ("schedule", "linear")]).unwrap().objective();
        assert!(objective.is_algorithm_1(), "the address's Algorithm 1: {}", objective.key());
        assert_eq!(query(&[]).unwrap().objective().key(), "prediction=v min_snr=5 schedule=cosine zero_snr=0");
        assert_eq!(query(&[("prediction", "epsilon"), ("zero_snr", "1")]).unwrap().objective().prediction, Prediction::V, "zero SNR cannot train ε");
        assert!(query(&[("zero_snr", "2")]).is_err());
        for &name in Dataset::ALL {
            assert_eq!(query(&[("data", name.name())]).unwrap().data, name);
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
    }
}
