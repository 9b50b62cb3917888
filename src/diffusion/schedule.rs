//! The noise schedule (DDPM §2, eq. 4), computed exactly as diffusers' schedulers compute it.

use serde::{Deserialize, Serialize};

use super::{Spacing, Variance};
use crate::limits;

/// The offset s of Nichol & Dhariwal's cosine schedule (2021, eq. 17): small, so that β_t near
/// t = 0 is not too small.
pub const COSINE_OFFSET: f64 = 0.008;

/// How β_t runs from t = 0 to T − 1. Serialised with diffusers' `beta_schedule` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BetaSchedule {
    /// β evenly spaced from `beta_start` to `beta_end` (Ho et al. 2020).
    #[default]
    #[serde(rename = "linear")]
    Linear,
    /// ᾱ_t = cos²((t/T + s)/(1 + s) · π/2) with s = 0.008, β capped at 0.999
    /// (Nichol & Dhariwal 2021, eq. 17; diffusers' `squaredcos_cap_v2`).
    #[serde(rename = "squaredcos_cap_v2")]
    Cosine,
}

// Names in flags, URLs and menus (files keep diffusers' names, above).
named!(BetaSchedule, "schedule", [Linear => "linear", Cosine => "cosine"]);

impl BetaSchedule {
    /// What a menu shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Linear => "linear β (DDPM)",
            Self::Cosine => "cosine (Nichol & Dhariwal)",
        }
    }
}

/// What the network predicts. Serialised with diffusers' `prediction_type` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Prediction {
    /// The noise ε (Ho et al. 2020).
    #[default]
    #[serde(rename = "epsilon")]
    Epsilon,
    /// The clean image x_0.
    #[serde(rename = "sample")]
    Sample,
    /// v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022, §4).
    #[serde(rename = "v_prediction")]
    V,
}

named!(Prediction, "prediction type", [Epsilon => "epsilon", Sample => "sample", V => "v"]);

/// The schedule's and the samplers' settings, named as in a diffusers `scheduler_config.json`
/// and with diffusers' defaults. Read by [`ScheduleConfig::from_json`] (every field that
/// changes a result is honoured or refused by name) and written as that file's JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScheduleConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub prediction_type: Prediction,
    /// Rescale β so that ᾱ_{T−1} = 0: zero terminal SNR (Lin et al. 2024, Algorithm 1).
    pub rescale_betas_zero_snr: bool,
    /// Clip x̂_0 to ±`clip_sample_range` at each DDPM and DDIM step (DPM-Solver++ has no
    /// clipping in diffusers, and none here).
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    /// Dynamic thresholding of x̂_0 instead (Saharia et al. 2022, Imagen §2.3): each image is
    /// clipped to ±s and divided by s, s its `dynamic_thresholding_ratio` quantile of |x̂_0|
    /// clamped to [1, `sample_max_value`]. All three samplers.
    pub thresholding: bool,
    pub dynamic_thresholding_ratio: f64,
    pub sample_max_value: f64,
    /// DDIM's step after its last timestep goes to ᾱ = 1 (the clean image); else to ᾱ_0.
    pub set_alpha_to_one: bool,
    /// Added to every timestep of DDIM's and DPM-Solver++'s `leading` spacing (Stable Diffusion
    /// uses 1). DDPM visits every timestep, so it has no offset (diffusers' would index past T).
    pub steps_offset: usize,
    /// The few-step samplers' spacing; absent, each sampler's diffusers default (leading for
    /// DDIM, linspace for DPM-Solver++). A sampler's own `--spacing` comes first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestep_spacing: Option<Spacing>,
    /// DDPM's step variance when the sampler is `ddpm` (`ddpm-large` is always β_t).
    pub variance_type: Variance,
}

impl Default for ScheduleConfig {
    /// The DDPM paper's: T = 1000, linear β from 1e-4 to 0.02, ε-prediction; the rest as
    /// diffusers' `DDPMScheduler` and `DDIMScheduler` default them.
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            beta_start: 1e-4,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            prediction_type: Prediction::Epsilon,
            rescale_betas_zero_snr: false,
            clip_sample: true,
            clip_sample_range: 1.0,
            thresholding: false,
            dynamic_thresholding_ratio: 0.995,
            sample_max_value: 1.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            timestep_spacing: None,
            variance_type: Variance::FixedSmall,
        }
    }
}

