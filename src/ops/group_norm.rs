//! GroupNorm, alone or followed by SiLU, as one operation: the U-Net normalises before every
//! convolution of a ResNet block (then SiLU), before attention, and before its output.
//!
//! burn composes GroupNorm from a reshape, two means, a subtraction, a square, a square root, a
//! division and the affine product and sum: on burn-flex about nine passes over the activations
//! forward, each with a fresh buffer, and more than that backward, then SiLU's own. Here
//! burn-flex gets one kernel per direction, per (image, group): the mean and variance in two
//! passes over the group, then y = γ·x̂ + β (and SiLU) in one; backward, the output's gradient
//! (through SiLU, whose input it recomputes) and its sums per channel in one pass, the input's
//! gradient r·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) in a second. The GPU backend keeps burn's
//! composition, so the tab on WebGPU runs what it ran.

use super::flex::{OwnKernels, dense, run, tensor, vectorised};
use super::silu::sigmoid;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::GroupNorm;
use burn::tensor::{Shape, Tensor};

/// `norm.forward(x)` for `x: [N, C, H, W]`.
pub fn group_norm(norm: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    apply(norm, x, false)
}

/// `silu(norm.forward(x))` as one operation.
pub fn group_norm_silu(norm: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    apply(norm, x, true)
}

fn apply(norm: &GroupNorm, x: Tensor<4>, silu: bool) -> Tensor<4> {
    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else {
        let y = norm.forward(x);
        return if silu { super::silu(y) } else { y };
    };
    let options = NormOptions { groups: norm.num_groups, epsilon: norm.epsilon, silu };
    let out = <Dispatch as GroupNormBackend>::group_norm(x.into_dispatch(), gamma.val().into_dispatch(), beta.val().into_dispatch(), options);
    Tensor::from_dispatch(out)
}

/// The normalisation's settings: groups, ε, and whether SiLU follows.
#[derive(Clone, Copy, Debug)]
pub struct NormOptions {
    pub groups: usize,
    pub epsilon: f64,
    pub silu: bool,
}

/// The operation per backend. The default bodies are burn's composition.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait GroupNormBackend: Backend {
    /// γ·(x − mean)/√(var + ε) + β over each image's groups of channels, then SiLU if asked.
    fn group_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, options: NormOptions) -> FloatTensor<Self> {
        composed::<Self>(x, gamma, beta, options)
    }

    /// The gradients with respect to x, γ and β, given the output's.
    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: NormOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(x, gamma, beta, grad, options)
    }
}

/// x̂ = (x − mean)/√(var + ε) per (image, group), shaped as x, as burn computes it; and 1/√(var + ε).
fn normalized<B: Backend>(x: FloatTensor<B>, options: NormOptions) -> (FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let [n, c, h, w] = shape.dims();
    let grouped = B::float_reshape(x, Shape::new([n, options.groups, c / options.groups * h * w]));
    let mean = B::float_mean_dim(grouped.clone(), 2);
    let centered = B::float_sub(grouped, mean);
    let var = B::float_mean_dim(B::float_mul(centered.clone(), centered.clone()), 2);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, options.epsilon.into())));
    (B::float_reshape(B::float_mul(centered, rstd.clone()), shape), rstd)
}

fn per_channel<B: Backend>(v: FloatTensor<B>) -> FloatTensor<B> {
    let [c] = v.shape().dims();
    B::float_reshape(v, Shape::new([1, c, 1, 1]))
}

fn composed<B: Backend>(x: FloatTensor<B>, gamma: FloatTensor<B>, beta: FloatTensor<B>, options: NormOptions) -> FloatTensor<B> {
    let (x_hat, _) = normalized::<B>(x, options);
    let y = B::float_add(B::float_mul(x_hat, per_channel::<B>(gamma)), per_channel::<B>(beta));
    if options.silu { B::float_mul(y.clone(), B::sigmoid(y)) } else { y }
}

