//! The whole state of a training run as one safetensors file, so that a run continues exactly
//! where it stood: the weights, the EMA, Adam's moments and step count, the step, the position
//! of the random stream, and the settings. Every tensor is read with the async API, so the tab
//! saves its runs the same way the CLI does.

use std::collections::{BTreeMap, HashMap};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::{RandomStream, Trainer};
use crate::checkpoint::{
    CheckpointError, ModelCard, Tensors, load_tensors, named_tensors, parse_safetensors, schedule_config, serialize, tensors, unet_config,
};
use crate::limits;
use crate::diffusion::ScheduleConfig;
use crate::model::UNetConfig;
use crate::model::state_dict::read_values;
use crate::spec::RunSpec;

/// The `format` of a training-state file. Version 1 held burn's own optimizer record.
pub const STATE_FORMAT: &str = "tabdiffusion-train-state/2";

/// Prefix of Adam's moments (`adam.m.{path}`, `adam.v.{path}`).
const ADAM: &str = "adam.";

fn bad(what: &str) -> CheckpointError {
    CheckpointError::BadConfig(format!("training state: {what} is missing or unreadable"))
}

/// Everything a training-state file holds, read and checked, before any model is built.
#[derive(Clone, Debug)]
pub struct SavedState {
    pub model_config: UNetConfig,
    pub schedule: ScheduleConfig,
    pub config: RunSpec,
    pub card: ModelCard,
    pub step: usize,
    pub adam_time: usize,
    pub rng_position: u128,
    /// Every tensor, under its name in the file (`model.…`, `ema.…`, `adam.m.…`, `adam.v.…`).
    pub tensors: Tensors,
}

/// A step count from the metadata: a number up to [`limits::MAX_TRAINING_STEPS`].
fn steps(info: &HashMap<String, String>, key: &str) -> Result<usize, CheckpointError> {
    let value: u64 = info.get(key).and_then(|v| v.parse().ok()).ok_or_else(|| bad(key))?;
    let value = limits::at_most(&format!("training state: {key}"), value, limits::MAX_TRAINING_STEPS)
        .map_err(|e| CheckpointError::Limit(e.into()))?;
    usize::try_from(value).map_err(|_| CheckpointError::Limit(format!("training state: {key} {value} does not fit this machine")))
}

impl Trainer {
    /// Reads a training-state file written by [`Trainer::state_bytes`]: its format, its
    /// settings (the model config validated, the schedule and training settings checked) and
    /// its tensors (Adam's moments must be 1-D). Builds nothing: [`Trainer::from_state_bytes`]
    /// does, from this.
    pub fn read_state(bytes: &[u8]) -> Result<SavedState, CheckpointError> {
        let (file, info) = parse_safetensors(bytes)?;
        match info.get("format").map(String::as_str) {
            Some(STATE_FORMAT) => {}
            Some("tabdiffusion-train-state/1") => {
                return Err(CheckpointError::BadConfig(
                    "a training state of an earlier version (tabdiffusion-train-state/1), whose optimizer state only burn could read; start a new run from its weights instead".into(),
                ));
            }
            _ => {
                return Err(CheckpointError::BadConfig(
                    "not a training-state file (written by `tabdiffusion train --state` or the tab)".into(),
                ));
            }
        }
        let parse = |key: &str| info.get(key).ok_or_else(|| bad(key));
        let model_config = unet_config(parse("config")?)?;
        let schedule = schedule_config(parse("scheduler")?, "training state: scheduler")?;
        let config = RunSpec::from_state_json(parse("train")?).ok_or_else(|| bad("train"))?;
        config.validate().map_err(|e| CheckpointError::BadConfig(format!("training state: train: {e}")))?;
        let card: ModelCard = serde_json::from_str(parse("model_card")?).map_err(|_| bad("model_card"))?;
        let step = steps(&info, "step")?;
        let adam_time = steps(&info, "adam_time")?;
        let rng_position: u128 = parse("rng_position")?.parse().map_err(|_| bad("rng_position"))?;
        let tensors = tensors(&file)?;
        if let Some((name, (shape, _))) = tensors.iter().find(|(name, (shape, _))| name.starts_with(ADAM) && shape.len() != 1) {
            return Err(CheckpointError::Mismatch(format!("Adam's {name} is {shape:?}; moments are 1-D")));
        }
        Ok(SavedState { model_config, schedule, config, card, step, adam_time, rng_position, tensors })
    }
}

