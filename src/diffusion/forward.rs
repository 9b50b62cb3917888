//! The forward process q(x_t | x_0) in closed form (DDPM eq. 4) and the training loss.

use burn::tensor::{Device, Tensor, TensorData};

use super::{Prediction, Schedule};

/// Per-image coefficients as a `[B, 1, 1, 1]` tensor, looked up on the host.
fn per_image(values: Vec<f32>, device: &Device) -> Tensor<4> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n, 1, 1, 1]), device)
}

/// x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε, one timestep per image (DDPM eq. 4 reparameterised).
pub fn q_sample(schedule: &Schedule, x0: Tensor<4>, noise: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
    let device = x0.device();
    let signal = timesteps.iter().map(|&t| schedule.alphas_cumprod[t].sqrt() as f32).collect();
    let sigma = timesteps.iter().map(|&t| (1.0 - schedule.alphas_cumprod[t]).sqrt() as f32).collect();
    x0 * per_image(signal, &device) + noise * per_image(sigma, &device)
}

/// What the network is trained to output at x_t: ε (DDPM), x_0, or
/// v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 (Salimans & Ho 2022, §4).
pub fn training_target(schedule: &Schedule, x0: Tensor<4>, noise: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
    match schedule.prediction() {
        Prediction::Epsilon => noise,
        Prediction::Sample => x0,
        Prediction::V => {
            let device = x0.device();
            let signal = timesteps.iter().map(|&t| schedule.alphas_cumprod[t].sqrt() as f32).collect();
            let sigma = timesteps.iter().map(|&t| (1.0 - schedule.alphas_cumprod[t]).sqrt() as f32).collect();
            noise * per_image(signal, &device) - x0 * per_image(sigma, &device)
        }
    }
}

/// The simplified objective ‖target − output‖², averaged (DDPM eq. 14 for ε).
pub fn prediction_loss(output: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (output - target).powi_scalar(2).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::{RandomStream, ScheduleConfig, split_prediction};
    use burn::tensor::Tolerance;

    #[test]
    fn each_training_target_converts_back_to_x0_and_eps() {
        // A perfect network outputs the training target; the samplers' conversion
        // (split_prediction) must then recover the true x_0 and ε exactly, for ε, x_0 and v.
        let device = Device::flex();
        let mut rng = RandomStream::new(4);
        let x0 = rng.normal([1, 1, 4, 4], &device).clamp(-1.0, 1.0);
        let eps = rng.normal([1, 1, 4, 4], &device);
        for prediction in [Prediction::Epsilon, Prediction::Sample, Prediction::V] {
            let schedule = Schedule::new(ScheduleConfig { prediction_type: prediction, ..Default::default() });
            for t in [0, 500, 999] {
                let x_t = q_sample(&schedule, x0.clone(), eps.clone(), &[t]);
                let target = training_target(&schedule, x0.clone(), eps.clone(), &[t]);
                let (x0_hat, eps_hat) = split_prediction(prediction, target, x_t, schedule.alphas_cumprod[t]);
                // ε from x_0 divides by √(1 − ᾱ_0) ≈ 0.01 at t = 0: looser there.
                let tol = if t == 0 && prediction == Prediction::Sample { 1e-3 } else { 1e-4 };
                x0_hat.into_data().assert_approx_eq::<f32>(&x0.clone().into_data(), Tolerance::absolute(1e-4));
                eps_hat.into_data().assert_approx_eq::<f32>(&eps.clone().into_data(), Tolerance::absolute(tol));
            }
        }
    }
}
