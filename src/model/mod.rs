//! The ε-prediction U-Net and its parts, and the networks whose features `eval` measures in
//! (our classifiers, and pytorch-fid's Inception-v3).

mod blocks;
mod classifier;
mod config;
mod conv;
mod denoiser;
mod diffusers;
mod embedding;
mod flex;
mod group_norm;
pub mod inception;
mod points;
mod seeded;
mod presets;
mod silu;
pub mod state_dict;
mod unet;
mod winograd;

pub use classifier::{Classifier, ClassifierConfig, ClassifierKind};
pub use blocks::{AttentionBlock, Downsample, ResnetBlock, Upsample};
pub use denoiser::{Denoiser, DenoiserConfig};
pub use points::{PointDenoiser, PointDenoiserConfig};
pub use diffusers::{DiffusersConfigError, from_diffusers_config, to_diffusers_config};
pub use embedding::{TimestepEmbedding, timestep_embedding};
pub use inception::FidInception;
pub use presets::Preset;
pub use seeded::init_seeded;
pub use silu::silu;
pub use group_norm::{group_norm, group_norm_silu};
pub use conv::conv2d;
pub use config::{ConfigError, UNetConfig, limits};
pub use unet::{DownBlock, MidBlock, UNet, UpBlock};
