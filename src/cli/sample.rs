//! `sample`: a model -> a PNG grid (and raw values as .npy).

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use clap::Args;

use super::{Backend, CliResult, model_source, read_file, write_atomic};
use crate::data::{decode_npy, encode_npy, samples_png};
use crate::diffusion::{RandomStream, SamplerKind, SamplerName, Schedule, ScheduleConfig, Spacing, Variance};
use crate::model::{UNet, UNetConfig};
use crate::pipeline::{Guidance, SampleRun};
use crate::spec::RunSpec;

/// Which sampler and how (shared by `sample` and `eval`).
#[derive(Args, Debug)]
pub struct SamplerArgs {
    #[arg(long, value_enum, default_value_t = SamplerName::Ddim)]
    pub sampler: SamplerName,
    /// Steps of DDIM or DPM-Solver++ (DDPM takes all T).
    #[arg(long, default_value_t = RunSpec::SMALL_DATA.sample_steps)]
    pub steps: usize,
    /// DDIM η (0 = deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub eta: f64,
    /// Timestep spacing (default: the model's scheduler config, else leading for DDIM and
    /// linspace for DPM-Solver++, as diffusers).
    #[arg(long, value_enum)]
    pub spacing: Option<Spacing>,
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
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
    #[arg(long, default_value_t = RunSpec::SMALL_DATA.count)]
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
    #[arg(long, value_name = "W", requires = "classes", default_value_t = RunSpec::SMALL_DATA.guidance)]
    pub guidance: f64,
}

/// Overrides of a model's scheduler config (its `scheduler_config.json`, or the file's own),
/// named as diffusers names the fields (shared by `sample`, `eval` and `export`).
#[derive(Args, Debug)]
pub struct SchedulerArgs {
    /// Clip x̂_0 at each DDPM and DDIM step.
    #[arg(long, value_name = "BOOL")]
    pub clip_sample: Option<bool>,
    /// Clip x̂_0 to ±this.
    #[arg(long, value_name = "X")]
    pub clip_sample_range: Option<f64>,
    /// Dynamic thresholding of x̂_0 (Imagen) instead of clipping, at every sampler.
    #[arg(long, value_name = "BOOL")]
    pub thresholding: Option<bool>,
    /// The quantile of |x̂_0| that thresholding scales by.
    #[arg(long, value_name = "Q")]
    pub dynamic_thresholding_ratio: Option<f64>,
    /// The largest scale thresholding divides by.
    #[arg(long, value_name = "X")]
    pub sample_max_value: Option<f64>,
    /// DDIM's last step goes to ᾱ = 1 (true) or to ᾱ_0 (false).
    #[arg(long, value_name = "BOOL")]
    pub set_alpha_to_one: Option<bool>,
    /// Added to every timestep of leading spacing.
    #[arg(long, value_name = "N")]
    pub steps_offset: Option<usize>,
    /// Rescale β to zero terminal SNR (Lin et al. 2024; for v-prediction models).
    #[arg(long, value_name = "BOOL")]
    pub rescale_betas_zero_snr: Option<bool>,
    /// The spacing of the few-step samplers' timesteps the config records (leading, trailing,
    /// linspace); `--spacing` overrides it for one run.
    #[arg(long, value_name = "SPACING")]
    pub timestep_spacing: Option<Spacing>,
    /// DDPM's reverse variance the config records: fixed_small (β̃_t) or fixed_large (β_t).
    #[arg(long, value_name = "TYPE")]
    pub variance_type: Option<Variance>,
}

impl SchedulerArgs {
    /// `model` with the flags' overrides, checked.
    pub fn apply(&self, model: &ScheduleConfig) -> CliResult<ScheduleConfig> {
        let mut config = model.clone();
        let set = |field: &mut bool, flag: Option<bool>| *field = flag.unwrap_or(*field);
        set(&mut config.clip_sample, self.clip_sample);
        set(&mut config.thresholding, self.thresholding);
        set(&mut config.set_alpha_to_one, self.set_alpha_to_one);
        set(&mut config.rescale_betas_zero_snr, self.rescale_betas_zero_snr);
        config.clip_sample_range = self.clip_sample_range.unwrap_or(config.clip_sample_range);
        config.dynamic_thresholding_ratio = self.dynamic_thresholding_ratio.unwrap_or(config.dynamic_thresholding_ratio);
        config.sample_max_value = self.sample_max_value.unwrap_or(config.sample_max_value);
        config.steps_offset = self.steps_offset.unwrap_or(config.steps_offset);
        config.timestep_spacing = self.timestep_spacing.or(config.timestep_spacing);
        config.variance_type = self.variance_type.unwrap_or(config.variance_type);
        config.validate().map_err(|e| format!("the scheduler flags: {e}"))?;
        Ok(config)
    }
}

impl SamplerArgs {
    /// The schedule of a model whose scheduler config is `model`, with the flags' overrides.
    pub fn schedule(&self, model: &ScheduleConfig) -> CliResult<Schedule> {
        Ok(Schedule::new(self.scheduler.apply(model)?))
    }

    /// The sampler, for a model sampled with `schedule`.
    pub fn kind(&self, schedule: &Schedule) -> SamplerKind {
        SamplerKind::new(self.sampler, self.steps, self.eta, self.spacing, &schedule.config)
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
    let model = source.build(&device, args.seed).map_err(|e| e.to_string())?;
    let (config, schedule) = (&source.config, args.sampling.schedule(&source.schedule)?);
    let kind = args.sampling.kind(&schedule);
    let run = match &args.init_noise {
        Some(path) => SampleRun::from_noise(kind, &schedule, init_noise(path, config, &device)?, RandomStream::new(args.seed)),
        None => SampleRun::new(config, kind, &schedule, args.count, args.seed, &device),
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
            let kind = flags.sampling.kind(&Schedule::ddpm());
            assert_eq!(kind.name(), *name, "--sampler {name}");
            assert!(!kinds.contains(&kind), "--sampler {name} names a sampler another flag names");
            kinds.push(kind);
        }
        assert_eq!(kinds.len(), 4, "ddim, dpm-solver, ddpm, ddpm-large");
        let error = Flags::try_parse_from(["sample", "--sampler", "euler"]).err().unwrap().to_string();
        assert!(error.contains("ddim, dpm-solver, ddpm, ddpm-large"), "{error}");
    }

    /// The scheduler flags override the model's config field by field; the rest stays the
    /// model's, and out-of-range values are refused.
    #[test]
    fn scheduler_flags_override_the_models_config() {
        let model = ScheduleConfig { clip_sample: false, timestep_spacing: Some(Spacing::Trailing), ..ScheduleConfig::default() };
        let flags = Flags::try_parse_from(["sample", "--thresholding", "true", "--steps-offset", "1", "--set-alpha-to-one", "false"]).unwrap();
        let schedule = flags.sampling.schedule(&model).unwrap();
        let expected = ScheduleConfig { thresholding: true, steps_offset: 1, set_alpha_to_one: false, ..model.clone() };
        assert_eq!(schedule.config, expected);
        assert_eq!(flags.sampling.kind(&schedule), SamplerKind::Ddim { steps: RunSpec::SMALL_DATA.sample_steps, eta: 0.0, spacing: Spacing::Trailing });
        let flags = Flags::try_parse_from(["sample", "--clip-sample-range=-1"]).unwrap();
        assert!(flags.sampling.schedule(&model).unwrap_err().contains("clip_sample_range"));
    }
}
