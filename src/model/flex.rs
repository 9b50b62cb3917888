//! What this crate's CPU kernels (`silu.rs`, `conv.rs`, `group_norm.rs`) share: which backends
//! run them, a float32 tensor's elements as one slice, and the run-time choice of AVX2.

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
