//! The sizes of a U-Net ([`UNetConfig`]): what a config may ask for, its checks, and what it
//! costs (parameters, activation memory), worked out before anything is built.

use burn::config::Config;

use crate::limits;

/// Why [`UNetConfig::validate`] refuses a config; its words name the field and the rule.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} must be positive, not 0")]
    Zero { field: String },
    #[error("{field} = {value} is too large (the limit is {max})")]
    TooLarge { field: String, value: usize, max: usize },
    #[error("block_out_channels is empty: the U-Net needs at least one level")]
    NoLevels,
    #[error("block_out_channels has {levels} levels (the limit is {max})")]
    TooManyLevels { levels: usize, max: usize },
    #[error("attention has {entries} entries for {levels} levels of block_out_channels")]
    AttentionPerLevel { entries: usize, levels: usize },
    #[error("block_out_channels[{level}] = {channels} is not divisible by {by} = {divisor}")]
    NotDivisible { level: usize, channels: usize, by: &'static str, divisor: usize },
    #[error("{field} = {value}: it must be {must}")]
    OutOfRange { field: &'static str, value: f64, must: &'static str },
    #[error("downsample_padding = {0} is not supported (0 or 1: each keeps the halving exact)")]
    DownsamplePadding(usize),
    #[error("sample_size {sample_size} is not divisible by 2^{halvings} (one halving between each of the {levels} levels)")]
    SampleSizeNotHalvable { sample_size: usize, halvings: usize, levels: usize },
    #[error("this config has {params} parameters ({:.1} GB of float32 weights); the limit is {max} ({:.1} GB)", *params as f64 * 4e-9, *max as f64 * 4e-9)]
    TooManyParams { params: u64, max: u64 },
}

/// Sizes of a U-Net. Travels with the weights in every checkpoint.
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Image height and width.
    pub sample_size: usize,
    /// Image channels in (1 for MNIST, 3 for CIFAR-10).
    pub in_channels: usize,
    /// Channels out (= in_channels for ε-prediction).
    pub out_channels: usize,
    /// Channels at each resolution, highest resolution first; the resolution halves between levels.
    pub block_out_channels: Vec<usize>,
    /// Whether each level (same order) has self-attention after its ResNet blocks.
    pub attention: Vec<bool>,
    /// ResNet blocks per level on the way down (one more on the way up).
    pub layers_per_block: usize,
    /// Channels per attention head (`None`: one head over all channels).
    #[config(default = "None")]
    pub attention_head_dim: Option<usize>,
    /// GroupNorm groups.
    #[config(default = 32)]
    pub norm_num_groups: usize,
    /// GroupNorm epsilon.
    #[config(default = 1e-5)]
    pub norm_eps: f64,
    /// Dropout in the ResNet blocks.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// `[cos, sin]` instead of `[sin, cos]` in the time embedding.
    #[config(default = true)]
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the time embedding.
    #[config(default = 0.0)]
    pub freq_shift: f64,
    /// Padding of the downsampling convolutions (0: bottom and right only, as in DDPM).
    #[config(default = 1)]
    pub downsample_padding: usize,
    /// Map inputs from [0, 1] to [−1, 1] first (x ↦ 2x − 1).
    #[config(default = false)]
    pub center_input_sample: bool,
    /// Size of the time embedding (`None`: 4 × block_out_channels[0]).
    #[config(default = "None")]
    pub time_embedding_dim: Option<usize>,
    /// Self-attention in the middle block.
    #[config(default = true)]
    pub add_attention: bool,
    /// Class labels the model is conditioned on: each label is a learned vector added to the
    /// time embedding (diffusers' `num_class_embeds`, with `class_embed_type` null). For
    /// classifier-free guidance a model of K classes has K + 1: label K is the null
    /// ("unconditional") class that training drops labels to (Ho & Salimans 2022), see
    /// [`UNetConfig::null_class`]. `None`: an unconditional model.
    #[config(default = "None")]
    pub num_class_embeds: Option<usize>,
}

