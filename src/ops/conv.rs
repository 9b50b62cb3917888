//! 2-D convolution on the CPU backend, forward and both gradients, as one matrix product per
//! image.
//!
//! burn-flex lowers a convolution to im2col + GEMM over tiles of 512 output pixels: it first
//! copies the whole input into NHWC order on one thread, then per tile builds the patch matrix,
//! packs the same weights again for the product, and scatters the tile's result back into NCHW;
//! its input gradient is a transposed convolution. For the U-Net's layers (28×28 or 32×32
//! images, 32 to 128 channels) that is most of a step. Here each image's patch matrix P
//! [C_in·k_h·k_w, H_out·W_out] is built straight from NCHW (a 1×1 convolution uses the image as
//! it is), and one product per image does each pass: output = W·P + bias, written in its final
//! place; the patches' gradient Wᵀ·G, added back onto the pixels they were read from; the
//! weights' gradient G·Pᵀ, summed over the images. Images run in parallel. A 3×3 convolution of
//! stride 1 and padding 1 (most of the U-Net's) goes through Winograd's minimal filtering
//! instead (`winograd.rs`), with 2.25× fewer multiplications. Every other backend,
//! or a convolution with groups or dilation, runs burn's own.

use super::flex::{OwnKernels, dense, each_image, matmul_accumulate, run, sum_over_images, tensor};
use super::winograd;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, DType, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use std::borrow::Cow;
use std::ops::Range;

/// `conv.forward(x)`, with the same padding rule, through the kernel above where it applies.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let out = match (&conv.bias, explicit_padding(&conv.padding)) {
        (Some(bias), Some((rows, columns))) => {
            let options = ConvOptions::new_with_padding(conv.stride, [rows, columns], conv.dilation, conv.groups);
            let weight = conv.weight.val().into_dispatch();
            Tensor::from_dispatch(<Dispatch as ConvBackend>::conv2d_biased(x.into_dispatch(), weight, bias.val().into_dispatch(), options))
        }
        _ => conv.forward(x),
    };
    // A GPU convolution's output is an [N, C, H, W] view of [N, H, W, C] memory. With one channel
    // (an MNIST model's last convolution), burn 0.22.1's kernel fusion reads that view wrongly
    // wherever it fuses it with other tensors: the loss, a sampler's update (tests/lockstep.rs,
    // `cargo test --release --test lockstep`, fails without this). Seen through a reshape it
    // has the plain strides of its shape, and fused kernels read it right. Elsewhere (burn-flex's
    // output is already plain) the reshapes change nothing.
    let [n, c, h, w] = out.dims();
    if c == 1 { out.reshape([n, h * w]).reshape([n, c, h, w]) } else { out }
}

/// (before, after) for rows and for columns, as burn's module computes them; `Same` (which
/// depends on the input's size) is left to the module.
fn explicit_padding(padding: &PaddingConfig2d) -> Option<((usize, usize), (usize, usize))> {
    match *padding {
        PaddingConfig2d::Valid => Some(((0, 0), (0, 0))),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some(((top, bottom), (left, right))),
        PaddingConfig2d::Same => None,
    }
}

/// The operation per backend. The default body is burn's own convolution.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait ConvBackend: Backend {
    /// x ⋆ weight + bias.
    fn conv2d_biased(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d(x, weight, Some(bias), options)
    }

    /// The gradient with respect to x.
    fn conv2d_input_grad(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, grad, options)
    }

    /// The gradient with respect to the weights.
    fn conv2d_weight_grad(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, grad, options)
    }
}

impl ConvBackend for Cube {}

impl ConvBackend for Flex {
    fn conv2d_biased(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let Some((n, shape, c_out)) = ours(&[&x, &weight, &bias], &x, &weight, &options) else {
            return Self::conv2d(x, weight, Some(bias), options);
        };
        let (x, weight, bias) = (dense(x), dense(weight), dense(bias));
        let [h_out, w_out] = shape.output();
        let out = if shape.is_winograd(c_out) {
            winograd::convolve(run(&x), n, [shape.c, shape.h, shape.w], run(&weight), c_out, Some(run(&bias)))
        } else {
            forward(run(&x), n, &shape, run(&weight), c_out, run(&bias))
        };
        tensor(out, [n, c_out, h_out, w_out])
    }

