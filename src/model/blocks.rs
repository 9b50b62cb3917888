//! The U-Net's building blocks, named and shaped as diffusers' `ResnetBlock2D`, `Attention`,
//! `Downsample2D` and `Upsample2D`, so parameter paths read like a diffusers state dict.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use crate::ops::{conv2d, group_norm, group_norm_silu, silu};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

fn conv3x3(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels_in, channels_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

fn new_group_norm(groups: usize, channels: usize, eps: f64, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, channels).with_epsilon(eps).init(device)
}

/// A ResNet block with the time embedding added after the first convolution (DDPM, Appendix B).
#[derive(Config, Debug)]
pub struct ResnetBlockConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels; a 1×1 shortcut convolution is added when they differ.
    pub out_channels: usize,
    /// Size of the time embedding projected into the block.
    pub temb_channels: usize,
    /// GroupNorm groups.
    pub groups: usize,
    /// GroupNorm epsilon.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Dropout before the second convolution (0.1 in the DDPM CIFAR-10 model).
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// `ResnetBlock2D`.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub time_emb_proj: Linear,
    pub norm2: GroupNorm,
    pub dropout: Dropout,
    pub conv2: Conv2d,
    pub conv_shortcut: Option<Conv2d>,
}

impl ResnetBlockConfig {
    pub fn init(&self, device: &Device) -> ResnetBlock {
        let shortcut = (self.in_channels != self.out_channels).then(|| {
            Conv2dConfig::new([self.in_channels, self.out_channels], [1, 1]).init(device)
        });
        ResnetBlock {
            norm1: new_group_norm(self.groups, self.in_channels, self.eps, device),
            conv1: conv3x3(self.in_channels, self.out_channels, 1, device),
            time_emb_proj: LinearConfig::new(self.temb_channels, self.out_channels).init(device),
            norm2: new_group_norm(self.groups, self.out_channels, self.eps, device),
            dropout: DropoutConfig::new(self.dropout).init(),
            conv2: conv3x3(self.out_channels, self.out_channels, 1, device),
            conv_shortcut: shortcut,
        }
    }
}

impl ResnetBlock {
    /// `x: [B, Cin, H, W]`, `temb: [B, T]` -> `[B, Cout, H, W]`
    pub fn forward(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm_silu(&self.norm1, x.clone()));
        let [b, c, _, _] = h.dims();
        let t = self.time_emb_proj.forward(silu(temb.clone())).reshape([b, c, 1, 1]);
        let h = h + t;
        let h = conv2d(&self.conv2, self.dropout.forward(group_norm_silu(&self.norm2, h)));
        let skip = match &self.conv_shortcut {
            Some(conv) => conv2d(conv, x),
            None => x,
        };
        skip + h
    }
}

/// Spatial self-attention with a residual connection (diffusers `Attention` as the U-Net uses it).
#[derive(Config, Debug)]
pub struct AttentionBlockConfig {
    /// Channels.
    pub channels: usize,
    /// Channels per head; `channels / head_dim` heads.
    pub head_dim: usize,
    /// GroupNorm groups.
    pub groups: usize,
    /// GroupNorm epsilon.
    #[config(default = 1e-5)]
    pub eps: f64,
}

/// Self-attention over the `H·W` positions.
#[derive(Module, Debug)]
pub struct AttentionBlock {
    pub group_norm: GroupNorm,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    /// diffusers keeps the output projection in a list (`to_out.0`) beside a dropout.
    pub to_out: Vec<Linear>,
    pub heads: usize,
}

impl AttentionBlockConfig {
    pub fn init(&self, device: &Device) -> AttentionBlock {
        assert!(
            self.channels % self.head_dim == 0,
            "attention: {} channels are not a multiple of the head size {}",
            self.channels,
            self.head_dim
        );
        let linear = || LinearConfig::new(self.channels, self.channels).init(device);
        AttentionBlock {
            group_norm: new_group_norm(self.groups, self.channels, self.eps, device),
            to_q: linear(),
            to_k: linear(),
            to_v: linear(),
            to_out: vec![linear()],
            heads: self.channels / self.head_dim,
        }
    }
}

impl AttentionBlock {
    /// `[B, C, H, W] -> [B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (heads, d) = (self.heads, c / self.heads);
        // 1. normalise and flatten the positions: [B, HW, C]
        let seq = group_norm(&self.group_norm, x.clone()).reshape([b, c, h * w]).swap_dims(1, 2);
        // 2. project and split heads: [B, heads, HW, d]
        let split = |t: Tensor<3>| t.reshape([b, h * w, heads, d]).swap_dims(1, 2);
        let q = split(self.to_q.forward(seq.clone()));
        let k = split(self.to_k.forward(seq.clone()));
        let v = split(self.to_v.forward(seq));
        // 3. softmax(q kᵀ / √d) v
        let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(1.0 / (d as f64).sqrt());
        let out = softmax(scores, 3).matmul(v); // [B, heads, HW, d]
        // 4. merge heads, project, back to an image, add the residual
        let out = out.swap_dims(1, 2).reshape([b, h * w, c]);
        let out = self.to_out[0].forward(out);
        out.swap_dims(1, 2).reshape([b, c, h, w]) + x
    }
}

/// Halves the resolution with a stride-2 3×3 convolution.
#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
}

impl Downsample {
    /// `padding` on every side, as diffusers' `downsample_padding`; 0 means one row and column
    /// of zeros on the bottom and right only (diffusers' `Downsample2D` with `padding=0`, as in
    /// the original DDPM code and google/ddpm-cifar10-32).
    pub fn new(channels: usize, padding: usize, device: &Device) -> Self {
        let padding = match padding {
            0 => PaddingConfig2d::Explicit(0, 0, 1, 1),
            p => PaddingConfig2d::Explicit(p, p, p, p),
        };
        let conv = Conv2dConfig::new([channels, channels], [3, 3])
            .with_stride([2, 2])
            .with_padding(padding)
            .init(device);
        Self { conv }
    }

    /// `[B, C, H, W] -> [B, C, ⌈H/2⌉, ⌈W/2⌉]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(&self.conv, x)
    }
}

/// Doubles the resolution (nearest neighbour), then a 3×3 convolution.
#[derive(Module, Debug)]
pub struct Upsample {
    pub conv: Conv2d,
}

impl Upsample {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self { conv: conv3x3(channels, channels, 1, device) }
    }

    /// `[B, C, H, W] -> [B, C, 2H, 2W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let up = x
            .reshape([b, c, h, 1, w, 1])
            .expand([b, c, h, 2, w, 2])
            .reshape([b, c, 2 * h, 2 * w]);
        conv2d(&self.conv, up)
    }
}