/// The gradients from the same operations: dy (through SiLU: g·σ(y)·(1 + y·(1 − σ(y)))),
/// dβ = Σ dy, dγ = Σ dy·x̂, dx = r·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)) per group.
fn composed_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    grad: FloatTensor<B>,
    options: NormOptions,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let [n, c, h, w] = shape.dims();
    let (x_hat, rstd) = normalized::<B>(x, options);
    let dy = if options.silu {
        let y = B::float_add(B::float_mul(x_hat.clone(), per_channel::<B>(gamma.clone())), per_channel::<B>(beta));
        let s = B::sigmoid(y.clone());
        let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0f32.into());
        let factor = B::float_add_scalar(B::float_mul(y, one_minus_s), 1.0f32.into());
        B::float_mul(B::float_mul(grad, s), factor)
    } else {
        grad
    };
    let per_channel_sum = |t: FloatTensor<B>| B::float_reshape(B::float_sum_dims(t, &[0, 2, 3]), Shape::new([c]));
    let d_beta = per_channel_sum(dy.clone());
    let d_gamma = per_channel_sum(B::float_mul(dy.clone(), x_hat.clone()));
    let grouped = Shape::new([n, options.groups, c / options.groups * h * w]);
    let d_x_hat = B::float_reshape(B::float_mul(dy, per_channel::<B>(gamma)), grouped.clone());
    let x_hat = B::float_reshape(x_hat, grouped);
    let mean_d = B::float_mean_dim(d_x_hat.clone(), 2);
    let mean_d_x_hat = B::float_mean_dim(B::float_mul(d_x_hat.clone(), x_hat.clone()), 2);
    let inner = B::float_sub(B::float_sub(d_x_hat, mean_d), B::float_mul(x_hat, mean_d_x_hat));
    (B::float_reshape(B::float_mul(inner, rstd), shape), d_gamma, d_beta)
}

impl GroupNormBackend for Cube {}

impl GroupNormBackend for Flex {
    fn group_norm(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, options: NormOptions) -> FlexTensor {
        let Some(groups) = Groups::of(&[&x, &gamma, &beta], &x, options) else { return composed::<Self>(x, gamma, beta, options) };
        let (x, gamma, beta) = (dense(x), dense(gamma), dense(beta));
        let out = forward(run(&x), run(&gamma), run(&beta), &groups);
        tensor(out, x.layout().shape().clone())
    }

    fn group_norm_backward(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, grad: FlexTensor, options: NormOptions) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(groups) = Groups::of(&[&x, &gamma, &beta, &grad], &x, options) else {
            return composed_backward::<Self>(x, gamma, beta, grad, options);
        };
        let (x, gamma, beta, grad) = (dense(x), dense(gamma), dense(beta), dense(grad));
        let (d_x, d_gamma, d_beta) = backward(run(&x), run(&gamma), run(&beta), run(&grad), &groups);
        (tensor(d_x, x.layout().shape().clone()), tensor(d_gamma, [groups.channels]), tensor(d_beta, [groups.channels]))
    }
}

impl<B: Backend + GroupNormBackend + OwnKernels, C: CheckpointStrategy> GroupNormBackend for Autodiff<B, C> {
    fn group_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, options: NormOptions) -> FloatTensor<Self> {
        if !B::OWN {
            return composed::<Self>(x, gamma, beta, options);
        }

        /// burn-autodiff's backward of the normalisation, through the kernel above.
        #[derive(Debug)]
        struct GroupNormOp;

        impl<B: Backend + GroupNormBackend> Backward<B, 3> for GroupNormOp {
            type State = (NodeId, NodeId, NodeId, NormOptions);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, gamma, beta, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                let gamma = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(gamma);
                let beta = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(beta);
                let (d_x, d_gamma, d_beta) = B::group_norm_backward(x, gamma, beta, grad, options);
                for (node, grad) in [(node_x, d_x), (node_gamma, d_gamma), (node_beta, d_beta)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        match GroupNormOp.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&gamma), prep.checkpoint(&beta), options);
                let out = B::group_norm(x.primitive().clone(), gamma.primitive().clone(), beta.primitive().clone(), options);
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::group_norm(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), options)),
        }
    }

    fn group_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: NormOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Differentiable (a second derivative): burn's composition on the autodiff backend.
        composed_backward::<Self>(x, gamma, beta, grad, options)
    }
}

