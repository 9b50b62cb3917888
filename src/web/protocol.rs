//! What the page and the training worker say to each other. The session runs in a dedicated
//! Web Worker (so that no GPU or training work ever blocks the page); the page sends it
//! [`Command`]s and draws the [`Update`]s it sends back.
//!
//! On the wire a message is a JS array: its JSON text first, then any byte payloads (files,
//! pixels, downloads) as `Uint8Array`s whose buffers are transferred, not copied.

use js_sys::{Array, Uint8Array};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use crate::diffusion::{Objective, SamplerName, Spacing};
use crate::web::kernels::KernelPath;
use crate::model::Preset;
use crate::spec::RunSpec;

/// A sampler and its settings, as the Sampling panel sets them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SamplerChoice {
    pub sampler: SamplerName,
    pub steps: usize,
    /// DDIM's η (0 deterministic … 1 DDPM-like).
    pub eta: f64,
    /// For a class-conditional model: the class of every image (`None`: cycle through all).
    pub class: Option<usize>,
    /// Classifier-free guidance scale w (1: plain conditional, 0: unconditional).
    pub guidance: f64,
    /// Timestep spacing (`None`: the model's scheduler config, else the sampler's default).
    pub spacing: Option<Spacing>,
    /// Clip x̂_0 (`None`: as the model's scheduler config says).
    pub clip_sample: Option<bool>,
    /// Sample the trained example (once loaded) instead of this run's EMA weights.
    pub example: bool,
}

/// What the page asks of the session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Train,
    Pause,
    /// Sample a grid from the fixed seed, keeping every step's x_t and x̂_0 for the strip.
    Sample(SamplerChoice),
    /// DDPM with all T steps beside DDIM-50, from the same x_T: of the trained example, or of
    /// this run's EMA weights.
    Compare { example: bool },
    /// Show image `index` of the training set noised to step `t` (the forward-process panel).
    Forward { index: usize, t: usize },
    /// Download the EMA weights as .safetensors.
    Export,
    /// Download the EMA weights as a zipped diffusers folder.
    ExportDiffusers,
    /// The whole run as a training-state file (weights, EMA, Adam, step, random stream, run
    /// spec), which `train --resume` and the cluster trainer continue.
    ExportRun,
    /// Replace the model with these files (bytes follow in order): a weights file of ours, or
    /// a diffusers folder's files. The model is kept unchanged if the files are bad.
    Import(Vec<String>),
    /// Load the trained example that ships with the site beside this run's model, for the
    /// Sampling panel (answered by [`Update::Example`]).
    LoadExample,
    /// Train on these image files or zips (bytes follow in order) instead of the dataset.
    UseImages(Vec<String>),
    /// Download the last sampled values as .npy.
    DownloadSamples,
    /// Measure the EMA samples' quality now (as `eval` does), answered by [`Update::Quality`].
    Quality,
    /// Remove the saved run from the browser's storage (answered by [`Update::Forgotten`];
    /// the page then reloads).
    Forget,
    /// Take the saved run over from the tab that holds it: that tab saves, stops and lets go
    /// (answered by [`Update::Holder`]).
    TakeOver,
    /// Another tab asked for the run (sent to the holding tab's session by the browser, not
    /// by its page): save, stop, let go.
    HandOver,
}

/// Something the page shows in words, with the technical detail (an adapter's description,
/// a panic message, a browser exception) behind a "Details" toggle.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened and what the visitor can do.
    pub text: String,
    /// The technical detail; empty if none.
    pub detail: String,
    /// Whether reloading the page is the way on (it resumes the saved run); the page then
    /// offers a Reload button.
    pub reload: bool,
}

impl Notice {
    pub fn new(text: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { text: text.into(), detail: detail.into(), reload: false }
    }

    /// A notice whose way on is a reload.
    pub fn with_reload(mut self) -> Self {
        self.reload = true;
        self
    }
}

impl From<String> for Notice {
    fn from(text: String) -> Self {
        Self::new(text, "")
    }
}

impl From<&str> for Notice {
    fn from(text: &str) -> Self {
        Self::new(text, "")
    }
}

/// Which tab holds the saved run (the Web Locks API: one writer per site).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holder {
    /// This tab: it trains and saves.
    ThisTab,
    /// Another tab held it when this one opened: this one samples from the last save.
    OtherTab,
    /// This tab held it and handed it over to another tab.
    HandedOver,
}

/// An RGBA image for a 2D canvas; its pixels travel as the message's byte payload.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
}

