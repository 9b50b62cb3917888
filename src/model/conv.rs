//! The forward pass of a 2-D convolution on the CPU backend, as one matrix product per image.
//!
//! burn-flex lowers a convolution to im2col + GEMM over tiles of 512 output pixels: it first
//! copies the whole input into NHWC order on one thread, then per tile builds the patch matrix,
//! packs the same weights again for the product, and scatters the tile's result back into NCHW.
//! For the U-Net's layers (28×28 or 32×32 images, 32 to 128 channels) that is most of a sampling
//! step. Here each image's patch matrix is built straight from NCHW (a 1×1 convolution uses the
//! image as it is), and one product per image, weights [C_out, C_in·k_h·k_w] times patches
//! [C_in·k_h·k_w, H_out·W_out] onto the bias, writes the output in its final place; images run
//! in parallel. The gradients stay burn-flex's (`conv2d_x_backward`, `conv2d_weight_backward`),
//! and every other backend, or a convolution with groups or dilation, runs burn's own.

use super::silu::OwnKernels;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, DType, Dispatch, Flex, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::{Bytes, Tensor};

/// `conv.forward(x)`, with the same padding rule, through the kernel above where it applies.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let (Some(bias), Some((rows, columns))) = (&conv.bias, explicit_padding(&conv.padding)) else { return conv.forward(x) };
    let options = ConvOptions::new_with_padding(conv.stride, [rows, columns], conv.dilation, conv.groups);
    let out = <Dispatch as ConvBackend>::conv2d_biased(x.into_dispatch(), conv.weight.val().into_dispatch(), bias.val().into_dispatch(), options);
    Tensor::from_dispatch(out)
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
}

impl ConvBackend for Cube {}

impl ConvBackend for Flex {
    fn conv2d_biased(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let plain = options.groups == 1 && options.dilation == [1, 1];
        if !plain || [x.dtype(), weight.dtype(), bias.dtype()].iter().any(|dtype| *dtype != DType::F32) {
            return Self::conv2d(x, weight, Some(bias), options);
        }
        let (x, weight, bias) = (dense(x), dense(weight), dense(bias));
        let dims = |t: &FlexTensor| -> [usize; 4] { t.layout().shape().dims() };
        let ([n, c, h, w], [c_out, c_in, k_h, k_w]) = (dims(&x), dims(&weight));
        assert_eq!(c, c_in, "conv2d: the input has {c} channels, the weights expect {c_in}");
        let shape = Shape2d { c, h, w, k_h, k_w, stride: options.stride, padding: options.padding };
        let [h_out, w_out] = shape.output();
        let out = forward(run(&x), n, &shape, run(&weight), c_out, run(&bias));
        FlexTensor::new(Bytes::from_elems(out), Layout::contiguous([n, c_out, h_out, w_out].into()), DType::F32)
    }
}

impl<B: Backend + ConvBackend + OwnKernels, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn conv2d_biased(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, options: ConvOptions<2>) -> FloatTensor<Self> {
        if !B::OWN {
            return Self::conv2d(x, weight, Some(bias), options);
        }

        /// burn-autodiff's backward of a biased convolution: the same three gradients.
        #[derive(Debug)]
        struct Conv2dBiased;

        impl<B: Backend> Backward<B, 3> for Conv2dBiased {
            type State = (NodeId, NodeId, NodeId, ConvOptions<2>);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let [node_x, node_weight, node_bias] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, bias, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(x);
                let weight = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(weight);
                let bias = checkpointer.retrieve_node_output::<B::FloatTensorPrimitive>(bias);
                if let Some(node) = node_x {
                    let grad = B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options.clone());
                    grads.register::<B>(node.id, grad);
                }
                if let Some(node) = node_weight {
                    let grad = B::conv2d_weight_backward(x.clone(), weight, grad.clone(), options);
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

    /// A 1×1 convolution of stride 1 without padding: the image is its own patch matrix.
    fn is_pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.stride == [1, 1] && self.padding == [(0, 0); 2]
    }

