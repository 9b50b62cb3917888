//! `train`: DDPM training on a tiled dataset, with a progress bar; writes the EMA weights and a
//! grid of DDIM samples.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, DeviceKind, DeviceType};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sample::sample_values;
use super::{Backend, CliResult, load_train_split, model_source, read_file, write_atomic};
use crate::checkpoint::{ModelCard, to_bytes};
use crate::data::samples_png;
use crate::diffusion::{BetaSchedule, Prediction, SamplerKind, SamplerName};
use crate::model::Preset;
use crate::data::{ImageSet, Manifest};
use crate::pipeline::{Guidance, SampleRun};
use crate::train::{Recipe, Trainer, conditional_classes, inverse_sqrt_decay_setting, min_snr_setting};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A preset (`tiny`, `mnist-small`, `ddpm-cifar10`), or a weights file or diffusers folder
    /// to continue from (a diffusers config without weights starts fresh). Default: mnist-small.
    #[arg(long, conflicts_with = "preset")]
    pub model: Option<String>,
    /// A preset with its training recipe as defaults: `ddpm-cifar10` is the DDPM paper's
    /// (batch 128, Adam 2e-4, EMA 0.9999, random flips, 800k steps, data www/data/cifar10);
    /// the others train as without it. Every flag below still overrides.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Tiled dataset folder (written by `data`). Default: www/data/mnist (cifar10 for ddpm-cifar10).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N training images (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Training steps (default 2000).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Images per step (default 32).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Adam learning rate (default 1e-3; the DDPM paper used 2e-4 for its 35.7M model).
    #[arg(long)]
    pub lr: Option<f64>,
    /// EMA decay of the sampling weights (default 0.999).
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Average the sampling weights with Karras et al. 2024's power-function EMA of exponent
    /// GAMMA instead of a fixed decay: its length is a share of the run (6.94: σ_rel 0.10).
    #[arg(long, value_name = "GAMMA", conflicts_with = "ema_decay")]
    pub ema_power: Option<f64>,
    /// Mirror training images left–right at random (default: off; on for ddpm-cifar10).
    #[arg(long)]
    pub random_flip: Option<bool>,
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
    /// Train data-parallel on N devices: each takes a contiguous share of every batch, and the
    /// gradients are summed on the first, which takes the optimizer step (burn's multi-device
    /// strategy without collectives). `--backend wgpu`: the first N discrete GPUs.
    /// `--backend cpu`: N replicas on the one CPU device, no faster than one (to test the
    /// multi-device path only). A run may resume on another number of devices.
    #[arg(long, default_value_t = 1)]
    pub devices: usize,
    /// Noise schedule of a fresh model (a model with weights keeps its own). Default: the
    /// recipe's (cosine; linear for `--preset ddpm-cifar10`).
    #[arg(long, value_enum)]
    pub schedule: Option<BetaSchedule>,
    /// What a fresh model learns to predict: the noise ε, the image x_0, or v. Default: the
    /// recipe's (v; ε for `--preset ddpm-cifar10`).
    #[arg(long, value_enum)]
    pub prediction: Option<Prediction>,
    /// Zero terminal SNR for a fresh model (Lin et al. 2024): β rescaled so that the last step
    /// is pure noise, v-prediction unless `--prediction sample`, and trailing spacing.
    #[arg(long)]
    pub zero_terminal_snr: bool,
    /// Write the whole training state (weights, EMA, optimizer, step, random stream) every N
    /// steps and at the end, to `--state`, atomically. 0: never. Default: 200 (1000 for
    /// `--preset ddpm-cifar10`).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Where the training state goes.
    #[arg(long, default_value = "train-state.safetensors")]
    pub state: PathBuf,
    /// Continue a run from its training state, exactly, up to `--steps` steps in all. Its
    /// model, schedule and optimisation settings are the run's own.
    #[arg(long, conflicts_with_all = ["model", "preset", "batch", "lr", "ema_decay", "ema_power", "random_flip", "schedule", "prediction", "seed", "class_conditional", "class_dropout", "min_snr_gamma", "zero_terminal_snr", "warmup_steps", "cosine_decay", "inverse_sqrt_decay", "adam_beta2"])]
    pub resume: Option<PathBuf>,
    /// Also write the sample grid every N steps (DDIM-50 from the EMA weights).
    #[arg(long)]
    pub grid_every: Option<usize>,
    /// Print the loss every N steps as JSON lines instead of a progress bar.
    #[arg(long)]
    pub log_every: Option<usize>,
    /// Train a fresh model conditioned on the dataset's class labels, for classifier-free
    /// guidance (`sample --class N --guidance W`). A class-conditional model from `--model`
    /// trains on labels without this flag.
    #[arg(long)]
    pub class_conditional: bool,
    /// How often a class label is dropped to the null class, so the model also learns to
    /// denoise unconditionally (default 0.1, Ho & Salimans 2022).
    #[arg(long)]
    pub class_dropout: Option<f64>,
    /// Weight the loss by min-SNR-γ (Hang et al. 2023; 5 there): easy low-noise steps count less.
    /// 0: the plain mean, as DDPM.
    #[arg(long, value_name = "GAMMA")]
    pub min_snr_gamma: Option<f64>,
    /// Warm the learning rate up linearly from 0 over this many steps. Default: the recipe's (80;
    /// none for `--preset ddpm-cifar10`).
    #[arg(long, value_name = "STEPS")]
    pub warmup_steps: Option<usize>,
    /// Decay the learning rate along a half cosine to 0 at the last of `--steps` (after the
    /// warm-up), as diffusers' training examples do.
    #[arg(long, conflicts_with = "inverse_sqrt_decay")]
    pub cosine_decay: bool,
    /// From this step on, decay the learning rate as √(STEPS / step) (Karras et al. 2024's
    /// inverse square root decay): needs no run length, so `--resume` can extend the run.
    /// 0: none. Default: the recipe's (100; none for `--preset ddpm-cifar10`).
    #[arg(long, value_name = "STEPS")]
    pub inverse_sqrt_decay: Option<usize>,
    /// Adam's β₂ (0.999 as PyTorch and DDPM; EDM2 uses 0.99). Default: the recipe's.
    #[arg(long, value_name = "BETA2")]
    pub adam_beta2: Option<f64>,
}

