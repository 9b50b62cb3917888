//! Where a model comes from: a preset, a weights file of ours, or a diffusers model folder's
//! files. The CLI reads the files from disk and the tab from an upload; both build the model
//! here.

use burn::tensor::Device;

use super::{Checkpoint, CheckpointError, DiffusersFolder, decode, parse_safetensors};
use crate::diffusion::ScheduleConfig;
use crate::model::{Preset, UNet, UNetConfig, init_seeded};

/// The `format` of a training-state file, up to its version (`train::STATE_FORMAT`, a layer
/// above this one; tests/ddp.rs samples a state through here, which fails if they part).
const TRAINING_STATE: &str = "tabdiffusion-train-state/";

/// A model's config and schedule, and its weights if it has any.
#[derive(Clone, Debug)]
pub struct ModelSource {
    pub config: UNetConfig,
    pub schedule: ScheduleConfig,
    /// `None` for a preset or a diffusers config without weights: fresh weights.
    pub checkpoint: Option<Checkpoint>,
}

/// Why uploaded files are not a model.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "pick one .safetensors file, or the files of a diffusers model folder (config.json, diffusion_pytorch_model.safetensors, scheduler_config.json)."
    )]
    NotAModel,
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl ModelSource {
    /// A preset's architecture with the DDPM schedule and fresh weights.
    pub fn preset(preset: Preset) -> Self {
        Self { config: preset.config(), schedule: ScheduleConfig::default(), checkpoint: None }
    }

    /// A weights file of ours (`.safetensors` with our metadata), or a whole run's training
    /// state (`train --state`, the tab's whole-run export, `scripts/cluster/train.py`), whose
    /// EMA weights (`ema.*`) are the model, as a run's samples and exports use them.
    pub fn weights(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let mut checkpoint = decode(bytes)?;
        let (_, info) = parse_safetensors(bytes)?;
        if info.get("format").is_some_and(|f| f.starts_with(TRAINING_STATE)) {
            checkpoint.tensors =
                checkpoint.tensors.into_iter().filter_map(|(name, t)| Some((name.strip_prefix("ema.")?.to_string(), t))).collect();
        }
        Ok(Self { config: checkpoint.config.clone(), schedule: checkpoint.schedule.clone(), checkpoint: Some(checkpoint) })
    }

    /// A diffusers folder's `config.json`, its weights (optional: without them, fresh ones) and
    /// its `scheduler_config.json` (optional: the DDPM schedule).
    pub fn diffusers(config_json: &str, weights: Option<&[u8]>, scheduler_json: Option<&str>) -> Result<Self, CheckpointError> {
        let (config, schedule, checkpoint) = DiffusersFolder::from_files(config_json, weights, scheduler_json)?;
        Ok(Self { config, schedule, checkpoint })
    }

    /// Files picked together (the tab's Import): a diffusers folder's files, found by their
    /// names, or one weights file of ours.
    pub fn from_files(files: &[(String, Vec<u8>)]) -> Result<Self, SourceError> {
        let find = |name: &str| files.iter().find(|(n, _)| n == name).map(|(_, b)| String::from_utf8_lossy(b).into_owned());
        if let Some(config) = find(DiffusersFolder::CONFIG) {
            let weights = files.iter().find(|(n, _)| n.ends_with(".safetensors")).map(|(_, b)| b.as_slice());
            return Ok(Self::diffusers(&config, weights, find(DiffusersFolder::SCHEDULER).as_deref())?);
        }
        match files {
            [(_, bytes)] => Ok(Self::weights(bytes)?),
            _ => Err(SourceError::NotAModel),
        }
    }

    /// The model on `device`: the loaded weights, or fresh ones drawn from `seed`.
    pub fn build(&self, device: &Device, seed: u64) -> Result<UNet, CheckpointError> {
        match &self.checkpoint {
            Some(checkpoint) => checkpoint.load(device),
            None => Ok(init_seeded(device, seed, || self.config.init(device))),
        }
    }

    /// The training steps the weights have had (0 for fresh ones).
    pub fn steps(&self) -> usize {
        self.checkpoint.as_ref().map_or(0, |c| c.card.steps as usize)
    }
}
