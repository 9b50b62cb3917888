//! The ε-prediction U-Net and its parts, and the classifiers whose features `eval` measures in.

mod blocks;
mod classifier;
mod diffusers;
mod embedding;
mod presets;
mod unet;

pub use classifier::{Classifier, ClassifierConfig, ClassifierKind};
pub use blocks::{AttentionBlock, Downsample, ResnetBlock, Upsample};
pub use diffusers::{from_diffusers_config, to_diffusers_config};
pub use embedding::{TimestepEmbedding, timestep_embedding};
pub use presets::{Preset, preset_names};
pub use unet::{DownBlock, MidBlock, UNet, UNetConfig, UpBlock};
