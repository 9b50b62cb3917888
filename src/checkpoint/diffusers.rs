//! A diffusers model folder (`UNet2DModel` + `DDPMScheduler`) as files: read from them, and
//! written as them (or as one zip of them, for the tab's download).

use super::{Checkpoint, CheckpointError, parse_safetensors, schedule_config, tensors};
use crate::diffusion::ScheduleConfig;
use crate::model::{UNetConfig, from_diffusers_config, to_diffusers_config};

/// The files of a diffusers model folder: `config.json`, `diffusion_pytorch_model.safetensors`
/// and, for a scheduler, `scheduler_config.json`.
pub struct DiffusersFolder;

impl DiffusersFolder {
    pub const CONFIG: &'static str = "config.json";
    pub const WEIGHTS: &'static str = "diffusion_pytorch_model.safetensors";
    pub const SCHEDULER: &'static str = "scheduler_config.json";

    /// Reads a folder's contents. Weights are optional: without them the config describes a
    /// fresh model, so `None` is returned for the checkpoint and the config alone is usable.
    pub fn from_files(
        config_json: &str,
        weights: Option<&[u8]>,
        scheduler_json: Option<&str>,
    ) -> Result<(UNetConfig, ScheduleConfig, Option<Checkpoint>), CheckpointError> {
        let config = from_diffusers_config(config_json).map_err(|e| CheckpointError::BadConfig(e.to_string()))?;
        let schedule = match scheduler_json {
            Some(json) => schedule_config(json, Self::SCHEDULER)?,
            None => ScheduleConfig::default(),
        };
        let checkpoint = match weights {
            None => None,
            Some(bytes) => {
                let (file, info) = parse_safetensors(bytes)?;
                let card = info.get("model_card").and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
                Some(Checkpoint { config: config.clone(), schedule: schedule.clone(), card, tensors: tensors(&file)? })
            }
        };
        Ok((config, schedule, checkpoint))
    }

    /// The whole folder as an uncompressed zip (`{folder}/config.json`, …): what the tab
    /// downloads, since a page can only hand over one file per click.
    pub fn zip(folder: &str, config: &UNetConfig, schedule: &ScheduleConfig, weights: &[u8]) -> Vec<u8> {
        use std::io::Write;
        use zip::write::{SimpleFileOptions, ZipWriter};
        let (config_json, scheduler_json) = Self::configs(config, schedule);
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(weights.len() > u32::MAX as usize / 2);
        let mut zip = ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in
            [(Self::CONFIG, config_json.as_bytes()), (Self::SCHEDULER, scheduler_json.as_bytes()), (Self::WEIGHTS, weights)]
        {
            zip.start_file(format!("{folder}/{name}"), options).expect("in-memory zip");
            zip.write_all(bytes).expect("in-memory zip");
        }
        zip.finish().expect("in-memory zip").into_inner()
    }

    /// `config.json` and `scheduler_config.json` for a checkpoint; its weights file is the third.
    pub fn configs(config: &UNetConfig, schedule: &ScheduleConfig) -> (String, String) {
        (to_diffusers_config(config), schedule.to_json())
    }
}
