//! Training: DDPM Algorithm 1 with Adam and an EMA of the weights.

mod adam;
mod classifier;
mod ema;
mod example;
mod fixed_batch;
mod parallel;
mod state;

pub use classifier::{ClassifierTrainer, accuracy};
pub use ema::update_ema;
pub use example::TrainedExample;
pub use fixed_batch::{FIXED_BATCH_SEED, FixedBatchError};
pub use adam::Adam;
pub use parallel::{DevicesError, MAX_DEVICES, shares};
pub use state::{STATE_FORMAT, SavedState, state_metadata};

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};

use crate::data::{ImageSet, PointSet};
use crate::diffusion::{
    RandomStream, Schedule, ScheduleConfig, min_snr_weights, prediction_loss, q_sample, training_target, weighted_prediction_loss,
};
use crate::model::{Denoiser, DenoiserConfig, UNetConfig, init_seeded};
use crate::spec::RunSpec;

/// Why a dataset cannot train a class-conditional model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LabelError {
    #[error("the model is class-conditional, but the dataset has no class labels")]
    NoLabels,
    #[error("the dataset has an image of class {label}, but the model knows {classes} classes (0 to {last})", last = .classes - 1)]
    OutOfRange { label: usize, classes: usize },
    #[error("no class labels to condition on (its images are all of one class, or unlabelled)")]
    TooFewClasses,
}

/// K, the classes a fresh class-conditional model of this data knows: the dataset's class
/// names, or else the largest label + 1. A conditional model needs two classes at least (one
/// class, or none, has nothing to condition on); the model adds a null class, label K
/// ([`UNetConfig::conditional_on`]).
pub fn conditional_classes(named: usize, labels: &[u8]) -> Result<usize, LabelError> {
    let largest = labels.iter().copied().max().map_or(0, |l| usize::from(l) + 1);
    match named.max(largest) {
        k if k < 2 => Err(LabelError::TooFewClasses),
        k => Ok(k),
    }
}

