//! The 2-D playground: a point MLP trained on a point cloud by the same trainer as the U-Net
//! (Algorithm 1, Adam, EMA, the same schedule), sampled by the same samplers, and the views a
//! learner needs to see the score-based picture:
//!
//! - the data at time t, x_t ~ q(x_t | x_0);
//! - the learned score s_θ(x, t) = −ε_θ(x, t) / √(1 − ᾱ_t) on a grid (Song et al. 2021: the
//!   network estimates ∇ log p_t, up to that factor);
//! - reverse trajectories from the same starting points, DDPM (stochastic) beside DDIM with η = 0
//!   (the probability-flow ODE), with few or many steps;
//! - the sampled cloud beside the data.
//!
//! All of it in the core: the tab draws what these return. No I/O.

use burn::tensor::{Device, Tensor};

use crate::data::{PointSet, points_tensor};
use crate::diffusion::{RandomStream, Schedule, ScheduleConfig, q_sample, split_prediction};
use crate::model::{Denoiser, PointDenoiserConfig};
use crate::pipeline::SampleRun;
use crate::spec::RunSpec;
use crate::train::Trainer;
use crate::diffusion::SamplerKind;

/// The playground's settings, in one place for the tab and the tests.
pub struct Playground;

impl Playground {
    /// Points generated for a built-in shape.
    pub const POINTS: usize = 4096;
    /// Half the side of the square every view shows, in data units (the sets have unit spread).
    pub const EXTENT: f32 = 3.0;
    /// Arrows per side of the score view's grid.
    pub const GRID: usize = 21;
    /// Reverse trajectories drawn per sampler.
    pub const TRAJECTORIES: usize = 48;
    /// Points of the sampled cloud, and of the noised cloud the first view shows.
    pub const SAMPLES: usize = 1000;
    /// The DDIM step counts a learner compares (few to many), and the one shown first.
    pub const DDIM_STEPS: [usize; 4] = [5, 10, 50, 200];
    pub const DEFAULT_DDIM_STEPS: usize = 50;
    /// Points a user may draw, and how far apart (in data units) a stroke drops them.
    pub const MAX_DRAWN: usize = 2000;
    pub const PEN_SPACING: f32 = 0.04;

    /// The MLP: the point with 4 octaves of Fourier features, the time embedding (32), three
    /// residual blocks of 64: 16k parameters, a millisecond or two a step on a CPU. Without the
    /// Fourier features eight Gaussians still look like a ring after 2,000 steps (mean distance of
    /// DDIM-50 samples to the data 0.08, against 0.03 with them; measured natively, seed 0).
    pub fn model() -> PointDenoiserConfig {
        PointDenoiserConfig::new().with_hidden(64).with_frequencies(4)
    }

    /// Batch 256, Adam at 1e-2 (3e-3 needs twice the steps to separate the modes), a short EMA
    /// (runs are a few thousand steps).
    pub fn train_config(seed: u64) -> RunSpec {
        RunSpec::PAPER.with_random_flip(false).with_batch_size(256).with_learning_rate(1e-2).with_ema_decay(0.995).with_seed(seed)
    }

    /// DDPM's linear schedule, T = 1000, ε-prediction, without clipping x̂_0 to [−1, 1] (points
    /// lie beyond it; clipping is for images).
    pub fn schedule() -> ScheduleConfig {
        ScheduleConfig { clip_sample: false, ..ScheduleConfig::default() }
    }

    /// A fresh run on `set`.
    pub fn trainer(seed: u64, device: &Device) -> Trainer<PointDenoiserConfig> {
        Trainer::new(Self::model(), Self::train_config(seed), device).with_schedule(Self::schedule())
    }

    /// `count` points of `set` at time t: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε (the first `count`
    /// points, ε from `seed`).
    pub fn noised(set: &PointSet, schedule: &Schedule, t: usize, count: usize, seed: u64, device: &Device) -> Tensor<4> {
        let count = count.min(set.len());
        let x0 = points_tensor(set.points[..count].iter().copied(), device);
        let noise = RandomStream::new(seed).normal([count, 2, 1, 1], device);
        q_sample(schedule, x0, noise, &vec![t; count])
    }

    /// The square grid of the score view: `n × n` points over ±[`Playground::EXTENT`], rows
    /// from the top (largest y) down.
    pub fn grid(n: usize) -> Vec<[f32; 2]> {
        let at = |i: usize| if n > 1 { -Self::EXTENT + 2.0 * Self::EXTENT * i as f32 / (n - 1) as f32 } else { 0.0 };
        (0..n).flat_map(|row| (0..n).map(move |col| [at(col), at(n - 1 - row)])).collect()
    }

    /// The model's score estimate at `points` and time t: −ε̂(x, t) / √(1 − ᾱ_t), with ε̂ the
    /// network's output turned into ε whatever it predicts. `[N, 2, 1, 1]`.
    pub fn score<M: Denoiser>(model: &M, schedule: &Schedule, points: &[[f32; 2]], t: usize, device: &Device) -> Tensor<4> {
        let x = points_tensor(points.iter().copied(), device);
        let output = model.denoise(x.clone(), &vec![t; points.len()], None);
        let alpha_bar = schedule.alpha_bar(Some(t));
        let (_, eps) = split_prediction(schedule.prediction(), output, x, alpha_bar);
        eps.div_scalar(-(1.0 - alpha_bar).sqrt())
    }

    /// A sampling run of `count` points from x_T drawn from `seed`: step it with the EMA model
    /// and read `sample` after each step for trajectories. The same seed gives the same
    /// starting points for every sampler.
    pub fn sample_run(kind: SamplerKind, schedule: &Schedule, count: usize, seed: u64, device: &Device) -> SampleRun {
        let mut rng = RandomStream::new(seed);
        let x_t = rng.normal([count, 2, 1, 1], device);
        SampleRun::from_noise(kind, schedule, x_t, rng)
    }

    /// The mean distance from each of `points` to its nearest neighbour in `data`: how close
    /// samples lie to the data, beside the same number for held-out data points (the floor) and
    /// for x_T ~ N(0, I) (no model).
    pub fn nearest_distance(points: &[[f32; 2]], data: &[[f32; 2]]) -> f64 {
        if points.is_empty() || data.is_empty() {
            return f64::NAN;
        }
        let nearest = |p: &[f32; 2]| data.iter().map(|d| (p[0] - d[0]).powi(2) + (p[1] - d[1]).powi(2)).fold(f32::INFINITY, f32::min);
        points.iter().map(|p| f64::from(nearest(p).sqrt())).sum::<f64>() / points.len() as f64
    }
}
