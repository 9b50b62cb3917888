//! Diffusion math: the schedule, the forward process, and the samplers.

mod ddim;
mod ddpm;
mod dpm_solver;
mod forward;
mod objective;
mod random;
mod sampler;
mod schedule;
mod scheduler_config;
mod threshold;

pub use ddim::{Ddim, ddim_timesteps};
pub use ddpm::{Ddpm, Posterior, Variance};
pub use dpm_solver::{DpmSolver, dpm_solver_timesteps};
pub use forward::{min_snr_weights, prediction_loss, q_sample, training_target, weighted_prediction_loss};
pub use objective::Objective;
pub use random::RandomStream;
pub use sampler::{Sampler, SamplerKind, SamplerName};
pub use schedule::{BetaSchedule, COSINE_OFFSET, Prediction, Schedule, ScheduleConfig};
pub use scheduler_config::SchedulerConfigError;
#[cfg(not(target_arch = "wasm32"))]
pub use threshold::dynamic_threshold;
pub use threshold::limit_x0;

use burn::tensor::Tensor;

/// What one sampler step returns: the next (less noisy) sample and the current guess of x_0.
#[derive(Clone, Debug)]
pub struct StepOutput {
    pub prev_sample: Tensor<4>,
    pub pred_x0: Tensor<4>,
}

/// (x̂_0, ε̂) from the network's output at x_t, whatever it predicts (the conversions of
/// diffusers' schedulers):
/// - ε:   x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t   (DDPM eq. 15)
/// - x_0: ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t)
/// - v:   x̂_0 = √ᾱ_t x_t − √(1 − ᾱ_t) v̂,  ε̂ = √ᾱ_t v̂ + √(1 − ᾱ_t) x_t   (Salimans & Ho 2022)
pub fn split_prediction(
    prediction: Prediction,
    output: Tensor<4>,
    sample: Tensor<4>,
    alpha_bar: f64,
) -> (Tensor<4>, Tensor<4>) {
    let (a, s) = (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
    match prediction {
        Prediction::Epsilon => ((sample - output.clone().mul_scalar(s)).div_scalar(a), output),
        Prediction::Sample => {
            let eps = (sample - output.clone().mul_scalar(a)).div_scalar(s);
            (output, eps)
        }
        Prediction::V => (
            sample.clone().mul_scalar(a) - output.clone().mul_scalar(s),
            output.mul_scalar(a) + sample.mul_scalar(s),
        ),
    }
}

/// Which of the schedule's timesteps a few-step sampler visits (diffusers' `timestep_spacing`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Spacing {
    /// Multiples of ⌊T/S⌋ from 0 (the DDIM paper's; diffusers' DDIM default).
    #[default]
    Leading,
    /// Counted back from T − 1 (reaches the noisiest step; Lin et al. 2024).
    Trailing,
    /// Evenly from T − 1 to 0 (diffusers' DPM-Solver default).
    Linspace,
}

