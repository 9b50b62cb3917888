//! A checkpoint is the model config plus the weights, as safetensors bytes.
//!
//! Tensor names are the module paths, spelled as diffusers' `UNet2DModel` state dict
//! (`down_blocks.0.resnets.0.conv1.weight`): GroupNorm's γ/β are `weight`/`bias`, and 2-D
//! (linear) weights are stored `[out, in]` as PyTorch does. The metadata carries the
//! `UNetConfig`, the schedule (as a diffusers `scheduler_config.json`) and a model card, all as
//! JSON. The same bytes are written by the tab and the CLI, and they are exactly the
//! `diffusion_pytorch_model.safetensors` of a diffusers model folder: [`DiffusersFolder`] adds
//! the `config.json` and `scheduler_config.json` beside them, and reads such folders back.

mod classifier;
mod diffusers;
mod source;

pub use classifier::{CLASSIFIER_FORMAT, ClassifierCard, classifier_to_bytes, load_classifier};
pub use diffusers::DiffusersFolder;
pub use source::{ModelSource, SourceError};

use std::collections::{BTreeMap, HashMap};

use burn::tensor::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::limits;
use crate::spec::RunSpec;
use crate::diffusion::ScheduleConfig;
use crate::model::{UNet, UNetConfig};
pub use crate::model::state_dict::{StateDictError, Tensors, load_tensors, named_tensors};

/// The value of the `format` metadata key.
pub const FORMAT: &str = "tabdiffusion-unet/1";

/// What the model has been through, shown beside the weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// Dataset trained on (`mnist`, …).
    #[serde(default)]
    pub dataset: String,
    /// Training steps taken.
    #[serde(default)]
    pub steps: u64,
    /// Training images seen (steps × batch size).
    #[serde(default)]
    pub images_seen: u64,
    /// The settings the run trained with (absent in files written before the run spec, and
    /// for a model that was not trained here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSpec>,
}

/// Why a weights file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a readable .safetensors file (is it truncated?): {0}")]
    Unreadable(String),
    #[error(
        "the file has no model config in its metadata: it was not exported by this tool (a diffusers model is loaded as its folder, with config.json)"
    )]
    MissingConfig,
    #[error("the model config in the file is not valid: {0}")]
    BadConfig(String),
    #[error("tensor {name} is {dtype}; only F64, F32, F16 and BF16 weights are supported")]
    Dtype { name: String, dtype: String },
    #[error("the weights do not match the model config: {0}")]
    Mismatch(String),
    #[error("could not read the weights from the device: {0}")]
    Device(String),
    #[error("the file is beyond what this tool reads: {0}")]
    Limit(String),
}

impl From<StateDictError> for CheckpointError {
    fn from(e: StateDictError) -> Self {
        match e {
            StateDictError::Mismatch(why) => Self::Mismatch(why),
            StateDictError::Device(why) => Self::Device(why),
        }
    }
}

/// A decoded weights file: config, card and named `f32` tensors (PyTorch layout).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: UNetConfig,
    pub schedule: ScheduleConfig,
    pub card: ModelCard,
    pub tensors: Tensors,
}

/// Serialises the model's weights and config. Reads the device asynchronously, so the same
/// code runs in the browser (where sync reads panic) and natively (under a `block_on`).
pub async fn to_bytes(
    model: &UNet,
    config: &UNetConfig,
    schedule: &ScheduleConfig,
    card: &ModelCard,
) -> Result<Vec<u8>, CheckpointError> {
    Ok(encode(config, schedule, card, &named_tensors(model).await?))
}

/// Builds safetensors bytes from named `f32` tensors (PyTorch layout).
pub fn encode(
    config: &UNetConfig,
    schedule: &ScheduleConfig,
    card: &ModelCard,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
) -> Vec<u8> {
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("config".to_string(), serde_json::to_string(config).expect("config serialises")),
        ("scheduler".to_string(), serde_json::to_string(schedule).expect("schedule serialises")),
        ("model_card".to_string(), serde_json::to_string(card).expect("card serialises")),
    ]);
    serialize(metadata, tensors)
}

