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

/// Min-SNR-γ loss weights (Hang et al. 2023, eq. 8 and §3.4): each image's squared error is
/// weighted so that the implied x_0-loss weight is min(SNR(t), γ), with SNR(t) = ᾱ_t/(1 − ᾱ_t):
/// min(SNR, γ)/SNR for ε, min(SNR, γ) for x_0, min(SNR, γ)/(SNR + 1) for v. High-SNR (small t)
/// steps, which are easy and dominate the gradient, count less.
pub fn min_snr_weights(schedule: &Schedule, timesteps: &[usize], gamma: f64) -> Vec<f32> {
    timesteps
        .iter()
        .map(|&t| {
            let ab = schedule.alphas_cumprod[t];
            let snr = ab / (1.0 - ab);
            let clipped = snr.min(gamma);
            (match schedule.prediction() {
                Prediction::Epsilon => clipped / snr,
                Prediction::Sample => clipped,
                Prediction::V => clipped / (snr + 1.0),
            }) as f32
        })
        .collect()
}

/// [`prediction_loss`] with a weight per image: the mean over images of weight × that image's
/// mean squared error. Equal weights of 1 give [`prediction_loss`].
pub fn weighted_prediction_loss(output: Tensor<4>, target: Tensor<4>, weights: Vec<f32>) -> Tensor<1> {
    let device = output.device();
    let per_image = (output - target).powi_scalar(2).flatten::<2>(1, 3).mean_dim(1); // [B, 1]
    let n = weights.len();
    (per_image * Tensor::<2>::from_data(TensorData::new(weights, [n, 1]), &device)).mean()
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

    #[test]
    fn min_snr_weights_follow_their_closed_form_and_weight_one_is_the_plain_loss() {
        // Hang et al. 2023: with γ = 5 the ε weight is 1 where SNR ≤ 5 and 5/SNR above it; the
        // DDPM schedule's SNR passes 5 near t = 60 (ᾱ_t = 5/6).
        let s = Schedule::ddpm();
        let snr = |t: usize| s.alphas_cumprod[t] / (1.0 - s.alphas_cumprod[t]);
        let w = min_snr_weights(&s, &[0, 10, 500, 999], 5.0);
        for (&t, &w) in [0usize, 10, 500, 999].iter().zip(&w) {
            let expected = snr(t).min(5.0) / snr(t);
            assert!((f64::from(w) - expected).abs() < 1e-6 * expected, "t = {t}");
        }
        assert!(w[0] < 1e-3 && w[2] == 1.0 && w[3] == 1.0);
        let v = Schedule::new(ScheduleConfig { prediction_type: Prediction::V, ..Default::default() });
        let wv = min_snr_weights(&v, &[999], 5.0)[0];
        assert!((f64::from(wv) - snr(999) / (snr(999) + 1.0)).abs() < 1e-9, "v at low SNR: SNR/(SNR + 1)");

        let device = Device::flex();
        let mut rng = RandomStream::new(2);
        let (a, b) = (rng.normal([3, 1, 4, 4], &device), rng.normal([3, 1, 4, 4], &device));
        let plain = prediction_loss(a.clone(), b.clone()).into_scalar::<f32>();
        let ones = weighted_prediction_loss(a.clone(), b.clone(), vec![1.0; 3]).into_scalar::<f32>();
        assert!((plain - ones).abs() < 1e-6 * plain);
        // Weight 0 for all but one image: that image's mean squared error over three.
        let one = weighted_prediction_loss(a.clone(), b.clone(), vec![0.0, 3.0, 0.0]).into_scalar::<f32>();
        let second = prediction_loss(a.slice(1..2), b.slice(1..2)).into_scalar::<f32>();
        assert!((one - second).abs() < 1e-5 * second);
    }
}