    fn conv2d_input_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let Some((n, shape, c_out)) = ours(&[&x, &weight, &grad], &x, &weight, &options) else {
            return Self::conv2d_x_backward(x, weight, grad, options);
        };
        let (weight, grad) = (dense(weight), dense(grad));
        let out = if shape.is_winograd(c_out) {
            winograd::input_gradient(run(&grad), n, [shape.c, shape.h, shape.w], run(&weight), c_out)
        } else {
            input_gradient(run(&grad), n, &shape, run(&weight), c_out)
        };
        tensor(out, [n, shape.c, shape.h, shape.w])
    }

    fn conv2d_weight_grad(x: FlexTensor, weight: FlexTensor, grad: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let Some((n, shape, c_out)) = ours(&[&x, &weight, &grad], &x, &weight, &options) else {
            return Self::conv2d_weight_backward(x, weight, grad, options);
        };
        let (x, grad) = (dense(x), dense(grad));
        let out = if shape.is_winograd(c_out) {
            winograd::weight_gradient(run(&x), run(&grad), n, [shape.c, shape.h, shape.w], c_out)
        } else {
            weight_gradient(run(&x), run(&grad), &shape, c_out)
        };
        tensor(out, [c_out, shape.c, shape.k_h, shape.k_w])
    }
}

/// The batch size, geometry and output channels where our kernels apply (float32, no groups or
/// dilation); `None` for burn-flex's own.
fn ours(tensors: &[&FlexTensor], x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Option<(usize, Shape2d, usize)> {
    let plain = options.groups == 1 && options.dilation == [1, 1];
    if !plain || tensors.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let dims = |t: &FlexTensor| -> [usize; 4] { t.layout().shape().dims() };
    let ([n, c, h, w], [c_out, c_in, k_h, k_w]) = (dims(x), dims(weight));
    assert_eq!(c, c_in, "conv2d: the input has {c} channels, the weights expect {c_in}");
    Some((n, Shape2d { c, h, w, k_h, k_w, stride: options.stride, padding: options.padding }, c_out))
}


impl<B: Backend + ConvBackend + OwnKernels, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn conv2d_biased(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        if !B::OWN {
            return Self::conv2d(x, weight, Some(bias), options);
        }

        /// burn-autodiff's backward of a biased convolution, through the kernels above.
        #[derive(Debug)]
        struct Conv2dBiased;

        impl<B: Backend + ConvBackend> Backward<B, 3> for Conv2dBiased {
            type State = (NodeId, NodeId, NodeId, ConvOptions<2>);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, bias, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight);
                let bias = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(bias);
                if let Some(node) = node_x {
                    let grad = B::conv2d_input_grad(x.clone(), weight.clone(), grad.clone(), options.clone());
                    grads.register::<B>(node.id, grad);
                }
                if let Some(node) = node_weight {
                    let grad = B::conv2d_weight_grad(x.clone(), weight, grad.clone(), options);
                    grads.register::<B>(node.id, grad);
                }
                if let Some(node) = node_bias {
                    grads.register::<B>(node.id, B::conv2d_bias_backward(x, bias, grad));
                }
            }
        }

        match Conv2dBiased.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&x), prep.checkpoint(&weight), prep.checkpoint(&bias), options.clone());
                let out = B::conv2d_biased(x.primitive().clone(), weight.primitive().clone(), bias.primitive().clone(), options);
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_biased(x.into_primitive(), weight.into_primitive(), bias.into_primitive(), options)),
        }
    }
}

/// An image's geometry and the convolution's, for one image of the batch.
struct Shape2d {
    c: usize,
    h: usize,
    w: usize,
    k_h: usize,
    k_w: usize,
    stride: [usize; 2],
    /// (before, after) for rows, then for columns.
    padding: [(usize, usize); 2],
}

impl Shape2d {
    fn output(&self) -> [usize; 2] {
        let size = |input: usize, (before, after): (usize, usize), kernel: usize, stride: usize| {
            (input + before + after).saturating_sub(kernel) / stride + 1
        };
        [size(self.h, self.padding[0], self.k_h, self.stride[0]), size(self.w, self.padding[1], self.k_w, self.stride[1])]
    }

