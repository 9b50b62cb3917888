//! Named model sizes: what a user picks instead of writing a config.

use super::UNetConfig;

/// A named U-Net size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// ~45k parameters, 28×28×1: fast enough for software GPUs and tests.
    Tiny,
    /// ~1.1M parameters, 28×28×1: the default model in the tab (MNIST).
    MnistSmall,
    /// The DDPM paper's CIFAR-10 U-Net (35.7M parameters, 32×32×3).
    DdpmCifar10,
}

/// Names accepted by [`Preset::from_name`].
pub fn preset_names() -> &'static [&'static str] {
    &["tiny", "mnist-small", "ddpm-cifar10"]
}

impl Preset {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::Tiny),
            "mnist-small" => Some(Self::MnistSmall),
            "ddpm-cifar10" => Some(Self::DdpmCifar10),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::MnistSmall => "mnist-small",
            Self::DdpmCifar10 => "ddpm-cifar10",
        }
    }

    pub fn config(self) -> UNetConfig {
        match self {
            Self::Tiny => UNetConfig::new(28, 1, 1, vec![8, 16], vec![false, true], 1)
                .with_norm_num_groups(4),
            Self::MnistSmall => {
                UNetConfig::new(28, 1, 1, vec![32, 64, 64], vec![false, false, true], 1)
                    .with_norm_num_groups(8)
            }
            // Ho et al. 2020, Appendix B; diffusers `google/ddpm-cifar10-32` config.json.
            Self::DdpmCifar10 => UNetConfig::new(
                32,
                3,
                3,
                vec![128, 256, 256, 256],
                vec![false, true, false, false],
                2,
            )
            .with_norm_eps(1e-6)
            .with_dropout(0.1)
            .with_flip_sin_to_cos(false)
            .with_freq_shift(1.0)
            .with_downsample_padding(0),
        }
    }
}