impl ScheduleConfig {
    /// Zero terminal SNR as Lin et al. 2024 train and sample it: β rescaled so that ᾱ_{T−1} = 0,
    /// the few-step samplers starting at T − 1 (`trailing` spacing, §3.3), and v-prediction
    /// where the model would predict ε (§3.2).
    pub fn with_zero_terminal_snr(self) -> Self {
        let prediction_type = if self.prediction_type == Prediction::Epsilon { Prediction::V } else { self.prediction_type };
        Self { rescale_betas_zero_snr: true, timestep_spacing: Some(Spacing::Trailing), prediction_type, ..self }
    }

    /// Checks the settings before a [`Schedule`] is built from them (from a file or the
    /// command line): 1 ≤ T ≤ [`limits::MAX_TRAIN_TIMESTEPS`], each β in [0, 1).
    pub fn validate(&self) -> Result<(), String> {
        if self.num_train_timesteps == 0 {
            return Err("num_train_timesteps is 0".into());
        }
        limits::at_most("num_train_timesteps", self.num_train_timesteps, limits::MAX_TRAIN_TIMESTEPS)?;
        for (name, beta) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(format!("{name} is {beta}; it must be in [0, 1)"));
            }
        }
        for (name, value) in [("clip_sample_range", self.clip_sample_range), ("sample_max_value", self.sample_max_value)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} is {value}; it must be a positive number"));
            }
        }
        if !(self.dynamic_thresholding_ratio > 0.0 && self.dynamic_thresholding_ratio <= 1.0) {
            return Err(format!("dynamic_thresholding_ratio is {}; it must be in (0, 1]", self.dynamic_thresholding_ratio));
        }
        if self.rescale_betas_zero_snr && self.prediction_type == Prediction::Epsilon {
            return Err("rescale_betas_zero_snr needs prediction_type v_prediction or sample: at zero SNR (ᾱ = 0) an ε-prediction gives no x̂_0 (Lin et al. 2024, §3.2)".into());
        }
        if self.steps_offset >= self.num_train_timesteps {
            return Err(format!("steps_offset is {}; it must be below num_train_timesteps", self.steps_offset));
        }
        Ok(())
    }
}

/// β_t and ᾱ_t, indexed by `t = 0..T` (diffusers' 0-based timesteps).
///
/// Values are those of diffusers' `DDPMScheduler` in float32: β rounded to f32, α = 1 − β in
/// f32, the running product accumulated in f64 and each ᾱ_t rounded to f32 (as PyTorch's CPU
/// `cumprod` does). They are stored widened to f64 for the samplers' coefficient math.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub config: ScheduleConfig,
    pub betas: Vec<f64>,
    /// ᾱ_t = ∏_{s ≤ t} (1 − β_s).
    pub alphas_cumprod: Vec<f64>,
}

impl Schedule {
    pub fn new(config: ScheduleConfig) -> Self {
        let t = config.num_train_timesteps;
        let betas: Vec<f32> = match config.beta_schedule {
            BetaSchedule::Linear => linspace(config.beta_start, config.beta_end, t),
            BetaSchedule::Cosine => cosine_betas(t),
        };
        let betas = if config.rescale_betas_zero_snr { zero_terminal_snr(&betas) } else { betas };
        let mut product = 1.0f64;
        let alphas_cumprod = betas
            .iter()
            .map(|&b| {
                product *= f64::from(1.0f32 - b);
                f64::from(product as f32)
            })
            .collect();
        Self { config, betas: betas.into_iter().map(f64::from).collect(), alphas_cumprod }
    }

    /// The DDPM paper's schedule: linear, T = 1000, β from 1e-4 to 0.02.
    pub fn ddpm() -> Self {
        Self::new(ScheduleConfig::default())
    }

    /// Number of diffusion steps T.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    pub fn prediction(&self) -> Prediction {
        self.config.prediction_type
    }

    /// ᾱ at `t`, with ᾱ_{−1} = 1 (the clean image) for `t = None`.
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alphas_cumprod[t])
    }
}

/// β rescaled so that √ᾱ runs from its first value to exactly 0 at T − 1, linearly mapped (Lin et
/// al. 2024, Algorithm 1), in float32 as diffusers' `rescale_zero_terminal_snr` computes it.
fn zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let mut product = 1.0f64;
    let root: Vec<f32> = betas
        .iter()
        .map(|&b| {
            product *= f64::from(1.0f32 - b);
            (product as f32).sqrt()
        })
        .collect();
    let (first, last) = (root[0], root[root.len() - 1]);
    let alpha_bar: Vec<f32> = root.iter().map(|&r| ((r - last) * (first / (first - last))).powi(2)).collect();
    (0..betas.len()).map(|t| 1.0 - if t == 0 { alpha_bar[0] } else { alpha_bar[t] / alpha_bar[t - 1] }).collect()
}