    fn spatial(&self) -> usize {
        let [h_out, w_out] = self.output();
        h_out * w_out
    }

    fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Rows of the patch matrix: C·k_h·k_w.
    fn patch_len(&self) -> usize {
        self.c * self.k_h * self.k_w
    }

    /// A 3×3 convolution of stride 1 and padding 1 between channel counts `winograd.rs` takes:
    /// it does the forward pass and both gradients.
    fn is_winograd(&self, c_out: usize) -> bool {
        self.k_h == 3 && self.k_w == 3 && self.stride == [1, 1] && self.padding == [(1, 1); 2] && winograd::fits(self.c, c_out)
    }

    /// A 1×1 convolution of stride 1 without padding: the image is its own patch matrix.
    fn is_pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.stride == [1, 1] && self.padding == [(0, 0); 2]
    }

    /// The matrix a convolution multiplies the weights with: the image itself for a pointwise
    /// convolution, its patch matrix otherwise.
    fn patch_matrix<'a>(&self, image: &'a [f32]) -> Cow<'a, [f32]> {
        if self.is_pointwise() { Cow::Borrowed(image) } else { Cow::Owned(self.patches(image)) }
    }

    /// The patch matrix of one image [C, H, W]: row (c, i, j) holds, for every output pixel,
    /// the input at its window's (i, j) in channel c, 0 in the padding.
    fn patches(&self, image: &[f32]) -> Vec<f32> {
        let mut col = vec![0.0f32; self.patch_len() * self.spatial()];
        self.write_patches(image, &mut col);
        col
    }

    /// The entries of `patches(image)` that come from the image; those in the padding (0) are
    /// left as they are.
    fn write_patches(&self, image: &[f32], col: &mut [f32]) {
        self.walk(image.len(), |pixels, entries, stride| {
            if stride == 1 {
                col[entries].copy_from_slice(&image[pixels]);
            } else {
                for (entry, pixel) in col[entries].iter_mut().zip(image[pixels].iter().step_by(stride)) {
                    *entry = *pixel;
                }
            }
        });
    }

    /// The reverse of `patches` for gradients: adds each entry of a patch matrix onto the pixel
    /// it was read from.
    fn add_patches(&self, col: &[f32], image: &mut [f32]) {
        self.walk(image.len(), |pixels, entries, stride| {
            if stride == 1 {
                image[pixels].iter_mut().zip(&col[entries]).for_each(|(pixel, entry)| *pixel += *entry);
            } else {
                for (pixel, entry) in image[pixels].iter_mut().step_by(stride).zip(&col[entries]) {
                    *pixel += *entry;
                }
            }
        });
    }

    /// Calls `visit(pixels, entries, stride)` for every run of one patch-matrix row inside the
    /// image: the entries (a range of the patch matrix, one output row's valid columns) read
    /// every `stride`-th pixel of the range `pixels` of the image [C, H, W].
    fn walk(&self, image_len: usize, mut visit: impl FnMut(Range<usize>, Range<usize>, usize)) {
        assert_eq!(image_len, self.image_len(), "conv2d: the image does not have the expected size");
        let [h_out, w_out] = self.output();
        let (spatial, [s_h, s_w]) = (h_out * w_out, self.stride);
        let (p_top, p_left) = (self.padding[0].0, self.padding[1].0);
        let mut row = 0;
        for channel in 0..self.c {
            for i in 0..self.k_h {
                for j in 0..self.k_w {
                    let row_start = row * spatial;
                    row += 1;
                    // Output columns whose input column x·s_w + j − p_left lies inside the image.
                    let first = p_left.saturating_sub(j).div_ceil(s_w);
                    let end = (self.w + p_left).saturating_sub(j).div_ceil(s_w).min(w_out);
                    if first >= end {
                        continue;
                    }
                    for y in 0..h_out {
                        let Some(source_row) = (y * s_h + i).checked_sub(p_top).filter(|r| *r < self.h) else { continue };
                        let x0 = (channel * self.h + source_row) * self.w + first * s_w + j - p_left;
                        let pixels = x0..x0 + (end - first - 1) * s_w + 1;
                        visit(pixels, row_start + y * w_out + first..row_start + y * w_out + end, s_w);
                    }
                }
            }
        }
    }
}

