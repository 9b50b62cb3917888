//! The native command line: `data`, `train`, `sample`, `bench`. A thin shell: files and devices
//! here, everything else in the core.

mod bench;
mod data;
mod sample;
mod train;

use std::path::{Path, PathBuf};

use burn::tensor::{Device, DeviceKind};
use clap::{Parser, Subcommand, ValueEnum};

use crate::checkpoint::{self, Checkpoint};
use crate::data::{ImageSet, Manifest, decode_tile, tile_count};
use crate::model::{Preset, UNetConfig, preset_names};

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
}

/// Where tensors live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// burn-flex on the CPU.
    Cpu,
    /// burn-wgpu (Vulkan, Metal or DX12, whichever the system has).
    Wgpu,
}

impl Backend {
    pub fn device(self) -> Device {
        match self {
            Backend::Cpu => Device::flex(),
            Backend::Wgpu => Device::wgpu(DeviceKind::DefaultDevice),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
        }
    }
}

/// An error for the user, in words.
pub type CliResult<T = ()> = Result<T, String>;

/// Runs the command line; returns a message on failure.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Data(args) => data::run(args),
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

fn read(path: &Path) -> CliResult<Vec<u8>> {
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

/// A model named by a preset or by a checkpoint file.
pub enum ModelSource {
    Preset(UNetConfig),
    File(Checkpoint),
}

/// `--model`: a preset name or a `.safetensors` file.
fn model_source(model: &str) -> CliResult<ModelSource> {
    if let Some(preset) = Preset::from_name(model) {
        return Ok(ModelSource::Preset(preset.config()));
    }
    let path = PathBuf::from(model);
    if !path.exists() {
        return Err(format!(
            "--model {model}: no such file, and not a preset (presets: {})",
            preset_names().join(", ")
        ));
    }
    let bytes = read(&path)?;
    checkpoint::decode(&bytes).map(ModelSource::File).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads the training split of a tiled dataset folder (written by `data`).
fn load_train_split(dir: &Path) -> CliResult<(Manifest, ImageSet)> {
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
    let split = &manifest.train;
    let (h, w, c) = (manifest.height, manifest.width, manifest.channels);
    let mut set = ImageSet { height: h, width: w, channels: c, pixels: Vec::new(), labels: Vec::new() };
    for (k, tile) in split.tiles.iter().enumerate() {
        let bytes = read(&dir.join(tile))?;
        let part = decode_tile(&bytes, tile_count(split.count, k), h, w, c)
            .map_err(|e| format!("{}: {e}", dir.join(tile).display()))?;
        set.extend(&part);
    }
    set.labels = read(&dir.join(&split.labels))?;
    Ok((manifest, set))
}