    /// The patch matrix of one image [C, H, W]: row (c, i, j) holds, for every output pixel,
    /// the input at its window's (i, j) in channel c, 0 in the padding.
    fn patches(&self, image: &[f32]) -> Vec<f32> {
        let [h_out, w_out] = self.output();
        let (spatial, [s_h, s_w]) = (h_out * w_out, self.stride);
        let (p_top, p_left) = (self.padding[0].0, self.padding[1].0);
        let mut col = vec![0.0f32; self.c * self.k_h * self.k_w * spatial];
        let mut rows = col.chunks_exact_mut(spatial);
        for channel in image.chunks_exact(self.h * self.w) {
            for i in 0..self.k_h {
                for j in 0..self.k_w {
                    let row = rows.next().expect("one row per channel and kernel position");
                    // Output columns whose input column x·s_w + j − p_left lies inside the image.
                    let first = p_left.saturating_sub(j).div_ceil(s_w);
                    let end = ((self.w + p_left).saturating_sub(j)).div_ceil(s_w).min(w_out);
                    if first >= end {
                        continue;
                    }
                    for y in 0..h_out {
                        let Some(source_row) = (y * s_h + i).checked_sub(p_top).filter(|r| *r < self.h) else { continue };
                        let source = &channel[source_row * self.w..(source_row + 1) * self.w];
                        let target = &mut row[y * w_out + first..y * w_out + end];
                        let x0 = first * s_w + j - p_left;
                        if s_w == 1 {
                            target.copy_from_slice(&source[x0..x0 + target.len()]);
                        } else {
                            for (t, s) in target.iter_mut().zip(source[x0..].iter().step_by(s_w)) {
                                *t = *s;
                            }
                        }
                    }
                }
            }
        }
        col
    }
}

/// The batch's outputs [N, C_out, H_out, W_out].
fn forward(x: &[f32], n: usize, shape: &Shape2d, weight: &[f32], c_out: usize, bias: &[f32]) -> Vec<f32> {
    let [h_out, w_out] = shape.output();
    let (spatial, image_len) = (h_out * w_out, shape.c * shape.h * shape.w);
    let mut out = vec![0.0f32; n * c_out * spatial];
    let one_image = |(image, out): (&[f32], &mut [f32]), parallel: bool| {
        for (plane, b) in out.chunks_exact_mut(spatial).zip(bias) {
            plane.fill(*b);
        }
        let patches;
        let rhs = if shape.is_pointwise() {
            image
        } else {
            patches = shape.patches(image);
            &patches
        };
        matmul_accumulate(out, weight, rhs, c_out, shape.c * shape.k_h * shape.k_w, spatial, parallel);
    };
    let images = x.chunks_exact(image_len).zip(out.chunks_exact_mut(c_out * spatial));
    #[cfg(not(target_arch = "wasm32"))]
    if n >= rayon::current_num_threads() {
        use rayon::prelude::*;
        let images: Vec<_> = images.collect();
        images.into_par_iter().for_each(|pair| one_image(pair, false));
        return out;
    }
    for pair in images {
        one_image(pair, true);
    }
    out
}

/// out[m×n] += lhs[m×k] · rhs[k×n], all row-major; `parallel` lets the product use every thread.
fn matmul_accumulate(out: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, k: usize, n: usize, parallel: bool) {
    assert!(out.len() == m * n && lhs.len() == m * k && rhs.len() == k * n, "matmul: sizes do not match");
    #[cfg(not(target_arch = "wasm32"))]
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    #[cfg(target_arch = "wasm32")]
    let parallelism = {
        let _ = parallel;
        gemm::Parallelism::None
    };
    let row = |columns: usize| columns as isize;
    // SAFETY: the three slices hold exactly the m×n, m×k and k×n row-major matrices described by
    // these strides (checked above), and `out` does not overlap the inputs.
    unsafe {
        gemm::gemm(
            m, n, k,
            out.as_mut_ptr(), 1, row(n), true,
            lhs.as_ptr(), 1, row(k),
            rhs.as_ptr(), 1, row(n),
            1.0, 1.0, false, false, false, parallelism,
        );
    }
}

/// A tensor whose elements are one dense run of its buffer (copied into one if they are not).
fn dense(x: FlexTensor) -> FlexTensor {
    if x.layout().is_dense_unique_storage() { x } else { x.to_contiguous() }
}

fn run(x: &FlexTensor) -> &[f32] {
    let (start, end) = x.layout().contiguous_offsets().expect("a dense tensor");
    &x.storage::<f32>()[start..end]
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
            (3, 8, 3, 1, [1, 1, 1, 1], 5, 9, 7),   // conv_in, a ResNet block's convs
            (8, 8, 3, 2, [1, 1, 1, 1], 4, 10, 9),  // Downsample: stride 2
            (8, 16, 1, 1, [0, 0, 0, 0], 3, 6, 6),  // a shortcut: 1×1
            (4, 6, 3, 1, [0, 0, 0, 0], 1, 7, 8),   // no padding, one image
            (4, 6, 5, 2, [2, 1, 0, 2], 2, 11, 9),  // asymmetric padding, 5×5, stride 2
            (2, 3, 3, 3, [1, 1, 1, 1], 3, 4, 5),   // stride larger than the padding
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
        let conv = Conv2dConfig::new([6, 5], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(&device);
        for batch in [1, 17] {
            let x = Tensor::<4>::random([batch, 6, 12, 12], Distribution::Normal(0.0, 1.0), &device);
            assert_close(conv2d(&conv, x.clone()).into_data(), conv.forward(x).into_data(), &format!("batch {batch}"));
        }
    }
}
