//! DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of the
//! diffusion ODE in terms of the data prediction x̂_0; good images in 10–20 steps.

use burn::tensor::Tensor;

use super::{Schedule, Spacing, StepOutput, limit_x0, split_prediction};

/// DPM-Solver++(2M)'s update (Lu et al. 2022, Algorithm 2) in ᾱ notation, as MathML, for the
/// sampling panel. The first step, with no earlier x̂_0, uses D_1 = x̂_0 (first order).
pub const EQUATION: &str = r#"<math display="block"><mtext>DPM-Solver++(2M):&#xa0;</mtext><msub><mi>x</mi><msub><mi>t</mi><mi>i</mi></msub></msub><mo>=</mo><mfrac><msub><mi>σ</mi><msub><mi>t</mi><mi>i</mi></msub></msub><msub><mi>σ</mi><msub><mi>t</mi><mrow><mi>i</mi><mo>−</mo><mn>1</mn></mrow></msub></msub></mfrac><msub><mi>x</mi><msub><mi>t</mi><mrow><mi>i</mi><mo>−</mo><mn>1</mn></mrow></msub></msub><mo>−</mo><msub><mi>α</mi><msub><mi>t</mi><mi>i</mi></msub></msub><mo>(</mo><msup><mi>e</mi><mrow><mo>−</mo><msub><mi>h</mi><mi>i</mi></msub></mrow></msup><mo>−</mo><mn>1</mn><mo>)</mo><msub><mi>D</mi><mi>i</mi></msub><mo>,</mo><mspace width="1em"/><msub><mi>D</mi><mi>i</mi></msub><mo>=</mo><mo>(</mo><mn>1</mn><mo>+</mo><mfrac><mn>1</mn><mrow><mn>2</mn><msub><mi>r</mi><mi>i</mi></msub></mrow></mfrac><mo>)</mo><msub><mover><mi>x</mi><mo>^</mo></mover><mn>0</mn></msub><mo>(</mo><msub><mi>x</mi><msub><mi>t</mi><mrow><mi>i</mi><mo>−</mo><mn>1</mn></mrow></msub></msub><mo>)</mo><mo>−</mo><mfrac><mn>1</mn><mrow><mn>2</mn><msub><mi>r</mi><mi>i</mi></msub></mrow></mfrac><msub><mover><mi>x</mi><mo>^</mo></mover><mn>0</mn></msub><mo>(</mo><msub><mi>x</mi><msub><mi>t</mi><mrow><mi>i</mi><mo>−</mo><mn>2</mn></mrow></msub></msub><mo>)</mo><mo>,</mo><mspace width="1em"/><msub><mi>h</mi><mi>i</mi></msub><mo>=</mo><msub><mi>λ</mi><msub><mi>t</mi><mi>i</mi></msub></msub><mo>−</mo><msub><mi>λ</mi><msub><mi>t</mi><mrow><mi>i</mi><mo>−</mo><mn>1</mn></mrow></msub></msub><mo>,</mo><mspace width="0.5em"/><msub><mi>r</mi><mi>i</mi></msub><mo>=</mo><mfrac><msub><mi>h</mi><mrow><mi>i</mi><mo>−</mo><mn>1</mn></mrow></msub><msub><mi>h</mi><mi>i</mi></msub></mfrac><mo>,</mo><mspace width="0.5em"/><msub><mi>λ</mi><mi>t</mi></msub><mo>=</mo><mi>log</mi><mfrac><msub><mi>α</mi><mi>t</mi></msub><msub><mi>σ</mi><mi>t</mi></msub></mfrac><mo>,</mo><mspace width="0.5em"/><msub><mi>α</mi><mi>t</mi></msub><mo>=</mo><msqrt><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt><mo>,</mo><mspace width="0.5em"/><msub><mi>σ</mi><mi>t</mi></msub><mo>=</mo><msqrt><mn>1</mn><mo>−</mo><msub><mi>ᾱ</mi><mi>t</mi></msub></msqrt></math>"#;

/// DPM-Solver++(2M) as diffusers' `DPMSolverMultistepScheduler` runs it by default
/// (`solver_order` 2, `midpoint`, `lower_order_final`, `final_sigmas_type` "zero"): first order
/// at the first and the last step, second order in between; the last step lands on x̂_0.
#[derive(Clone, Debug)]
pub struct DpmSolver {
    schedule: Schedule,
    timesteps: Vec<usize>,
    /// σ_i = √((1 − ᾱ)/ᾱ) at each timestep, then 0 (the clean image).
    sigmas: Vec<f64>,
    /// x̂_0 of the previous step (the multistep history).
    previous_x0: Option<Tensor<4>>,
}

