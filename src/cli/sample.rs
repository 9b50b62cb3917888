//! `sample`: a model -> a PNG grid (and raw values as .npy).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;

use super::{Backend, CliResult, model_source, read_file, write_atomic};
use crate::data::{decode_npy, encode_npy, samples_png};
use crate::diffusion::{RandomStream, SamplerKind, SamplerName, Schedule, Spacing};
use crate::model::{UNet, UNetConfig};
use crate::pipeline::{Guidance, SampleRun};
use crate::train::Recipe;

/// Which sampler and how (shared by `sample` and `eval`).
#[derive(Args, Debug)]
pub struct SamplerArgs {
    #[arg(long, value_enum, default_value_t = SamplerName::Ddim)]
    pub sampler: SamplerName,
    /// Steps of DDIM or DPM-Solver++ (DDPM takes all T).
    #[arg(long, default_value_t = Recipe::SMALL_DATA.sample_steps)]
    pub steps: usize,
    /// DDIM η (0 = deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    /// Timestep spacing (default: leading for DDIM, linspace for DPM-Solver++, as diffusers).
    #[arg(long, value_enum)]
    pub spacing: Option<Spacing>,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A weights file (.safetensors, from the tab or `train`), a diffusers model folder, or a
    /// preset (random weights).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub sampling: SamplerArgs,
    /// Seed of x_T and of the sampler's noise; the tab uses the same stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of images.
    #[arg(long, default_value_t = Recipe::SMALL_DATA.count)]
    pub count: usize,
    /// Start from this x_T (float32 .npy, `[N, C, H, W]`) instead of seeded noise; N images.
    #[arg(long)]
    pub init_noise: Option<PathBuf>,
    /// PNG grid to write.
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
    /// Also write the raw `[count, C, H, W]` values as float32 .npy.
    #[arg(long)]
    pub out_npy: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
    /// Sample these classes of a class-conditional model (repeat the flag or give a comma
    /// list; the images cycle through them).
    #[arg(long = "class", value_name = "N", value_delimiter = ',')]
    pub classes: Vec<usize>,
    /// Classifier-free guidance scale w with `--class`: 1 samples plainly conditionally, 0
    /// unconditionally, larger values follow the class more closely.
    #[arg(long, value_name = "W", requires = "classes", default_value_t = Recipe::SMALL_DATA.guidance)]
    pub guidance: f64,
}

impl SamplerArgs {
    pub fn kind(&self) -> SamplerKind {
        SamplerKind::new(self.sampler, self.steps, self.eta, self.spacing)
    }

    /// In words, for reports: "DDIM-50 (η = 0, Leading)".
    pub fn describe(&self) -> String {
        self.kind().describe()
    }

    pub fn check(&self) -> CliResult {
        if self.steps == 0 {
            return Err("--steps must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.eta) {
            return Err("--eta must be between 0 and 1".into());
        }
        Ok(())
    }
}

/// Runs a whole sampling run and returns the raw values `[count, C, H, W]`.
pub fn sample_values(run: SampleRun, model: &UNet) -> Vec<f32> {
    run.finish(model).into_data().try_to_vec::<f32>().expect("f32 samples")
}

/// x_T from an .npy file, checked against the model's image shape.
fn init_noise(path: &std::path::Path, config: &UNetConfig, device: &Device) -> CliResult<Tensor<4>> {
    let (shape, values) = decode_npy(&read_file(path)?).map_err(|e| format!("{}: {e}", path.display()))?;
    let (c, s) = (config.in_channels, config.sample_size);
    match shape[..] {
        [n, sc, sh, sw] if n > 0 && (sc, sh, sw) == (c, s, s) => {
            config.check_batch(n).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Tensor::from_data(TensorData::new(values, [n, c, s, s]), device))
        }
        _ => Err(format!("{}: x_T has shape {shape:?}; this model needs [N, {c}, {s}, {s}]", path.display())),
    }
}

pub fn run(args: SampleArgs) -> CliResult {
    if args.count == 0 {
        return Err("--count must be at least 1".into());
    }
    args.sampling.check()?;
    let device = args.backend.device();
    let source = model_source(&args.model)?;
    if args.init_noise.is_none() {
        source.config.check_batch(args.count).map_err(|e| format!("--count: {e}"))?;
    }
    let model = source.build(&device).map_err(|e| e.to_string())?;
    let (config, schedule) = (&source.config, Schedule::new(source.schedule.clone()));
    let run = match &args.init_noise {
        Some(path) => SampleRun::from_noise(args.sampling.kind(), &schedule, init_noise(path, config, &device)?, RandomStream::new(args.seed)),
        None => SampleRun::new(config, args.sampling.kind(), &schedule, args.count, args.seed, &device),
    };
    let count = run.sample.dims()[0];
    let run = if args.classes.is_empty() {
        run
    } else {
        let guidance = Guidance::cycling(&args.classes, count, args.guidance);
        run.with_guidance(config, guidance).map_err(|e| format!("--class: {}: {e}", args.model))?
    };
    let values = sample_values(run, &model);
    let (c, s) = (config.in_channels, config.sample_size);
    write_atomic(&args.out, &samples_png(&values, count, c, s))?;
    println!("wrote {}", args.out.display());
    if let Some(path) = &args.out_npy {
        write_atomic(path, &encode_npy(&[count, c, s, s], &values))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        sampling: SamplerArgs,
    }

    /// `--sampler` takes every name the core knows, each for a sampler of its own, and
    /// refuses others with the list.
    #[test]
    fn every_sampler_flag_names_a_core_sampler() {
        let mut kinds = Vec::new();
        for name in SamplerName::ALL {
            let flags = Flags::try_parse_from(["sample", "--sampler", name.name(), "--steps", "10"]).unwrap();
            let kind = flags.sampling.kind();
            assert_eq!(kind.name(), *name, "--sampler {name}");
            assert!(!kinds.contains(&kind), "--sampler {name} names a sampler another flag names");
            kinds.push(kind);
        }
        assert_eq!(kinds.len(), 4, "ddim, dpm-solver, ddpm, ddpm-large");
        let error = Flags::try_parse_from(["sample", "--sampler", "euler"]).err().unwrap().to_string();
        assert!(error.contains("ddim, dpm-solver, ddpm, ddpm-large"), "{error}");
    }
}
