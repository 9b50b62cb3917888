//! DDIM (Song et al. 2021, eq. 12): deterministic at η = 0, DDPM-like at η = 1.

use burn::tensor::Tensor;

use super::{Schedule, Spacing, StepOutput, limit_x0, split_prediction};

/// DDIM's eq. (12) (Song et al. 2021) in ᾱ notation, as MathML, for the sampling panel.
pub const EQUATION: &str = r#"<math display="block"><mtext>DDIM:&#xa0;</mtext><msub><mi>x</mi><mrow><mi>t</mi><mo>−</mo><mn>1</mn></mrow></msub><mo>=</mo><msqrt><msub><mi>ᾱ</mi><mrow><mi>t</mi><mo>−</mo><mn>1</mn></mrow></msub></msqrt><munder><munder><mfrac><mrow><msub><mi>x</mi><mi>t</mi></msub><mo>−</mo><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt><msub><mi>ε</mi><mi>θ</mi></msub></mrow><msqrt><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt></mfrac><mo>⏟</mo></munder><mrow><msub><mover><mi>x</mi><mo>^</mo></mover><mn>0</mn></msub></mrow></munder><mo>+</mo><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mrow><mi>t</mi><mo>−</mo><mn>1</mn></mrow></msub><mo>−</mo><msubsup><mi>σ</mi><mi>t</mi><mn>2</mn></msubsup></msqrt><msub><mi>ε</mi><mi>θ</mi></msub><mo>+</mo><msub><mi>σ</mi><mi>t</mi></msub><msub><mi>ε</mi><mi>t</mi></msub><mo>,</mo><mspace width="1em"/><msub><mi>σ</mi><mi>t</mi></msub><mo>=</mo><mi>η</mi><msqrt><mfrac><mrow><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mrow><mi>t</mi><mo>−</mo><mn>1</mn></mrow></msub></mrow><mrow><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></mrow></mfrac></msqrt><msqrt><mn>1</mn><mo>−</mo><mfrac><msub><mi>ᾱ</mi><mi>t</mi></msub><msub><mi>ᾱ</mi><mrow><mi>t</mi><mo>−</mo><mn>1</mn></mrow></msub></mfrac></msqrt></math>"#;

/// A DDIM sampler over `steps` of the schedule's timesteps.
///
/// The timesteps are those of diffusers' `DDIMScheduler.set_timesteps` for each spacing. Each
/// step goes to the next timestep of that list, τ_{i−1} in the paper's notation (and to the
/// clean image after the last: ᾱ = 1 with `set_alpha_to_one`, else ᾱ_0). diffusers instead
/// always steps to t − T/S, which is the same for `leading` and for `trailing` when S divides T,
/// but not for `linspace`.
#[derive(Clone, Debug)]
pub struct Ddim {
    schedule: Schedule,
    timesteps: Vec<usize>,
    eta: f64,
}

/// diffusers' `DDIMScheduler` timesteps, descending; `offset` is `steps_offset`, added to
/// `leading` spacing's (and clamped to T − 1: [`ScheduleConfig::validate`] keeps it below T).
pub fn ddim_timesteps(spacing: Spacing, total: usize, steps: usize, offset: usize) -> Vec<usize> {
    let steps = steps.clamp(1, total);
    match spacing {
        // (0..S) · ⌊T/S⌋ + offset, reversed
        Spacing::Leading => (0..steps).rev().map(|i| (i * (total / steps) + offset).min(total - 1)).collect(),
        // round(T, T − T/S, …) − 1
        Spacing::Trailing => {
            let ratio = total as f64 / steps as f64;
            (0..steps).map(|i| (total as f64 - i as f64 * ratio).round_ties_even() as usize - 1).collect()
        }
        // round(linspace(0, T − 1, S)), reversed
        Spacing::Linspace => {
            let last = (total - 1) as f64;
            let step = if steps > 1 { last / (steps - 1) as f64 } else { 0.0 };
            (0..steps).rev().map(|i| (i as f64 * step).round_ties_even() as usize).collect()
        }
    }
}

impl Ddim {
    /// Clips or thresholds x̂_0 and ends at ᾱ = 1 or ᾱ_0 as `schedule.config` says.
    pub fn new(schedule: &Schedule, steps: usize, eta: f64, spacing: Spacing) -> Self {
        let timesteps = ddim_timesteps(spacing, schedule.len(), steps, schedule.config.steps_offset);
        Self { schedule: schedule.clone(), timesteps, eta }
    }

    /// Timesteps in the order they are visited (descending).
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Whether step `i` draws fresh noise (only when η > 0).
    pub fn needs_noise(&self, _i: usize) -> bool {
        self.eta > 0.0
    }

    /// One update x_t → x_{t_prev} (DDIM eq. 12), given the network's output at x_t.
    pub fn step(&self, i: usize, output: Tensor<4>, sample: Tensor<4>, noise: Option<Tensor<4>>) -> StepOutput {
        let t = self.timesteps[i];
        let alpha_bar = self.schedule.alphas_cumprod[t];
        let config = &self.schedule.config;
        let alpha_bar_prev = match self.timesteps.get(i + 1) {
            Some(&t) => self.schedule.alphas_cumprod[t],
            None if config.set_alpha_to_one => 1.0,
            None => self.schedule.alphas_cumprod[0],
        };

        // ε̂ stays the network's (diffusers' `use_clipped_model_output` = False).
        let (pred_x0, eps) = split_prediction(config.prediction_type, output, sample, alpha_bar);
        let pred_x0 = limit_x0(config, pred_x0, true);
        // σ_t(η) = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev)   (DDIM eq. 16)
        let variance = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev);
        let sigma = self.eta * variance.max(0.0).sqrt();
        // x_prev = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε̂ + σ z   (DDIM eq. 12)
        let direction = eps.mul_scalar((1.0 - alpha_bar_prev - sigma * sigma).max(0.0).sqrt());
        let mut prev = pred_x0.clone().mul_scalar(alpha_bar_prev.sqrt()) + direction;
        if sigma > 0.0 {
            let z = noise.expect("DDIM with η > 0 needs noise at every step");
            prev = prev + z.mul_scalar(sigma);
        }
        StepOutput { prev_sample: prev, pred_x0 }
    }
}
