//! The run saved in this browser: its storage names, the Web Lock and channel of the tab that
//! holds it, and the tab's own metadata in the training-state file (`tab_*`).

use std::collections::HashMap;

use crate::data::Dataset;

/// The training run in the browser's storage (OPFS): a training-state file like the CLI's
/// `--state`, with the tab's own keys (`tab_*`) in its metadata.
pub const SAVED_RUN: &str = "tabdiffusion-run.safetensors";

/// The user's own images, decoded, kept beside the run (`data::upload_to_bytes`).
pub const SAVED_IMAGES: &str = "tabdiffusion-images.safetensors";

/// The dataset name of the user's own images (in the manifest and the saved run).
pub const YOUR_IMAGES: &str = "your images";

/// The Web Lock that one tab at a time holds to train and save the run (the saved run is one
/// per site), and the channel on which another tab asks for it.
pub const RUN_LOCK: &str = "tabdiffusion-run";
pub const HAND_OVER: &str = "hand over";

/// What the tab keeps beside a training state: which data it trained on, what the model is
/// called, the loss history of the chart and the loss on the fixed batch at the steps it was
/// measured.
#[derive(Clone, Debug, PartialEq)]
pub struct TabMetadata {
    /// The dataset, or [`YOUR_IMAGES`].
    pub dataset: String,
    pub model: String,
    pub losses: Vec<f32>,
    /// (step, loss on the fixed batch) (`Trainer::fixed_batch_loss`), in step order.
    pub fixed_losses: Vec<(usize, f32)>,
}

impl TabMetadata {
    /// The metadata of a run on `dataset`, or on the user's images.
    pub fn new(dataset: Option<Dataset>, model: &str, losses: &[f32], fixed_losses: &[(usize, f32)]) -> Self {
        let dataset = dataset.map_or(YOUR_IMAGES.to_string(), |d| d.to_string());
        Self { dataset, model: model.to_string(), losses: losses.to_vec(), fixed_losses: fixed_losses.to_vec() }
    }

    /// As the training-state file's extra metadata.
    pub fn entries(&self) -> [(&'static str, String); 4] {
        [
            ("tab_dataset", self.dataset.clone()),
            ("tab_model", self.model.clone()),
            ("tab_losses", serde_json::to_string(&self.losses).expect("floats serialise")),
            ("tab_fixed_losses", serde_json::to_string(&self.fixed_losses).expect("floats serialise")),
        ]
    }

    /// From a training-state file's metadata (`None`: not a run of the tab's).
    pub fn read(info: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            dataset: info.get("tab_dataset")?.clone(),
            model: info.get("tab_model").cloned().unwrap_or_else(|| "saved run".into()),
            losses: info.get("tab_losses").and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default(),
            // Absent from runs saved before the tab measured it.
            fixed_losses: info.get("tab_fixed_losses").and_then(|l| serde_json::from_str(l).ok()).unwrap_or_default(),
        })
    }

    /// Whether the run trained on the user's own images.
    pub fn on_your_images(&self) -> bool {
        self.dataset == YOUR_IMAGES
    }
}