pub fn run(args: TrainArgs) -> CliResult {
    let recipe = args.preset.map_or(Recipe::SMALL_DATA, Recipe::for_preset);
    let checkpoint_every = args.checkpoint_every.unwrap_or(recipe.save_every);
    let devices = training_devices(args.backend, args.devices)?;
    let device = devices[0].clone();
    let resumed = match &args.resume {
        Some(path) => {
            let (trainer, card) = Trainer::from_state_bytes(&read_file(path)?, &device)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Some((trainer, card))
        }
        None => None,
    };
    let steps = args.steps.unwrap_or(recipe.steps);
    if steps == 0 || args.batch == Some(0) {
        return Err("--steps and --batch must be at least 1".into());
    }
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from("www").join(recipe.dataset.folder()));
    let (manifest, mut set) = load_train_split(&data)?;
    if let Some(limit) = args.limit {
        set = set.take(limit);
    }
    if set.is_empty() {
        return Err(format!("{}: the dataset has no images", data.display()));
    }
    let trainer = match resumed {
        Some((trainer, card)) => {
            if card.dataset != manifest.name {
                return Err(format!("the run was trained on {}, but {} is {}", card.dataset, data.display(), manifest.name));
            }
            if trainer.step >= steps {
                return Err(format!("the run is at step {} already; ask for more with --steps", trainer.step));
            }
            println!("resuming at step {}", trainer.step);
            trainer
        }
        None => fresh_trainer(&args, &recipe, &device, &manifest, &set)?,
    };
    let batch_size = trainer.config.batch_size;
    let mc = &trainer.model_config;
    mc.check_batch(batch_size).map_err(|e| format!("--batch: {e}"))?;
    trainer.config.validate().map_err(|e| format!("the training settings: {e}"))?;
    if (mc.in_channels, mc.sample_size) != (set.channels, set.height) || set.height != set.width {
        return Err(format!(
            "the model takes {}×{}×{} images but {} has {}×{}×{}",
            mc.sample_size, mc.sample_size, mc.in_channels, manifest.name, set.height, set.width, set.channels
        ));
    }
    trainer.check_labels(&set).map_err(|e| format!("{}: {e}", data.display()))?;
    let mut trainer = trainer.with_devices(devices).map_err(|e| format!("--devices {}: {e}", args.devices))?;
    let card = |trainer: &Trainer| ModelCard {
        dataset: manifest.name.clone(),
        steps: trainer.step as u64,
        images_seen: (trainer.step * batch_size) as u64,
    };
    let save_state = |trainer: &Trainer| -> CliResult {
        let bytes = pollster::block_on(trainer.state_bytes(&card(trainer))).map_err(|e| e.to_string())?;
        write_atomic(&args.state, &bytes)
    };
    let write_grid = |trainer: &Trainer| -> CliResult {
        let kind = SamplerKind::new(SamplerName::Ddim, recipe.sample_steps, 0.0, None, &trainer.schedule.config);
        let count = recipe.count;
        let mut run = SampleRun::new(&trainer.model_config, kind, &trainer.schedule, count, 0, &device);
        if let Some(classes) = trainer.model_config.num_classes() {
            // The grid of a class-conditional model cycles through its classes.
            let all: Vec<usize> = (0..classes).collect();
            run = run.with_guidance(&trainer.model_config, Guidance::cycling(&all, count, recipe.guidance)).map_err(|e| e.to_string())?;
        }
        let values = sample_values(run, &trainer.ema);
        let (c, s) = (trainer.model_config.in_channels, trainer.model_config.sample_size);
        write_atomic(&args.grid, &samples_png(&values, count, c, s))
    };

    let first = trainer.step;
    let bar = if args.log_every.is_some() { ProgressBar::hidden() } else { ProgressBar::new(steps as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
            .expect("valid template"),
    );
    bar.set_position(first as u64);
    let start = Instant::now();
    let mut smoothed = None;
    while trainer.step < steps {
        let batch = trainer.next_labelled_batch(&set).map_err(|e| format!("{}: {e}", data.display()))?;
        let loss = trainer.step_batch(batch);
        let loss = loss.into_data().try_to_vec::<f32>().expect("f32 loss")[0];
        let step = trainer.step;
        if !loss.is_finite() {
            return Err(format!(
                "the loss became {loss} at step {step}; try a smaller --lr (the last training state is in {})",
                args.state.display()
            ));
        }
        let s = smoothed.map_or(loss, |s: f32| 0.98 * s + 0.02 * loss);
        smoothed = Some(s);
        let rate = ((step - first) * batch_size) as f64 / start.elapsed().as_secs_f64();
        bar.set_message(format!("loss {s:.4}  {rate:.1} images/s"));
        bar.inc(1);
        if let Some(every) = args.log_every
            && step % every == 0
        {
            println!("{{\"step\": {step}, \"loss\": {loss}, \"smoothed_loss\": {s}, \"images_per_s\": {rate:.2}}}");
        }
        if checkpoint_every > 0 && step % checkpoint_every == 0 && step < steps {
            save_state(&trainer)?;
        }
        if let Some(every) = args.grid_every
            && step % every == 0
        {
            write_grid(&trainer)?;
        }
    }
    bar.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let on = match args.devices {
        1 => args.backend.name().to_string(),
        n => format!("{n} {} devices", args.backend.name()),
    };
    println!("trained {} steps ({} images) in {elapsed:.0} s on {on}", steps - first, (steps - first) * batch_size);
    if checkpoint_every > 0 {
        save_state(&trainer)?;
        println!("wrote {} (continue with --resume)", args.state.display());
    }
    let bytes = pollster::block_on(to_bytes(&trainer.ema, &trainer.model_config, &trainer.schedule.config, &card(&trainer)))
        .map_err(|e| e.to_string())?;
    write_atomic(&args.out, &bytes)?;
    println!("wrote {}", args.out.display());
    write_grid(&trainer)?;
    println!("wrote {}", args.grid.display());
    Ok(())
}

