//! DDPM ancestral sampling (Ho et al. 2020, Algorithm 2).

use burn::tensor::Tensor;

use super::{Schedule, StepOutput, limit_x0, split_prediction};

/// Algorithm 2 (Ho et al. 2020) as MathML, for the sampling panel:
/// x_{t−1} = 1/√α_t (x_t − β_t/√(1 − ᾱ_t) ε_θ(x_t, t)) + σ_t z.
pub const EQUATION: &str = r#"<math display="block"><mtext>DDPM:&#xa0;</mtext><msub><mi>x</mi><mrow><mi>t</mi><mo>−</mo><mn>1</mn></mrow></msub><mo>=</mo><mfrac><mn>1</mn><msqrt><msub><mi>α</mi><mi>t</mi></msub></msqrt></mfrac><mrow><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>−</mo><mfrac><msub><mi>β</mi><mi>t</mi></msub><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt></mfrac><msub><mi>ε</mi><mi>θ</mi></msub><mo>(</mo><msub><mi>x</mi><mi>t</mi></msub><mo>,</mo><mi>t</mi><mo>)</mo><mo>)</mo></mrow><mo>+</mo><msub><mi>σ</mi><mi>t</mi></msub><mi>z</mi></math>"#;

/// The variance σ_t² of each reverse step (Ho et al. 2020, §3.2: both give similar results).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Variance {
    /// β̃_t, the posterior variance (diffusers' `fixed_small`).
    #[default]
    FixedSmall,
    /// β_t (diffusers' `fixed_large`).
    FixedLarge,
}

named!(serde Variance, "variance type", [FixedSmall => "fixed_small", FixedLarge => "fixed_large"]);

/// The ancestral sampler over all T timesteps.
#[derive(Clone, Debug)]
pub struct Ddpm {
    schedule: Schedule,
    timesteps: Vec<usize>,
    variance: Variance,
}

/// The posterior q(x_{t−1} | x_t, x_0) = N(μ̃, β̃ I) (DDPM eq. 6–7) and the step's variance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Posterior {
    /// Weight of x_0 in μ̃: √ᾱ_{t−1} β_t / (1 − ᾱ_t).
    pub coef_x0: f64,
    /// Weight of x_t in μ̃: √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t).
    pub coef_xt: f64,
    /// β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) β_t, floored at 1e-20 as diffusers does.
    pub variance: f64,
    /// β_t = 1 − ᾱ_t / ᾱ_{t−1}.
    pub beta: f64,
}

impl Posterior {
    /// Computed in float32 in diffusers' order of operations, so that a step matches
    /// `DDPMScheduler.step` to float rounding (β_t = 1 − ᾱ_t/ᾱ_{t−1} loses digits to cancellation
    /// near t = 0 either way).
    pub fn new(alpha_bar: f64, alpha_bar_prev: f64) -> Self {
        let (ab, ab_prev) = (alpha_bar as f32, alpha_bar_prev as f32);
        let alpha = ab / ab_prev;
        let beta = 1.0 - alpha;
        Self {
            coef_x0: f64::from(ab_prev.sqrt() * beta / (1.0 - ab)),
            coef_xt: f64::from(alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab)),
            variance: f64::from(((1.0 - ab_prev) / (1.0 - ab) * beta).max(1e-20)),
            beta: f64::from(beta),
        }
    }

    /// σ_t² of a reverse step with this variance choice.
    pub fn step_variance(&self, variance: Variance) -> f64 {
        match variance {
            Variance::FixedSmall => self.variance,
            Variance::FixedLarge => self.beta,
        }
    }
}

impl Ddpm {
    /// Clips or thresholds x̂_0 as `schedule.config` says.
    pub fn new(schedule: &Schedule, variance: Variance) -> Self {
        Self { schedule: schedule.clone(), timesteps: (0..schedule.len()).rev().collect(), variance }
    }

    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Every step but the last adds noise (Algorithm 2, line 3).
    pub fn needs_noise(&self, i: usize) -> bool {
        self.timesteps[i] > 0
    }

    /// The posterior at step `i`.
    pub fn posterior(&self, i: usize) -> Posterior {
        let t = self.timesteps[i];
        Posterior::new(self.schedule.alphas_cumprod[t], self.schedule.alpha_bar(t.checked_sub(1)))
    }

    /// One update x_t → x_{t−1} = μ̃(x_t, x̂_0) + σ_t z, given the network's output at x_t.
    pub fn step(&self, i: usize, output: Tensor<4>, sample: Tensor<4>, noise: Option<Tensor<4>>) -> StepOutput {
        let t = self.timesteps[i];
        let posterior = self.posterior(i);
        let alpha_bar = self.schedule.alphas_cumprod[t];
        let (pred_x0, _) = split_prediction(self.schedule.prediction(), output, sample.clone(), alpha_bar);
        let pred_x0 = limit_x0(&self.schedule.config, pred_x0, true);
        let mean = pred_x0.clone().mul_scalar(posterior.coef_x0) + sample.mul_scalar(posterior.coef_xt);
        let prev = if t > 0 {
            let z = noise.expect("DDPM needs noise at every step but the last");
            mean + z.mul_scalar(posterior.step_variance(self.variance).sqrt())
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
        assert!((p.coef_x0 - 1.0).abs() < 1e-6);
        assert!(p.coef_xt.abs() < 1e-6);
        let s = Schedule::ddpm();
        for t in 1..s.len() {
            let p = Posterior::new(s.alphas_cumprod[t], s.alphas_cumprod[t - 1]);
            // β̃_t ≤ β_t always (eq. 7): fixed-small is below fixed-large.
            assert!(p.step_variance(Variance::FixedSmall) <= p.step_variance(Variance::FixedLarge));
            // E[μ̃ | x_0 = 1] = coef_x0 + coef_xt √ᾱ_t must be √ᾱ_{t−1}, up to the float32
            // cancellation in β_t = 1 − ᾱ_t/ᾱ_{t−1} (an ulp of 1, relative to β_t).
            let mean = p.coef_x0 + p.coef_xt * s.alphas_cumprod[t].sqrt();
            let tolerance = 1e-7 / s.betas[t];
            assert!((mean - s.alphas_cumprod[t - 1].sqrt()).abs() < tolerance, "t = {t}");
        }
    }
}