/// The layout of one normalisation: channels per image, pixels per channel, channels per group.
struct Groups {
    channels: usize,
    pixels: usize,
    per_group: usize,
    epsilon: f64,
    silu: bool,
}

impl Groups {
    /// Where our kernels apply (float32, [N, C, H, W], per-channel γ and β); `None` for burn's.
    fn of(tensors: &[&FlexTensor], x: &FlexTensor, options: NormOptions) -> Option<Self> {
        if tensors.iter().any(|t| t.dtype() != DType::F32) || x.layout().shape().num_dims() != 4 {
            return None;
        }
        let [_, channels, h, w] = x.layout().shape().dims();
        assert!(options.groups > 0 && channels % options.groups == 0, "group_norm: {channels} channels in {} groups", options.groups);
        for t in &tensors[1..3] {
            assert_eq!(t.layout().shape().dims::<1>(), [channels], "group_norm: γ and β need one value per channel");
        }
        Some(Self { channels, pixels: h * w, per_group: channels / options.groups, epsilon: options.epsilon, silu: options.silu })
    }

    fn group_len(&self) -> usize {
        self.per_group * self.pixels
    }

    /// Mean and 1/√(var + ε) of one group's values (two passes: the variance of the centred values).
    fn stats(&self, values: &[f32]) -> (f32, f32) {
        let count = values.len() as f32;
        let mean = sum(values) / count;
        let var = centered_squares(values, mean) / count;
        (mean, (1.0 / (var as f64 + self.epsilon).sqrt()) as f32)
    }
}

fn forward(x: &[f32], gamma: &[f32], beta: &[f32], groups: &Groups) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let (len, pixels) = (groups.group_len(), groups.pixels);
    each_chunk(&mut out, len, |index, out| {
        let values = &x[index * len..][..len];
        let (mean, rstd) = groups.stats(values);
        let first = index * groups.per_group % groups.channels;
        for ((x, out), (&gamma, &beta)) in values.chunks(pixels).zip(out.chunks_mut(pixels)).zip(gamma[first..].iter().zip(&beta[first..])) {
            let scale = gamma * rstd;
            let shift = beta - mean * scale;
            if groups.silu { affine_silu(x, [scale, shift], out) } else { affine(x, [scale, shift], out) }
        }
    });
    out
}

/// (dx, dγ, dβ): per image, the gradient through SiLU into dx's buffer with its sums per channel,
/// then dx itself; dγ and dβ summed over the images.
fn backward(x: &[f32], gamma: &[f32], beta: &[f32], grad: &[f32], groups: &Groups) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut d_x = vec![0.0f32; x.len()];
    let (channels, pixels, len) = (groups.channels, groups.pixels, groups.group_len());
    let image_len = channels * pixels;
    let partials = each_chunk(&mut d_x, image_len, |image, d_x| {
        let (x, grad) = (&x[image * image_len..][..image_len], &grad[image * image_len..][..image_len]);
        // [Σ dy per channel, Σ dy·x̂ per channel]
        let mut sums = vec![0.0f32; 2 * channels];
        for (group, ((x, grad), d_x)) in x.chunks(len).zip(grad.chunks(len)).zip(d_x.chunks_mut(len)).enumerate() {
            let (mean, rstd) = groups.stats(x);
            let members = group * groups.per_group..(group + 1) * groups.per_group;
            let (mut gamma_dy, mut gamma_dy_x_hat) = (0.0f32, 0.0f32);
            for (((x, grad), d_x), c) in x.chunks(pixels).zip(grad.chunks(pixels)).zip(d_x.chunks_mut(pixels)).zip(members.clone()) {
                let params = [mean, rstd, gamma[c], beta[c]];
                let [dy, dy_x_hat] = if groups.silu { output_gradient_silu(x, grad, params, d_x) } else { output_gradient(x, grad, params, d_x) };
                (sums[c], sums[channels + c]) = (dy, dy_x_hat);
                gamma_dy += gamma[c] * dy;
                gamma_dy_x_hat += gamma[c] * dy_x_hat;
            }
            // dx = r·(γ·dy − a − x̂·b) = dy·(r·γ) + x·(−r²·b) + (mean·r²·b − r·a)
            let count = len as f32;
            let (a, b) = (gamma_dy / count, gamma_dy_x_hat / count);
            for ((x, d_x), c) in x.chunks(pixels).zip(d_x.chunks_mut(pixels)).zip(members) {
                input_gradient(x, [rstd * gamma[c], -rstd * rstd * b, mean * rstd * rstd * b - rstd * a], d_x);
            }
        }
        sums
    });
    let mut totals = vec![0.0f32; 2 * channels];
    for partial in partials {
        totals.iter_mut().zip(partial).for_each(|(t, p)| *t += p);
    }
    let d_gamma = totals.split_off(channels);
    (d_x, d_gamma, totals)
}