/// The devices of `--devices n`, the main one first.
fn training_devices(backend: Backend, n: usize) -> CliResult<Vec<Device>> {
    match (backend, n) {
        (_, 0) => Err("--devices must be at least 1".into()),
        (_, n) if n > crate::train::MAX_DEVICES => Err(format!("--devices {n}: the limit is {}", crate::train::MAX_DEVICES)),
        (_, 1) => Ok(vec![backend.device()]),
        // burn-flex has a single CPU device (`FlexDevice`): the replicas share it.
        (Backend::Cpu, n) => Ok(vec![Device::flex(); n]),
        (Backend::Wgpu, n) => {
            let listed = Device::enumerate(DeviceType::Wgpu).into_vec();
            let gpus: Vec<Device> = (0..n)
                .map(|i| Device::wgpu(DeviceKind::DiscreteGpu(i)))
                .take_while(|gpu| listed.contains(gpu))
                .collect();
            if gpus.len() < n {
                return Err(format!(
                    "--devices {n}: burn's wgpu backend finds {} discrete GPU(s) on this machine",
                    gpus.len()
                ));
            }
            Ok(gpus)
        }
        #[cfg(feature = "cuda")]
        (Backend::Cuda, n) => {
            let found = Device::enumerate(DeviceType::Cuda).into_vec().len();
            if found < n {
                return Err(format!("--devices {n}: burn's CUDA backend finds {found} GPU(s) on this machine"));
            }
            Ok((0..n).map(Device::cuda).collect())
        }
    }
}

