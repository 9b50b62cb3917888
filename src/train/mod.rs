//! Training: DDPM Algorithm 1 with Adam and an EMA of the weights.

mod classifier;
mod ema;
mod ids;
mod state;

pub use classifier::{ClassifierTrainer, accuracy, features};
pub use ema::{ema_decay, update_ema};
pub use state::STATE_FORMAT;

use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::grad_clipping::GradientClippingConfig;
use burn::tensor::{Device, Tensor};

use crate::data::ImageSet;
use crate::diffusion::{Noise, Schedule, ScheduleConfig, prediction_loss, q_sample, training_target};
use crate::model::{UNet, UNetConfig};

/// Optimisation settings (DDPM §4 unless noted).
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    /// Images per step.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Adam learning rate (2e-4 in DDPM for CIFAR-10; small models like 1e-3).
    #[config(default = 2e-4)]
    pub learning_rate: f64,
    /// EMA decay (0.9999 in DDPM), warmed up as diffusers' `EMAModel` does.
    #[config(default = 0.9999)]
    pub ema_decay: f64,
    /// Gradient-norm clip per parameter (1.0 in DDPM).
    #[config(default = 1.0)]
    pub grad_clip: f32,
    /// Seed of every random draw (timesteps, noise, minibatches).
    #[config(default = 0)]
    pub seed: u64,
    /// Mirror each training image left–right with probability ½ (DDPM on CIFAR-10).
    #[config(default = false)]
    pub random_flip: bool,
}

fn adam(config: &TrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_epsilon(1e-8)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip)))
        .init()
}

/// One training run: the model being optimised, its EMA, the optimiser and the random stream.
pub struct Trainer {
    /// The weights being trained, on the autodiff device.
    pub model: UNet,
    /// The averaged weights used for sampling, on the plain device.
    pub ema: UNet,
    pub model_config: UNetConfig,
    pub config: TrainConfig,
    pub schedule: Schedule,
    /// Training steps taken so far.
    pub step: usize,
    optimizer: ModuleOptimizer,
    rng: Noise,
    device: Device,
}

impl Trainer {
    /// Starts from fresh weights (seeded by `config.seed`) on `device`.
    pub fn new(model_config: UNetConfig, config: TrainConfig, device: &Device) -> Self {
        device.seed(config.seed);
        let model = model_config.init(&device.clone().autodiff());
        Self::from_model(model, model_config, config, device)
    }

    /// Continues from given weights (a loaded checkpoint). The EMA starts as a copy.
    pub fn from_model(model: UNet, model_config: UNetConfig, config: TrainConfig, device: &Device) -> Self {
        // `train` turns weights loaded on a plain device into trainable autodiff leaves; ids
        // from the module paths let a saved optimizer state find its parameters again.
        let model = model.to_device(device).train().map(&mut ids::StableIds::default());
        let ema = model.valid();
        let optimizer = adam(&config);
        Self {
            model,
            ema,
            model_config,
            schedule: Schedule::ddpm(),
            step: 0,
            optimizer,
            rng: Noise::new(config.seed),
            config,
            device: device.clone(),
        }
    }

    /// Trains with this schedule and prediction target instead of DDPM's.
    pub fn with_schedule(mut self, schedule: ScheduleConfig) -> Self {
        self.schedule = Schedule::new(schedule);
        self
    }

    /// Draws the next minibatch from the run's random stream (indices, then a flip per image
    /// if `random_flip`), as a `[B, C, H, W]` tensor in [−1, 1].
    pub fn next_batch(&mut self, set: &ImageSet) -> Tensor<4> {
        let indices = self.rng.indices(self.config.batch_size, set.len());
        let flips: Vec<bool> = if self.config.random_flip {
            indices.iter().map(|_| self.rng.coin()).collect()
        } else {
            Vec::new()
        };
        set.batch_flipped(&indices, &flips, &self.device)
    }

    /// One step of Algorithm 1 on a batch `x0: [B, C, H, W]` in [−1, 1]: sample t and ε,
    /// regress ε_θ(x_t, t) on ε, take an Adam step, update the EMA. Returns the loss as a
    /// tensor so the shell decides when to read it (async in the browser).
    pub fn step(&mut self, x0: Tensor<4>) -> Tensor<1> {
        let autodiff = self.device.clone().autodiff();
        let dims = x0.dims();
        let x0 = x0.to_device(&autodiff);
        // 1. t ~ U{0..T}, ε ~ N(0, I)   (Algorithm 1, lines 3–4)
        let timesteps = self.rng.timesteps(dims[0], self.schedule.len());
        let noise = self.rng.normal(dims, &autodiff);
        // 2. x_t in closed form, predict ε (or x_0, or v), MSE   (line 5)
        let x_t = q_sample(&self.schedule, x0.clone(), noise.clone(), &timesteps);
        let target = training_target(&self.schedule, x0, noise, &timesteps);
        let loss = prediction_loss(self.model.forward(x_t, &timesteps), target);
        // 3. gradient step
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        self.model = self.optimizer.step(self.config.learning_rate, self.model.clone(), grads);
        // 4. EMA of the weights
        let decay = ema_decay(self.config.ema_decay, self.step);
        self.ema = update_ema(self.ema.clone(), &self.model, decay);
        self.step += 1;
        loss.detach().to_device(&self.device)
    }
}
