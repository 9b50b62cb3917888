//! `train`: DDPM training on a tiled dataset, with a progress bar; writes the EMA weights and a
//! grid of DDIM samples.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sample::sample_values;
use super::schedule::Kind;
use super::{Backend, CliResult, load_train_split, model_source, write_atomic};
use crate::checkpoint::{ModelCard, to_bytes};
use crate::data::samples_png;
use crate::diffusion::{Prediction, SamplerKind};
use crate::pipeline::SampleRun;
use crate::train::{TrainConfig, Trainer};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A preset (`tiny`, `mnist-small`, `ddpm-cifar10`), or a weights file or diffusers folder
    /// to continue from (a diffusers config without weights starts fresh).
    #[arg(long, default_value = "mnist-small")]
    pub model: String,
    /// Tiled dataset folder (written by `data`).
    #[arg(long, default_value = "www/data/mnist")]
    pub data: PathBuf,
    /// Use only the first N training images (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Training steps.
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Adam learning rate (the DDPM paper used 2e-4 for its 35.7M model).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// EMA decay of the sampling weights.
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint to write (config + EMA weights).
    #[arg(long, default_value = "model.safetensors")]
    pub out: PathBuf,
    /// PNG grid of 16 DDIM-50 samples from the trained model.
    #[arg(long, default_value = "samples.png")]
    pub grid: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
    /// Noise schedule of a fresh model (a model with weights keeps its own).
    #[arg(long, value_enum)]
    pub schedule: Option<Kind>,
    /// What a fresh model learns to predict: the noise ε, the image x_0, or v.
    #[arg(long, value_enum)]
    pub prediction: Option<PredictionName>,
    /// Print the loss every N steps as JSON lines instead of a progress bar.
    #[arg(long)]
    pub log_every: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictionName {
    Epsilon,
    Sample,
    V,
}

impl PredictionName {
    fn prediction(self) -> Prediction {
        match self {
            Self::Epsilon => Prediction::Epsilon,
            Self::Sample => Prediction::Sample,
            Self::V => Prediction::V,
        }
    }
}

pub fn run(args: TrainArgs) -> CliResult {
    if args.steps == 0 || args.batch == 0 {
        return Err("--steps and --batch must be at least 1".into());
    }
    let device = args.backend.device();
    let (manifest, mut set) = load_train_split(&args.data)?;
    if let Some(limit) = args.limit {
        set = set.take(limit);
    }
    if set.is_empty() {
        return Err(format!("{}: the dataset has no images", args.data.display()));
    }
    let config = TrainConfig::new()
        .with_batch_size(args.batch)
        .with_learning_rate(args.lr)
        .with_ema_decay(args.ema_decay)
        .with_seed(args.seed);
    let mut source = model_source(&args.model)?;
    let mut schedule = source.schedule.clone();
    if let Some(kind) = args.schedule {
        schedule.beta_schedule = kind.beta_schedule();
    }
    if let Some(prediction) = args.prediction {
        schedule.prediction_type = prediction.prediction();
    }
    if source.checkpoint.is_some() && schedule != source.schedule {
        return Err(format!(
            "--schedule/--prediction: {} was trained with {:?} β predicting {:?}; it keeps them",
            args.model, source.schedule.beta_schedule, source.schedule.prediction_type
        ));
    }
    source.schedule = schedule;
    let trainer = match source.checkpoint {
        None => Trainer::new(source.config.clone(), config, &device),
        Some(_) => Trainer::from_model(source.build(&device)?, source.config.clone(), config, &device),
    };
    let mut trainer = trainer.with_schedule(source.schedule.clone());
    let mc = &trainer.model_config;
    if (mc.in_channels, mc.sample_size) != (set.channels, set.height) || set.height != set.width {
        return Err(format!(
            "the model takes {}×{}×{} images but {} has {}×{}×{}",
            mc.sample_size, mc.sample_size, mc.in_channels, manifest.name, set.height, set.width, set.channels
        ));
    }

    let bar = if args.log_every.is_some() { ProgressBar::hidden() } else { ProgressBar::new(args.steps as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
            .expect("valid template"),
    );
    let start = Instant::now();
    let mut smoothed = None;
    for step in 0..args.steps {
        let indices = trainer.next_indices(set.len());
        let loss = trainer.step(set.batch(&indices, &device));
        let loss = loss.into_data().try_to_vec::<f32>().expect("f32 loss")[0];
        if !loss.is_finite() {
            return Err(format!("the loss became {loss} at step {step}; try a smaller --lr"));
        }
        let s = smoothed.map_or(loss, |s: f32| 0.98 * s + 0.02 * loss);
        smoothed = Some(s);
        let rate = ((step + 1) * args.batch) as f64 / start.elapsed().as_secs_f64();
        bar.set_message(format!("loss {s:.4}  {rate:.1} images/s"));
        bar.inc(1);
        if let Some(every) = args.log_every
            && (step + 1) % every == 0
        {
            println!("{{\"step\": {}, \"loss\": {loss}, \"smoothed_loss\": {s}, \"images_per_s\": {rate:.2}}}", step + 1);
        }
    }
    bar.finish();
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "trained {} steps ({} images) in {elapsed:.0} s on {}",
        args.steps,
        args.steps * args.batch,
        args.backend.name()
    );

    let card = ModelCard {
        dataset: manifest.name.clone(),
        steps: trainer.step as u64,
        images_seen: (trainer.step * args.batch) as u64,
    };
    let bytes = pollster::block_on(to_bytes(&trainer.ema, &trainer.model_config, &trainer.schedule.config, &card)).map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes)?;
    println!("wrote {}", args.out.display());

    let run = SampleRun::new(&trainer.model_config, SamplerKind::ddim(50), &trainer.schedule, 16, 0, &device);
    let values = sample_values(run, &trainer.ema);
    let (c, s) = (trainer.model_config.in_channels, trainer.model_config.sample_size);
    write_atomic(&args.grid, &samples_png(&values, 16, c, s))?;
    println!("wrote {}", args.grid.display());
    Ok(())
}
