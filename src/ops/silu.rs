//! SiLU, x·σ(x), as one operation: the U-Net's activation (every ResNet block applies it three
//! times), written for the CPU backend as one pass forward and one pass backward.
//!
//! burn composes `silu` from `sigmoid` and `mul`. On burn-flex that is a scalar `expf` call per
//! element, and in training each SiLU becomes about six element-wise passes, each with a fresh
//! buffer (autodiff recomputes the sigmoid in the backward pass, then `sigmoid_backward`, the two
//! gradients of the product and their sum). `scripts/bench/profile-cpu` put SiLU's sigmoid alone at 10%
//! of a training step of `mnist-small`. Here burn-flex gets a fused kernel, forward
//! x·σ(x) and backward g·σ(x)·(1 + x·(1 − σ(x))), with a branch-free exp the compiler
//! vectorises; the GPU backend keeps burn's composition (and its autodiff), so what the tab runs
//! on WebGPU is unchanged. Through burn's backend-extension API: `Dispatch` routes each call to
//! the backend of its tensor.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::retro_forward::RetroForward;
use burn::backend::autodiff::checkpoint::state::BackwardStates;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::autodiff::NodeId;
use super::flex::{OwnKernels, dense, run, tensor, vectorised};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Cube, DType, Dispatch, Flex, backend_extension};
use burn::tensor::Tensor;
use std::marker::PhantomData;

/// SiLU of `x` (the same values as `burn::tensor::activation::silu`, and its gradient).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SiluBackend>::silu(x.into_dispatch()))
}

/// The operation per backend. The default bodies are burn's composition.
#[backend_extension(Flex, Cube, Autodiff)]
pub trait SiluBackend: Backend {
    /// x·σ(x).
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(x)
    }

    /// The gradient with respect to x, given the output's gradient: g·σ(x)·(1 + x·(1 − σ(x))).
    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(x, grad)
    }
}

/// burn's SiLU: x·σ(x) from `sigmoid` and `mul`.
fn composed<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let s = B::sigmoid(x.clone());
    B::float_mul(x, s)
}

/// Its gradient from the same operations: g·σ(x)·(1 + x·(1 − σ(x))).
fn composed_backward<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let s = B::sigmoid(x.clone());
    let one_minus_s = B::float_add_scalar(B::float_neg(s.clone()), 1.0f32.into());
    let factor = B::float_add_scalar(B::float_mul(x, one_minus_s), 1.0f32.into());
    B::float_mul(B::float_mul(grad, s), factor)
}

impl SiluBackend for Cube {}

impl SiluBackend for Flex {
    fn silu(x: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return composed::<Self>(x);
        }
        let x = dense(x);
        let mut out = vec![0.0f32; run(&x).len()];
        silu_forward(run(&x), &mut out);
        tensor(out, x.layout().shape().clone())
    }

    fn silu_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        if x.dtype() != DType::F32 || grad.dtype() != DType::F32 || x.layout().shape() != grad.layout().shape() {
            return composed_backward::<Self>(x, grad);
        }
        let (x, grad) = (dense(x), dense(grad));
        let mut out = vec![0.0f32; run(&x).len()];
        silu_gradient(run(&x), run(&grad), &mut out);
        tensor(out, x.layout().shape().clone())
    }
}

impl<B: Backend + SiluBackend + OwnKernels, C: CheckpointStrategy> SiluBackend for Autodiff<B, C> {
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        if !B::OWN {
            return composed::<Self>(x);
        }

        #[derive(Debug)]
        struct Silu;

        impl<B: Backend + SiluBackend> Backward<B, 1> for Silu {
            type State = NodeId;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let x = checkpointer.retrieve_node_output(ops.state);
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::silu_backward(x, grad));
            }
        }

        match Silu
            .prepare::<C>([x.node()])
            .memory_bound()
            .retro_forward(RetroSilu::<B> { input: x.id(), backend: PhantomData })
            .parents([&x])
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                prep.finish(state, B::silu(x.primitive().clone()))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::silu(x.into_primitive())),
        }
    }

    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // Differentiable (a second derivative): burn's composition on the autodiff backend.
        composed_backward::<Self>(x, grad)
    }
}

/// Recomputes SiLU's output when a checkpointing strategy dropped it.
#[derive(Debug, Clone)]
struct RetroSilu<B> {
    input: NodeId,
    backend: PhantomData<B>,
}

impl<B: Backend + SiluBackend> RetroForward for RetroSilu<B> {
    fn forward(&self, states: &mut BackwardStates, out_node: NodeId) {
        let input = states.get_state::<B::FloatTensorPrimitive>(&self.input);
        states.save(out_node, B::silu(input))
    }
}

