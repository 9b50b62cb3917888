//! Sinusoidal timestep embedding and its MLP (DDPM §3.3 / Transformer positional encoding).
//!
//! The sinusoid is plain host math: `t` is known on the host, so the `[B, C]` table is computed
//! once per batch in `f64` and uploaded, exactly as diffusers' `Timesteps` computes it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use crate::ops::silu;
use burn::tensor::{Device, Tensor, TensorData};

/// The sinusoidal embedding of integer timesteps, as diffusers' `get_timestep_embedding`.
///
/// `emb[i] = t · exp(−ln(10000) · i / (half − freq_shift))` for `i < half`; the output is
/// `[sin, cos]` (or `[cos, sin]` with `flip_sin_to_cos`). Returns `B × dim` values, row-major.
pub fn timestep_embedding(
    timesteps: &[usize],
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
) -> Vec<f32> {
    let half = dim / 2;
    let mut out = Vec::with_capacity(timesteps.len() * dim);
    for &t in timesteps {
        let mut sin = Vec::with_capacity(half);
        let mut cos = Vec::with_capacity(half);
        for i in 0..half {
            let freq = (-(10000f64.ln()) * i as f64 / (half as f64 - freq_shift)).exp();
            let arg = t as f64 * freq;
            sin.push(arg.sin() as f32);
            cos.push(arg.cos() as f32);
        }
        let (first, second) = if flip_sin_to_cos { (cos, sin) } else { (sin, cos) };
        out.extend(first);
        out.extend(second);
        if dim % 2 == 1 {
            out.push(0.0); // zero pad, as diffusers does for odd sizes
        }
    }
    out
}

/// Uploads [`timestep_embedding`] as a `[B, dim]` tensor.
pub fn timestep_embedding_tensor(
    timesteps: &[usize],
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    device: &Device,
) -> Tensor<2> {
    let values = timestep_embedding(timesteps, dim, flip_sin_to_cos, freq_shift);
    Tensor::from_data(TensorData::new(values, [timesteps.len(), dim]), device)
}

/// `TimestepEmbedding` of diffusers: `linear_2(silu(linear_1(x)))`.
#[derive(Config, Debug)]
pub struct TimestepEmbeddingConfig {
    /// Size of the sinusoidal input.
    pub in_channels: usize,
    /// Size of the embedding fed to every ResNet block.
    pub time_embed_dim: usize,
}

/// The time-embedding MLP.
#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub linear_2: Linear,
}

impl TimestepEmbeddingConfig {
    pub fn init(&self, device: &Device) -> TimestepEmbedding {
        TimestepEmbedding {
            linear_1: LinearConfig::new(self.in_channels, self.time_embed_dim).init(device),
            linear_2: LinearConfig::new(self.time_embed_dim, self.time_embed_dim).init(device),
        }
    }
}

impl TimestepEmbedding {
    /// `[B, in_channels] -> [B, time_embed_dim]`
    pub fn forward(&self, sinusoid: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(silu(self.linear_1.forward(sinusoid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_at_t0_is_zeros_then_ones() {
        // Closed form: sin(0) = 0, cos(0) = 1 for every frequency.
        let e = timestep_embedding(&[0], 8, false, 1.0);
        assert_eq!(e, vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
        let flipped = timestep_embedding(&[0], 8, true, 0.0);
        assert_eq!(flipped, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn embedding_first_frequency_is_one() {
        // i = 0 gives freq = exp(0) = 1, so emb[0] = sin(t), emb[half] = cos(t).
        let e = timestep_embedding(&[7], 6, false, 0.0);
        assert!((e[0] - 7f32.sin()).abs() < 1e-6);
        assert!((e[3] - 7f32.cos()).abs() < 1e-6);
        // i = 1, half = 3, shift 0: freq = 10000^(-1/3).
        let f1 = 10000f64.powf(-1.0 / 3.0);
        assert!((e[1] as f64 - (7.0 * f1).sin()).abs() < 1e-6);
    }
}