/// `f(index, chunk)` for each `len`-element chunk of `out`, in parallel natively; the results in order.
fn each_chunk<R: Send>(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) -> R + Sync) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(len).enumerate().map(|(i, chunk)| f(i, chunk)).collect()
    }
    #[cfg(target_arch = "wasm32")]
    out.chunks_mut(len).enumerate().map(|(i, chunk)| f(i, chunk)).collect()
}

/// Lanes for the sums: enough independent accumulators that they vectorise.
const LANES: usize = 16;

vectorised!(sum, sum_kernel, (values: &[f32]) -> f32);
vectorised!(centered_squares, centered_squares_kernel, (values: &[f32], mean: f32) -> f32);
vectorised!(affine, affine_kernel, (x: &[f32], p: [f32; 2], out: &mut [f32]));
vectorised!(affine_silu, affine_silu_kernel, (x: &[f32], p: [f32; 2], out: &mut [f32]));
vectorised!(output_gradient, output_gradient_plain_kernel, (x: &[f32], grad: &[f32], p: [f32; 4], dy: &mut [f32]) -> [f32; 2]);
vectorised!(output_gradient_silu, output_gradient_silu_kernel, (x: &[f32], grad: &[f32], p: [f32; 4], dy: &mut [f32]) -> [f32; 2]);
vectorised!(input_gradient, input_gradient_kernel, (x: &[f32], p: [f32; 3], d_x: &mut [f32]));

/// Σ f(v) over `values` in LANES running sums.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[inline(always)]
fn sum_kernel(values: &[f32]) -> f32 {
    lane_sum(values, |v| v)
}

#[inline(always)]
fn centered_squares_kernel(values: &[f32], mean: f32) -> f32 {
    lane_sum(values, |v| (v - mean) * (v - mean))
}

#[inline(always)]
fn affine_kernel(x: &[f32], [scale, shift]: [f32; 2], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x * scale + shift;
    }
}

#[inline(always)]
fn affine_silu_kernel(x: &[f32], [scale, shift]: [f32; 2], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        let y = x * scale + shift;
        *o = y * sigmoid(y);
    }
}

