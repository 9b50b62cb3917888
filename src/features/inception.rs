//! Inception-v3 as pytorch-fid runs it for FID (Heusel et al. 2017; Szegedy et al. 2016): the
//! network whose 2048-d pool features give the FID that papers report, so that `eval` can give
//! numbers comparable with them when the user supplies pytorch-fid's weight file
//! (`pt_inception-2015-12-05-6726825d.pth`, the TensorFlow FID graph ported to PyTorch).
//!
//! Layers and names are torchvision's `Inception3` with pytorch-fid's patches
//! (`pytorch_fid/inception.py`, `fid_inception_v3`): the average pools of the A, C and first E
//! blocks leave the padding out of the mean (`count_include_pad=False`), and the last E block
//! pools with a max instead. Each `BasicConv2d` (conv without bias, BatchNorm with ε = 1e-3,
//! ReLU) runs here as one convolution with the BatchNorm folded in, as at inference the two are
//! the same affine map. Field names are the state dict's in lower case (`Mixed_5b` →
//! `mixed_5b`), so [`FidInception::from_state_dict`] maps the file by name and checks every
//! shape. Checked against pytorch-fid's own model in `tests/inception.rs`.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2dConfig, AvgPool2dConfig, MaxPool2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::ops::conv2d;
use crate::model::state_dict::{StateDictError, Tensors, load_tensors};

/// Length of a feature vector (the pool features, pytorch-fid's block 3).
pub const FEATURES: usize = 2048;
/// Side of the square images the network sees: pytorch-fid resizes every input to it.
pub const INPUT_SIZE: usize = 299;
/// torchvision's `BasicConv2d` BatchNorm ε.
const BATCH_NORM_EPS: f64 = 1e-3;
/// Classes of the FID network's unused head: 1008 (the 2015 TensorFlow graph), where
/// torchvision's ImageNet weights have 1000. How the right file is told from the wrong one.
const FID_CLASSES: usize = 1008;

/// A convolution with its BatchNorm folded in, then ReLU (torchvision's `BasicConv2d`).
#[derive(Module, Debug)]
pub struct BasicConv {
    pub conv: Conv2d,
}

impl BasicConv {
    fn new(cin: usize, cout: usize, kernel: [usize; 2], stride: usize, padding: [usize; 2], device: &Device) -> Self {
        let [ph, pw] = padding;
        let conv = Conv2dConfig::new([cin, cout], kernel)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
            .init(device);
        Self { conv }
    }

    /// A square kernel, stride 1.
    fn square(cin: usize, cout: usize, kernel: usize, padding: usize, device: &Device) -> Self {
        Self::new(cin, cout, [kernel, kernel], 1, [padding, padding], device)
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(conv2d(&self.conv, x))
    }
}

/// 3×3 average pool, stride 1, padding 1, the padding left out of the mean (pytorch-fid).
fn avg_pool_3x3(x: Tensor<4>) -> Tensor<4> {
    AvgPool2dConfig::new([3, 3])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_count_include_pad(false)
        .init()
        .forward(x)
}