named!(serde Spacing, "timestep spacing", [Leading => "leading", Trailing => "trailing", Linspace => "linspace"]);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tolerance};

    #[test]
    fn samplers_by_name_take_diffusers_default_spacing() {
        let named = |name: &str, steps, eta, spacing| name.parse::<SamplerName>().map(|n| SamplerKind::new(n, steps, eta, spacing, &ScheduleConfig::default())).ok();
        assert_eq!(named("ddim", 50, 0.5, None), Some(SamplerKind::Ddim { steps: 50, eta: 0.5, spacing: Spacing::Leading }));
        assert_eq!(named("dpm-solver", 20, 0.0, None), Some(SamplerKind::DpmSolver { steps: 20, spacing: Spacing::Linspace }));
        assert_eq!(
            named("dpm-solver", 20, 0.0, Some(Spacing::Trailing)),
            Some(SamplerKind::DpmSolver { steps: 20, spacing: Spacing::Trailing })
        );
        assert_eq!(named("ddpm-large", 7, 0.0, None), Some(SamplerKind::Ddpm { variance: Variance::FixedLarge }));
        assert_eq!(named("euler", 10, 0.0, None), None);
        assert_eq!(named("ddpm", 1, 0.0, None).unwrap().describe(), "DDPM-1000 (FixedSmall)");
    }

    /// Each name is a sampler of its own, and the kind it builds has that name back.
    #[test]
    fn every_sampler_name_builds_a_sampler_of_that_name() {
        let mut kinds = Vec::new();
        for &name in SamplerName::ALL {
            let kind = SamplerKind::new(name, 10, 0.0, None, &ScheduleConfig::default());
            assert_eq!(kind.name(), name);
            assert!(!kinds.contains(&kind), "{name} builds the sampler another name builds");
            kinds.push(kind);
        }
        assert_eq!("euler".parse::<SamplerName>().unwrap_err().to_string(), "euler is not a sampler (pick one of ddim, dpm-solver, ddpm, ddpm-large)");
    }

    fn x0_and_noise(device: &Device) -> (Tensor<4>, Tensor<4>) {
        let mut rng = RandomStream::new(3);
        let x0 = rng.normal([2, 1, 4, 4], device).clamp(-1.0, 1.0);
        let eps = rng.normal([2, 1, 4, 4], device);
        (x0, eps)
    }

    #[test]
    fn q_sample_is_the_closed_form() {
        // DDPM eq. 4: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, checked element-wise on the host.
        let device = Device::flex();
        let s = Schedule::ddpm();
        let (x0, eps) = x0_and_noise(&device);
        let xt = q_sample(&s, x0.clone(), eps.clone(), &[10, 900]);
        let (x0v, epsv, xtv) = (
            x0.into_data().try_to_vec::<f32>().unwrap(),
            eps.into_data().try_to_vec::<f32>().unwrap(),
            xt.into_data().try_to_vec::<f32>().unwrap(),
        );
        for (i, &value) in xtv.iter().enumerate() {
            let ab = s.alphas_cumprod[if i < 16 { 10 } else { 900 }];
            let expected = ab.sqrt() * x0v[i] as f64 + (1.0 - ab).sqrt() * epsv[i] as f64;
            assert!((value as f64 - expected).abs() < 1e-5);
        }
    }

    /// The oracle ε_θ(x_t, t) = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t): the exact noise for a known x_0.
    fn oracle(s: &Schedule, x0: &Tensor<4>) -> impl FnMut(Tensor<4>, &[usize]) -> Tensor<4> {
        move |x: Tensor<4>, t: &[usize]| {
            let ab = s.alphas_cumprod[t[0]];
            (x - x0.clone().mul_scalar(ab.sqrt())).div_scalar((1.0 - ab).sqrt())
        }
    }

    #[test]
    fn ddim_with_a_perfect_noise_prediction_recovers_x0() {
        // With the true ε, each DDIM η = 0 step lands exactly on √ᾱ_prev x_0 + √(1−ᾱ_prev) ε
        // (DDIM eq. 12), so the last step returns x_0.
        let device = Device::flex();
        let s = Schedule::ddpm();
        let (x0, eps) = x0_and_noise(&device);
        let mut sampler = Sampler::new(SamplerKind::ddim(50), &s);
        let x_t = q_sample(&s, x0.clone(), eps, &[sampler.timesteps()[0]; 2]);
        let out = sampler.sample(oracle(&s, &x0), x_t, &mut RandomStream::new(0));
        out.into_data().assert_approx_eq::<f32>(&x0.into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn ddpm_with_a_perfect_noise_prediction_recovers_x0() {
        // With the true x_0, the posterior mean at t = 0 is x_0 and its variance is 0 (eq. 7).
        let device = Device::flex();
        let s = Schedule::ddpm();
        let (x0, eps) = x0_and_noise(&device);
        let mut sampler = Sampler::new(SamplerKind::Ddpm { variance: Variance::FixedSmall }, &s);
        let x_t = q_sample(&s, x0.clone(), eps, &[999; 2]);
        let out = sampler.sample(oracle(&s, &x0), x_t, &mut RandomStream::new(0));
        out.into_data().assert_approx_eq::<f32>(&x0.into_data(), Tolerance::absolute(1e-3));
    }

    #[test]
    fn ddim_with_eta_zero_is_deterministic() {
        let device = Device::flex();
        let s = Schedule::ddpm();
        let mut sampler = Sampler::new(SamplerKind::ddim(10), &s);
        let denoiser = |x: Tensor<4>, _t: &[usize]| x.mul_scalar(0.5);
        let x_t = RandomStream::new(5).normal([1, 1, 4, 4], &device);
        // Different noise streams: η = 0 never draws from them.
        let a = sampler.sample(denoiser, x_t.clone(), &mut RandomStream::new(1));
        let b = sampler.sample(denoiser, x_t, &mut RandomStream::new(2));
        assert_eq!(a.into_data(), b.into_data());
        assert_eq!(sampler.timesteps(), &[900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    }
}