/// `torch.linspace(start, end, n, dtype=float32)`.
fn linspace(start: f64, end: f64, n: usize) -> Vec<f32> {
    let step = if n > 1 { (end - start) / (n - 1) as f64 } else { 0.0 };
    (0..n).map(|i| (start + step * i as f64) as f32).collect()
}

/// diffusers' `betas_for_alpha_bar(T, max_beta=0.999)` with the cosine ᾱ: computed in f64,
/// then stored as f32.
fn cosine_betas(n: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| ((t + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * std::f64::consts::PI / 2.0).cos().powi(2);
    (0..n)
        .map(|i| {
            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_schedule_matches_ddpm_endpoints() {
        // Ho et al. 2020 §4: β_1 = 1e-4, β_T = 0.02, T = 1000 (as f32).
        let s = Schedule::ddpm();
        assert_eq!(s.len(), 1000);
        assert_eq!(s.betas[0], f64::from(1e-4f32));
        assert_eq!(s.betas[999], f64::from(0.02f32));
    }

    #[test]
    fn alphas_cumprod_is_the_closed_form_product() {
        // Closed form of ᾱ_t = ∏(1 − β_s) for the linear schedule, summed in log space; the
        // schedule's f32 rounding keeps it within a few f32 ulps.
        let s = Schedule::ddpm();
        for &t in &[0usize, 1, 10, 500, 999] {
            let log: f64 = (0..=t).map(|i| (1.0 - (1e-4 + i as f64 * (0.02 - 1e-4) / 999.0)).ln()).sum();
            assert!((s.alphas_cumprod[t] - log.exp()).abs() < 1e-6 * log.exp(), "t = {t}");
        }
    }

    #[test]
    fn cosine_schedule_follows_its_closed_form() {
        // Nichol & Dhariwal eq. 17: ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s) · π/2);
        // the product of the (uncapped) β telescopes to exactly that.
        let s = Schedule::new(ScheduleConfig { beta_schedule: BetaSchedule::Cosine, ..Default::default() });
        let f = |t: f64| ((t / 1000.0 + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos().powi(2);
        for &t in &[0usize, 100, 500, 900] {
            let expected = f(t as f64 + 1.0) / f(0.0);
            assert!((s.alphas_cumprod[t] - expected).abs() < 1e-5, "t = {t}");
        }
        assert_eq!(s.betas[999], f64::from(0.999f32)); // the cap
    }

    #[test]
    fn scheduler_config_json_parses_as_diffusers_writes_it() {
        // The keys of google/ddpm-cifar10-32's scheduler_config.json (extra keys ignored).
        let json = r#"{"_class_name": "DDPMScheduler", "beta_end": 0.02, "beta_schedule": "linear",
            "beta_start": 0.0001, "clip_sample": true, "num_train_timesteps": 1000,
            "variance_type": "fixed_large", "trained_betas": null}"#;
        let config = ScheduleConfig::from_json(json).unwrap();
        assert_eq!(config, ScheduleConfig { variance_type: Variance::FixedLarge, ..ScheduleConfig::default() });
        let cosine =
            ScheduleConfig::from_json(r#"{"beta_schedule": "squaredcos_cap_v2", "prediction_type": "v_prediction"}"#)
                .unwrap();
        assert_eq!((cosine.beta_schedule, cosine.prediction_type), (BetaSchedule::Cosine, Prediction::V));
    }

    #[test]
    fn zero_terminal_snr_ends_at_pure_noise_and_needs_another_target_than_noise() {
        // Lin et al. 2024, Algorithm 1: √ᾱ is shifted to 0 at T − 1 and scaled to keep √ᾱ_0.
        let plain = Schedule::ddpm();
        let config = ScheduleConfig::default().with_zero_terminal_snr();
        assert_eq!((config.prediction_type, config.timestep_spacing), (Prediction::V, Some(Spacing::Trailing)));
        let zero = Schedule::new(config);
        assert_eq!(zero.alphas_cumprod[999], 0.0);
        assert!((zero.alphas_cumprod[0] - plain.alphas_cumprod[0]).abs() < 1e-6);
        assert!(zero.alphas_cumprod.windows(2).all(|w| w[1] < w[0]), "ᾱ still falls at every step");
        let eps = ScheduleConfig { rescale_betas_zero_snr: true, ..Default::default() };
        assert!(eps.validate().unwrap_err().contains("prediction_type"));
    }
}