/// The batch's outputs [N, C_out, H_out, W_out].
fn forward(x: &[f32], n: usize, shape: &Shape2d, weight: &[f32], c_out: usize, bias: &[f32]) -> Vec<f32> {
    let spatial = shape.spatial();
    let mut out = vec![0.0f32; n * c_out * spatial];
    let len = shape.patch_len();
    let images: Vec<_> = x.chunks_exact(shape.image_len()).zip(out.chunks_exact_mut(c_out * spatial)).collect();
    each_image(images, |(image, out), parallel| {
        for (plane, b) in out.chunks_exact_mut(spatial).zip(bias) {
            plane.fill(*b);
        }
        let rhs = shape.patch_matrix(image);
        matmul_accumulate(out, (weight, false), (&rhs, false), [c_out, len, spatial], parallel);
    });
    out
}

/// The gradient with respect to the input [N, C, H, W], given the output's [N, C_out, H_out,
/// W_out]: per image, weightsᵀ times the output gradient gives the patches' gradient, which adds
/// back onto the pixels each patch was read from.
fn input_gradient(grad: &[f32], n: usize, shape: &Shape2d, weight: &[f32], c_out: usize) -> Vec<f32> {
    let spatial = shape.spatial();
    let mut out = vec![0.0f32; n * shape.image_len()];
    let images: Vec<_> = grad.chunks_exact(c_out * spatial).zip(out.chunks_exact_mut(shape.image_len())).collect();
    each_image(images, |(grad, image), parallel| {
        let dims = [shape.patch_len(), c_out, spatial];
        if shape.is_pointwise() {
            matmul_accumulate(image, (weight, true), (grad, false), dims, parallel);
        } else {
            let mut patches = vec![0.0f32; shape.patch_len() * spatial];
            matmul_accumulate(&mut patches, (weight, true), (grad, false), dims, parallel);
            shape.add_patches(&patches, image);
        }
    });
    out
}

