//! A sampling run, driven one step at a time by either shell, and sampling in seeded batches.

use burn::tensor::{Device, Tensor};

use crate::diffusion::{RandomStream, Sampler, SamplerKind, Schedule, StepOutput};
use crate::model::{Denoiser, UNetConfig};

/// Classifier-free guidance toward given classes (Ho & Salimans 2022).
#[derive(Clone, Debug, PartialEq)]
pub struct Guidance {
    /// The class of each image of the run, in order.
    pub classes: Vec<usize>,
    /// w in ε̃ = ε(x_t, ∅) + w (ε(x_t, c) − ε(x_t, ∅)): 1 samples plainly conditionally, 0
    /// unconditionally, larger values trade diversity for fidelity to the class.
    pub scale: f64,
}

/// Why a run cannot be guided.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum GuidanceError {
    #[error("the model is not class-conditional (it takes no class labels)")]
    Unconditional,
    #[error("class {class} is out of range: the model knows {classes} classes (0 to {last})", last = .classes - 1)]
    OutOfRange { class: usize, classes: usize },
    #[error("{classes} classes for {images} images: give one class per image")]
    Count { classes: usize, images: usize },
    #[error("the guidance scale must be a finite number, not {0}")]
    Scale(f64),
}

impl Guidance {
    /// `count` images cycling through `classes` (image i gets `classes[i % len]`).
    pub fn cycling(classes: &[usize], count: usize, scale: f64) -> Self {
        Self { classes: classes.iter().copied().cycle().take(count).collect(), scale }
    }

    /// Whether a model of `config` can be guided this way for `images` images.
    pub fn check(&self, config: &UNetConfig, images: usize) -> Result<(), GuidanceError> {
        let classes = config.num_classes().ok_or(GuidanceError::Unconditional)?;
        if let Some(&class) = self.classes.iter().find(|&&c| c >= classes) {
            return Err(GuidanceError::OutOfRange { class, classes });
        }
        if self.classes.len() != images {
            return Err(GuidanceError::Count { classes: self.classes.len(), images });
        }
        if !self.scale.is_finite() {
            return Err(GuidanceError::Scale(self.scale));
        }
        Ok(())
    }

    /// The guided output at `x: [B, C, H, W]`, from one forward pass of the batch doubled:
    /// the first half labelled with the classes, the second with the null class. The formula
    /// is applied to the network's output whatever it predicts, as diffusers' pipelines do.
    pub fn output<M: Denoiser>(&self, model: &M, x: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
        let b = x.dims()[0];
        let null = model.null_class().expect("guidance needs a class-conditional model");
        let labels: Vec<usize> = self.classes.iter().copied().chain(std::iter::repeat_n(null, b)).collect();
        let both = model.denoise(Tensor::cat(vec![x.clone(), x], 0), &[timesteps, timesteps].concat(), Some(&labels));
        let conditional = both.clone().narrow(0, 0, b);
        let unconditional = both.narrow(0, b, b);
        // ε̃ = ε_∅ + w (ε_c − ε_∅)   (Ho & Salimans 2022, eq. 6, with w here = 1 + w there)
        unconditional.clone() + (conditional - unconditional).mul_scalar(self.scale)
    }
}

/// One sampling run from seeded noise. The first `count · C · H · W` draws of the seed's stream
/// are x_T; later draws are the sampler's per-step noise. The same seed therefore gives the same
/// images on every target and backend.
pub struct SampleRun {
    pub sampler: Sampler,
    /// The current sample x_t (x_T before the first step, x_0 after the last).
    pub sample: Tensor<4>,
    /// Steps taken so far.
    pub index: usize,
    /// Classifier-free guidance toward classes (`None`: the model's plain output, which for a
    /// class-conditional model is its unconditional one).
    pub guidance: Option<Guidance>,
    rng: RandomStream,
}

impl SampleRun {
    pub fn new(config: &UNetConfig, kind: SamplerKind, schedule: &Schedule, count: usize, seed: u64, device: &Device) -> Self {
        let mut rng = RandomStream::new(seed);
        let shape = [count, config.in_channels, config.sample_size, config.sample_size];
        let sample = rng.normal(shape, device);
        Self::from_noise(kind, schedule, sample, rng)
    }

    /// Starts from a given x_T; `rng` supplies the per-step noise.
    pub fn from_noise(kind: SamplerKind, schedule: &Schedule, x_t: Tensor<4>, rng: RandomStream) -> Self {
        Self { sampler: Sampler::new(kind, schedule), sample: x_t, index: 0, guidance: None, rng }
    }

    /// Guides every step toward `guidance.classes`, after checking that a model of `config`
    /// knows them and that there is one per image. The noise drawn is the same as without it.
    pub fn with_guidance(mut self, config: &UNetConfig, guidance: Guidance) -> Result<Self, GuidanceError> {
        guidance.check(config, self.sample.dims()[0])?;
        self.guidance = Some(guidance);
        Ok(self)
    }

    /// Total number of steps.
    pub fn len(&self) -> usize {
        self.sampler.timesteps().len()
    }

    pub fn is_done(&self) -> bool {
        self.index >= self.len()
    }

    /// Takes every remaining step with `model` and returns x_0 (the shells that wait between
    /// steps, as the tab does, call [`SampleRun::step`] themselves).
    pub fn finish<M: Denoiser>(mut self, model: &M) -> Tensor<4> {
        while self.step(model).is_some() {}
        self.sample
    }