/// safetensors bytes of named `f32` tensors with string metadata.
/// The one safetensors writer: named `f32` tensors with the file's metadata.
pub(crate) fn serialize(metadata: HashMap<String, String>, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let bytes: Vec<(&str, &[usize], Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, values)| {
            (name.as_str(), shape.as_slice(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let views = bytes.iter().map(|(name, shape, data)| {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), data).expect("shape matches data length");
        (*name, view)
    });
    safetensors::serialize(views, Some(metadata)).expect("valid tensors serialise")
}

/// A `UNetConfig` from a file's metadata. Options added since the format began are absent
/// from older files; they take the values those files were made with.
pub(crate) fn unet_config(json: &str) -> Result<UNetConfig, CheckpointError> {
    let bad = |e: serde_json::Error| CheckpointError::BadConfig(e.to_string());
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(bad)?;
    if let Some(map) = value.as_object_mut() {
        for (key, default) in [
            ("downsample_padding", serde_json::json!(1)),
            ("center_input_sample", serde_json::json!(false)),
            ("time_embedding_dim", serde_json::Value::Null),
            ("add_attention", serde_json::json!(true)),
            ("num_class_embeds", serde_json::Value::Null),
        ] {
            map.entry(key).or_insert(default);
        }
    }
    let config: UNetConfig = serde_json::from_value(value).map_err(bad)?;
    config.validate().map_err(|e| CheckpointError::BadConfig(e.to_string()))?;
    Ok(config)
}

/// Parses a weights file written by this tool: safetensors carrying a valid config.
pub fn decode(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let (file, info) = parse_safetensors(bytes)?;
    let config = unet_config(info.get("config").ok_or(CheckpointError::MissingConfig)?)?;
    let schedule = match info.get("scheduler") {
        Some(json) => schedule_config(json, "scheduler")?,
        None => ScheduleConfig::default(),
    };
    let card = info
        .get("model_card")
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    Ok(Checkpoint { config, schedule, card, tensors: tensors(&file)? })
}

/// A schedule from JSON (our metadata's `scheduler`, a diffusers `scheduler_config.json`),
/// checked by [`ScheduleConfig::validate`]. `what` names the source in messages.
pub(crate) fn schedule_config(json: &str, what: &str) -> Result<ScheduleConfig, CheckpointError> {
    let bad = |message: String| CheckpointError::BadConfig(format!("{what}: {message}"));
    ScheduleConfig::from_json(json).map_err(|e| bad(e.to_string()))
}

/// Opens safetensors bytes, after checking them against [`limits::MAX_WEIGHTS_FILE_BYTES`],
/// [`limits::MAX_TENSORS`] and [`limits::MAX_TENSOR_BYTES`] (the safetensors crate checks
/// that every tensor's shape and offsets fit the bytes present).
pub(crate) fn parse_safetensors(bytes: &[u8]) -> Result<(SafeTensors<'_>, HashMap<String, String>), CheckpointError> {
    let unreadable = |e: safetensors::SafeTensorError| CheckpointError::Unreadable(e.to_string());
    limits::at_most("file bytes", bytes.len() as u64, limits::MAX_WEIGHTS_FILE_BYTES).map_err(|e| CheckpointError::Limit(e.into()))?;
    let (_, metadata) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let file = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    limits::at_most("tensors", file.len(), limits::MAX_TENSORS).map_err(|e| CheckpointError::Limit(e.into()))?;
    for (name, view) in file.iter() {
        limits::at_most(&format!("tensor {name}: bytes"), view.data().len() as u64, limits::MAX_TENSOR_BYTES)
            .map_err(|e| CheckpointError::Limit(e.into()))?;
    }
    Ok((file, metadata.metadata().clone().unwrap_or_default()))
}

/// Every tensor as `f32`. Attention weights under diffusers' deprecated names (`query`, `key`,
/// `value`, `proj_attn`, as in early Hub uploads such as google/ddpm-cifar10-32) get the
/// current ones, as `UNet2DModel.from_pretrained` renames them.
pub(crate) fn tensors(file: &SafeTensors) -> Result<Tensors, CheckpointError> {
    let mut tensors = BTreeMap::new();
    for (name, view) in file.tensors() {
        let Some(values) = float_values(view.dtype(), view.data()) else {
            return Err(CheckpointError::Dtype { name, dtype: format!("{:?}", view.dtype()) });
        };
        tensors.insert(current_name(&name), (view.shape().to_vec(), values));
    }
    Ok(tensors)
}

/// Little-endian values of a floating-point dtype as `f32`; `None` for any other dtype.
pub(crate) fn float_values(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    use burn::tensor::{bf16, f16};
    Some(match dtype {
        Dtype::F64 => bytes.as_chunks().0.iter().map(|b| f64::from_le_bytes(*b) as f32).collect(),
        Dtype::F32 => bytes.as_chunks().0.iter().map(|b| f32::from_le_bytes(*b)).collect(),
        Dtype::F16 => bytes.as_chunks().0.iter().map(|b| f16::from_le_bytes(*b).to_f32()).collect(),
        Dtype::BF16 => bytes.as_chunks().0.iter().map(|b| bf16::from_le_bytes(*b).to_f32()).collect(),
        _ => return None,
    })
}

fn current_name(name: &str) -> String {
    const RENAMES: [(&str, &str); 4] =
        [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")];
    if name.contains(".attentions.") {
        for (old, new) in RENAMES {
            if name.contains(old) {
                return name.replacen(old, new, 1);
            }
        }
    }
    name.to_string()
}

impl Checkpoint {
    /// Builds the model of the checkpoint's config on `device` and loads the weights, after
    /// checking that every name and shape matches (the first mismatches are listed).
    pub fn load(&self, device: &Device) -> Result<UNet, CheckpointError> {
        Ok(load_tensors(self.config.init(device), &self.tensors, device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use burn::tensor::Tensor;

    fn tiny_bytes() -> (UNet, Vec<u8>) {
        let device = Device::flex();
        let config = Preset::Tiny.config();
        let model = config.init(&device);
        let card = ModelCard { dataset: "mnist".into(), steps: 12, images_seen: 96, run: Some(RunSpec::SMALL_DATA) };
        let bytes = pollster::block_on(to_bytes(&model, &config, &ScheduleConfig::default(), &card)).unwrap();
        (model, bytes)
    }

    #[test]
    fn save_then_load_gives_the_same_outputs() {
        let device = Device::flex();
        let (model, bytes) = tiny_bytes();
        let checkpoint = decode(&bytes).unwrap();
        assert_eq!(checkpoint.config, Preset::Tiny.config());
        assert_eq!(checkpoint.card.steps, 12);
        let loaded = checkpoint.load(&device).unwrap();
        let x = Tensor::<4>::ones([1, 1, 28, 28], &device);
        let (a, b) = (model.forward(x.clone(), &[3]), loaded.forward(x, &[3]));
        assert_eq!(a.into_data(), b.into_data());
    }

    #[test]
    fn a_class_conditional_model_round_trips_with_its_embedding_untransposed() {
        let device = Device::flex();
        let config = Preset::Tiny.config().with_num_class_embeds(Some(11));
        let model = config.init(&device);
        let bytes = pollster::block_on(to_bytes(&model, &config, &ScheduleConfig::default(), &ModelCard::default())).unwrap();
        let checkpoint = decode(&bytes).unwrap();
        assert_eq!(checkpoint.config, config);
        // nn.Embedding(num_class_embeds, time_embed_dim).weight is [11, 32] in PyTorch, as in burn.
        let (shape, values) = &checkpoint.tensors["class_embedding.weight"];
        assert_eq!(shape, &vec![11, 32]);
        let row3 = model.class_embedding.as_ref().unwrap().weight.val().slice([3..4, 0..32]);
        assert_eq!(row3.into_data().try_to_vec::<f32>().unwrap(), values[3 * 32..4 * 32].to_vec());
        let loaded = checkpoint.load(&device).unwrap();
        let x = Tensor::<4>::ones([2, 1, 28, 28], &device);
        let (a, b) = (model.forward_classes(x.clone(), &[3, 3], Some(&[3, 7])), loaded.forward_classes(x, &[3, 3], Some(&[3, 7])));
        assert_eq!(a.into_data(), b.into_data());
    }

    #[test]
    fn names_follow_the_diffusers_state_dict() {
        let (_, bytes) = tiny_bytes();
        let checkpoint = decode(&bytes).unwrap();
        let names: Vec<&str> = checkpoint.tensors.keys().map(String::as_str).collect();
        for expected in [
            "conv_in.weight",
            "time_embedding.linear_1.weight",
            "down_blocks.0.resnets.0.norm1.weight",
            "down_blocks.0.downsamplers.0.conv.weight",
            "down_blocks.1.attentions.0.to_out.0.bias",
            "mid_block.attentions.0.group_norm.bias",
            "up_blocks.1.resnets.1.conv_shortcut.weight",
            "conv_norm_out.weight",
        ] {
            assert!(names.contains(&expected), "{expected} missing from {names:?}");
        }
        // Linear weights in PyTorch's [out, in] order: linear_1 maps 8 -> 32.
        assert_eq!(checkpoint.tensors["time_embedding.linear_1.weight"].0, vec![32, 8]);
    }

    #[test]
    fn the_diffusers_zip_holds_a_folder_that_reads_back() {
        let (_, bytes) = tiny_bytes();
        let schedule = ScheduleConfig::default();
        let zip = DiffusersFolder::zip("m", &Preset::Tiny.config(), &schedule, &bytes);
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        let mut read = |name: &str| {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut archive.by_name(&format!("m/{name}")).unwrap(), &mut out).unwrap();
            out
        };
        let (config, scheduler, weights) =
            (read(DiffusersFolder::CONFIG), read(DiffusersFolder::SCHEDULER), read(DiffusersFolder::WEIGHTS));
        assert_eq!(weights, bytes);
        let (config, read_schedule, checkpoint) = DiffusersFolder::from_files(
            std::str::from_utf8(&config).unwrap(),
            Some(&weights),
            Some(std::str::from_utf8(&scheduler).unwrap()),
        )
        .unwrap();
        assert_eq!((config, read_schedule), (Preset::Tiny.config(), schedule));
        assert_eq!(checkpoint.unwrap().card.steps, 12);
    }

    #[test]
    fn files_from_before_the_newer_options_still_load() {
        // The config JSON the first release wrote for mnist-small (no downsample_padding,
        // center_input_sample, time_embedding_dim, add_attention, num_class_embeds).
        let old = r#"{"sample_size":28,"in_channels":1,"out_channels":1,"block_out_channels":[32,64,64],"attention":[false,false,true],"layers_per_block":1,"attention_head_dim":null,"norm_num_groups":8,"norm_eps":0.00001,"dropout":0.0,"flip_sin_to_cos":true,"freq_shift":0.0}"#;
        assert_eq!(unet_config(old).unwrap(), Preset::MnistSmall.config());
    }

    #[test]
    fn truncated_and_foreign_files_get_clear_errors() {
        let (_, bytes) = tiny_bytes();
        let truncated = decode(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(truncated, CheckpointError::Unreadable(_)), "{truncated}");
        let garbage = decode(b"PK\x03\x04 this is a zip, not weights").unwrap_err();
        assert!(matches!(garbage, CheckpointError::Unreadable(_)), "{garbage}");
        // Safetensors without our config: e.g. an unrelated model's file.
        let view = TensorView::new(Dtype::F32, vec![1], &[0, 0, 0, 0]).unwrap();
        let foreign = safetensors::serialize([("w", view)], None).unwrap();
        assert!(matches!(decode(&foreign).unwrap_err(), CheckpointError::MissingConfig));
    }

    #[test]
    fn weights_of_another_architecture_list_the_mismatches() {
        let (_, bytes) = tiny_bytes();
        let mut checkpoint = decode(&bytes).unwrap();
        // The file claims mnist-small but holds tiny's tensors.
        checkpoint.config = Preset::MnistSmall.config();
        let message = checkpoint.load(&Device::flex()).unwrap_err().to_string();
        assert!(message.contains("missing: "), "{message}");
        assert!(message.contains("wrong shape: conv_in.bias is [8], expected [32]"), "{message}");
        assert!(message.contains("conv_in.weight is [8, 1, 3, 3], expected [32, 1, 3, 3]"), "{message}");
    }
}