/// A minibatch for [`Trainer::step_batch`].
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[B, C, H, W]` in [−1, 1].
    pub images: Tensor<4>,
    /// The class of each image, for a class-conditional model (`None`: train it on the null
    /// class only; must be `None` for an unconditional model).
    pub classes: Option<Vec<usize>>,
}

/// Replaces each label by `null` with probability `p`, one coin per label from `rng`.
pub fn drop_labels(classes: &[usize], null: usize, p: f64, rng: &mut RandomStream) -> Vec<usize> {
    let coins = rng.coins(classes.len(), p);
    classes.iter().zip(coins).map(|(&c, dropped)| if dropped { null } else { c }).collect()
}

fn adam(config: &RunSpec) -> Adam {
    Adam::new().with_beta_2(config.adam_beta_2).with_max_grad_norm(Some(f64::from(config.grad_clip)))
}

/// One training run: the model being optimised, its EMA, the optimiser and the random stream.
/// Any [`Denoiser`] trains here: the U-Net (the default) and the playground's point MLP.
pub struct Trainer<C: DenoiserConfig = UNetConfig> {
    /// The weights being trained, on the autodiff device.
    pub model: C::Model,
    /// The averaged weights used for sampling, on the plain device.
    pub ema: C::Model,
    pub model_config: C,
    pub config: RunSpec,
    pub schedule: Schedule,
    /// Training steps taken so far.
    pub step: usize,
    optimizer: Adam,
    rng: RandomStream,
    /// The main device: the weights, the optimizer and the EMA live here.
    device: Device,
    /// Every device a step runs on, the main one first ([`Trainer::with_devices`]); empty: the
    /// main one alone.
    devices: Vec<Device>,
}


impl<C: DenoiserConfig> Trainer<C> {
    /// Bytes of the model's float32 weights, and of what training holds on the device: the
    /// weights, their gradients, Adam's two moments and the EMA copy (five times the weights).
    pub fn memory_bytes(&self) -> (u64, u64) {
        let weights = self.model.num_params() as u64 * 4;
        (weights, 5 * weights)
    }

    /// Starts from fresh weights (seeded by `config.seed`) on `device`.
    pub fn new(model_config: C, config: RunSpec, device: &Device) -> Self {
        let model = init_seeded(device, config.seed, || model_config.init_denoiser(device));
        Self::from_model(model, model_config, config, device)
    }

    /// Continues from given weights (a loaded checkpoint). The EMA starts as a copy.
    pub fn from_model(model: C::Model, model_config: C, config: RunSpec, device: &Device) -> Self {
        // `train` turns weights loaded on a plain device into trainable autodiff leaves.
        let model = model.to_device(device).train();
        let ema = model.valid();
        let optimizer = adam(&config);
        Self {
            model,
            ema,
            model_config,
            schedule: Schedule::ddpm(),
            step: 0,
            optimizer,
            rng: RandomStream::new(config.seed),
            config,
            device: device.clone(),
            devices: Vec::new(),
        }
    }

    /// Trains with this schedule and prediction target instead of DDPM's.
    pub fn with_schedule(mut self, schedule: ScheduleConfig) -> Self {
        self.schedule = Schedule::new(schedule);
        self
    }

    /// Draws the next minibatch of points from the run's random stream (indices only).
    pub fn next_points(&mut self, set: &PointSet) -> Tensor<4> {
        let indices = self.rng.indices(self.config.batch_size, set.len());
        set.batch(&indices, &self.device)
    }
}

impl Trainer {
    /// Draws the next minibatch from the run's random stream (indices, then a flip per image
    /// if `random_flip`), as a `[B, C, H, W]` tensor in [−1, 1].
    pub fn next_batch(&mut self, set: &ImageSet) -> Tensor<4> {
        self.draw(set).0
    }

    /// As [`Trainer::next_batch`] (the same draws), with the images' class labels when the model
    /// is class-conditional.
    pub fn next_labelled_batch(&mut self, set: &ImageSet) -> Result<Batch, LabelError> {
        let (images, indices) = self.draw(set);
        Ok(Batch { images, classes: self.labels_of(set, &indices)? })
    }

    /// The class labels of `set`'s images at `indices` when the model is class-conditional
    /// (`None` for an unconditional model).
    fn labels_of(&self, set: &ImageSet, indices: &[usize]) -> Result<Option<Vec<usize>>, LabelError> {
        let Some(classes) = self.model_config.num_classes() else { return Ok(None) };
        if set.labels.is_empty() {
            return Err(LabelError::NoLabels);
        }
        let labels: Vec<usize> = indices.iter().map(|&i| usize::from(set.labels[i])).collect();
        match labels.iter().find(|&&label| label >= classes) {
            Some(&label) => Err(LabelError::OutOfRange { label, classes }),
            None => Ok(Some(labels)),
        }
    }

    /// Whether every image of `set` has a label this model knows (`Ok` for an unconditional
    /// model), so a shell can refuse a dataset before training on it.
    pub fn check_labels(&self, set: &ImageSet) -> Result<(), LabelError> {
        let Some(classes) = self.model_config.num_classes() else { return Ok(()) };
        if set.labels.is_empty() {
            return Err(LabelError::NoLabels);
        }
        match set.labels.iter().map(|&l| usize::from(l)).max() {
            Some(label) if label >= classes => Err(LabelError::OutOfRange { label, classes }),
            _ => Ok(()),
        }
    }

    fn draw(&mut self, set: &ImageSet) -> (Tensor<4>, Vec<usize>) {
        let indices = self.rng.indices(self.config.batch_size, set.len());
        let flips: Vec<bool> = if self.config.random_flip {
            indices.iter().map(|_| self.rng.coin()).collect()
        } else {
            Vec::new()
        };
        (set.batch_flipped(&indices, &flips, &self.device), indices)
    }

}

impl<C: DenoiserConfig> Trainer<C> {
    /// One step of Algorithm 1 on a batch `x0: [B, C, H, W]` in [−1, 1]: sample t and ε,
    /// regress ε_θ(x_t, t) on ε, take an Adam step, update the EMA. Returns the loss as a
    /// tensor so the shell decides when to read it (async in the browser).
    pub fn step(&mut self, x0: Tensor<4>) -> Tensor<1> {
        self.step_batch(Batch { images: x0, classes: None })
    }

    /// [`Trainer::step`] on a batch with class labels: for a class-conditional model each
    /// label is dropped to the null class with probability `class_dropout` (coins drawn from the
    /// run's stream after ε), and ε_θ(x_t, t, c) is regressed on ε.
    pub fn step_batch(&mut self, batch: Batch) -> Tensor<1> {
        if self.devices.len() > 1 {
            return self.step_parallel(batch);
        }
        let Batch { images: x0, classes } = batch;
        let autodiff = self.device.clone().autodiff();
        let x0 = x0.to_device(&autodiff);
        // 1. t, ε and the dropped labels
        let (timesteps, noise, classes) = self.draw_step(x0.dims(), classes, &autodiff);
        // 2. x_t, the network's prediction, the loss
        let loss = denoising_loss(&self.model, &self.schedule, x0, noise, &timesteps, classes.as_deref(), self.config.min_snr_gamma);
        // 3. gradient step, EMA
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.apply(grads);
        loss.detach().to_device(&self.device)
    }

    /// The random draws of one step on a batch of shape `dims`, from the run's stream.
    fn draw_step(&mut self, dims: [usize; 4], classes: Option<Vec<usize>>, device: &Device) -> (Vec<usize>, Tensor<4>, Option<Vec<usize>>) {
        let null = DenoiserConfig::null_class(&self.model_config);
        step_draws(&mut self.rng, self.schedule.len(), null, self.config.class_dropout, dims, classes, device)
    }

    /// The gradient step on the main device, then the EMA of the weights.
    fn apply(&mut self, grads: GradientsParams) {
        self.model = self.optimizer.step(self.config.learning_rate_at(self.step), self.model.clone(), grads);
        let decay = self.config.ema_decay_at(self.step);
        self.ema = update_ema(self.ema.clone(), &self.model, decay);
        self.step += 1;
    }
}

/// The random draws of one step on a batch of shape `dims` from `rng`, in the stream's order:
/// t among `timesteps` and ε (on `device`), then for a class-conditional model (whose null
/// class is `null`) a coin per label that drops it to `null` with probability `class_dropout`.
fn step_draws(
    rng: &mut RandomStream,
    timesteps: usize,
    null: Option<usize>,
    class_dropout: f64,
    dims: [usize; 4],
    classes: Option<Vec<usize>>,
    device: &Device,
) -> (Vec<usize>, Tensor<4>, Option<Vec<usize>>) {
    // t ~ U{0..T}, ε ~ N(0, I)   (Algorithm 1, lines 3–4)
    let t = rng.timesteps(dims[0], timesteps);
    let noise = rng.normal(dims, device);
    // c, or ∅ with probability p_uncond   (Ho & Salimans 2022, Algorithm 1, line 3)
    let classes = classes.map(|classes| {
        let null = null.expect("class labels given to an unconditional model");
        drop_labels(&classes, null, class_dropout, rng)
    });
    (t, noise, classes)
}

/// Algorithm 1, line 5 on a batch (or one device's share of it): x_t in closed form, predict ε
/// (or x_0, or v), the mean squared error.
fn denoising_loss<M: Denoiser>(
    model: &M,
    schedule: &Schedule,
    x0: Tensor<4>,
    noise: Tensor<4>,
    timesteps: &[usize],
    classes: Option<&[usize]>,
    min_snr_gamma: Option<f64>,
) -> Tensor<1> {
    let x_t = q_sample(schedule, x0.clone(), noise.clone(), timesteps);
    let target = training_target(schedule, x0, noise, timesteps);
    let output = model.denoise(x_t, timesteps, classes);
    match min_snr_gamma {
        None => prediction_loss(output, target),
        Some(gamma) => weighted_prediction_loss(output, target, min_snr_weights(schedule, timesteps, gamma)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    /// Four 28×28 grey images labelled 0, 1, 2, 3.
    fn four_images() -> ImageSet {
        let pixels = (0..4 * 784).map(|i| (i % 251) as u8).collect();
        ImageSet::new(28, 28, 1, pixels, vec![0, 1, 2, 3]).unwrap()
    }

    fn trainer(model: UNetConfig, class_dropout: f64) -> Trainer {
        let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(2).with_seed(9).with_class_dropout(class_dropout);
        Trainer::new(model, config, &Device::flex())
    }

    fn scalar(loss: Tensor<1>) -> f32 {
        loss.into_data().try_to_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn label_dropout_replaces_a_fraction_p_of_labels() {
        // Bernoulli(p) coins: over n = 100k labels the dropped fraction has standard error
        // √(p(1 − p)/n) ≈ 0.00095 for p = 0.1.
        let classes: Vec<usize> = (0..100_000).map(|i| i % 10).collect();
        let dropped = drop_labels(&classes, 10, 0.1, &mut RandomStream::new(4));
        let nulls = dropped.iter().filter(|&&c| c == 10).count() as f64 / classes.len() as f64;
        assert!((nulls - 0.1).abs() < 0.005, "dropped {nulls}");
        assert!(dropped.iter().zip(&classes).all(|(&d, &c)| d == c || d == 10), "kept labels are unchanged");
        assert_eq!(drop_labels(&classes[..5], 10, 0.0, &mut RandomStream::new(4)), classes[..5].to_vec());
        assert_eq!(drop_labels(&classes[..5], 10, 1.0, &mut RandomStream::new(4)), vec![10; 5]);
    }

    #[test]
    fn an_unconditional_step_draws_the_stream_it_always_drew() {
        // Indices, then t, then ε, and nothing else: the stream of every earlier run.
        let set = four_images();
        let mut t = trainer(Preset::Tiny.config(), 0.1);
        let batch = t.next_labelled_batch(&set).unwrap();
        assert!(batch.classes.is_none());
        t.step_batch(batch);
        let mut expected = RandomStream::new(9);
        expected.indices(2, 4);
        expected.timesteps(2, 1000);
        expected.normal_vec(2 * 784);
        assert_eq!(t.rng.position(), expected.position());
        // The labelled batch is next_batch's batch.
        let (mut a, mut b) = (trainer(Preset::Tiny.config(), 0.1), trainer(Preset::Tiny.config(), 0.1));
        assert_eq!(a.next_batch(&set).into_data(), b.next_labelled_batch(&set).unwrap().images.into_data());
    }

    #[test]
    fn a_conditional_step_draws_one_dropout_coin_per_image_after_the_noise() {
        let set = four_images();
        let conditional = Preset::Tiny.config().with_num_class_embeds(Some(5));
        let mut t = trainer(conditional, 0.1);
        let batch = t.next_labelled_batch(&set).unwrap();
        let mut expected = RandomStream::new(9);
        let indices = expected.indices(2, 4);
        assert_eq!(batch.classes, Some(indices), "image i of four_images has label i");
        t.step_batch(batch);
        expected.timesteps(2, 1000);
        expected.normal_vec(2 * 784);
        expected.coins(2, 0.1);
        assert_eq!(t.rng.position(), expected.position());
    }

    #[test]
    fn with_class_dropout_one_every_label_trains_as_the_null_class() {
        // p_uncond = 1 replaces every label by ∅ = 4; p_uncond = 0 with labels ∅ given: the
        // same coins are drawn, the same weights and inputs are used, so the same loss.
        let set = four_images();
        let conditional = Preset::Tiny.config().with_num_class_embeds(Some(5));
        // One set of initial weights for both (tests share the device's seeded generator).
        let device = Device::flex();
        let weights = conditional.init(&device);
        let config = |p: f64| RunSpec::PAPER.with_random_flip(false).with_batch_size(2).with_seed(9).with_class_dropout(p);
        let mut all_dropped = Trainer::from_model(weights.clone(), conditional.clone(), config(1.0), &device);
        let mut all_null = Trainer::from_model(weights, conditional, config(0.0), &device);
        let a = all_dropped.next_labelled_batch(&set).unwrap();
        let mut b = all_null.next_labelled_batch(&set).unwrap();
        b.classes = Some(vec![4, 4]);
        assert_eq!(scalar(all_dropped.step_batch(a)), scalar(all_null.step_batch(b)));
    }

    #[test]
    fn a_conditional_model_needs_two_classes_or_more() {
        assert_eq!(conditional_classes(10, &[0, 3]), Ok(10));
        assert_eq!(conditional_classes(0, &[0, 3]), Ok(4));
        assert_eq!(conditional_classes(0, &[0, 0]), Err(LabelError::TooFewClasses));
        assert_eq!(conditional_classes(1, &[]), Err(LabelError::TooFewClasses));
        assert_eq!(Preset::Tiny.config().conditional_on(3).null_class(), Some(3));
    }

    #[test]
    fn datasets_without_fitting_labels_are_refused() {
        let mut set = four_images();
        let conditional = Preset::Tiny.config().with_num_class_embeds(Some(4)); // 3 classes + ∅
        let mut t = trainer(conditional, 0.1);
        assert_eq!(t.check_labels(&set), Err(LabelError::OutOfRange { label: 3, classes: 3 }));
        set.labels.clear();
        assert_eq!(t.check_labels(&set), Err(LabelError::NoLabels));
        assert_eq!(t.next_labelled_batch(&set).unwrap_err(), LabelError::NoLabels);
        assert_eq!(trainer(Preset::Tiny.config(), 0.1).check_labels(&set), Ok(()));
    }

    /// The trainer weights its loss by min-SNR-γ when asked: a γ so large that no weight is
    /// clipped is the plain loss; γ = 0.01 (below the SNR of every t < ~750) another one, with
    /// the same weights and draws.
    #[test]
    fn min_snr_weighting_reaches_the_loss() {
        let images = four_images();
        let device = Device::flex();
        let weights = init_seeded(&device, 9, || Preset::Tiny.config().init_denoiser(&device));
        let loss_with = |gamma: Option<f64>| {
            let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(4).with_seed(9).with_min_snr_gamma(gamma);
            let mut t = Trainer::from_model(weights.clone(), Preset::Tiny.config(), config, &device);
            let x0 = t.next_batch(&images);
            scalar(t.step(x0))
        };
        let plain = loss_with(None);
        // The weighted loss sums per image first, the plain one over all 3,136 values at once: in
        // f32 the two differ by rounding only (6e-8 of the loss here). A wrong weight (SNR/(SNR+1)
        // for ε, say) would be off by far more.
        let rel = (loss_with(Some(1e12)) - plain).abs() / plain;
        assert!(rel < 1e-6, "no weight is clipped at γ = 1e12, yet the loss moved by {rel} of itself");
        let small = loss_with(Some(0.01));
        assert!(small < 0.9 * plain, "a small γ weighs the steps down: {small} against {plain}");
        assert!(RunSpec::PAPER.with_random_flip(false).with_min_snr_gamma(Some(0.0)).validate().is_err());
    }

    /// With a warm-up the trainer's first update takes a rate of 0: the weights do not move;
    /// the second one moves them.
    #[test]
    fn the_trainer_steps_with_the_scheduled_rate() {
        let images = four_images();
        let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(2).with_seed(9).with_learning_rate(1e-2).with_warmup_steps(2);
        let mut t = Trainer::new(Preset::Tiny.config(), config, &Device::flex());
        let x = Tensor::<4>::ones([1, 1, 28, 28], &Device::flex());
        let output = |t: &Trainer| t.model.valid().denoise(x.clone(), &[500], None).into_data().try_to_vec::<f32>().unwrap();
        let before = output(&t);
        let batch = t.next_batch(&images);
        t.step(batch);
        assert_eq!(output(&t), before, "rate 0 at the first update");
        let batch = t.next_batch(&images);
        t.step(batch);
        assert_ne!(output(&t), before, "rate 0.005 at the second");
    }
}