/// 3×3 max pool with the given stride and padding.
fn max_pool_3x3(x: Tensor<4>, stride: usize, padding: usize) -> Tensor<4> {
    MaxPool2dConfig::new([3, 3])
        .with_strides([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .init()
        .forward(x)
}

/// `Mixed_5b`–`5d` (`FIDInceptionA`): 1×1, 5×5, double 3×3 and pool branches.
#[derive(Module, Debug)]
pub struct InceptionA {
    pub branch1x1: BasicConv,
    pub branch5x5_1: BasicConv,
    pub branch5x5_2: BasicConv,
    pub branch3x3dbl_1: BasicConv,
    pub branch3x3dbl_2: BasicConv,
    pub branch3x3dbl_3: BasicConv,
    pub branch_pool: BasicConv,
}

impl InceptionA {
    fn new(cin: usize, pool_features: usize, device: &Device) -> Self {
        Self {
            branch1x1: BasicConv::square(cin, 64, 1, 0, device),
            branch5x5_1: BasicConv::square(cin, 48, 1, 0, device),
            branch5x5_2: BasicConv::square(48, 64, 5, 2, device),
            branch3x3dbl_1: BasicConv::square(cin, 64, 1, 0, device),
            branch3x3dbl_2: BasicConv::square(64, 96, 3, 1, device),
            branch3x3dbl_3: BasicConv::square(96, 96, 3, 1, device),
            branch_pool: BasicConv::square(cin, pool_features, 1, 0, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self.branch5x5_2.forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone())));
        let bp = self.branch_pool.forward(avg_pool_3x3(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

/// `Mixed_6a`: the grid reduction 35 → 17.
#[derive(Module, Debug)]
pub struct InceptionB {
    pub branch3x3: BasicConv,
    pub branch3x3dbl_1: BasicConv,
    pub branch3x3dbl_2: BasicConv,
    pub branch3x3dbl_3: BasicConv,
}

impl InceptionB {
    fn new(cin: usize, device: &Device) -> Self {
        Self {
            branch3x3: BasicConv::new(cin, 384, [3, 3], 2, [0, 0], device),
            branch3x3dbl_1: BasicConv::square(cin, 64, 1, 0, device),
            branch3x3dbl_2: BasicConv::square(64, 96, 3, 1, device),
            branch3x3dbl_3: BasicConv::new(96, 96, [3, 3], 2, [0, 0], device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone())));
        Tensor::cat(vec![b3, bd, max_pool_3x3(x, 2, 0)], 1)
    }
}

/// `Mixed_6b`–`6e` (`FIDInceptionC`): factorised 7×7 convolutions (1×7 then 7×1).
#[derive(Module, Debug)]
pub struct InceptionC {
    pub branch1x1: BasicConv,
    pub branch7x7_1: BasicConv,
    pub branch7x7_2: BasicConv,
    pub branch7x7_3: BasicConv,
    pub branch7x7dbl_1: BasicConv,
    pub branch7x7dbl_2: BasicConv,
    pub branch7x7dbl_3: BasicConv,
    pub branch7x7dbl_4: BasicConv,
    pub branch7x7dbl_5: BasicConv,
    pub branch_pool: BasicConv,
}

impl InceptionC {
    fn new(cin: usize, c7: usize, device: &Device) -> Self {
        let row = |a, b| BasicConv::new(a, b, [1, 7], 1, [0, 3], device);
        let column = |a, b| BasicConv::new(a, b, [7, 1], 1, [3, 0], device);
        Self {
            branch1x1: BasicConv::square(cin, 192, 1, 0, device),
            branch7x7_1: BasicConv::square(cin, c7, 1, 0, device),
            branch7x7_2: row(c7, c7),
            branch7x7_3: column(c7, 192),
            branch7x7dbl_1: BasicConv::square(cin, c7, 1, 0, device),
            branch7x7dbl_2: column(c7, c7),
            branch7x7dbl_3: row(c7, c7),
            branch7x7dbl_4: column(c7, c7),
            branch7x7dbl_5: row(c7, 192),
            branch_pool: BasicConv::square(cin, 192, 1, 0, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7_3.forward(self.branch7x7_2.forward(self.branch7x7_1.forward(x.clone())));
        let mut bd = self.branch7x7dbl_1.forward(x.clone());
        for conv in [&self.branch7x7dbl_2, &self.branch7x7dbl_3, &self.branch7x7dbl_4, &self.branch7x7dbl_5] {
            bd = conv.forward(bd);
        }
        let bp = self.branch_pool.forward(avg_pool_3x3(x));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }
}

/// `Mixed_7a`: the grid reduction 17 → 8.
#[derive(Module, Debug)]
pub struct InceptionD {
    pub branch3x3_1: BasicConv,
    pub branch3x3_2: BasicConv,
    pub branch7x7x3_1: BasicConv,
    pub branch7x7x3_2: BasicConv,
    pub branch7x7x3_3: BasicConv,
    pub branch7x7x3_4: BasicConv,
}

impl InceptionD {
    fn new(cin: usize, device: &Device) -> Self {
        Self {
            branch3x3_1: BasicConv::square(cin, 192, 1, 0, device),
            branch3x3_2: BasicConv::new(192, 320, [3, 3], 2, [0, 0], device),
            branch7x7x3_1: BasicConv::square(cin, 192, 1, 0, device),
            branch7x7x3_2: BasicConv::new(192, 192, [1, 7], 1, [0, 3], device),
            branch7x7x3_3: BasicConv::new(192, 192, [7, 1], 1, [3, 0], device),
            branch7x7x3_4: BasicConv::new(192, 192, [3, 3], 2, [0, 0], device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3_2.forward(self.branch3x3_1.forward(x.clone()));
        let mut b7 = self.branch7x7x3_1.forward(x.clone());
        for conv in [&self.branch7x7x3_2, &self.branch7x7x3_3, &self.branch7x7x3_4] {
            b7 = conv.forward(b7);
        }
        Tensor::cat(vec![b3, b7, max_pool_3x3(x, 2, 0)], 1)
    }
}

/// How an E block pools: `Mixed_7b` (`FIDInceptionE_1`) averages without the padding,
/// `Mixed_7c` (`FIDInceptionE_2`) takes the max (a quirk of the TensorFlow graph).
#[derive(Clone, Copy, Debug)]
enum PoolE {
    Average,
    Max,
}

/// `Mixed_7b`, `Mixed_7c`: expanded filter banks (1×3 and 3×1 side by side).
#[derive(Module, Debug)]
pub struct InceptionE {
    pub branch1x1: BasicConv,
    pub branch3x3_1: BasicConv,
    pub branch3x3_2a: BasicConv,
    pub branch3x3_2b: BasicConv,
    pub branch3x3dbl_1: BasicConv,
    pub branch3x3dbl_2: BasicConv,
    pub branch3x3dbl_3a: BasicConv,
    pub branch3x3dbl_3b: BasicConv,
    pub branch_pool: BasicConv,
}

impl InceptionE {
    fn new(cin: usize, device: &Device) -> Self {
        let row = |a, b| BasicConv::new(a, b, [1, 3], 1, [0, 1], device);
        let column = |a, b| BasicConv::new(a, b, [3, 1], 1, [1, 0], device);
        Self {
            branch1x1: BasicConv::square(cin, 320, 1, 0, device),
            branch3x3_1: BasicConv::square(cin, 384, 1, 0, device),
            branch3x3_2a: row(384, 384),
            branch3x3_2b: column(384, 384),
            branch3x3dbl_1: BasicConv::square(cin, 448, 1, 0, device),
            branch3x3dbl_2: BasicConv::square(448, 384, 3, 1, device),
            branch3x3dbl_3a: row(384, 384),
            branch3x3dbl_3b: column(384, 384),
            branch_pool: BasicConv::square(cin, 192, 1, 0, device),
        }
    }

    fn forward(&self, x: Tensor<4>, pool: PoolE) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b3 = self.branch3x3_1.forward(x.clone());
        let b3 = Tensor::cat(vec![self.branch3x3_2a.forward(b3.clone()), self.branch3x3_2b.forward(b3)], 1);
        let bd = self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone()));
        let bd = Tensor::cat(vec![self.branch3x3dbl_3a.forward(bd.clone()), self.branch3x3dbl_3b.forward(bd)], 1);
        let pooled = match pool {
            PoolE::Average => avg_pool_3x3(x),
            PoolE::Max => max_pool_3x3(x, 1, 1),
        };
        Tensor::cat(vec![b1, b3, bd, self.branch_pool.forward(pooled)], 1)
    }
}

/// pytorch-fid's `InceptionV3([3])`: images in, 2048-d pool features out.
#[derive(Module, Debug)]
pub struct FidInception {
    pub conv2d_1a_3x3: BasicConv,
    pub conv2d_2a_3x3: BasicConv,
    pub conv2d_2b_3x3: BasicConv,
    pub conv2d_3b_1x1: BasicConv,
    pub conv2d_4a_3x3: BasicConv,
    pub mixed_5b: InceptionA,
    pub mixed_5c: InceptionA,
    pub mixed_5d: InceptionA,
    pub mixed_6a: InceptionB,
    pub mixed_6b: InceptionC,
    pub mixed_6c: InceptionC,
    pub mixed_6d: InceptionC,
    pub mixed_6e: InceptionC,
    pub mixed_7a: InceptionD,
    pub mixed_7b: InceptionE,
    pub mixed_7c: InceptionE,
}

impl FidInception {
    /// The network with untrained weights (to be replaced by [`Self::from_state_dict`]).
    pub fn new(device: &Device) -> Self {
        Self {
            conv2d_1a_3x3: BasicConv::new(3, 32, [3, 3], 2, [0, 0], device),
            conv2d_2a_3x3: BasicConv::square(32, 32, 3, 0, device),
            conv2d_2b_3x3: BasicConv::square(32, 64, 3, 1, device),
            conv2d_3b_1x1: BasicConv::square(64, 80, 1, 0, device),
            conv2d_4a_3x3: BasicConv::square(80, 192, 3, 0, device),
            mixed_5b: InceptionA::new(192, 32, device),
            mixed_5c: InceptionA::new(256, 64, device),
            mixed_5d: InceptionA::new(288, 64, device),
            mixed_6a: InceptionB::new(288, device),
            mixed_6b: InceptionC::new(768, 128, device),
            mixed_6c: InceptionC::new(768, 160, device),
            mixed_6d: InceptionC::new(768, 160, device),
            mixed_6e: InceptionC::new(768, 192, device),
            mixed_7a: InceptionD::new(768, device),
            mixed_7b: InceptionE::new(1280, device),
            mixed_7c: InceptionE::new(2048, device),
        }
    }

    /// The network with the weights of a torchvision-named state dict (pytorch-fid's weight
    /// file, read by the caller): BatchNorms folded into their convolutions, the classifier
    /// head (`fc`) dropped. Names and shapes are checked; the missing ones are listed.
    pub fn from_state_dict(state: &Tensors, device: &Device) -> Result<Self, StateDictError> {
        match state.get("fc.weight") {
            Some((shape, _)) if shape.first() == Some(&FID_CLASSES) => {}
            Some((shape, _)) => {
                return Err(StateDictError::Mismatch(format!(
                    "fc.weight is {shape:?}, where the FID network's is [{FID_CLASSES}, {FEATURES}]: these are not \
                     pytorch-fid's FID weights (torchvision's ImageNet Inception-v3 has 1000 classes and pools differently)"
                )));
            }
            None => {
                return Err(StateDictError::Mismatch(
                    "no fc.weight: not an Inception-v3 state dict (pytorch-fid's pt_inception-2015-12-05-6726825d.pth)".into(),
                ));
            }
        }
        load_tensors(Self::new(device), &fold_batch_norms(state)?, device)
    }

    /// Pool features `[N, 2048]` of images `[N, C, H, W]` with values in [−1, 1], C = 1 or 3,
    /// any size. As pytorch-fid: resized to 299 × 299 (bilinear, `align_corners=False`), the
    /// [0, 1] → [−1, 1] scaling it applies is where our values already are; a gray image is
    /// repeated into three channels, as an RGB conversion of it would be.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let [n, c, ..] = images.dims();
        let x = if c == 1 { images.repeat_dim(1, 3) } else { images };
        let x = resize_bilinear(x, INPUT_SIZE);
        let x = self.conv2d_2b_3x3.forward(self.conv2d_2a_3x3.forward(self.conv2d_1a_3x3.forward(x)));
        let x = max_pool_3x3(x, 2, 0);
        let x = self.conv2d_4a_3x3.forward(self.conv2d_3b_1x1.forward(x));
        let x = max_pool_3x3(x, 2, 0);
        let x = self.mixed_5d.forward(self.mixed_5c.forward(self.mixed_5b.forward(x)));
        let x = self.mixed_6a.forward(x);
        let x = self.mixed_6e.forward(self.mixed_6d.forward(self.mixed_6c.forward(self.mixed_6b.forward(x))));
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7c.forward(self.mixed_7b.forward(x, PoolE::Average), PoolE::Max);
        AdaptiveAvgPool2dConfig::new([1, 1]).init().forward(x).reshape([n, FEATURES])
    }
}

/// The state dict with each `X.conv.weight` + `X.bn.*` quintet replaced by one biased
/// convolution `x.conv.{weight,bias}` (name in lower case): w' = w γ / √(σ² + ε),
/// b' = β − μ γ / √(σ² + ε). `fc.*` and `num_batches_tracked` are dropped; anything else is
/// kept, so that [`load_tensors`] names it as unexpected.
pub fn fold_batch_norms(state: &Tensors) -> Result<Tensors, StateDictError> {
    let mut folded = Tensors::new();
    for (name, tensor) in state {
        if let Some(prefix) = name.strip_suffix(".conv.weight") {
            let part = |what: &str| {
                let key = format!("{prefix}.bn.{what}");
                state.get(&key).map(|(_, v)| v).ok_or_else(|| StateDictError::Mismatch(format!("missing {key}")))
            };
            let (gamma, beta, mean, var) = (part("weight")?, part("bias")?, part("running_mean")?, part("running_var")?);
            let (shape, weight) = tensor;
            let Some(&cout) = shape.first() else {
                return Err(StateDictError::Mismatch(format!("{name} is a scalar; a convolution weight is [out, in, h, w]")));
            };
            if [gamma, beta, mean, var].iter().any(|v| v.len() != cout) {
                return Err(StateDictError::Mismatch(format!("{prefix}.bn.* do not have the {cout} channels of {name}")));
            }
            let scale: Vec<f64> = (0..cout).map(|o| f64::from(gamma[o]) / (f64::from(var[o]) + BATCH_NORM_EPS).sqrt()).collect();
            let per_out = weight.len() / cout.max(1);
            let w = weight.iter().enumerate().map(|(i, &v)| (f64::from(v) * scale[i / per_out]) as f32).collect();
            let b = (0..cout).map(|o| (f64::from(beta[o]) - f64::from(mean[o]) * scale[o]) as f32).collect();
            let lower = prefix.to_lowercase();
            folded.insert(format!("{lower}.conv.weight"), (shape.clone(), w));
            folded.insert(format!("{lower}.conv.bias"), (vec![cout], b));
        } else if !(name.contains(".bn.") || name.starts_with("fc.") || name.ends_with("num_batches_tracked")) {
            folded.insert(name.clone(), tensor.clone());
        }
    }
    Ok(folded)
}

/// The `[out, in]` matrix of PyTorch's bilinear resize along one axis (`F.interpolate`,
/// `align_corners=False`, no antialiasing): output pixel j samples the input at
/// (j + ½) · in/out − ½, clamped at 0, between its two neighbours.
pub fn bilinear_matrix(input: usize, output: usize) -> Vec<f32> {
    let scale = input as f64 / output as f64;
    let mut m = vec![0.0f32; output * input];
    for j in 0..output {
        let src = ((j as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        let frac = src - i0 as f64;
        m[j * input + i0] += (1.0 - frac) as f32;
        m[j * input + i1] += frac as f32;
    }
    m
}

/// Bilinear resize of `[N, C, H, W]` to `[N, C, size, size]`, as two matrix products (the
/// resize is separable), so it runs on any backend.
fn resize_bilinear(x: Tensor<4>, size: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let device = x.device();
    let rows = Tensor::<2>::from_data(TensorData::new(bilinear_matrix(h, size), [size, h]), &device);
    let cols = Tensor::<2>::from_data(TensorData::new(bilinear_matrix(w, size), [size, w]), &device);
    let x = x.matmul(cols.transpose().unsqueeze::<4>());
    rows.unsqueeze::<4>().matmul(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_matrix_is_pytorchs_align_corners_false() {
        // Same size: the identity.
        assert_eq!(bilinear_matrix(3, 3), vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        // 2 → 4: F.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4), mode="bilinear",
        // align_corners=False) gives [0, 0.25, 0.75, 1] (sources −0.25 → 0, 0.25, 0.75, 1.25 → 1).
        let m = bilinear_matrix(2, 4);
        let out: Vec<f32> = (0..4).map(|j| m[j * 2 + 1]).collect();
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
        // Every row is a convex combination.
        let m = bilinear_matrix(28, 299);
        for row in m.chunks(28) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6 && row.iter().all(|&v| v >= 0.0));
        }
    }

    #[test]
    fn batch_norm_folds_into_the_convolution() {
        // One output channel, two inputs: conv then BN(γ=2, β=1, μ=3, σ²=4−ε) is
        // 2 (w·x − 3) / 2 + 1 = w·x − 2.
        let mut state = Tensors::new();
        state.insert("A.conv.weight".into(), (vec![1, 2, 1, 1], vec![0.5, -1.0]));
        state.insert("A.bn.weight".into(), (vec![1], vec![2.0]));
        state.insert("A.bn.bias".into(), (vec![1], vec![1.0]));
        state.insert("A.bn.running_mean".into(), (vec![1], vec![3.0]));
        state.insert("A.bn.running_var".into(), (vec![1], vec![(4.0 - BATCH_NORM_EPS) as f32]));
        state.insert("fc.bias".into(), (vec![1], vec![0.0]));
        let folded = fold_batch_norms(&state).unwrap();
        assert_eq!(folded.keys().collect::<Vec<_>>(), ["a.conv.bias", "a.conv.weight"]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert_eq!(folded["a.conv.weight"].0, vec![1, 2, 1, 1]);
        assert!(close(&folded["a.conv.weight"].1, &[0.5, -1.0]), "{:?}", folded["a.conv.weight"]);
        assert!(close(&folded["a.conv.bias"].1, &[-2.0]), "{:?}", folded["a.conv.bias"]);
        state.remove("A.bn.bias");
        assert_eq!(fold_batch_norms(&state).unwrap_err().to_string(), "the weights do not match the model config: missing A.bn.bias");
    }
}
