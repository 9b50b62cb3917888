//! A sampling run, driven one step at a time by either shell.

use burn::tensor::{Device, Tensor};

use crate::diffusion::{Noise, Sampler, SamplerKind, Schedule, StepOutput};
use crate::model::{UNet, UNetConfig};

/// One sampling run from seeded noise. The first `count · C · H · W` draws of the seed's stream
/// are x_T; later draws are the sampler's per-step noise. The same seed therefore gives the same
/// images on every target and backend.
pub struct SampleRun {
    pub sampler: Sampler,
    /// The current sample x_t (x_T before the first step, x_0 after the last).
    pub sample: Tensor<4>,
    /// Steps taken so far.
    pub index: usize,
    rng: Noise,
}

impl SampleRun {
    pub fn new(config: &UNetConfig, kind: SamplerKind, schedule: &Schedule, count: usize, seed: u64, device: &Device) -> Self {
        let mut rng = Noise::new(seed);
        let shape = [count, config.in_channels, config.sample_size, config.sample_size];
        let sample = rng.normal(shape, device);
        Self::from_noise(kind, schedule, sample, rng)
    }

    /// Starts from a given x_T; `rng` supplies the per-step noise.
    pub fn from_noise(kind: SamplerKind, schedule: &Schedule, x_t: Tensor<4>, rng: Noise) -> Self {
        Self { sampler: Sampler::new(kind, schedule), sample: x_t, index: 0, rng }
    }

    /// Total number of steps.
    pub fn len(&self) -> usize {
        self.sampler.timesteps().len()
    }

    pub fn is_done(&self) -> bool {
        self.index >= self.len()
    }

    /// Takes one step with `model`; `None` once done.
    pub fn step(&mut self, model: &UNet) -> Option<StepOutput> {
        if self.is_done() {
            return None;
        }
        let out = self.sampler.denoise_step(
            self.index,
            |x, t| model.forward(x, t),
            self.sample.clone(),
            &mut self.rng,
        );
        self.sample = out.prev_sample.clone();
        self.index += 1;
        Some(out)
    }
}