/// Where a picture goes on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Canvas {
    /// The training panel's grid: previews of the EMA weights.
    Samples,
    /// The Sampling panel's grid.
    Sampled,
    /// The sampling trajectory: x_t over x̂_0 at evenly spaced steps.
    Trajectory,
    /// x_0 and x_t of the forward-process panel.
    Forward,
    /// DDPM-1000 beside DDIM-50.
    Compare,
}

/// What the session tells the page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Update {
    Status(String),
    /// An error; an empty text clears it.
    Error(Notice),
    /// A lasting note on how the page runs (no WebGPU, no adapter).
    Banner(Notice),
    /// The step of the run as last saved in this browser.
    Saved(usize),
    /// Who holds the saved run.
    Holder(Holder),
    Backend(String),
    /// The kernels of the build the worker runs (web::kernels).
    Kernels(KernelPath),
    /// The tuned build's tuning in this visit so far: operations tuned, kernels compiled
    /// (sent as each tune finishes, also in the middle of a step).
    Tuned { tuned: usize, compiled: usize },
    /// The loss was not finite at this step (the session also sends the error that says so):
    /// for the page's kernel watch, which asks whether the kernels or the learning rate did it.
    Diverged { step: usize },
    /// The session can take commands.
    Ready,
    Running(bool),
    Step { step: usize, images_per_s: f64 },
    /// Losses of new steps; `reset` first drops the page's history (a resumed or new model).
    Losses { reset: bool, values: Vec<f32> },
    /// The loss on the fixed batch (`Trainer::fixed_batch_loss`) at these steps; `reset` first
    /// drops the page's history (a resumed or new model, other images).
    FixedLosses { reset: bool, points: Vec<(usize, f32)> },
    ImagesLoaded(usize),
    /// The dataset: name, image count, and T of the schedule (the forward slider's range).
    Dataset { name: String, images: usize, timesteps: usize },
    /// The class names a class-conditional model can be guided to (empty: unconditional).
    Classes(Vec<String>),
    /// The model card in words, and the loss the model trains with (the training panel's
    /// equation): a resumed run or an imported model keeps its own, whatever the URL says.
    ModelCard { text: String, objective: Objective },
    /// The settings the run trains with (a resumed run's own, whatever the URL says), for the
    /// Settings panel to show: its model's preset, if it is one (an imported model is not), and
    /// its run spec, whose schedule and class conditioning are the model's.
    RunSpec { preset: Option<Preset>, spec: RunSpec },
    Picture(Canvas, Picture),
    /// The signal-to-noise numbers of the forward panel: t, ᾱ_t, SNR = ᾱ_t / (1 − ᾱ_t).
    ForwardNumbers { t: usize, alpha_bar: f64, snr: f64 },
    HasSamples,
    /// The JSON line of a `?bench=N` run.
    Bench(String),
    /// Offer the byte payload as a download.
    Download { name: String, mime: String },
    /// The saved run is gone.
    Forgotten,
    /// A quality measurement of the EMA's samples; `None` clears the chart (another model).
    Quality(Option<QualityPoint>),
    /// The trained example is loaded: what it is, in words.
    Example(String),
    /// Why quality cannot be measured here (no feature network for this data), or its
    /// progress; empty clears it.
    QualityNote(String),
}

/// FID, precision and recall of the EMA's samples at a step, beside the floor (as many training
/// images against the same test images), as `tabdiffusion eval` prints them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QualityPoint {
    pub step: usize,
    pub count: usize,
    pub sampler: String,
    pub model: crate::eval::Scores,
    pub floor: crate::eval::Scores,
}

/// Encodes a message with its byte payloads; returns it and its transfer list.
pub fn encode<T: Serialize>(body: &T, bytes: Vec<Vec<u8>>) -> (Array, Array) {
    let message = Array::new();
    let transfer = Array::new();
    message.push(&JsValue::from_str(&serde_json::to_string(body).expect("messages serialise")));
    for payload in bytes {
        let array = Uint8Array::from(payload.as_slice());
        transfer.push(&array.buffer());
        message.push(&array);
    }
    (message, transfer)
}

/// Decodes a message made by [`encode`].
pub fn decode<T: DeserializeOwned>(value: &JsValue) -> Result<(T, Vec<Vec<u8>>), String> {
    let message: &Array = value.dyn_ref().ok_or("a message that is not an array")?;
    let json = message.get(0).as_string().ok_or("a message without its JSON")?;
    let body = serde_json::from_str(&json).map_err(|e| format!("a message that does not parse ({e}): {json}"))?;
    let bytes = (1..message.length())
        .map(|i| message.get(i).dyn_into::<Uint8Array>().map(|a| a.to_vec()).map_err(|_| "a payload that is not bytes".to_string()))
        .collect::<Result<_, _>>()?;
    Ok((body, bytes))
}
