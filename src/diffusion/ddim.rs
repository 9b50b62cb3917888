//! DDIM (Song et al. 2021): deterministic at η = 0, DDPM-like at η = 1.

use burn::tensor::Tensor;

use super::{Schedule, StepOutput, predict_x0};

/// A DDIM sampler over `steps` of the schedule's timesteps ("leading" spacing, as diffusers'
/// default: t = (S−1)·k, …, k, 0 with k = T / S).
#[derive(Clone, Debug)]
pub struct Ddim {
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<usize>,
    eta: f64,
    clip_sample: bool,
}

impl Ddim {
    pub fn new(schedule: &Schedule, steps: usize, eta: f64, clip_sample: bool) -> Self {
        let total = schedule.len();
        let steps = steps.clamp(1, total);
        let ratio = total / steps;
        let timesteps = (0..steps).rev().map(|i| i * ratio).collect();
        Self { alphas_cumprod: schedule.alphas_cumprod.clone(), timesteps, eta, clip_sample }
    }

    /// Timesteps in the order they are visited (descending).
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Whether step `i` draws fresh noise (only when η > 0).
    pub fn needs_noise(&self, _i: usize) -> bool {
        self.eta > 0.0
    }

    /// One update x_t -> x_{t_prev} (DDIM eq. 12), given ε_θ(x_t, t).
    pub fn step(&self, i: usize, eps: Tensor<4>, sample: Tensor<4>, noise: Option<Tensor<4>>) -> StepOutput {
        let t = self.timesteps[i];
        let alpha_bar = self.alphas_cumprod[t];
        // ᾱ_{t_prev}; past the last step the clean image, ᾱ = 1 (diffusers' set_alpha_to_one).
        let alpha_bar_prev = self.timesteps.get(i + 1).map_or(1.0, |&p| self.alphas_cumprod[p]);

        let pred_x0 = predict_x0(sample, eps.clone(), alpha_bar, self.clip_sample);
        // σ_t(η) = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)   (DDIM eq. 16)
        let variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev);
        let sigma = self.eta * variance.max(0.0).sqrt();
        // x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε_θ + σ z   (DDIM eq. 12)
        let direction = eps.mul_scalar((1.0 - alpha_bar_prev - sigma * sigma).max(0.0).sqrt());
        let mut prev = pred_x0.clone().mul_scalar(alpha_bar_prev.sqrt()) + direction;
        if sigma > 0.0 {
            let z = noise.expect("DDIM with η > 0 needs noise at every step");
            prev = prev + z.mul_scalar(sigma);
        }
        StepOutput { prev_sample: prev, pred_x0 }
    }
}
