//! `export`: any model `--model` names, as a diffusers folder that
//! `UNet2DModel.from_pretrained` and `DDPMScheduler.from_pretrained` load.

use std::path::PathBuf;

use clap::Args;

use super::sample::SchedulerArgs;
use super::{CliResult, model_source, write_atomic};
use crate::checkpoint::{DiffusersFolder, to_bytes};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A weights file of ours, a diffusers folder, or a preset (fresh weights from `--seed`).
    #[arg(long)]
    pub model: String,
    /// Folder to write: config.json, diffusion_pytorch_model.safetensors, scheduler_config.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the fresh weights of a preset.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The scheduler config written: the model's, with these fields changed.
    #[command(flatten)]
    pub scheduler: SchedulerArgs,
}

pub fn run(args: ExportArgs) -> CliResult {
    let source = model_source(&args.model)?;
    let device = burn::tensor::Device::flex();
    let model = source.build(&device, args.seed).map_err(|e| e.to_string())?;
    let card = source.checkpoint.as_ref().map(|c| c.card.clone()).unwrap_or_default();
    let schedule = args.scheduler.apply(&source.schedule)?;
    let weights = pollster::block_on(to_bytes(&model, &source.config, &schedule, &card)).map_err(|e| e.to_string())?;
    let (config, scheduler) = DiffusersFolder::configs(&source.config, &schedule);
    write_atomic(&args.out.join(DiffusersFolder::CONFIG), config.as_bytes())?;
    write_atomic(&args.out.join(DiffusersFolder::SCHEDULER), scheduler.as_bytes())?;
    write_atomic(&args.out.join(DiffusersFolder::WEIGHTS), &weights)?;
    println!("wrote {}/ ({}, {}, {})", args.out.display(), DiffusersFolder::CONFIG, DiffusersFolder::WEIGHTS, DiffusersFolder::SCHEDULER);
    Ok(())
}
