//! The native command line: `data`, `train`, `sample`, `bench`, `export`, `schedule`,
//! `train-classifier`, `eval`. A thin shell: files and devices
//! here, everything else in the core.

mod bench;
mod classifier;
mod data;
mod eval;
mod export;
mod pth;
mod sample;
mod schedule;
mod train;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, DeviceKind};
use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::checkpoint::{DiffusersFolder, ModelSource};
use crate::diffusion::{BetaSchedule, Prediction, SamplerName, Spacing};
use crate::data::{ImageSet, Manifest, decode_tile, tile_count};
use crate::model::Preset;

/// Train and sample diffusion models (the native build of the browser app).
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Prepare a dataset into the tiles the tab and `train` read.
    Data(data::DataArgs),
    /// Train a model (DDPM Algorithm 1) and write a checkpoint and a sample grid.
    Train(train::TrainArgs),
    /// Sample a checkpoint into a PNG grid (and optionally raw .npy values).
    Sample(sample::SampleArgs),
    /// Measure training and sampling throughput; prints one JSON line.
    Bench(bench::BenchArgs),
    /// Write a model as a diffusers folder (config.json + weights + scheduler_config.json).
    Export(export::ExportArgs),
    /// Print a noise schedule's β_t and ᾱ_t.
    Schedule(schedule::ScheduleArgs),
    /// Train the classifier whose features `eval` measures in (LeNet-5 or a small ResNet).
    TrainClassifier(classifier::TrainClassifierArgs),
    /// FID, precision and recall of a model's samples against the test split, beside the
    /// train-vs-test floor.
    Eval(eval::EvalArgs),
}

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// burn-flex on the CPU.
    Cpu,
    /// burn-wgpu (Vulkan, Metal or DX12, whichever the system has).
    Wgpu,
    /// burn's CUDA backend on the first NVIDIA GPU (a build with `--features cuda`).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl Backend {
    pub fn device(self) -> Device {
        match self {
            Backend::Cpu => Device::flex(),
            Backend::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Device::cuda(0usize),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda => "cuda",
        }
    }
}

/// The core's names as clap values (`--sampler ddim`, `--preset tiny`, …): the flags take
/// exactly the names the core knows, and clap lists them when one is wrong.
macro_rules! clap_values {
    ($($ty:ty $(=> $help:ident)?),+ $(,)?) => {
        $(impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name())$(.help(self.$help()))?)
            }
        })+
    };
}

clap_values!(SamplerName => label, Spacing, BetaSchedule => label, Prediction, Preset => description);

/// An error for the user, in words.
pub type CliResult<T = ()> = Result<T, String>;

/// Runs the command line; returns a message on failure.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Data(args) => data::run(args),
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Export(args) => export::run(args),
        Command::Schedule(args) => schedule::run(args),
        Command::TrainClassifier(args) => classifier::run(args),
        Command::Eval(args) => eval::run(args),
    }
}

fn read_file(path: &Path) -> CliResult<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Writes through a temporary file and a rename, so a killed run never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `--model`: a preset name, a `.safetensors` file of ours, or a diffusers model folder
/// (`config.json`, optional weights and `scheduler_config.json`; a pipeline folder with `unet/`
/// and `scheduler/` works too).
fn model_source(model: &str) -> CliResult<ModelSource> {
    if let Ok(preset) = model.parse::<Preset>() {
        return Ok(ModelSource::preset(preset));
    }
    let path = PathBuf::from(model);
    if path.is_dir() {
        return diffusers_folder(&path);
    }
    if !path.exists() {
        return Err(format!(
            "--model {model}: no such file or folder, and not a preset (presets: {})",
            Preset::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
        ));
    }
    ModelSource::weights(&read_file(&path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn diffusers_folder(dir: &Path) -> CliResult<ModelSource> {
    let unet = if dir.join("unet").join(DiffusersFolder::CONFIG).exists() { dir.join("unet") } else { dir.to_path_buf() };
    let config_path = unet.join(DiffusersFolder::CONFIG);
    if !config_path.exists() {
        return Err(format!("{}: no config.json, so not a diffusers model folder", dir.display()));
    }
    let config = String::from_utf8_lossy(&read_file(&config_path)?).into_owned();
    let weights_path = unet.join(DiffusersFolder::WEIGHTS);
    let weights = if weights_path.exists() {
        Some(read_file(&weights_path)?)
    } else if unet.join("diffusion_pytorch_model.bin").exists() {
        return Err(format!(
            "{}: only .safetensors weights are read, not diffusion_pytorch_model.bin (diffusers writes safetensors with save_pretrained(folder, safe_serialization=True))",
            unet.display()
        ));
    } else {
        None
    };
    let scheduler = [dir.join(DiffusersFolder::SCHEDULER), dir.join("scheduler").join(DiffusersFolder::SCHEDULER)]
        .into_iter()
        .find(|p| p.exists())
        .map(|p| read_file(&p).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .transpose()?;
    ModelSource::diffusers(&config, weights.as_deref(), scheduler.as_deref()).map_err(|e| format!("{}: {e}", unet.display()))
}

/// Reads the training split of a tiled dataset folder (written by `data`).
fn load_train_split(dir: &Path) -> CliResult<(Manifest, ImageSet)> {
    load_split(dir, Split::Train)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Train,
    Test,
}

/// Reads one split of a tiled dataset folder (written by `data`).
fn load_split(dir: &Path, which: Split) -> CliResult<(Manifest, ImageSet)> {
    let manifest_path = dir.join("manifest.json");
    let manifest: Manifest = match std::fs::read(&manifest_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not a dataset manifest: {e}", manifest_path.display()))?,
        Err(_) => {
            return Err(format!(
                "no dataset at {} (missing manifest.json); prepare it with `tabdiffusion data mnist --out {}`",
                dir.display(),
                dir.display()
            ));
        }
    };
    let split = if which == Split::Train { &manifest.train } else { &manifest.test };
    let (h, w, c) = (manifest.height, manifest.width, manifest.channels);
    let mut set = ImageSet { height: h, width: w, channels: c, pixels: Vec::new(), labels: Vec::new() };
    for (k, tile) in split.tiles.iter().enumerate() {
        let bytes = read_file(&dir.join(tile))?;
        let part = decode_tile(&bytes, tile_count(split.count, k), h, w, c)
            .map_err(|e| format!("{}: {e}", dir.join(tile).display()))?;
        set.extend(&part);
    }
    set.labels = read_file(&dir.join(&split.labels))?;
    split.check_labels(&set.labels).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((manifest, set))
}
