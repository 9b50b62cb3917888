//! The ε-prediction U-Net and its parts.

mod blocks;
mod diffusers;
mod embedding;
mod presets;
mod unet;

pub use blocks::{AttentionBlock, Downsample, ResnetBlock, Upsample};
pub use diffusers::{from_diffusers_config, to_diffusers_config};
pub use embedding::{TimestepEmbedding, timestep_embedding};
pub use presets::{Preset, preset_names};
pub use unet::{DownBlock, MidBlock, UNet, UNetConfig, UpBlock};
