//! `train`: DDPM training on a tiled dataset, with a progress bar; writes the EMA weights and a
//! grid of DDIM samples.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::{Device, DeviceKind, DeviceType};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::sample::sample_values;
use super::{Backend, CliResult, load_train_split, model_source, read_file, write_atomic};
use crate::checkpoint::to_bytes;
use crate::data::{ImageSet, Manifest, samples_png};
use crate::diffusion::{BetaSchedule, Prediction, SamplerKind, SamplerName};
use crate::model::Preset;
use crate::pipeline::{Cadences, Guidance, SampleRun, TrainLoop};
use crate::spec::{Overrides, RunSpec};
use crate::train::{Trainer, conditional_classes};

/// The recipe's value of a setting in a help text: the small-data recipe's, and the paper's
/// where `ddpm-cifar10` trains differently. Help texts print the defaults from their one home.
fn recipe_default(what: &str, value: impl Fn(&RunSpec) -> String) -> String {
    let (small, paper) = (value(&RunSpec::SMALL_DATA), value(&RunSpec::PAPER));
    if small == paper {
        format!("{what} [default: {small}]")
    } else {
        format!("{what} [default: {small}; {paper} for ddpm-cifar10]")
    }
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A preset (`tiny`, `mnist-small`, `ddpm-cifar10`), which brings its training recipe
    /// (`ddpm-cifar10`: the DDPM paper's), or a weights file or diffusers folder to continue
    /// from (a diffusers config without weights starts fresh) with the small-data recipe. Every
    /// flag below overrides the recipe. Default: mnist-small.
    #[arg(long, conflicts_with = "preset")]
    pub model: Option<String>,
    /// The same as `--model PRESET`.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Tiled dataset folder (written by `data`). Default: the recipe's dataset under www/data/.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N training images (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, help = recipe_default("Training steps", |r| r.steps.to_string()))]
    pub steps: Option<usize>,
    #[arg(long, help = recipe_default("Images per step", |r| r.batch_size.to_string()))]
    pub batch: Option<usize>,
    #[arg(long, help = recipe_default("Adam's learning rate", |r| r.learning_rate.to_string()))]
    pub lr: Option<f64>,
    #[arg(long, help = recipe_default("EMA decay of the sampling weights", |r| r.ema_decay.to_string()))]
    pub ema_decay: Option<f64>,
    /// Average the sampling weights with Karras et al. 2024's power-function EMA of exponent
    /// GAMMA instead of a fixed decay: its length is a share of the run (6.94: σ_rel 0.10).
    #[arg(long, value_name = "GAMMA", conflicts_with = "ema_decay")]
    pub ema_power: Option<f64>,
    #[arg(long, help = recipe_default("Mirror training images left–right at random", |r| r.random_flip.to_string()))]
    pub random_flip: Option<bool>,
    #[arg(long, help = recipe_default("Seed of the weights, the batches, t and ε", |r| r.seed.to_string()))]
    pub seed: Option<u64>,
    /// Checkpoint to write (config + EMA weights).
    #[arg(long, default_value = "model.safetensors")]
    pub out: PathBuf,
    /// PNG grid of DDIM samples from the trained model.
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
    #[arg(long, value_enum, help = recipe_default("Noise schedule of a fresh model (a model with weights keeps its own)", |r| r.schedule.to_string()))]
    pub schedule: Option<BetaSchedule>,
    #[arg(long, value_enum, help = recipe_default("What a fresh model learns to predict: the noise ε, the image x_0, or v", |r| r.prediction.to_string()))]
    pub prediction: Option<Prediction>,
    /// Zero terminal SNR for a fresh model (Lin et al. 2024): β rescaled so that the last step
    /// is pure noise, v-prediction unless `--prediction sample`, and trailing spacing.
    #[arg(long)]
    pub zero_terminal_snr: bool,
    #[arg(long, help = recipe_default(
        "Write the whole training state (weights, EMA, optimizer, step, random stream) every N steps and at the end, to --state, atomically; 0: never",
        |r| r.save_every.to_string(),
    ))]
    pub checkpoint_every: Option<usize>,
    /// Where the training state goes.
    #[arg(long, default_value = "train-state.safetensors")]
    pub state: PathBuf,
    /// Continue a run from its training state, exactly, up to `--steps` steps in all. Its
    /// model, schedule and optimisation settings are the run's own.
    #[arg(long, conflicts_with_all = ["model", "preset", "batch", "lr", "ema_decay", "ema_power", "random_flip", "schedule", "prediction", "seed", "class_conditional", "class_dropout", "min_snr_gamma", "zero_terminal_snr", "warmup_steps", "cosine_decay", "inverse_sqrt_decay", "adam_beta2"])]
    pub resume: Option<PathBuf>,
    /// Also write the sample grid every N steps (DDIM from the EMA weights).
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
    #[arg(long, help = recipe_default(
        "How often a class label is dropped to the null class, so the model also learns to denoise unconditionally (Ho & Salimans 2022)",
        |r| r.class_dropout.to_string(),
    ))]
    pub class_dropout: Option<f64>,
    #[arg(long, value_name = "GAMMA", help = recipe_default(
        "Weight the loss by min-SNR-γ (Hang et al. 2023): easy low-noise steps count less; 0: the plain mean, as DDPM",
        |r| r.min_snr_gamma.unwrap_or(0.0).to_string(),
    ))]
    pub min_snr_gamma: Option<f64>,
    #[arg(long, value_name = "STEPS", help = recipe_default("Warm the learning rate up linearly from 0 over this many steps", |r| r.warmup_steps.to_string()))]
    pub warmup_steps: Option<usize>,
    /// Decay the learning rate along a half cosine to 0 at the last of `--steps` (after the
    /// warm-up), as diffusers' training examples do.
    #[arg(long, conflicts_with = "inverse_sqrt_decay")]
    pub cosine_decay: bool,
    #[arg(long, value_name = "STEPS", help = recipe_default(
        "From this step on, decay the learning rate as √(STEPS / step) (Karras et al. 2024): needs no run length, so --resume can extend the run; 0: none",
        |r| r.inverse_sqrt_decay_from.unwrap_or(0).to_string(),
    ))]
    pub inverse_sqrt_decay: Option<usize>,
    #[arg(long, value_name = "BETA2", help = recipe_default("Adam's β₂ (EDM2 uses 0.99)", |r| r.adam_beta_2.to_string()))]
    pub adam_beta2: Option<f64>,
}

