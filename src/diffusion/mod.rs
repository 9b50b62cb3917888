//! Diffusion math: the schedule, the forward process, and the samplers.

mod ddim;
mod ddpm;
mod forward;
mod noise;
mod schedule;

pub use ddim::Ddim;
pub use ddpm::{Ddpm, Posterior};
pub use forward::{noise_prediction_loss, q_sample};
pub use noise::Noise;
pub use schedule::Schedule;

use burn::tensor::Tensor;

/// What one sampler step returns: the next (less noisy) sample and the current guess of x_0.
#[derive(Clone, Debug)]
pub struct StepOutput {
    pub prev_sample: Tensor<4>,
    pub pred_x0: Tensor<4>,
}

/// x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t (DDPM eq. 15, DDIM eq. 12's "predicted x_0"),
/// optionally clipped to the data range [−1, 1].
pub fn predict_x0(sample: Tensor<4>, eps: Tensor<4>, alpha_bar: f64, clip: bool) -> Tensor<4> {
    let x0 = (sample - eps.mul_scalar((1.0 - alpha_bar).sqrt())).div_scalar(alpha_bar.sqrt());
    if clip { x0.clamp(-1.0, 1.0) } else { x0 }
}

/// Which sampler, and how.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerKind {
    /// Ancestral sampling over all T steps (DDPM Algorithm 2).
    Ddpm,
    /// DDIM over `steps` steps with stochasticity `eta`.
    Ddim { steps: usize, eta: f64 },
}

/// A sampler built complete for one schedule: its timesteps are fixed at construction.
#[derive(Clone, Debug)]
pub enum Sampler {
    Ddpm(Ddpm),
    Ddim(Ddim),
}

impl Sampler {
    /// Builds the sampler; `x_0` predictions are clipped to [−1, 1] as diffusers does by default.
    pub fn new(kind: SamplerKind, schedule: &Schedule) -> Self {
        match kind {
            SamplerKind::Ddpm => Self::Ddpm(Ddpm::new(schedule, true)),
            SamplerKind::Ddim { steps, eta } => Self::Ddim(Ddim::new(schedule, steps, eta, true)),
        }
    }

    pub fn timesteps(&self) -> &[usize] {
        match self {
            Self::Ddpm(s) => s.timesteps(),
            Self::Ddim(s) => s.timesteps(),
        }
    }

    pub fn needs_noise(&self, i: usize) -> bool {
        match self {
            Self::Ddpm(s) => s.needs_noise(i),
            Self::Ddim(s) => s.needs_noise(i),
        }
    }

    pub fn step(&self, i: usize, eps: Tensor<4>, sample: Tensor<4>, noise: Option<Tensor<4>>) -> StepOutput {
        match self {
            Self::Ddpm(s) => s.step(i, eps, sample, noise),
            Self::Ddim(s) => s.step(i, eps, sample, noise),
        }
    }

    /// Step `i` of a sampling run: ask the denoiser for ε at this timestep, draw the step's noise
    /// from `rng` if the sampler needs it, and update. The shells drive the loop (`for` natively,
    /// `await` between steps in the tab).
    pub fn denoise_step(
        &self,
        i: usize,
        denoiser: impl FnOnce(Tensor<4>, &[usize]) -> Tensor<4>,
        sample: Tensor<4>,
        rng: &mut Noise,
    ) -> StepOutput {
        let dims = sample.dims();
        let t = vec![self.timesteps()[i]; dims[0]];
        let eps = denoiser(sample.clone(), &t);
        let noise = self.needs_noise(i).then(|| rng.normal(dims, &sample.device()));
        self.step(i, eps, sample, noise)
    }

    /// Runs every step from `x_t` (pure noise at the first timestep) to x_0.
    pub fn sample(
        &self,
        mut denoiser: impl FnMut(Tensor<4>, &[usize]) -> Tensor<4>,
        x_t: Tensor<4>,
        rng: &mut Noise,
    ) -> Tensor<4> {
        let mut x = x_t;
        for i in 0..self.timesteps().len() {
            x = self.denoise_step(i, &mut denoiser, x, rng).prev_sample;
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Tolerance};

    fn x0_and_noise(device: &Device) -> (Tensor<4>, Tensor<4>) {
        let mut rng = Noise::new(3);
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
        let sampler = Sampler::new(SamplerKind::Ddim { steps: 50, eta: 0.0 }, &s);
        let x_t = q_sample(&s, x0.clone(), eps, &[sampler.timesteps()[0]; 2]);
        let out = sampler.sample(oracle(&s, &x0), x_t, &mut Noise::new(0));
        out.into_data().assert_approx_eq::<f32>(&x0.into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn ddpm_with_a_perfect_noise_prediction_recovers_x0() {
        // With the true x_0, the posterior mean at t = 0 is x_0 and its variance is 0 (eq. 7).
        let device = Device::flex();
        let s = Schedule::ddpm();
        let (x0, eps) = x0_and_noise(&device);
        let sampler = Sampler::new(SamplerKind::Ddpm, &s);
        let x_t = q_sample(&s, x0.clone(), eps, &[999; 2]);
        let out = sampler.sample(oracle(&s, &x0), x_t, &mut Noise::new(0));
        out.into_data().assert_approx_eq::<f32>(&x0.into_data(), Tolerance::absolute(1e-3));
    }

    #[test]
    fn ddim_with_eta_zero_is_deterministic() {
        let device = Device::flex();
        let s = Schedule::ddpm();
        let sampler = Sampler::new(SamplerKind::Ddim { steps: 10, eta: 0.0 }, &s);
        let denoiser = |x: Tensor<4>, _t: &[usize]| x.mul_scalar(0.5);
        let x_t = Noise::new(5).normal([1, 1, 4, 4], &device);
        // Different noise streams: η = 0 never draws from them.
        let a = sampler.sample(denoiser, x_t.clone(), &mut Noise::new(1));
        let b = sampler.sample(denoiser, x_t, &mut Noise::new(2));
        assert_eq!(a.into_data(), b.into_data());
        assert_eq!(sampler.timesteps(), &[900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
    }
}