/// dy = g (or, through SiLU, g·σ(y)·(1 + y·(1 − σ(y))) with y = γ·x̂ + β) into `dy`; returns
/// [Σ dy, Σ dy·x̂]. `p` = [mean, 1/√(var + ε), γ, β].
#[inline(always)]
fn output_gradient_kernel<const SILU: bool>(x: &[f32], grad: &[f32], [mean, rstd, gamma, beta]: [f32; 4], dy: &mut [f32]) -> [f32; 2] {
    let step = |x: f32, g: f32| {
        let x_hat = (x - mean) * rstd;
        let d = if SILU {
            let y = gamma * x_hat + beta;
            let s = sigmoid(y);
            g * s * (1.0 + y * (1.0 - s))
        } else {
            g
        };
        (d, x_hat)
    };
    let (mut lanes_dy, mut lanes_dy_x_hat) = ([0.0f32; LANES], [0.0f32; LANES]);
    let whole = x.len() / LANES * LANES;
    for ((x, g), dy) in x[..whole].chunks_exact(LANES).zip(grad[..whole].chunks_exact(LANES)).zip(dy[..whole].chunks_exact_mut(LANES)) {
        for i in 0..LANES {
            let (d, x_hat) = step(x[i], g[i]);
            dy[i] = d;
            lanes_dy[i] += d;
            lanes_dy_x_hat[i] += d * x_hat;
        }
    }
    let (mut sum_dy, mut sum_dy_x_hat) = (lanes_dy.iter().sum::<f32>(), lanes_dy_x_hat.iter().sum::<f32>());
    for i in whole..x.len() {
        let (d, x_hat) = step(x[i], grad[i]);
        dy[i] = d;
        sum_dy += d;
        sum_dy_x_hat += d * x_hat;
    }
    [sum_dy, sum_dy_x_hat]
}

#[inline(always)]
fn output_gradient_plain_kernel(x: &[f32], grad: &[f32], p: [f32; 4], dy: &mut [f32]) -> [f32; 2] {
    output_gradient_kernel::<false>(x, grad, p, dy)
}

#[inline(always)]
fn output_gradient_silu_kernel(x: &[f32], grad: &[f32], p: [f32; 4], dy: &mut [f32]) -> [f32; 2] {
    output_gradient_kernel::<true>(x, grad, p, dy)
}

