//! The U-Net ε-predictor of DDPM (Ho et al. 2020, Appendix B), laid out as diffusers'
//! `UNet2DModel` with `DownBlock2D` / `AttnDownBlock2D`, `UNetMidBlock2D` and
//! `UpBlock2D` / `AttnUpBlock2D`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::blocks::{
    AttentionBlock, AttentionBlockConfig, Downsample, ResnetBlock, ResnetBlockConfig, Upsample,
};
use super::embedding::{TimestepEmbedding, TimestepEmbeddingConfig, timestep_embedding_tensor};

/// What [`UNetConfig::validate`] accepts: far above any U-Net this crate is meant for (the
/// DDPM paper's CIFAR-10 model has 35.7M parameters and 256 channels; diffusers' 256×256
/// `UNet2DModel`s about 114M and 512), and low enough that a config asking for more is refused
/// in words before anything is allocated for it.
pub mod limits {
    /// Parameters in all: 2^30, 4.3 GB of float32 weights (training holds about five copies).
    pub const MAX_PARAMS: u64 = 1 << 30;
    /// Image height and width.
    pub const MAX_SAMPLE_SIZE: usize = 1024;
    /// Image channels in and out.
    pub const MAX_IMAGE_CHANNELS: usize = 64;
    /// Channels of one level, of a time embedding, of an attention head, GroupNorm groups.
    pub const MAX_CHANNELS: usize = 8192;
    /// Resolution levels (each halves the image).
    pub const MAX_LEVELS: usize = 8;
    /// ResNet blocks per level.
    pub const MAX_LAYERS_PER_BLOCK: usize = 16;
    /// Class labels of a class-conditional model (with its null class).
    pub const MAX_CLASS_EMBEDS: usize = 1 << 16;
    /// Elements of the largest activation of one forward pass (a level's feature map, or an
    /// attention's score matrix) for a whole batch: 2^31, 8.6 GB of float32. The DDPM paper's
    /// model at its batch of 128 needs 16.8M.
    pub const MAX_ACTIVATION: u64 = 1 << 31;
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

/// One resolution level on the way down.
#[derive(Module, Debug)]
pub struct DownBlock {
    pub resnets: Vec<ResnetBlock>,
    pub attentions: Vec<AttentionBlock>,
    pub downsamplers: Vec<Downsample>,
}

/// The bottleneck: ResNet, attention, ResNet.
#[derive(Module, Debug)]
pub struct MidBlock {
    pub resnets: Vec<ResnetBlock>,
    pub attentions: Vec<AttentionBlock>,
}

/// One resolution level on the way up; each ResNet block takes a skip connection.
#[derive(Module, Debug)]
pub struct UpBlock {
    pub resnets: Vec<ResnetBlock>,
    pub attentions: Vec<AttentionBlock>,
    pub upsamplers: Vec<Upsample>,
}

/// The ε-prediction network `ε_θ(x_t, t)`.
#[derive(Module, Debug)]
pub struct UNet {
    pub conv_in: Conv2d,
    pub time_embedding: TimestepEmbedding,
    /// One vector per class label, added to the time embedding (class-conditional models only).
    pub class_embedding: Option<Embedding>,
    pub down_blocks: Vec<DownBlock>,
    pub mid_block: MidBlock,
    pub up_blocks: Vec<UpBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
    pub time_proj_dim: usize,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub center_input_sample: bool,
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
    pub fn validate(&self) -> Result<(), String> {
        let positive = |name: &str, value: usize, max: usize| -> Result<(), String> {
            if value == 0 {
                Err(format!("{name} must be positive, not 0"))
            } else if value > max {
                Err(format!("{name} = {value} is too large (the limit is {max})"))
            } else {
                Ok(())
            }
        };
        positive("sample_size", self.sample_size, limits::MAX_SAMPLE_SIZE)?;
        positive("in_channels", self.in_channels, limits::MAX_IMAGE_CHANNELS)?;
        positive("out_channels", self.out_channels, limits::MAX_IMAGE_CHANNELS)?;
        positive("layers_per_block", self.layers_per_block, limits::MAX_LAYERS_PER_BLOCK)?;
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return Err("block_out_channels is empty: the U-Net needs at least one level".into());
        }
        if levels > limits::MAX_LEVELS {
            return Err(format!("block_out_channels has {levels} levels (the limit is {})", limits::MAX_LEVELS));
        }
        if self.attention.len() != levels {
            return Err(format!("attention has {} entries for {levels} levels of block_out_channels", self.attention.len()));
        }
        positive("norm_num_groups", self.norm_num_groups, limits::MAX_CHANNELS)?;
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            positive(&format!("block_out_channels[{i}]"), c, limits::MAX_CHANNELS)?;
            if c % self.norm_num_groups != 0 {
                return Err(format!(
                    "block_out_channels[{i}] = {c} is not divisible by norm_num_groups = {}",
                    self.norm_num_groups
                ));
            }
            if let Some(d) = self.attention_head_dim {
                positive("attention_head_dim", d, limits::MAX_CHANNELS)?;
                if c % d != 0 {
                    return Err(format!("block_out_channels[{i}] = {c} is not divisible by attention_head_dim = {d}"));
                }
            }
        }
        if let Some(dim) = self.time_embedding_dim {
            positive("time_embedding_dim", dim, limits::MAX_CHANNELS)?;
        }
        if let Some(n) = self.num_class_embeds {
            positive("num_class_embeds", n, limits::MAX_CLASS_EMBEDS)?;
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(format!("norm_eps = {}: it must be a positive number", self.norm_eps));
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(format!("dropout = {}: it must be at least 0 and below 1", self.dropout));
        }
        if !self.freq_shift.is_finite() {
            return Err(format!("freq_shift = {}: it must be a finite number", self.freq_shift));
        }
        if self.downsample_padding > 1 {
            return Err(format!(
                "downsample_padding = {} is not supported (0 or 1: each keeps the halving exact)",
                self.downsample_padding
            ));
        }
        if self.sample_size % (1 << (levels - 1)) != 0 {
            return Err(format!(
                "sample_size {} is not divisible by 2^{} (one halving between each of the {levels} levels)",
                self.sample_size,
                levels - 1
            ));
        }
        let params = self.num_params();
        if params > limits::MAX_PARAMS {
            return Err(format!(
                "this config has {params} parameters ({:.1} GB of float32 weights); the limit is {} ({:.1} GB)",
                params as f64 * 4e-9,
                limits::MAX_PARAMS,
                limits::MAX_PARAMS as f64 * 4e-9
            ));
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

    /// Builds the network with fresh weights. Panics on a config `validate` rejects.
    pub fn init(&self, device: &Device) -> UNet {
        if let Err(message) = self.validate() {
            panic!("invalid U-Net config: {message}");
        }
        let channels = &self.block_out_channels;
        let levels = channels.len();
        let time_proj_dim = channels[0];
        let temb = self.time_embedding_dim.unwrap_or(channels[0] * 4);
        let resnet = |cin: usize, cout: usize| {
            ResnetBlockConfig::new(cin, cout, temb, self.norm_num_groups)
                .with_eps(self.norm_eps)
                .with_dropout(self.dropout)
                .init(device)
        };
        let attention = |c: usize| {
            AttentionBlockConfig::new(c, self.attention_head_dim.unwrap_or(c), self.norm_num_groups)
                .with_eps(self.norm_eps)
                .init(device)
        };

        // Down: level i maps channels[i-1] -> channels[i], halving after every level but the last.
        let mut down_blocks = Vec::with_capacity(levels);
        let mut cin = channels[0];
        for (i, &cout) in channels.iter().enumerate() {
            let resnets = (0..self.layers_per_block)
                .map(|j| resnet(if j == 0 { cin } else { cout }, cout))
                .collect();
            let attentions = if self.attention[i] {
                (0..self.layers_per_block).map(|_| attention(cout)).collect()
            } else {
                Vec::new()
            };
            let downsamplers =
                if i + 1 < levels { vec![Downsample::new(cout, self.downsample_padding, device)] } else { Vec::new() };
            down_blocks.push(DownBlock { resnets, attentions, downsamplers });
            cin = cout;
        }

        let last = channels[levels - 1];
        let mid_block = MidBlock {
            resnets: vec![resnet(last, last), resnet(last, last)],
            attentions: if self.add_attention { vec![attention(last)] } else { Vec::new() },
        };

        // Up: mirror of the down path; each ResNet block eats one skip connection
        // (diffusers' `prev_output_channel` / `res_skip_channels` bookkeeping).
        let mut up_blocks = Vec::with_capacity(levels);
        let mut prev_out = last;
        for i in 0..levels {
            let level = levels - 1 - i;
            let cout = channels[level];
            let cskip_last = channels[level.saturating_sub(1)];
            let layers = self.layers_per_block + 1;
            let resnets = (0..layers)
                .map(|j| {
                    let skip = if j + 1 == layers { cskip_last } else { cout };
                    let input = if j == 0 { prev_out } else { cout };
                    resnet(input + skip, cout)
                })
                .collect();
            let attentions = if self.attention[level] {
                (0..layers).map(|_| attention(cout)).collect()
            } else {
                Vec::new()
            };
            let upsamplers = if level > 0 { vec![Upsample::new(cout, device)] } else { Vec::new() };
            up_blocks.push(UpBlock { resnets, attentions, upsamplers });
            prev_out = cout;
        }

        let conv = |cin: usize, cout: usize| {
            Conv2dConfig::new([cin, cout], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let conv_in = conv(self.in_channels, channels[0]);
        let time_embedding = TimestepEmbeddingConfig::new(time_proj_dim, temb).init(device);
        let conv_norm_out =
            GroupNormConfig::new(self.norm_num_groups, channels[0]).with_epsilon(self.norm_eps).init(device);
        let conv_out = conv(channels[0], self.out_channels);
        // Last, so an unconditional model draws exactly the initial weights it always did.
        // N(0, 1) initial vectors, as PyTorch's nn.Embedding.
        let class_embedding = self.num_class_embeds.map(|n| EmbeddingConfig::new(n, temb).init(device));
        UNet {
            conv_in,
            time_embedding,
            class_embedding,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out,
            conv_out,
            time_proj_dim,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
            center_input_sample: self.center_input_sample,
        }
    }
}

impl UNet {
    /// Predicts the noise: `x: [B, C, H, W]`, one timestep per image -> `[B, C, H, W]`.
    /// A class-conditional model predicts it for the null class (unconditionally).
    pub fn forward(&self, x: Tensor<4>, timesteps: &[usize]) -> Tensor<4> {
        self.forward_classes(x, timesteps, None)
    }

    /// The null label of a class-conditional model (see [`UNetConfig::null_class`]).
    pub fn null_class(&self) -> Option<usize> {
        self.class_embedding.as_ref().map(|e| e.weight.dims()[0] - 1)
    }

    /// As [`UNet::forward`], conditioned on one class label per image (`None`: the null class
    /// for every image), as diffusers' `UNet2DModel.forward(x, t, class_labels)`. Panics on
    /// labels for an unconditional model and on labels out of range, as diffusers raises.
    pub fn forward_classes(&self, x: Tensor<4>, timesteps: &[usize], classes: Option<&[usize]>) -> Tensor<4> {
        let device = x.device();
        let batch = x.dims()[0];
        let x = if self.center_input_sample { x.mul_scalar(2.0).sub_scalar(1.0) } else { x };
        // 1. time embedding: sinusoid (host) -> MLP
        let sinusoid = timestep_embedding_tensor(
            timesteps,
            self.time_proj_dim,
            self.flip_sin_to_cos,
            self.freq_shift,
            &device,
        );
        let mut temb = self.time_embedding.forward(sinusoid); // [B, 4C]
        // 1b. plus the class embedding, after the time MLP (diffusers: `emb = emb + class_emb`)
        match (&self.class_embedding, classes) {
            (Some(embedding), classes) => {
                let [labels, dim] = embedding.weight.dims();
                let ids: Vec<i64> = match classes {
                    Some(classes) => {
                        assert_eq!(classes.len(), batch, "one class label per image");
                        classes
                            .iter()
                            .map(|&c| {
                                assert!(c < labels, "class label {c} is out of range (the model has {labels})");
                                c as i64
                            })
                            .collect()
                    }
                    None => vec![(labels - 1) as i64; batch],
                };
                let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, 1]), &device);
                temb = temb + embedding.forward(ids).reshape([batch, dim]); // [B, 4C]
            }
            (None, Some(_)) => panic!("class labels given to an unconditional model"),
            (None, None) => {}
        }

        // 2. down: keep every intermediate as a skip connection
        let mut h = self.conv_in.forward(x); // [B, C0, H, W]
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            for (j, resnet) in block.resnets.iter().enumerate() {
                h = resnet.forward(h, &temb);
                if let Some(attention) = block.attentions.get(j) {
                    h = attention.forward(h);
                }
                skips.push(h.clone());
            }
            for down in &block.downsamplers {
                h = down.forward(h); // [B, Ci, H/2, W/2]
                skips.push(h.clone());
            }
        }

