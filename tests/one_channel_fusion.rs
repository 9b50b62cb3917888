//! The one-channel convolution that burn 0.22.1's kernel fusion misreads, at its smallest.
//!
//! A GPU convolution's output is an [N, C, H, W] view of [N, H, W, C] memory; with C = 1,
//! fused element-wise kernels that combine it with another tensor read it wrongly. An MNIST
//! model's last convolution has one channel, and its output meets the target in the loss and the
//! sample in a sampler's update; `ops::conv2d` reads it through a reshape, which fused
//! kernels read right. Here, natively on the default wgpu adapter with fusion (lavapipe where
//! there is no GPU), one 4 → 1 channel convolution and one fused element-wise step after it:
//! - through `conv2d` it equals burn-flex (this fails when the workaround is removed);
//! - through burn's own `Conv2d::forward` it does not, yet: when a burn upgrade fixes the
//!   fusion, this fails and says that the workaround can go.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, DeviceKind, Tensor, TensorData};
use tabdiffusion::ops::conv2d;

const SHAPE: [usize; 4] = [2, 4, 8, 8];
const OUT: [usize; 4] = [2, 1, 8, 8];

/// Values in [-1, 1) from a fixed sequence.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32).map(|i| ((i.wrapping_mul(2_654_435_761).wrapping_add(seed.wrapping_mul(40_503)) >> 8) % 2000) as f32 / 1000.0 - 1.0).collect()
}

/// `conv(x)`, then one element-wise step with another tensor (as the loss and a sampler's update
/// have), read back.
fn fused(conv: &Conv2d, device: &Device, through_ours: bool) -> Vec<f32> {
    let conv = conv.clone().to_device(device);
    let x = Tensor::<4>::from_data(TensorData::new(values(SHAPE.iter().product(), 1), SHAPE), device);
    let other = Tensor::<4>::from_data(TensorData::new(values(OUT.iter().product(), 2), OUT), device);
    let out = if through_ours { conv2d(&conv, x) } else { conv.forward(x) };
    (out * 0.5 + other).into_data().to_vec::<f32>().unwrap()
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

#[test]
fn a_one_channel_convolution_fuses_right_through_our_conv2d_and_burns_own_still_does_not() {
    let flex = Device::flex();
    let conv = Conv2dConfig::new([SHAPE[1], OUT[1]], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&flex);
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let reference = fused(&conv, &flex, false);
    // On burn-flex `conv2d` is our own CPU kernel (src/ops/conv.rs): the same sums in another order.
    let cpu = largest_difference(&fused(&conv, &flex, true), &reference);
    assert!(cpu < 1e-5, "our CPU convolution against burn's: {cpu}");

    let ours = largest_difference(&fused(&conv, &gpu, true), &reference);
    let burns = largest_difference(&fused(&conv, &gpu, false), &reference);
    println!("fused on wgpu against burn-flex: through ops::conv2d within {ours:e}; through burn's Conv2d::forward within {burns:e}");
    // float32 sums of 36 products in another order: within 1e-5.
    assert!(ours < 1e-5, "ops::conv2d's one-channel output is misread by the fused kernels (off by {ours})");
    assert!(
        burns > 1e-3,
        "burn's own one-channel convolution now fuses right (within {burns:e}): the reshape in ops::conv2d (src/ops/conv.rs) is no longer needed; remove it, and this test"
    );
}