vectorised!(silu_forward, silu_forward_kernel, (x: &[f32], out: &mut [f32]));
vectorised!(silu_gradient, silu_gradient_kernel, (x: &[f32], grad: &[f32], out: &mut [f32]));

#[inline(always)]
fn silu_forward_kernel(x: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x * sigmoid(x);
    }
}

#[inline(always)]
fn silu_gradient_kernel(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(grad) {
        let s = sigmoid(x);
        *o = g * s * (1.0 + x * (1.0 - s));
    }
}

/// σ(x) = 1 / (1 + e^(−x)).
#[inline(always)]
pub(super) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// e^x to about 2 ulp for finite x, branch-free so that loops over it vectorise (Cephes' `expf`:
/// x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its polynomial, 2^n from the
/// exponent bits). x is clamped to [−87.3, 88.0], where 2^n stays a normal float: below, the result
/// is 1.2e-38 instead of a smaller number or 0; above, 1.7e38 instead of a larger one or ∞. For a
/// sigmoid either end is exact to float precision. NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer in float arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let rounded = x * LOG2_E + ROUND;
    let n = rounded - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    // n itself is in the low bits of `rounded` (its ulp is 1): integer arithmetic on the bits,
    // which vectorises, where `n as i32` (saturating, NaN to 0) became a scalar loop.
    let two_n = f32::from_bits(rounded.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    e_r * two_n
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::sigmoid;
    use burn::tensor::{Device, Distribution, TensorData};

    /// burn's own SiLU, x·σ(x) from its `sigmoid` and `mul`: the reference for ours.
    fn burn_silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
        x.clone() * sigmoid(x)
    }

    fn assert_close(ours: TensorData, reference: TensorData, what: &str) {
        let (ours, reference) = (ours.try_to_vec::<f32>().unwrap(), reference.try_to_vec::<f32>().unwrap());
        assert_eq!(ours.len(), reference.len());
        for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
            // A few ulp of the larger value: the exps differ in their last bits.
            assert!((a - b).abs() <= 8.0 * f32::EPSILON * a.abs().max(b.abs()).max(1.0), "{what}[{i}]: {a} vs burn's {b}");
        }
    }

    /// Forward and gradient on burn-flex (the fused kernels) against burn's composition, for a
    /// contiguous input and a transposed view of one, with autodiff as in training.
    #[test]
    fn fused_silu_matches_burns_composition() {
        let device = Device::flex().autodiff();
        let base = Tensor::<3>::random([4, 37, 29], Distribution::Normal(0.0, 4.0), &device);
        for x in [base.clone(), base.swap_dims(1, 2)] {
            let upstream = Tensor::<3>::random(x.shape(), Distribution::Normal(0.0, 1.0), &device);
            let (a, b) = (x.clone().detach().require_grad(), x.clone().detach().require_grad());
            let ours = silu(a.clone());
            let reference = burn_silu(b.clone());
            assert_close(ours.clone().into_data(), reference.clone().into_data(), "silu");
            let (g_ours, g_ref) = ((ours * upstream.clone()).sum().backward(), (reference * upstream).sum().backward());
            assert_close(a.grad(&g_ours).unwrap().into_data(), b.grad(&g_ref).unwrap().into_data(), "gradient");
        }
    }

    /// Without autodiff (sampling), at the ends of the range, and NaN kept.
    #[test]
    fn fused_silu_at_the_edges() {
        let device = Device::flex();
        let values = [-1e30f32, -200.0, -88.0, -87.0, -20.0, -1.0, -1e-30, 0.0, 1e-30, 1.0, 20.0, 88.0, 200.0, 1e30];
        let x = Tensor::<1>::from_floats(values, &device);
        assert_close(silu(x.clone()).into_data(), burn_silu(x).into_data(), "silu");
        let nan = silu(Tensor::<1>::from_floats([f32::NAN, 1.0], &device)).into_data().try_to_vec::<f32>().unwrap();
        assert!(nan[0].is_nan() && nan[1].is_finite());
    }

    /// The exp against the standard library's over the range SiLU sees in practice and beyond.
    #[test]
    fn exp_is_within_a_few_ulp() {
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let (ours, exact) = (exp(x) as f64, (x as f64).exp());
            assert!(((ours - exact) / exact).abs() < 4.0 * f32::EPSILON as f64, "exp({x}) = {ours}, exactly {exact}");
        }
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(-1000.0), exp(-87.3));
        assert!(exp(1000.0).is_finite());
    }
}