        // 3. middle at the lowest resolution
        h = self.mid_block.resnets[0].forward(h, &temb);
        for attention in &self.mid_block.attentions {
            h = attention.forward(h);
        }
        h = self.mid_block.resnets[1].forward(h, &temb);

        // 4. up: concatenate the matching skip before every ResNet block
        for block in &self.up_blocks {
            for (j, resnet) in block.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up-path ResNet block");
                h = resnet.forward(Tensor::cat(vec![h, skip], 1), &temb);
                if let Some(attention) = block.attentions.get(j) {
                    h = attention.forward(h);
                }
            }
            for up in &block.upsamplers {
                h = up.forward(h); // [B, Ci, 2H, 2W]
            }
        }

        // 5. out: GroupNorm, SiLU, 3×3 conv back to image channels
        self.conv_out.forward(silu(self.conv_norm_out.forward(h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use burn::module::Module;

    #[test]
    fn unet_output_shape_equals_input_shape() {
        let device = Device::flex();
        for config in [Preset::Tiny.config(), Preset::MnistSmall.config()] {
            let model = config.init(&device);
            let x = Tensor::<4>::zeros([2, 1, 28, 28], &device);
            assert_eq!(model.forward(x, &[0, 999]).dims(), [2, 1, 28, 28]);
        }
        // Three channels, three levels with attention in the middle, two heads.
        let config = UNetConfig::new(16, 3, 3, vec![8, 16, 16], vec![false, true, false], 2)
            .with_norm_num_groups(4)
            .with_attention_head_dim(Some(8));
        let x = Tensor::<4>::zeros([1, 3, 16, 16], &device);
        assert_eq!(config.init(&device).forward(x, &[5]).dims(), [1, 3, 16, 16]);
    }

    #[test]
    fn ddpm_cifar10_preset_has_the_papers_parameter_count() {
        // 35,746,307 parameters: Ho et al. 2020 report 35.7M; diffusers' UNet2DModel with the
        // google/ddpm-cifar10-32 config counts exactly this many.
        let model = Preset::DdpmCifar10.config().init(&Device::flex());
        assert_eq!(model.num_params(), 35_746_307);
    }

    #[test]
    fn invalid_configs_are_rejected_in_words() {
        let bad = UNetConfig::new(28, 1, 1, vec![8, 16], vec![false], 1).with_norm_num_groups(4);
        assert!(bad.validate().unwrap_err().contains("attention has 1 entries"));
        let bad = UNetConfig::new(28, 1, 1, vec![10], vec![false], 1).with_norm_num_groups(4);
        assert!(bad.validate().unwrap_err().contains("not divisible by norm_num_groups"));
    }

    #[test]
    fn the_parameter_count_from_the_sizes_equals_the_built_networks() {
        let device = Device::flex();
        let odd = [
            Preset::Tiny.config(),
            Preset::MnistSmall.config(),
            // Three levels, attention in the middle, two heads, conditional, own time embedding.
            UNetConfig::new(16, 3, 2, vec![8, 16, 24], vec![false, true, false], 2)
                .with_norm_num_groups(4)
                .with_attention_head_dim(Some(8))
                .with_num_class_embeds(Some(11))
                .with_time_embedding_dim(Some(20)),
            // One level, one layer, no mid-block attention.
            UNetConfig::new(8, 1, 1, vec![4], vec![true], 1).with_norm_num_groups(2).with_add_attention(false),
            // Channels that shrink and grow again, three layers per block.
            UNetConfig::new(8, 2, 2, vec![12, 4, 8], vec![true, false, true], 3).with_norm_num_groups(4),
        ];
        for config in odd {
            assert_eq!(config.num_params(), config.init(&device).num_params() as u64, "{config:?}");
        }
        assert_eq!(Preset::DdpmCifar10.config().num_params(), 35_746_307);
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
            let message = config.validate().expect_err(expected);
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
}
