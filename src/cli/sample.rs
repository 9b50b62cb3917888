//! `sample`: a checkpoint -> a PNG grid (and raw values as .npy).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{Backend, CliResult, ModelSource, model_source, write_atomic};
use crate::data::{encode_npy, samples_png};
use crate::diffusion::{SamplerKind, Schedule};
use crate::model::{UNet, UNetConfig};
use crate::pipeline::SampleRun;
use burn::tensor::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SamplerName {
    /// Ancestral sampling, all 1000 steps (DDPM Algorithm 2).
    Ddpm,
    /// DDIM with `--steps` and `--eta`.
    Ddim,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A weights file (.safetensors, from the tab or `train`), or a preset (random weights).
    #[arg(long)]
    pub model: String,
    #[arg(long, value_enum, default_value = "ddim")]
    pub sampler: SamplerName,
    /// DDIM steps.
    #[arg(long, default_value_t = 50)]
    pub steps: usize,
    /// DDIM η (0 = deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    /// Seed of x_T and of the sampler's noise; the tab uses the same stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// PNG grid to write.
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
    /// Also write the raw `[count, C, H, W]` values as float32 .npy.
    #[arg(long)]
    pub out_npy: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
}

impl SampleArgs {
    pub fn kind(&self) -> SamplerKind {
        match self.sampler {
            SamplerName::Ddpm => SamplerKind::Ddpm { variance: crate::diffusion::Variance::FixedSmall },
            SamplerName::Ddim => SamplerKind::Ddim { steps: self.steps, eta: self.eta, spacing: Default::default() },
        }
    }
}

/// Builds the model of `--model` on `device`.
pub fn load_model(source: ModelSource, device: &Device) -> CliResult<(UNet, UNetConfig)> {
    match source {
        ModelSource::Preset(config) => Ok((config.init(device), config)),
        ModelSource::File(checkpoint) => {
            let model = checkpoint.load(device).map_err(|e| e.to_string())?;
            Ok((model, checkpoint.config))
        }
    }
}

/// Runs a whole sampling run and returns the raw values `[count, C, H, W]`.
pub fn sample_values(model: &UNet, config: &UNetConfig, kind: SamplerKind, count: usize, seed: u64, device: &Device) -> Vec<f32> {
    let mut run = SampleRun::new(config, kind, &Schedule::ddpm(), count, seed, device);
    while run.step(model).is_some() {}
    run.sample.into_data().try_to_vec::<f32>().expect("f32 samples")
}

pub fn run(args: SampleArgs) -> CliResult {
    if args.count == 0 || args.steps == 0 {
        return Err("--count and --steps must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.eta) {
        return Err("--eta must be between 0 and 1".into());
    }
    let device = args.backend.device();
    let (model, config) = load_model(model_source(&args.model)?, &device)?;
    let values = sample_values(&model, &config, args.kind(), args.count, args.seed, &device);
    let (c, s) = (config.in_channels, config.sample_size);
    write_atomic(&args.out, &samples_png(&values, args.count, c, s))?;
    println!("wrote {}", args.out.display());
    if let Some(path) = &args.out_npy {
        write_atomic(path, &encode_npy(&[args.count, c, s, s], &values))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