impl TrainArgs {
    /// The preset named by `--preset` or `--model` (none for a file).
    fn preset(&self) -> Option<Preset> {
        self.preset.or_else(|| self.model.as_deref().map_or(Some(RunSpec::SMALL_DATA.preset), |m| m.parse().ok()))
    }

    /// What the flags change of the recipe.
    fn overrides(&self) -> Overrides {
        Overrides {
            steps: self.steps,
            batch_size: self.batch,
            learning_rate: self.lr,
            adam_beta_2: self.adam_beta2,
            ema_decay: self.ema_decay,
            ema_power: self.ema_power,
            random_flip: self.random_flip,
            schedule: self.schedule,
            prediction: self.prediction,
            zero_terminal_snr: self.zero_terminal_snr.then_some(true),
            class_conditional: self.class_conditional.then_some(true),
            class_dropout: self.class_dropout,
            min_snr_gamma: self.min_snr_gamma,
            warmup_steps: self.warmup_steps,
            cosine_decay: self.cosine_decay.then_some(true),
            inverse_sqrt_decay: self.inverse_sqrt_decay,
            seed: self.seed,
            save_every: self.checkpoint_every,
            preview_every: self.grid_every,
            ..Overrides::default()
        }
    }
}

pub fn run(args: TrainArgs) -> CliResult {
    let devices = training_devices(args.backend, args.devices)?;
    let device = devices[0].clone();
    let spec = RunSpec::with_overrides(args.preset(), &args.overrides()).map_err(|e| format!("the training settings: {e}"))?;
    let data = args.data.clone().unwrap_or_else(|| PathBuf::from("www").join(spec.dataset.folder()));
    let (manifest, mut set) = load_train_split(&data)?;
    if let Some(limit) = args.limit {
        set = set.take(limit);
    }
    if set.is_empty() {
        return Err(format!("{}: the dataset has no images", data.display()));
    }
    let trainer = match &args.resume {
        Some(path) => {
            let (trainer, card) = Trainer::from_state_bytes(&read_file(path)?, &device).map_err(|e| format!("{}: {e}", path.display()))?;
            if card.dataset != manifest.name {
                return Err(format!("the run was trained on {}, but {} is {}", card.dataset, data.display(), manifest.name));
            }
            if trainer.step >= spec.steps {
                return Err(format!("the run is at step {} already; ask for more with --steps", trainer.step));
            }
            println!("resuming at step {}", trainer.step);
            trainer
        }
        None => fresh_trainer(&args, spec.clone(), &device, &manifest, &set)?,
    };
    let batch_size = trainer.config.batch_size;
    let mc = &trainer.model_config;
    mc.check_batch(batch_size).map_err(|e| format!("--batch: {e}"))?;
    if (mc.in_channels, mc.sample_size) != (set.channels, set.height) || set.height != set.width {
        return Err(format!(
            "the model takes {}×{}×{} images but {} has {}×{}×{}",
            mc.sample_size, mc.sample_size, mc.in_channels, manifest.name, set.height, set.width, set.channels
        ));
    }
    trainer.check_labels(&set).map_err(|e| format!("{}: {e}", data.display()))?;
    let mut trainer = trainer.with_devices(devices).map_err(|e| format!("--devices {}: {e}", args.devices))?;
    let save_state = |trainer: &Trainer| -> CliResult {
        let bytes = pollster::block_on(trainer.state_bytes(&trainer.card(&manifest.name))).map_err(|e| e.to_string())?;
        write_atomic(&args.state, &bytes)
    };
    let write_grid = |trainer: &Trainer| -> CliResult {
        let kind = SamplerKind::new(SamplerName::Ddim, spec.sample_steps, 0.0, None, &trainer.schedule.config);
        let count = spec.count;
        let mut run = SampleRun::new(&trainer.model_config, kind, &trainer.schedule, count, 0, &device);
        if let Some(classes) = trainer.model_config.num_classes() {
            // The grid of a class-conditional model cycles through its classes.
            let all: Vec<usize> = (0..classes).collect();
            run = run.with_guidance(&trainer.model_config, Guidance::cycling(&all, count, spec.guidance)).map_err(|e| e.to_string())?;
        }
        let values = sample_values(run, &trainer.ema);
        let (c, s) = (trainer.model_config.in_channels, trainer.model_config.sample_size);
        write_atomic(&args.grid, &samples_png(&values, count, c, s))
    };

    // The run's own cadences: a resumed run saves as this command says, not as it did.
    let cadences = Cadences { save_every: spec.save_every, preview_every: args.grid_every, quality_every: None };
    let mut run = TrainLoop::new(cadences, Some(spec.steps));
    let first = trainer.step;
    let bar = if args.log_every.is_some() { ProgressBar::hidden() } else { ProgressBar::new(spec.steps as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]")
            .expect("valid template"),
    );
    bar.set_position(first as u64);
    let start = Instant::now();
    while !run.is_done(&trainer) {
        let loss = run.step(&mut trainer, &set).map_err(|e| format!("{}: {e}", data.display()))?;
        let loss = loss.into_data().try_to_vec::<f32>().expect("f32 loss")[0];
        let report = run.record(trainer.step, loss).map_err(|e| {
            format!("{e}; try a smaller --lr (the last training state is in {})", args.state.display())
        })?;
        let rate = report.images as f64 / start.elapsed().as_secs_f64();
        bar.set_message(format!("loss {:.4}  {rate:.1} images/s", report.smoothed));
        bar.inc(1);
        if let Some(every) = args.log_every
            && report.step % every == 0
        {
            let (step, smoothed) = (report.step, report.smoothed);
            println!("{{\"step\": {step}, \"loss\": {loss}, \"smoothed_loss\": {smoothed}, \"images_per_s\": {rate:.2}}}");
        }
        if report.save {
            save_state(&trainer)?;
        }
        if report.preview {
            write_grid(&trainer)?;
        }
    }
    bar.finish();
    let elapsed = start.elapsed().as_secs_f64();
    let on = match args.devices {
        1 => args.backend.name().to_string(),
        n => format!("{n} {} devices", args.backend.name()),
    };
    let steps = trainer.step - first;
    println!("trained {steps} steps ({} images) in {elapsed:.0} s on {on}", steps * batch_size);
    if spec.save_every > 0 {
        save_state(&trainer)?;
        println!("wrote {} (continue with --resume)", args.state.display());
    }
    let card = trainer.card(&manifest.name);
    let bytes = pollster::block_on(to_bytes(&trainer.ema, &trainer.model_config, &trainer.schedule.config, &card)).map_err(|e| e.to_string())?;
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

/// A new run (or one continued from weights only) as the run spec says.
fn fresh_trainer(args: &TrainArgs, spec: RunSpec, device: &Device, manifest: &Manifest, set: &ImageSet) -> CliResult<Trainer> {
    let model = args.model.clone().unwrap_or_else(|| spec.preset.name().to_string());
    let mut source = model_source(&model)?;
    let classes = match spec.class_conditional {
        true => Some(
            conditional_classes(manifest.classes.len(), &set.labels)
                .map_err(|e| format!("--class-conditional: {} has {e}", manifest.name))?,
        ),
        false => None,
    };
    if args.preset().is_some() {
        // A preset names an architecture: it takes the data's image size and channels, as in the tab.
        source.config = spec.model_config(set.height, set.channels, classes).map_err(|e| format!("{e} ({})", manifest.name))?;
    } else if classes.is_some() && source.config.num_classes().is_none() {
        if source.checkpoint.is_some() {
            return Err(format!("--class-conditional: {model} was trained without class labels; start from a preset instead"));
        }
        source.config = source.config.conditional_on(classes.expect("checked"));
    }
    if args.class_dropout.is_some() && source.config.num_class_embeds.is_none() {
        return Err(format!("--class-dropout: {model} is not class-conditional (add --class-conditional)"));
    }
    // A fresh model takes the spec's schedule; one with weights keeps its own, which the flags
    // may not change.
    if source.checkpoint.is_none() {
        source.schedule = spec.schedule_config_on(source.schedule);
    } else if args.schedule.is_some() || args.prediction.is_some() || args.zero_terminal_snr {
        return Err(format!(
            "--schedule/--prediction/--zero-terminal-snr: {} was trained with {:?} β predicting {:?}; it keeps them",
            model, source.schedule.beta_schedule, source.schedule.prediction_type
        ));
    }
    let trainer = match source.checkpoint {
        None => Trainer::new(source.config.clone(), spec, device),
        Some(_) => Trainer::from_model(source.build(device, spec.seed).map_err(|e| e.to_string())?, source.config.clone(), spec, device),
    };
    Ok(trainer.with_schedule(source.schedule.clone()))
}
