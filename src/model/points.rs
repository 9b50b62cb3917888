//! The playground's denoiser: a small MLP on 2-D points with the U-Net's sinusoidal timestep
//! embedding (the toy models of Sohl-Dickstein et al. 2015 and of most diffusion tutorials).
//!
//! A point is a `[2, 1, 1]` "image", so the network takes and returns `[B, 2, 1, 1]`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use crate::ops::silu;
use burn::tensor::{Device, Tensor};

use super::denoiser::{Denoiser, DenoiserConfig};
use super::embedding::timestep_embedding_tensor;

/// The MLP's sizes.
#[derive(Config, Debug, PartialEq)]
pub struct PointDenoiserConfig {
    /// Width of every hidden layer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Residual blocks, each `h + SiLU(Linear(h))`.
    #[config(default = 3)]
    pub blocks: usize,
    /// Size of the sinusoidal timestep embedding fed with the point.
    #[config(default = 32)]
    pub time_dim: usize,
    /// Fourier features of the point fed beside it: sin and cos of 2^k π x for k below this
    /// (Tancik et al. 2020: an MLP learns sharp detail of low-dimensional inputs far faster).
    #[config(default = 0)]
    pub frequencies: usize,
}

/// `out(h_L)`, `h_{i+1} = h_i + SiLU(W_i h_i)`, `h_0 = SiLU(W_in [x, emb(t)])`.
#[derive(Module, Debug)]
pub struct PointDenoiser {
    input: Linear,
    blocks: Vec<Linear>,
    output: Linear,
    time_dim: usize,
    frequencies: usize,
}

impl PointDenoiserConfig {
    pub fn init(&self, device: &Device) -> PointDenoiser {
        PointDenoiser {
            input: LinearConfig::new(2 + 4 * self.frequencies + self.time_dim, self.hidden).init(device),
            blocks: (0..self.blocks).map(|_| LinearConfig::new(self.hidden, self.hidden).init(device)).collect(),
            output: LinearConfig::new(self.hidden, 2).init(device),
            time_dim: self.time_dim,
            frequencies: self.frequencies,
        }
    }
}

impl DenoiserConfig for PointDenoiserConfig {
    type Model = PointDenoiser;

    fn init_denoiser(&self, device: &Device) -> PointDenoiser {
        self.init(device)
    }
}

impl Denoiser for PointDenoiser {
    fn denoise(&self, x_t: Tensor<4>, timesteps: &[usize], classes: Option<&[usize]>) -> Tensor<4> {
        assert!(classes.is_none(), "the point denoiser is unconditional");
        let [batch, channels, h, w] = x_t.dims();
        assert_eq!([channels, h, w], [2, 1, 1], "points are [B, 2, 1, 1]");
        let t = timestep_embedding_tensor(timesteps, self.time_dim, true, 0.0, &x_t.device());
        let x: Tensor<2> = x_t.reshape([batch, 2]);
        let mut inputs = vec![x.clone()];
        for k in 0..self.frequencies {
            let scaled = x.clone().mul_scalar(std::f64::consts::PI * f64::from(1u32 << k));
            inputs.push(scaled.clone().sin());
            inputs.push(scaled.cos());
        }
        inputs.push(t);
        let mut h = silu(self.input.forward(Tensor::cat(inputs, 1)));
        for block in &self.blocks {
            h = h.clone() + silu(block.forward(h));
        }
        self.output.forward(h).reshape([batch, 2, 1, 1])
    }
}