impl UNetConfig {
    /// The null ("unconditional") label of a class-conditional model: K, the last of its
    /// K + 1 labels. `None` for an unconditional model.
    pub fn null_class(&self) -> Option<usize> {
        self.num_class_embeds.map(|n| n - 1)
    }

    /// K, the number of real classes of a class-conditional model (labels 0..K).
    pub fn num_classes(&self) -> Option<usize> {
        self.null_class()
    }

    /// This model, class-conditional on K = `classes` classes plus the null class (label K)
    /// that classifier-free guidance needs.
    pub fn conditional_on(self, classes: usize) -> Self {
        Self { num_class_embeds: Some(classes + 1), ..self }
    }

    /// Checks every field before anything is allocated for it: sizes positive and within
    /// [`limits`], GroupNorm groups and attention heads dividing the channels, finite
    /// epsilon > 0, dropout in [0, 1), one attention flag per level, an image side that halves
    /// cleanly at every level, and the total parameter count ([`UNetConfig::num_params`],
    /// worked out from the sizes) within [`limits::MAX_PARAMS`]. A config that passes builds
    /// with [`UNetConfig::init`] without panicking. The messages name the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |field: &str, value: usize, max: usize| -> Result<(), ConfigError> {
            if value == 0 {
                Err(ConfigError::Zero { field: field.into() })
            } else if value > max {
                Err(ConfigError::TooLarge { field: field.into(), value, max })
            } else {
                Ok(())
            }
        };
        positive("sample_size", self.sample_size, limits::MAX_SAMPLE_SIZE)?;
        positive("in_channels", self.in_channels, limits::MAX_MODEL_IMAGE_CHANNELS)?;
        positive("out_channels", self.out_channels, limits::MAX_MODEL_IMAGE_CHANNELS)?;
        positive("layers_per_block", self.layers_per_block, limits::MAX_LAYERS_PER_BLOCK)?;
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return Err(ConfigError::NoLevels);
        }
        if levels > limits::MAX_LEVELS {
            return Err(ConfigError::TooManyLevels { levels, max: limits::MAX_LEVELS });
        }
        if self.attention.len() != levels {
            return Err(ConfigError::AttentionPerLevel { entries: self.attention.len(), levels });
        }
        positive("norm_num_groups", self.norm_num_groups, limits::MAX_LAYER_CHANNELS)?;
        for (level, &channels) in self.block_out_channels.iter().enumerate() {
            positive(&format!("block_out_channels[{level}]"), channels, limits::MAX_LAYER_CHANNELS)?;
            if channels % self.norm_num_groups != 0 {
                return Err(ConfigError::NotDivisible { level, channels, by: "norm_num_groups", divisor: self.norm_num_groups });
            }
            if let Some(d) = self.attention_head_dim {
                positive("attention_head_dim", d, limits::MAX_LAYER_CHANNELS)?;
                if channels % d != 0 {
                    return Err(ConfigError::NotDivisible { level, channels, by: "attention_head_dim", divisor: d });
                }
            }
        }
        if let Some(dim) = self.time_embedding_dim {
            positive("time_embedding_dim", dim, limits::MAX_LAYER_CHANNELS)?;
        }
        if let Some(n) = self.num_class_embeds {
            positive("num_class_embeds", n, limits::MAX_CLASS_EMBEDS)?;
        }
        let out_of_range = |field, value, must| Err(ConfigError::OutOfRange { field, value, must });
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return out_of_range("norm_eps", self.norm_eps, "a positive number");
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return out_of_range("dropout", self.dropout, "at least 0 and below 1");
        }
        if !self.freq_shift.is_finite() {
            return out_of_range("freq_shift", self.freq_shift, "a finite number");
        }
        if self.downsample_padding > 1 {
            return Err(ConfigError::DownsamplePadding(self.downsample_padding));
        }
        if self.sample_size % (1 << (levels - 1)) != 0 {
            return Err(ConfigError::SampleSizeNotHalvable { sample_size: self.sample_size, halvings: levels - 1, levels });
        }
        let params = self.num_params();
        if params > limits::MAX_PARAMS {
            return Err(ConfigError::TooManyParams { params, max: limits::MAX_PARAMS });
        }
        Ok(())
    }

    /// Checks that a batch (of training images, or of samples drawn at once) of `batch`
    /// images fits [`limits::MAX_ACTIVATION`], before anything is allocated for it. For a
    /// config that [`UNetConfig::validate`] accepted.
    pub fn check_batch(&self, batch: usize) -> Result<(), String> {
        if batch == 0 {
            return Err("the batch size is 0: it must be positive".into());
        }
        let largest = self.largest_activation(batch as u64);
        if largest > limits::MAX_ACTIVATION {
            let fits = (limits::MAX_ACTIVATION / self.largest_activation(1).max(1)).max(1);
            return Err(format!(
                "a batch of {batch} images of {}×{} needs an activation of {largest} values, more than the limit of {} (this model takes at most {fits} at once)",
                self.sample_size,
                self.sample_size,
                limits::MAX_ACTIVATION
            ));
        }
        Ok(())
    }

    /// The most images per batch whose largest activation, in float32, fits a buffer of
    /// `buffer_bytes` (a WebGPU adapter's largest storage buffer), at least 1.
    pub fn largest_batch_in(&self, buffer_bytes: u64) -> usize {
        let per_image = self.largest_activation(1).saturating_mul(4).max(1);
        usize::try_from(buffer_bytes / per_image).unwrap_or(usize::MAX).max(1)
    }

    /// Elements of the largest feature map or attention score matrix of a forward pass.
    fn largest_activation(&self, batch: u64) -> u64 {
        let mul = u64::saturating_mul;
        let mut largest = 0;
        for (level, &c) in self.block_out_channels.iter().enumerate() {
            let side = (self.sample_size >> level.min(63)) as u64;
            let pixels = mul(side, side);
            largest = largest.max(mul(mul(batch, c as u64), pixels));
            let attends = self.attention.get(level) == Some(&true)
                || (self.add_attention && level + 1 == self.block_out_channels.len());
            if attends {
                let heads = self.attention_head_dim.map_or(1, |d| (c / d.max(1)) as u64);
                largest = largest.max(mul(mul(batch, heads), mul(pixels, pixels)));
            }
        }
        largest
    }

    /// The number of parameters [`UNetConfig::init`] would create, worked out from the sizes
    /// alone (nothing is allocated), so that [`UNetConfig::validate`] can refuse an absurd
    /// config first. Saturates instead of overflowing. Equal to `init(..).num_params()`
    /// (tested for the presets and odd shapes).
    pub fn num_params(&self) -> u64 {
        let (add, mul) = (u64::saturating_add, u64::saturating_mul);
        let u = |n: usize| n as u64;
        let Some(&c0) = self.block_out_channels.first() else { return 0 };
        let temb = u(self.time_embedding_dim.unwrap_or(c0.saturating_mul(4)));
        let conv3 = |cin: u64, cout: u64| add(mul(mul(cin, cout), 9), cout);
        let linear = |cin: u64, cout: u64| add(mul(cin, cout), cout);
        let norm = |c: u64| mul(c, 2);
        let resnet = |cin: u64, cout: u64| {
            let shortcut = if cin == cout { 0 } else { linear(cin, cout) };
            [norm(cin), conv3(cin, cout), linear(temb, cout), norm(cout), conv3(cout, cout), shortcut]
                .into_iter()
                .fold(0, add)
        };
        let attention = |c: u64| add(norm(c), mul(linear(c, c), 4));
        let channels: Vec<u64> = self.block_out_channels.iter().map(|&c| u(c)).collect();
        let levels = channels.len();
        let layers = u(self.layers_per_block);
        let mut total = add(conv3(u(self.in_channels), channels[0]), add(linear(u(c0), temb), linear(temb, temb)));
        total = add(total, mul(u(self.num_class_embeds.unwrap_or(0)), temb));
        let mut cin = channels[0];
        for (i, &cout) in channels.iter().enumerate() {
            let first = if layers > 0 { resnet(cin, cout) } else { 0 };
            total = add(total, add(first, mul(layers.saturating_sub(1), resnet(cout, cout))));
            if self.attention.get(i) == Some(&true) {
                total = add(total, mul(layers, attention(cout)));
            }
            if i + 1 < levels {
                total = add(total, conv3(cout, cout));
            }
            cin = cout;
        }
        let last = channels[levels - 1];
        total = add(total, mul(resnet(last, last), 2));
        if self.add_attention {
            total = add(total, attention(last));
        }
        let mut prev_out = last;
        for level in (0..levels).rev() {
            let cout = channels[level];
            let skip_last = channels[level.saturating_sub(1)];
            let up_layers = add(layers, 1);
            // Layer 0 takes prev_out + cout (or + skip_last when it is also the last), the
            // middle ones cout + cout, the last one cout + skip_last.
            let first_skip = if up_layers == 1 { skip_last } else { cout };
            total = add(total, resnet(add(prev_out, first_skip), cout));
            if up_layers >= 2 {
                total = add(total, mul(up_layers - 2, resnet(add(cout, cout), cout)));
                total = add(total, resnet(add(cout, skip_last), cout));
            }
            if self.attention.get(level) == Some(&true) {
                total = add(total, mul(up_layers, attention(cout)));
            }
            if level > 0 {
                total = add(total, conv3(cout, cout));
            }
            prev_out = cout;
        }
        add(total, add(norm(channels[0]), conv3(channels[0], u(self.out_channels))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;

    #[test]
    fn invalid_configs_are_rejected_in_words() {
        let bad = UNetConfig::new(28, 1, 1, vec![8, 16], vec![false], 1).with_norm_num_groups(4);
        assert_eq!(bad.validate(), Err(ConfigError::AttentionPerLevel { entries: 1, levels: 2 }));
        assert!(bad.validate().unwrap_err().to_string().contains("attention has 1 entries"));
        let bad = UNetConfig::new(28, 1, 1, vec![10], vec![false], 1).with_norm_num_groups(4);
        assert!(matches!(bad.validate(), Err(ConfigError::NotDivisible { level: 0, channels: 10, by: "norm_num_groups", divisor: 4 })));
        assert!(bad.validate().unwrap_err().to_string().contains("not divisible by norm_num_groups"));
    }

    /// The configs of the "nothing breaks" issue: each asked for the impossible and crashed
    /// (panicked, aborted while allocating, or sampled NaN); each is now refused in words.
    #[test]
    fn impossible_configs_are_refused_before_anything_is_allocated() {
        let good = Preset::MnistSmall.config();
        let cases: Vec<(UNetConfig, &str)> = vec![
            (UNetConfig { sample_size: 0, ..good.clone() }, "sample_size must be positive, not 0"),
            (UNetConfig { sample_size: 1_000_000, ..good.clone() }, "sample_size = 1000000 is too large (the limit is 1024)"),
            (UNetConfig { layers_per_block: 1_000_000_000, ..good.clone() }, "layers_per_block = 1000000000 is too large"),
            (UNetConfig { block_out_channels: vec![1_000_000_000, 64, 64], ..good.clone() }, "block_out_channels[0] = 1000000000 is too large"),
            (UNetConfig { num_class_embeds: Some(1_000_000_000_000), ..good.clone() }, "num_class_embeds = 1000000000000 is too large"),
            (UNetConfig { num_class_embeds: Some(0), ..good.clone() }, "num_class_embeds must be positive, not 0"),
            (UNetConfig { norm_eps: -1e-5, ..good.clone() }, "norm_eps = -0.00001: it must be a positive number"),
            (UNetConfig { norm_eps: f64::NAN, ..good.clone() }, "norm_eps = NaN"),
            (UNetConfig { dropout: 1.0, ..good.clone() }, "dropout = 1"),
            (UNetConfig { norm_num_groups: 0, ..good.clone() }, "norm_num_groups must be positive, not 0"),
            (UNetConfig { attention_head_dim: Some(0), ..good.clone() }, "attention_head_dim must be positive, not 0"),
            (UNetConfig { attention_head_dim: Some(24), ..good.clone() }, "not divisible by attention_head_dim = 24"),
            (UNetConfig { in_channels: 0, ..good.clone() }, "in_channels must be positive, not 0"),
            (UNetConfig { time_embedding_dim: Some(0), ..good.clone() }, "time_embedding_dim must be positive, not 0"),
            (UNetConfig { downsample_padding: 3, ..good.clone() }, "downsample_padding = 3"),
            (UNetConfig { block_out_channels: vec![], attention: vec![], ..good.clone() }, "block_out_channels is empty"),
            (UNetConfig { block_out_channels: vec![32; 9], attention: vec![false; 9], ..good.clone() }, "9 levels"),
            (UNetConfig { sample_size: 30, ..good.clone() }, "sample_size 30 is not divisible by 2^2"),
            // Every size within its own limit, too many parameters in all (about 27 billion).
            (
                UNetConfig { block_out_channels: vec![8192; 4], attention: vec![true; 4], sample_size: 64, layers_per_block: 8, ..good.clone() },
                "parameters",
            ),
        ];
        for (config, expected) in cases {
            let message = config.validate().expect_err(expected).to_string();
            assert!(message.contains(expected), "{message:?} should say {expected:?}");
        }
        good.validate().unwrap();
        Preset::DdpmCifar10.config().validate().unwrap();
    }

    #[test]
    fn batches_are_checked_against_the_activation_limit() {
        // The paper's recipe (batch 128) is far inside; a billion images at once is not.
        Preset::DdpmCifar10.config().check_batch(128).unwrap();
        Preset::MnistSmall.config().check_batch(4096).unwrap();
        let message = Preset::MnistSmall.config().check_batch(1_000_000_000).unwrap_err();
        assert!(message.contains("a batch of 1000000000 images of 28×28"), "{message}");
        assert!(message.contains("at most"), "{message}");
        assert!(Preset::Tiny.config().check_batch(0).unwrap_err().contains("batch size is 0"));
        // The limit binds at the largest tensor: mnist-small's 28×28×32 feature maps
        // (25,088 values an image), or its 14×14 attention's 196² scores (38,416) if larger.
        let config = Preset::MnistSmall.config();
        let per_image = config.largest_activation(1);
        assert!(per_image >= 28 * 28 * 32, "{per_image}");
        config.check_batch((limits::MAX_ACTIVATION / per_image) as usize).unwrap();
        config.check_batch((limits::MAX_ACTIVATION / per_image) as usize + 1).unwrap_err();
    }

    /// The tab caps a recipe's batch at what the adapter's largest storage buffer holds. The
    /// paper's U-Net at 32×32: its largest tensor is a 128-channel 32×32 feature map, 131,072
    /// float32 values (512 KiB) an image (its 16×16 attention's 256² scores are half that), so
    /// WebGPU's default 128 MiB binding holds 256 images and a 64 MiB one 128, the recipe's.
    #[test]
    fn the_largest_batch_a_buffer_holds_is_worked_out_from_the_largest_tensor() {
        let config = Preset::DdpmCifar10.config();
        assert_eq!(config.largest_activation(1), 128 * 32 * 32);
        assert_eq!(config.largest_batch_in(128 << 20), 256);
        assert_eq!(config.largest_batch_in(64 << 20), 128);
        assert_eq!(config.largest_batch_in((64 << 20) - 1), 127);
        assert_eq!(config.largest_batch_in(0), 1, "a batch of one is the floor");
    }
}