/// The gradient with respect to the weights [C_out, C·k_h·k_w]: the output gradient times the
/// patchesᵀ, summed over the images (one sum per thread, then added). Each thread also keeps one
/// patch matrix: every image writes the same entries of it and the padding's stay 0, so it is
/// zeroed once, not per image.
fn weight_gradient(x: &[f32], grad: &[f32], shape: &Shape2d, c_out: usize) -> Vec<f32> {
    let (spatial, len) = (shape.spatial(), c_out * shape.patch_len());
    let images: Vec<_> = x.chunks_exact(shape.image_len()).zip(grad.chunks_exact(c_out * spatial)).collect();
    let patch_matrix = if shape.is_pointwise() { 0 } else { shape.patch_len() * spatial };
    let fresh = || (vec![0.0f32; len], vec![0.0f32; patch_matrix]);
    let accumulate = |(sum, patches): &mut (Vec<f32>, Vec<f32>), (image, grad): (&[f32], &[f32]), parallel: bool| {
        let rhs: &[f32] = if shape.is_pointwise() {
            image
        } else {
            shape.write_patches(image, patches);
            patches
        };
        matmul_accumulate(sum, (grad, false), (rhs, true), [c_out, spatial, shape.patch_len()], parallel);
    };
    sum_over_images(images, fresh, accumulate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution, TensorData};

    fn assert_close(ours: TensorData, reference: TensorData, what: &str) {
        let (ours, reference) = (ours.try_to_vec::<f32>().unwrap(), reference.try_to_vec::<f32>().unwrap());
        assert_eq!(ours.len(), reference.len(), "{what}: sizes");
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            // Sums of up to a few hundred products in another order: float32 rounding.
            assert!((a - b).abs() <= 1e-5 * scale, "{what}[{i}]: {a} vs burn's {b}");
        }
    }

    /// Ours against burn's own convolution (the module's forward), values and all three
    /// gradients, for the U-Net's kinds of layer and a few more.
    #[test]
    fn conv2d_matches_burns() {
        let device = Device::flex().autodiff();
        // (in, out, kernel, stride, padding [top, left, bottom, right], batch, height, width)
        let cases = [
            (3, 8, 3, 1, [1, 1, 1, 1], 5, 9, 7),   // conv_in (patch matrices: 3 channels)
            (8, 16, 3, 1, [1, 1, 1, 1], 5, 9, 7),  // a ResNet block's convs (Winograd), odd sizes
            (32, 64, 3, 1, [1, 1, 1, 1], 2, 14, 14), // the same at the U-Net's width
            (64, 32, 3, 1, [1, 1, 1, 1], 9, 7, 7), // 7×7 images taken several per product
            (16, 8, 3, 1, [1, 1, 1, 1], 1, 7, 7),  // one image (products on every thread)
            (8, 16, 3, 1, [1, 1, 1, 1], 3, 1, 2),  // an image smaller than a Winograd tile
            (5, 7, 3, 1, [1, 1, 1, 1], 3, 1, 2),   // channels that are not whole vectors
            (8, 8, 3, 2, [1, 1, 1, 1], 4, 10, 9),  // Downsample: stride 2
            (8, 16, 1, 1, [0, 0, 0, 0], 3, 6, 6),  // a shortcut: 1×1
            (4, 6, 3, 1, [0, 0, 0, 0], 1, 7, 8),   // no padding, one image
            (4, 6, 5, 2, [2, 1, 0, 2], 2, 11, 9),  // asymmetric padding, 5×5, stride 2
            (2, 3, 3, 3, [1, 1, 1, 1], 3, 4, 5),   // stride larger than the padding
            (1, 6, 5, 1, [2, 2, 2, 2], 3, 28, 28), // LeNet's first layer
            (6, 16, 5, 1, [0, 0, 0, 0], 3, 14, 14), // and its second
        ];
        for (c_in, c_out, kernel, stride, [top, left, bottom, right], batch, height, width) in cases {
            let conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
                .init(&device);
            let what = format!("{c_in}->{c_out} k{kernel} s{stride} p{top}{left}{bottom}{right} {batch}x{height}x{width}");
            // Contiguous, and a view with swapped spatial axes (made from a transposed tensor).
            let base = Tensor::<4>::random([batch, c_in, width, height], Distribution::Normal(0.0, 1.0), &device);
            for x in [base.clone().swap_dims(2, 3), Tensor::from_data(base.swap_dims(2, 3).into_data(), &device)] {
                let (a, b) = (x.clone().detach().require_grad(), x.detach().require_grad());
                let ours = conv2d(&conv, a.clone());
                let reference = conv.forward(b.clone());
                assert_close(ours.clone().into_data(), reference.clone().into_data(), &format!("{what}: output"));
                let upstream = Tensor::<4>::random(reference.shape(), Distribution::Normal(0.0, 1.0), &device);
                let g_ours = (ours * upstream.clone()).sum().backward();
                let g_ref = (reference * upstream).sum().backward();
                assert_close(a.grad(&g_ours).unwrap().into_data(), b.grad(&g_ref).unwrap().into_data(), &format!("{what}: input gradient"));
                assert_close(conv.weight.grad(&g_ours).unwrap().into_data(), conv.weight.grad(&g_ref).unwrap().into_data(), &format!("{what}: weight gradient"));
                let bias = conv.bias.as_ref().unwrap();
                assert_close(bias.grad(&g_ours).unwrap().into_data(), bias.grad(&g_ref).unwrap().into_data(), &format!("{what}: bias gradient"));
            }
        }
    }

    /// Sampling's case: no autodiff, a batch larger than the thread pool and a single image.
    #[test]
    fn conv2d_without_autodiff() {
        let device = Device::flex();
        let conv = Conv2dConfig::new([8, 16], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        for batch in [1, 17] {
            let x = Tensor::<4>::random([batch, 8, 12, 11], Distribution::Normal(0.0, 1.0), &device);
            assert_close(conv2d(&conv, x.clone()).into_data(), conv.forward(x).into_data(), &format!("batch {batch}"));
        }
    }
}