/// A new run (or one continued from weights only) as the flags and the recipe say.
fn fresh_trainer(
    args: &TrainArgs,
    recipe: &Recipe,
    device: &Device,
    manifest: &Manifest,
    set: &ImageSet,
) -> CliResult<Trainer> {
    let class_dropout = args.class_dropout.unwrap_or(recipe.class_dropout);
    if !(0.0..=1.0).contains(&class_dropout) {
        return Err("--class-dropout must be between 0 and 1".into());
    }
    let config = recipe
        .train_config(args.seed)
        .with_class_dropout(class_dropout)
        .with_batch_size(args.batch.unwrap_or(recipe.batch))
        .with_learning_rate(args.lr.unwrap_or(recipe.learning_rate))
        .with_adam_beta_2(args.adam_beta2.unwrap_or(recipe.adam_beta_2))
        .with_ema_decay(args.ema_decay.unwrap_or(recipe.ema_decay))
        .with_ema_power(if args.ema_decay.is_some() { None } else { args.ema_power.or(recipe.ema_power) })
        .with_random_flip(args.random_flip.unwrap_or(recipe.random_flip))
        .with_min_snr_gamma(args.min_snr_gamma.map_or(recipe.min_snr_gamma, min_snr_setting))
        .with_warmup_steps(args.warmup_steps.unwrap_or(recipe.warmup_steps))
        .with_decay_steps(args.cosine_decay.then(|| args.steps.unwrap_or(recipe.steps)))
        .with_inverse_sqrt_decay_from(match args.inverse_sqrt_decay {
            _ if args.cosine_decay => None,
            Some(steps) => inverse_sqrt_decay_setting(steps),
            None => recipe.inverse_sqrt_decay_from,
        });
    let model = match (args.preset, &args.model) {
        (Some(preset), _) => preset.name().to_string(),
        (None, Some(model)) => model.clone(),
        (None, None) => recipe.preset.name().to_string(),
    };
    let mut source = model_source(&model)?;
    // A preset names an architecture: it takes the data's image size and channels, as in the tab.
    if let Ok(preset) = model.parse::<Preset>() {
        source.config = preset.config_for(set.height, set.channels);
        source.config.validate().map_err(|e| format!("the model {model} does not fit {} ({e})", manifest.name))?;
    }
    let mut schedule = source.schedule.clone();
    // A fresh model takes the recipe's schedule, prediction and (unless its scheduler config
    // names one) spacing; one with weights keeps its own.
    let fresh = source.checkpoint.is_none().then(|| recipe.schedule_config());
    if let Some(kind) = args.schedule.or(fresh.as_ref().map(|f| f.beta_schedule)) {
        schedule.beta_schedule = kind;
    }
    if let Some(prediction) = args.prediction.or(fresh.as_ref().map(|f| f.prediction_type)) {
        schedule.prediction_type = prediction;
    }
    if let Some(fresh) = fresh {
        schedule.timestep_spacing = schedule.timestep_spacing.or(fresh.timestep_spacing);
    }
    if args.zero_terminal_snr {
        schedule = schedule.with_zero_terminal_snr();
    }
    if source.checkpoint.is_some() && schedule != source.schedule {
        return Err(format!(
            "--schedule/--prediction/--zero-terminal-snr: {} was trained with {:?} β predicting {:?}; it keeps them",
            model, source.schedule.beta_schedule, source.schedule.prediction_type
        ));
    }
    source.schedule = schedule;
    if args.class_conditional {
        let classes = conditional_classes(manifest.classes.len(), &set.labels)
            .map_err(|e| format!("--class-conditional: {} has {e}", manifest.name))?;
        match (source.config.num_classes(), &source.checkpoint) {
            (Some(_), _) => {} // conditional already: its classes are checked against the data
            (None, Some(_)) => {
                return Err(format!(
                    "--class-conditional: {model} was trained without class labels; start from a preset instead"
                ));
            }
            (None, None) => source.config = source.config.conditional_on(classes),
        }
    }
    if args.class_dropout.is_some() && source.config.num_class_embeds.is_none() {
        return Err(format!("--class-dropout: {model} is not class-conditional (add --class-conditional)"));
    }
    let trainer = match source.checkpoint {
        None => Trainer::new(source.config.clone(), config, device),
        Some(_) => Trainer::from_model(source.build(device, config.seed).map_err(|e| e.to_string())?, source.config.clone(), config, device),
    };
    Ok(trainer.with_schedule(source.schedule.clone()))
}
