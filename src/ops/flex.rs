//! What this crate's CPU kernels (`silu.rs`, `conv.rs`, `winograd.rs`, `group_norm.rs`) share:
//! which backends run them, a float32 tensor's elements as one slice, images in parallel, matrix
//! products, and the run-time choice of AVX2.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Cube, DType, Flex};
use burn::tensor::{Bytes, Shape};

/// Whether a backend runs this crate's CPU kernels: autodiff then records each as one operation
/// with its own backward; otherwise it differentiates burn's own operations, as before.
pub trait OwnKernels {
    const OWN: bool;
}

impl OwnKernels for Flex {
    const OWN: bool = true;
}

impl OwnKernels for Cube {
    const OWN: bool = false;
}

/// A tensor whose elements are one dense run of its buffer (copied into one if they are not).
pub fn dense(x: FlexTensor) -> FlexTensor {
    if x.layout().is_dense_unique_storage() { x } else { x.to_contiguous() }
}

/// The elements of a dense float32 tensor, in order.
pub fn run(x: &FlexTensor) -> &[f32] {
    let (start, end) = x.layout().contiguous_offsets().expect("a dense tensor");
    &x.storage::<f32>()[start..end]
}

/// A contiguous float32 tensor of these values.
pub fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape.into()), DType::F32)
}

/// The threads images are spread over: rayon's pool natively, one in the tab.
pub fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    1
}

/// Runs `f(item, parallel)` for each image's item: natively, when there are at least as many
/// images as threads, the images in parallel (each product on one thread); otherwise one after
/// another, each product on every thread.
pub fn each_image<T: Send>(items: Vec<T>, f: impl Fn(T, bool) + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    if items.len() >= threads() {
        use rayon::prelude::*;
        items.into_par_iter().for_each(|item| f(item, false));
        return;
    }
    for item in items {
        f(item, true);
    }
}

/// The sum over the items of what `accumulate(state, item, parallel)` adds to the first part
/// of a state from `fresh` (the rest: the worker's own buffers). Natively, with at least as many
/// items as threads, one state per worker, their sums added at the end; otherwise one state, and
/// the products inside on every thread.
pub fn sum_over_images<T: Send, S: Send>(
    items: Vec<T>,
    fresh: impl Fn() -> (Vec<f32>, S) + Sync + Send,
    accumulate: impl Fn(&mut (Vec<f32>, S), T, bool) + Sync + Send,
) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    if items.len() >= threads() {
        use rayon::prelude::*;
        let add = |mut a: Vec<f32>, b: Vec<f32>| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        };
        let fold = |mut state, item| {
            accumulate(&mut state, item, false);
            state
        };
        return items.into_par_iter().fold(&fresh, fold).map(|(sum, _)| sum).reduce_with(add).unwrap_or_else(|| fresh().0);
    }
    let mut state = fresh();
    for item in items {
        accumulate(&mut state, item, true);
    }
    state.0
}

/// out[m×n] += A·B for A m×k and B k×n, each stored row-major as itself or (with `true`) as its
/// transpose; `parallel` lets the product use every thread.
pub fn matmul_accumulate(out: &mut [f32], a: (&[f32], bool), b: (&[f32], bool), dims: [usize; 3], parallel: bool) {
    matmul(out, a, b, dims, parallel, true)
}

/// out[m×n] = A·B, whatever `out` held before.
pub fn matmul_into(out: &mut [f32], a: (&[f32], bool), b: (&[f32], bool), dims: [usize; 3], parallel: bool) {
    matmul(out, a, b, dims, parallel, false)
}

fn matmul(out: &mut [f32], (a, a_t): (&[f32], bool), (b, b_t): (&[f32], bool), [m, k, n]: [usize; 3], parallel: bool, accumulate: bool) {
    assert!(out.len() == m * n && a.len() == m * k && b.len() == k * n, "matmul: sizes do not match");
    #[cfg(not(target_arch = "wasm32"))]
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    #[cfg(target_arch = "wasm32")]
    let parallelism = {
        let _ = parallel;
        gemm::Parallelism::None
    };
    // (column stride, row stride) of a rows×columns matrix stored row-major, or transposed.
    let strides = |columns: usize, rows: usize, transposed: bool| if transposed { (rows as isize, 1) } else { (1, columns as isize) };
    let ((a_cs, a_rs), (b_cs, b_rs)) = (strides(k, m, a_t), strides(n, k, b_t));
    // SAFETY: the three slices hold exactly the m×n, m×k and k×n matrices these strides describe
    // (their lengths are checked above), and `out` does not overlap the inputs.
    unsafe {
        gemm::gemm(
            m, n, k,
            out.as_mut_ptr(), 1, n as isize, accumulate,
            a.as_ptr(), a_cs, a_rs,
            b.as_ptr(), b_cs, b_rs,
            1.0, 1.0, false, false, false, parallelism,
        );
    }
}

/// One loop body per instruction set: the same arithmetic compiled for AVX2 where the CPU has it
/// (8 lanes instead of SSE2's 4), chosen at run time.
macro_rules! vectorised {
    ($name:ident, $kernel:ident, ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    $kernel($($arg),*)
                }
                // SAFETY: the CPU was just found to have AVX2.
                return unsafe { wide($($arg),*) };
            }
            $kernel($($arg),*)
        }
    };
}

pub(crate) use vectorised;
