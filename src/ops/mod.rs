//! Our CPU kernels for burn-flex (convolution, Winograd, GroupNorm, SiLU), behind the ops the
//! networks call: on other backends each op is burn's own.

mod conv;
mod flex;
mod group_norm;
mod silu;
mod winograd;

pub use conv::conv2d;
pub use group_norm::{group_norm, group_norm_silu};
pub use silu::silu;
