//! The U-Net ε-predictor of DDPM (Ho et al. 2020, Appendix B), laid out as diffusers'
//! `UNet2DModel` with `DownBlock2D` / `AttnDownBlock2D`, `UNetMidBlock2D` and
//! `UpBlock2D` / `AttnUpBlock2D`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, PaddingConfig2d};
use crate::ops::{conv2d, group_norm_silu};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::blocks::{
    AttentionBlock, AttentionBlockConfig, Downsample, ResnetBlock, ResnetBlockConfig, Upsample,
};
use super::embedding::{TimestepEmbedding, TimestepEmbeddingConfig, timestep_embedding_tensor};
use super::UNetConfig;
use super::denoiser::{Denoiser, DenoiserConfig};

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

impl DenoiserConfig for UNetConfig {
    type Model = UNet;

    fn init_denoiser(&self, device: &Device) -> UNet {
        self.init(device)
    }

    fn null_class(&self) -> Option<usize> {
        UNetConfig::null_class(self)
    }
}

impl Denoiser for UNet {
    fn denoise(&self, x_t: Tensor<4>, timesteps: &[usize], classes: Option<&[usize]>) -> Tensor<4> {
        self.forward_classes(x_t, timesteps, classes)
    }

    fn null_class(&self) -> Option<usize> {
        UNet::null_class(self)
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
        let mut h = conv2d(&self.conv_in, x); // [B, C0, H, W]
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
        conv2d(&self.conv_out, group_norm_silu(&self.conv_norm_out, h))
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

}