    /// Takes one step with `model`; `None` once done.
    pub fn step<M: Denoiser>(&mut self, model: &M) -> Option<StepOutput> {
        if self.is_done() {
            return None;
        }
        let guidance = &self.guidance;
        let out = self.sampler.denoise_step(
            self.index,
            |x, t| match guidance {
                Some(guidance) => guidance.output(model, x, t),
                None => model.denoise(x, t, None),
            },
            self.sample.clone(),
            &mut self.rng,
        );
        self.sample = out.prev_sample.clone();
        self.index += 1;
        Some(out)
    }
}

/// The batches of an `n`-image sampling run in batches of at most `batch`: `(first image,
/// count, seed)`, batch k starting from seed `seed + k` (`eval`, and the tab's quality chart,
/// so that both sample the same images).
pub fn sample_batches(n: usize, batch: usize, seed: u64) -> Vec<(usize, usize, u64)> {
    let batch = batch.max(1);
    (0..n.div_ceil(batch)).map(|k| (k * batch, batch.min(n - k * batch), seed + k as u64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UNet;
    use crate::diffusion::Spacing;
    use crate::model::Preset;
    use burn::tensor::Tolerance;

    #[test]
    fn batches_cover_the_run_each_from_its_own_seed() {
        assert_eq!(sample_batches(5, 2, 10), vec![(0, 2, 10), (2, 2, 11), (4, 1, 12)]);
        assert_eq!(sample_batches(4, 4, 0), vec![(0, 4, 0)]);
        assert!(sample_batches(0, 3, 0).is_empty());
    }

    /// Tiny with 3 classes + ∅, fresh weights (the embedding rows are distinct N(0, 1) draws).
    fn conditional() -> (UNetConfig, UNet) {
        let config = Preset::Tiny.config().with_num_class_embeds(Some(4));
        let model = config.init(&Device::flex());
        (config, model)
    }

    fn x_t() -> Tensor<4> {
        RandomStream::new(1).normal([2, 1, 28, 28], &Device::flex())
    }

    #[test]
    fn guidance_one_is_the_conditional_output_and_zero_the_unconditional() {
        // ε̃ = ε_∅ + w (ε_c − ε_∅): w = 1 gives ε_c, w = 0 gives ε_∅ (up to float rounding).
        let (_, model) = conditional();
        let t = [500, 20];
        let cond = model.forward_classes(x_t(), &t, Some(&[2, 0]));
        let uncond = model.forward(x_t(), &t);
        let guided = |scale| Guidance { classes: vec![2, 0], scale }.output(&model, x_t(), &t);
        guided(1.0).into_data().assert_approx_eq::<f32>(&cond.clone().into_data(), Tolerance::absolute(1e-5));
        guided(0.0).into_data().assert_approx_eq::<f32>(&uncond.clone().into_data(), Tolerance::absolute(1e-5));
        // w = 3 extrapolates: ε_∅ + 3 (ε_c − ε_∅).
        let expected = uncond.clone() + (cond - uncond).mul_scalar(3.0);
        guided(3.0).into_data().assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
    }

    #[test]
    fn the_class_changes_the_prediction() {
        let (_, model) = conditional();
        let a = model.forward_classes(x_t(), &[500, 500], Some(&[0, 0]));
        let b = model.forward_classes(x_t(), &[500, 500], Some(&[1, 1]));
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(diff > 1e-3, "classes 0 and 1 gave the same ε (max difference {diff})");
    }

    #[test]
    fn guided_runs_draw_the_same_noise_and_w_zero_samples_unconditionally() {
        // DDIM with η = 1 draws noise at t = 500 (before the last step, t = 0); with w = 0 the
        // guided run is the unguided one. (At t ≈ 999 random weights push every x̂_0 into the
        // clip at ±1, which would hide a difference.)
        let (config, model) = conditional();
        let schedule = Schedule::ddpm();
        let kind = SamplerKind::Ddim { steps: 2, eta: 1.0, spacing: Spacing::Leading };
        let run = |guidance: Option<Guidance>| {
            let mut run = SampleRun::new(&config, kind, &schedule, 2, 7, &Device::flex());
            if let Some(g) = guidance {
                run = run.with_guidance(&config, g).unwrap();
            }
            run.finish(&model)
        };
        let plain = run(None);
        let w0 = run(Some(Guidance::cycling(&[1], 2, 0.0)));
        w0.into_data().assert_approx_eq::<f32>(&plain.clone().into_data(), Tolerance::absolute(1e-4));
        let w3 = run(Some(Guidance::cycling(&[1], 2, 3.0)));
        assert!((w3 - plain).abs().max().into_scalar::<f32>() > 1e-3, "guidance toward class 1 changed nothing");
    }

    #[test]
    fn guidance_that_does_not_fit_the_model_is_refused() {
        let (config, _) = conditional();
        let run = || SampleRun::new(&config, SamplerKind::ddim(2), &Schedule::ddpm(), 3, 0, &Device::flex());
        let refused = |config: &UNetConfig, guidance: Guidance| run().with_guidance(config, guidance).err().unwrap();
        assert_eq!(Guidance::cycling(&[0, 2], 5, 2.0).classes, vec![0, 2, 0, 2, 0]);
        assert_eq!(refused(&Preset::Tiny.config(), Guidance::cycling(&[0], 3, 2.0)), GuidanceError::Unconditional);
        assert_eq!(refused(&config, Guidance::cycling(&[3], 3, 2.0)), GuidanceError::OutOfRange { class: 3, classes: 3 });
        assert_eq!(refused(&config, Guidance::cycling(&[0], 2, 2.0)), GuidanceError::Count { classes: 2, images: 3 });
        assert_eq!(refused(&config, Guidance::cycling(&[0], 3, f64::NAN)).to_string(), "the guidance scale must be a finite number, not NaN");
        assert!(run().with_guidance(&config, Guidance::cycling(&[2], 3, 2.0)).is_ok());
    }
}