impl Trainer {
    /// The model card of this run on `dataset`: its steps, the images it has seen and its
    /// settings.
    pub fn card(&self, dataset: &str) -> ModelCard {
        ModelCard {
            dataset: dataset.to_string(),
            steps: self.step as u64,
            images_seen: (self.step * self.config.batch_size) as u64,
            run: Some(self.config.clone()),
        }
    }

    /// Everything needed to continue this run exactly.
    pub async fn state_bytes(&self, card: &ModelCard) -> Result<Vec<u8>, CheckpointError> {
        self.state_bytes_with(card, &[]).await
    }

    /// [`Trainer::state_bytes`] with more metadata of the shell's (the tab keeps its settings
    /// and loss history there); read it back with [`state_metadata`].
    pub async fn state_bytes_with(&self, card: &ModelCard, extra: &[(&str, String)]) -> Result<Vec<u8>, CheckpointError> {
        let model = named_tensors(&self.model.valid()).await?;
        let ema = named_tensors(&self.ema).await?;
        let mut moments = Vec::new();
        for (name, tensor) in self.optimizer.moments() {
            let values = read_values(tensor).await?;
            moments.push((name, vec![values.len()], values));
        }
        let mut tensors = Vec::with_capacity(model.len() + ema.len() + moments.len());
        for (prefix, list) in [("model.", model), ("ema.", ema), (ADAM, moments)] {
            tensors.extend(list.into_iter().map(|(name, shape, values)| (format!("{prefix}{name}"), shape, values)));
        }
        let json = |v: serde_json::Result<String>| v.expect("settings serialise");
        let mut metadata = HashMap::from([
            ("format".to_string(), STATE_FORMAT.to_string()),
            ("config".to_string(), json(serde_json::to_string(&self.model_config))),
            ("scheduler".to_string(), json(serde_json::to_string(&self.schedule.config))),
            ("train".to_string(), json(serde_json::to_string(&self.config))),
            ("model_card".to_string(), json(serde_json::to_string(card))),
            ("step".to_string(), self.step.to_string()),
            ("adam_time".to_string(), self.optimizer.time.to_string()),
            ("rng_position".to_string(), self.rng.position().to_string()),
        ]);
        for (key, value) in extra {
            metadata.insert(key.to_string(), value.clone());
        }
        Ok(serialize(metadata, &tensors))
    }

    /// Continues a run from [`Trainer::state_bytes`] on `device`; returns it with its card.
    pub fn from_state_bytes(bytes: &[u8], device: &Device) -> Result<(Self, ModelCard), CheckpointError> {
        let SavedState { model_config, schedule, config, card, step, adam_time, rng_position, tensors } =
            Self::read_state(bytes)?;
        let split = |prefix: &str| -> Tensors {
            tensors
                .iter()
                .filter_map(|(name, t)| name.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
                .collect()
        };
        // Built only from a validated config (`unet_config` ran `validate`).
        let model = load_tensors(model_config.init(device), &split("model."), device)?;
        let ema = load_tensors(model_config.init(device), &split("ema."), device)?;
        let moments: BTreeMap<String, Tensor<1>> = split(ADAM)
            .into_iter()
            .map(|(name, (shape, values))| (name, Tensor::from_data(TensorData::new(values, shape), device)))
            .collect();

        let mut trainer = Trainer::from_model(model, model_config, config, device).with_schedule(schedule);
        trainer.ema = ema;
        trainer
            .optimizer
            .load_moments(&trainer.model, adam_time, moments)
            .map_err(|e| CheckpointError::BadConfig(format!("training state: {e}")))?;
        trainer.step = step;
        trainer.rng = RandomStream::resume(trainer.config.seed, rng_position);
        Ok((trainer, card))
    }
}

/// The metadata of a training-state file (the shell's own keys among them).
pub fn state_metadata(bytes: &[u8]) -> Result<HashMap<String, String>, CheckpointError> {
    Ok(parse_safetensors(bytes)?.1)
}
