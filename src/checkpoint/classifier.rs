//! Feature classifiers' files (`train-classifier`, and what `eval` measures in): weights, config
//! and a card in one safetensors file.

use std::collections::HashMap;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{CheckpointError, load_tensors, named_tensors, parse_safetensors, serialize, tensors};
use crate::features::{Classifier, ClassifierConfig};

/// What a feature classifier was trained on, kept beside its weights.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassifierCard {
    pub dataset: String,
    pub steps: u64,
    /// Accuracy on the dataset's test split.
    pub test_accuracy: f64,
}

/// The `format` of a classifier file.
pub const CLASSIFIER_FORMAT: &str = "tabdiffusion-classifier/1";

/// A classifier's weights, config and card as safetensors bytes.
pub async fn classifier_to_bytes(
    model: &Classifier,
    config: &ClassifierConfig,
    card: &ClassifierCard,
) -> Result<Vec<u8>, CheckpointError> {
    let metadata = HashMap::from([
        ("format".to_string(), CLASSIFIER_FORMAT.to_string()),
        ("classifier".to_string(), serde_json::to_string(config).expect("config serialises")),
        ("card".to_string(), serde_json::to_string(card).expect("card serialises")),
    ]);
    Ok(serialize(metadata, &named_tensors(model).await?))
}

/// Reads a classifier file and builds the classifier on `device`.
pub fn load_classifier(bytes: &[u8], device: &Device) -> Result<(Classifier, ClassifierConfig, ClassifierCard), CheckpointError> {
    let (file, info) = parse_safetensors(bytes)?;
    if info.get("format").map(String::as_str) != Some(CLASSIFIER_FORMAT) {
        return Err(CheckpointError::BadConfig("not a classifier file (written by `tabdiffusion train-classifier`)".into()));
    }
    let config: ClassifierConfig = info
        .get("classifier")
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or(CheckpointError::BadConfig("the classifier config is missing or unreadable".into()))?;
    config.validate().map_err(CheckpointError::BadConfig)?;
    let card = info.get("card").and_then(|json| serde_json::from_str(json).ok()).unwrap_or_default();
    let model = load_tensors(config.init(device), &tensors(&file)?, device)?;
    Ok((model, config, card))
}
