//! DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) with the posterior variance β̃_t.

use burn::tensor::Tensor;

use super::{Schedule, StepOutput, predict_x0};

/// The ancestral sampler over all T timesteps.
#[derive(Clone, Debug)]
pub struct Ddpm {
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<usize>,
    clip_sample: bool,
}

/// Coefficients of the posterior q(x_{t−1} | x_t, x_0) = N(μ̃, β̃ I) (DDPM eq. 6–7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Posterior {
    /// Weight of x_0 in μ̃: √ᾱ_{t−1} β_t / (1 − ᾱ_t).
    pub coef_x0: f64,
    /// Weight of x_t in μ̃: √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).
    pub coef_xt: f64,
    /// β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) β_t.
    pub variance: f64,
}

impl Posterior {
    pub fn new(alpha_bar: f64, alpha_bar_prev: f64) -> Self {
        let alpha = alpha_bar / alpha_bar_prev;
        let beta = 1.0 - alpha;
        Self {
            coef_x0: alpha_bar_prev.sqrt() * beta / (1.0 - alpha_bar),
            coef_xt: alpha.sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar),
            variance: ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta).max(1e-20),
        }
    }
}

impl Ddpm {
    pub fn new(schedule: &Schedule, clip_sample: bool) -> Self {
        Self {
            alphas_cumprod: schedule.alphas_cumprod.clone(),
            timesteps: (0..schedule.len()).rev().collect(),
            clip_sample,
        }
    }

    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Every step but the last adds noise (Algorithm 2, line 3).
    pub fn needs_noise(&self, i: usize) -> bool {
        self.timesteps[i] > 0
    }

    /// One update x_t -> x_{t−1}, given ε_θ(x_t, t).
    pub fn step(&self, i: usize, eps: Tensor<4>, sample: Tensor<4>, noise: Option<Tensor<4>>) -> StepOutput {
        let t = self.timesteps[i];
        let alpha_bar = self.alphas_cumprod[t];
        let alpha_bar_prev = if t > 0 { self.alphas_cumprod[t - 1] } else { 1.0 };
        let posterior = Posterior::new(alpha_bar, alpha_bar_prev);

        let pred_x0 = predict_x0(sample.clone(), eps, alpha_bar, self.clip_sample);
        let mean = pred_x0.clone().mul_scalar(posterior.coef_x0) + sample.mul_scalar(posterior.coef_xt);
        let prev = if t > 0 {
            let z = noise.expect("DDPM needs noise at every step but the last");
            mean + z.mul_scalar(posterior.variance.sqrt())
        } else {
            mean
        };
        StepOutput { prev_sample: prev, pred_x0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posterior_mean_of_the_true_x0_and_its_forward_sample_interpolates() {
        // Closed form (DDPM eq. 7): with ᾱ_prev = 1 (t = 0) the posterior is x_0 itself.
        let p = Posterior::new(0.9999, 1.0);
        assert!((p.coef_x0 - 1.0).abs() < 1e-12);
        assert!(p.coef_xt.abs() < 1e-12);
        // β̃_t ≤ β_t always (eq. 7): the fixed-small variance is below β.
        let s = Schedule::ddpm();
        for t in 1..s.len() {
            let p = Posterior::new(s.alphas_cumprod[t], s.alphas_cumprod[t - 1]);
            assert!(p.variance <= s.betas[t] + 1e-15);
            // coef_x0 + coef_xt·√ᾱ_t/√ᾱ_{t-1}… the mean of x_{t-1} given x_0 must be √ᾱ_{t−1} x_0:
            // E[μ̃] = coef_x0 + coef_xt √ᾱ_t = √ᾱ_{t−1} (for x_0 = 1).
            let mean = p.coef_x0 + p.coef_xt * s.alphas_cumprod[t].sqrt();
            assert!((mean - s.alphas_cumprod[t - 1].sqrt()).abs() < 1e-12, "t = {t}");
        }
    }
}
