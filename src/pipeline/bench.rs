//! The throughput benchmark both shells run, and its report.

use burn::tensor::Device;

use super::SampleRun;
use crate::diffusion::{SamplerKind, Schedule};
use crate::model::UNetConfig;

/// What a benchmark measured: `tabdiffusion bench --json` and the tab's `?bench=N` print this
/// one report, as JSON (`serde_json`, so that any model name, an imported file's included,
/// stays valid JSON).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BenchReport {
    /// The preset, or the file the model came from.
    pub model: String,
    /// `cpu`, `wgpu`, `browser-webgpu`, `browser-cpu`.
    pub backend: String,
    pub batch: usize,
    pub params: usize,
    /// Training images per second (forward, backward, Adam step, EMA).
    pub train_images_per_s: f64,
    /// Images per second sampled with DDIM, 50 steps.
    pub ddim50_images_per_s: f64,
}

impl BenchReport {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report of strings and numbers serialises")
    }
}

/// The benchmark both shells run (`tabdiffusion bench`, the tab's `?bench=N`): a warm-up
/// training step, N timed ones, then one warm-up sampling step and a timed DDIM-50 run of a
/// batch. The shells hold the clock; this holds what is measured.
pub struct Bench;

impl Bench {
    /// Timed training steps unless told otherwise.
    pub const TRAIN_STEPS: usize = 5;
    /// DDIM steps of the sampling measurement (the report's `ddim50_images_per_s`).
    pub const SAMPLER_STEPS: usize = 50;

    /// The sampling run that is timed (and, one step of it, the warm-up).
    pub fn sample_run(config: &UNetConfig, schedule: &Schedule, batch: usize, device: &Device) -> SampleRun {
        SampleRun::new(config, SamplerKind::ddim(Self::SAMPLER_STEPS), schedule, batch, 0, device)
    }

    /// The report of `train_steps` training steps in `train_seconds` and one sampling run in
    /// `sample_seconds`, at `batch` images.
    pub fn report(model: &str, backend: &str, batch: usize, params: usize, train_steps: usize, train_seconds: f64, sample_seconds: f64) -> BenchReport {
        BenchReport {
            model: model.to_string(),
            backend: backend.to_string(),
            batch,
            params,
            train_images_per_s: (train_steps * batch) as f64 / train_seconds,
            ddim50_images_per_s: batch as f64 / sample_seconds,
        }
    }
}