/// d_x = d_x·p₀ + x·p₁ + p₂ in place.
#[inline(always)]
fn input_gradient_kernel(x: &[f32], [scale, x_scale, shift]: [f32; 3], d_x: &mut [f32]) {
    for (d, &x) in d_x.iter_mut().zip(x) {
        *d = *d * scale + x * x_scale + shift;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::GroupNormConfig;
    use burn::module::Param;
    use burn::tensor::{Device, Distribution, TensorData};

    /// Equal to `tolerance` of the tensor's largest value: float32 sums in another order (the
    /// largest group has 3,136 values) differ by about 1e-5 of it; an input whose mean is m
    /// standard deviations from 0 loses m times more in x − mean, in burn's result and in ours.
    fn assert_close(ours: TensorData, reference: TensorData, tolerance: f32, what: &str) {
        let (ours, reference) = (ours.try_to_vec::<f32>().unwrap(), reference.try_to_vec::<f32>().unwrap());
        assert_eq!(ours.len(), reference.len(), "{what}");
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            assert!((a - b).abs() <= tolerance * scale, "{what}[{i}]: {a} vs burn's {b} (scale {scale})");
        }
    }

    /// A GroupNorm with γ and β away from 1 and 0, so that both enter the result.
    fn norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
        let mut norm = GroupNormConfig::new(groups, channels).init(device);
        norm.gamma = Some(Param::from_tensor(Tensor::random([channels], Distribution::Normal(1.0, 0.5), device)));
        norm.beta = Some(Param::from_tensor(Tensor::random([channels], Distribution::Normal(0.0, 0.5), device)));
        norm
    }

    /// Values and the gradients of x, γ and β on burn-flex (our kernels) against burn's GroupNorm
    /// (and burn's SiLU after it) under autodiff, for the U-Net's shapes and odd ones: one group,
    /// one channel per group, 7×7 and 5×3 images (not a multiple of the kernels' 16 lanes), a
    /// transposed input, an input with a large mean (the variance's cancellation).
    #[test]
    fn group_norm_matches_burns() {
        let device = Device::flex().autodiff();
        for (n, c, h, w, groups) in [(2, 32, 28, 28, 8), (3, 64, 7, 7, 8), (2, 8, 5, 3, 1), (1, 6, 4, 4, 6), (4, 16, 14, 14, 4)] {
            let norm = norm(groups, c, &device);
            let base = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.5, 2.0), &device);
            let transposed = Tensor::random([n, c, w, h], Distribution::Normal(0.0, 1.0), &device).swap_dims(2, 3);
            for (x, how, tolerance) in [(base.clone(), "plain", 1e-5), (base.clone() + 100.0, "mean 100", 50e-5), (transposed, "transposed", 1e-5)] {
                for silu in [false, true] {
                    let what = format!("[{n}, {c}, {h}, {w}] in {groups} groups, {how}, silu {silu}");
                    let upstream = Tensor::<4>::random(x.shape(), Distribution::Normal(0.0, 1.0), &device);
                    let (a, b) = (x.clone().detach().require_grad(), x.clone().detach().require_grad());
                    let ours = if silu { group_norm_silu(&norm, a.clone()) } else { group_norm(&norm, a.clone()) };
                    let reference = if silu { burn::tensor::activation::silu(norm.forward(b.clone())) } else { norm.forward(b.clone()) };
                    assert_close(ours.clone().into_data(), reference.clone().into_data(), tolerance, &format!("{what}: values"));
                    let (g_ours, g_ref) = ((ours * upstream.clone()).sum().backward(), (reference * upstream).sum().backward());
                    assert_close(a.grad(&g_ours).unwrap().into_data(), b.grad(&g_ref).unwrap().into_data(), tolerance, &format!("{what}: dx"));
                    let (gamma, beta) = (norm.gamma.as_ref().unwrap().val(), norm.beta.as_ref().unwrap().val());
                    for (param, name) in [(gamma, "dγ"), (beta, "dβ")] {
                        assert_close(param.grad(&g_ours).unwrap().into_data(), param.grad(&g_ref).unwrap().into_data(), tolerance, &format!("{what}: {name}"));
                    }
                }
            }
        }
    }

    /// The composed backward (burn-flex's fallback for other float types) against autodiff too.
    #[test]
    fn composed_backward_matches_autodiff() {
        let device = Device::flex().autodiff();
        let norm = norm(4, 8, &device);
        let x = Tensor::<4>::random([2, 8, 5, 5], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let upstream = Tensor::<4>::random([2, 8, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let (gamma, beta) = (norm.gamma.as_ref().unwrap().val(), norm.beta.as_ref().unwrap().val());
        let grads = (burn::tensor::activation::silu(norm.forward(x.clone())) * upstream.clone()).sum().backward();
        let plain = Device::flex();
        let inner = |t: Tensor<4>| Tensor::<4>::from_data(t.into_data(), &plain).into_dispatch();
        let inner1 = |t: Tensor<1>| Tensor::<1>::from_data(t.into_data(), &plain).into_dispatch();
        let options = NormOptions { groups: 4, epsilon: norm.epsilon, silu: true };
        let (d_x, d_gamma, d_beta) = composed_backward::<Dispatch>(inner(x.clone()), inner1(gamma.clone()), inner1(beta.clone()), inner(upstream), options);
        assert_close(Tensor::<4>::from_dispatch(d_x).into_data(), x.grad(&grads).unwrap().into_data(), 1e-5, "dx");
        assert_close(Tensor::<1>::from_dispatch(d_gamma).into_data(), gamma.grad(&grads).unwrap().into_data(), 1e-5, "dγ");
        assert_close(Tensor::<1>::from_dispatch(d_beta).into_data(), beta.grad(&grads).unwrap().into_data(), 1e-5, "dβ");
    }

    /// Sampling runs without autodiff: the forward kernel alone.
    #[test]
    fn group_norm_without_autodiff() {
        let device = Device::flex();
        let norm = norm(8, 64, &device);
        let x = Tensor::<4>::random([3, 64, 7, 7], Distribution::Normal(0.0, 3.0), &device);
        assert_close(group_norm(&norm, x.clone()).into_data(), norm.forward(x.clone()).into_data(), 1e-5, "values");
        assert_close(group_norm_silu(&norm, x.clone()).into_data(), burn::tensor::activation::silu(norm.forward(x)).into_data(), 1e-5, "values with SiLU");
    }
}
