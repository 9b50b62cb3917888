//! The denoising U-Net and its parts, and the networks whose features `eval` measures in (our
//! classifiers, and pytorch-fid's Inception-v3).
//!
//! The U-Net outputs whatever its scheduler config's `prediction_type` says: by default v =
//! √ᾱ_t ε − √(1 − ᾱ_t) x_0, trained on the min-SNR-5-weighted v-loss on the cosine ᾱ schedule
//! (`Recipe::SMALL_DATA`); the noise ε with weight 1 on linear β is DDPM's Algorithm 1 (the
//! paper's recipe, `--prediction epsilon --min-snr-gamma 0 --schedule linear`). The page's
//! training panel and the model card name the run's loss as `diffusion::Objective` words it.

mod blocks;
mod config;
mod denoiser;
mod diffusers;
mod embedding;
mod points;
mod seeded;
mod presets;
pub mod state_dict;
mod unet;

pub use blocks::{AttentionBlock, Downsample, ResnetBlock, Upsample};
pub use denoiser::{Denoiser, DenoiserConfig};
pub use points::{PointDenoiser, PointDenoiserConfig};
pub use diffusers::{DiffusersConfigError, from_diffusers_config, to_diffusers_config};
pub use embedding::{TimestepEmbedding, timestep_embedding};
pub use presets::Preset;
pub use seeded::init_seeded;
pub use config::{ConfigError, UNetConfig};
pub use unet::{DownBlock, MidBlock, UNet, UpBlock};
