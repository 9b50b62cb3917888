//! `bench`: training and DDIM-50 sampling throughput for one model on one backend.

use std::time::Instant;

use burn::module::Module;
use clap::Args;

use super::{Backend, CliResult, model_source};
use crate::data::ImageSet;
use crate::diffusion::{RandomStream, Schedule};
use crate::pipeline::Bench;
use crate::spec::RunSpec;
use crate::train::Trainer;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A preset, a weights file or a diffusers folder.
    #[arg(long, default_value_t = RunSpec::SMALL_DATA.preset.to_string())]
    pub model: String,
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
    #[arg(long, default_value_t = RunSpec::SMALL_DATA.batch_size)]
    pub batch: usize,
    /// Timed training steps (after one untimed warm-up step).
    #[arg(long, default_value_t = Bench::TRAIN_STEPS)]
    pub train_steps: usize,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: BenchArgs) -> CliResult {
    if args.batch == 0 || args.train_steps == 0 {
        return Err("--batch and --train-steps must be at least 1".into());
    }
    let device = args.backend.device();
    let source = model_source(&args.model)?;
    source.config.check_batch(args.batch).map_err(|e| format!("--batch: {e}"))?;
    let (model, config) = (source.build(&device, RunSpec::SMALL_DATA.seed).map_err(|e| e.to_string())?, source.config.clone());
    let schedule = Schedule::new(source.schedule.clone());
    let params = model.num_params();

    // Training: random images stand in for data; the cost does not depend on the pixels.
    let (c, s) = (config.in_channels, config.sample_size);
    let pixels = RandomStream::new(1).indices(args.batch * c * s * s, 256).into_iter().map(|p| p as u8).collect();
    let set = ImageSet::new(s, s, c, pixels, Vec::new()).map_err(|e| e.to_string())?;
    // The recipe the model trains with (a preset's own), at the measured batch.
    let train_config = args.model.parse().map_or(RunSpec::SMALL_DATA, RunSpec::for_preset).with_batch_size(args.batch);
    let mut trainer = Trainer::from_model(model.clone(), config.clone(), train_config, &device);
    let all: Vec<usize> = (0..args.batch).collect();
    let read_loss = |loss: burn::tensor::Tensor<1>| loss.into_data().try_to_vec::<f32>().expect("f32")[0];
    read_loss(trainer.step(set.batch(&all, &device))); // warm-up: kernels compiled, memory pooled
    let start = Instant::now();
    for _ in 0..args.train_steps {
        read_loss(trainer.step(set.batch(&all, &device)));
    }
    let train_seconds = start.elapsed().as_secs_f64();

    // DDIM-50: one warm-up step, then a full run.
    let mut warm = Bench::sample_run(&config, &schedule, args.batch, &device);
    warm.step(&model);
    let _ = warm.sample.into_data();
    let start = Instant::now();
    let _ = Bench::sample_run(&config, &schedule, args.batch, &device).finish(&model).into_data();
    let sample_seconds = start.elapsed().as_secs_f64();

    let report = Bench::report(&args.model, args.backend.name(), args.batch, params, args.train_steps, train_seconds, sample_seconds);
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{} on {} (batch {}, {params} parameters):", args.model, args.backend.name(), args.batch);
        println!("  training      {:.2} images/s", report.train_images_per_s);
        println!("  DDIM-50       {:.2} images/s", report.ddim50_images_per_s);
    }
    Ok(())
}
