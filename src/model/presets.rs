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

named!(serde Preset, "preset", [Tiny => "tiny", MnistSmall => "mnist-small", DdpmCifar10 => "ddpm-cifar10"]);

impl Preset {
    /// The name with its size, for a menu (the test below checks the counts).
    pub fn description(self) -> &'static str {
        match self {
            Self::Tiny => "tiny: 45k parameters, for slow GPUs",
            Self::MnistSmall => "mnist-small: 1.1M parameters (default)",
            Self::DdpmCifar10 => "ddpm-cifar10: 35.7M parameters, the DDPM paper's (slow in a browser)",
        }
    }

    /// The preset's architecture for images of another size or channel count (the tab's
    /// datasets: 28×28×1 MNIST and Fashion-MNIST, 32×32×3 CIFAR-10, the user's own).
    pub fn config_for(self, size: usize, channels: usize) -> UNetConfig {
        UNetConfig { sample_size: size, in_channels: channels, out_channels: channels, ..self.config() }
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

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::tensor::Device;

    use super::*;

    /// The menu states each preset's size; it must be the model's (rounded as written).
    #[test]
    fn descriptions_state_the_parameter_counts() {
        for &preset in Preset::ALL {
            let params = preset.config().init(&Device::flex()).num_params() as f64;
            let shown = if params >= 1e6 { format!("{:.1}M parameters", params / 1e6) } else { format!("{:.0}k parameters", params / 1e3) };
            assert!(preset.description().contains(&shown), "{}: {params} parameters, says {}", preset.name(), preset.description());
        }
    }
}