/// diffusers' `DPMSolverMultistepScheduler` timesteps, descending; `offset` is
/// `steps_offset`, added to `leading` spacing's (clamped to T − 1).
pub fn dpm_solver_timesteps(spacing: Spacing, total: usize, steps: usize, offset: usize) -> Vec<usize> {
    let steps = steps.clamp(1, total);
    match spacing {
        // (0..=S) · ⌊T/(S+1)⌋ + offset, reversed, without the first
        Spacing::Leading => (1..=steps).rev().map(|i| (i * (total / (steps + 1)) + offset).min(total - 1)).collect(),
        // round(T, T − T/S, …) − 1
        Spacing::Trailing => {
            let ratio = total as f64 / steps as f64;
            (0..steps).map(|i| (total as f64 - i as f64 * ratio).round_ties_even() as usize - 1).collect()
        }
        // round(linspace(0, T − 1, S + 1)), reversed, without the 0
        Spacing::Linspace => {
            let step = (total - 1) as f64 / steps as f64;
            (1..=steps).rev().map(|i| (i as f64 * step).round_ties_even() as usize).collect()
        }
    }
}

/// (α, σ, λ) of the VP SDE at noise level `sigma` = σ/α: α = 1/√(1 + sigma²), λ = log(α/σ).
fn alpha_sigma_lambda(sigma: f64) -> (f64, f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha, -sigma.ln())
}

impl DpmSolver {
    /// Thresholds x̂_0 as `schedule.config` says (no clipping: diffusers' DPM-Solver++ has none).
    pub fn new(schedule: &Schedule, steps: usize, spacing: Spacing) -> Self {
        let timesteps = dpm_solver_timesteps(spacing, schedule.len(), steps, schedule.config.steps_offset);
        let mut schedule = schedule.clone();
        if schedule.config.rescale_betas_zero_snr {
            // σ = ∞ at ᾱ = 0 has no λ: diffusers sets the last ᾱ to 2^−24 instead.
            let last = schedule.alphas_cumprod.len() - 1;
            schedule.alphas_cumprod[last] = 2f64.powi(-24);
        }
        let mut sigmas: Vec<f64> = timesteps
            .iter()
            .map(|&t| {
                let ab = schedule.alphas_cumprod[t];
                ((1.0 - ab) / ab).sqrt()
            })
            .collect();
        sigmas.push(0.0);
        Self { schedule, timesteps, sigmas, previous_x0: None }
    }

    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Takes one update from x_{s} to x_{t} (t the next, less noisy level), given the
    /// network's output at x_s. Steps must be taken in order: the solver keeps x̂_0 of the
    /// previous step.
    pub fn step(&mut self, i: usize, output: Tensor<4>, sample: Tensor<4>) -> StepOutput {
        let alpha_bar = self.schedule.alphas_cumprod[self.timesteps[i]];
        let (x0, _) = split_prediction(self.schedule.prediction(), output, sample.clone(), alpha_bar);
        let x0 = limit_x0(&self.schedule.config, x0, false);
        let previous = self.previous_x0.replace(x0.clone());

        let (sigma_s, sigma_t) = (self.sigmas[i], self.sigmas[i + 1]);
        // The last level is σ = 0: the ODE's end point is the data prediction itself.
        if sigma_t == 0.0 {
            return StepOutput { prev_sample: x0.clone(), pred_x0: x0 };
        }
        let (alpha_t, s_t, lambda_t) = alpha_sigma_lambda(sigma_t);
        let (_, s_s, lambda_s) = alpha_sigma_lambda(sigma_s);
        let h = lambda_t - lambda_s;
        // x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D   (Lu et al. 2022, eq. 9 / Algorithm 2)
        let phi = alpha_t * ((-h).exp() - 1.0);
        let d = match (i, previous) {
            (0, _) | (_, None) => x0.clone(), // first order (DDIM) to start the history
            (_, Some(x0_prev)) => {
                // D = x̂_0 + (1/(2r)) (x̂_0 − x̂_0,prev), r = h_prev / h
                let (_, _, lambda_prev) = alpha_sigma_lambda(self.sigmas[i - 1]);
                let r = (lambda_s - lambda_prev) / h;
                x0.clone() + (x0.clone() - x0_prev).mul_scalar(0.5 / r)
            }
        };
        let prev = sample.mul_scalar(s_t / s_s) - d.mul_scalar(phi);
        StepOutput { prev_sample: prev, pred_x0: x0 }
    }
}
