//! What training and sampling need of a network: its output at x_t (ε, x_0 or v, as the
//! schedule's prediction type says) for a batch of one timestep per item. The U-Net and the
//! playground's point MLP are both denoisers, so one trainer and one set of samplers serve both.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

/// A network that predicts from x_t: `[B, C, H, W]` in, the same shape out.
pub trait Denoiser: Module {
    /// The prediction at `x_t` for one timestep per item and, for a class-conditional network,
    /// one class label per item (`None`: the null class).
    fn denoise(&self, x_t: Tensor<4>, timesteps: &[usize], classes: Option<&[usize]>) -> Tensor<4>;

    /// The label that means "no class" (classifier-free guidance) of a class-conditional
    /// network; `None` for an unconditional one.
    fn null_class(&self) -> Option<usize> {
        None
    }
}

/// The architecture of a [`Denoiser`]: what a trainer starts fresh weights from.
pub trait DenoiserConfig: Clone + std::fmt::Debug {
    type Model: Denoiser;

    /// Fresh weights on `device`, drawn from the device's seeded generator.
    fn init_denoiser(&self, device: &Device) -> Self::Model;

    /// The null class of a class-conditional network (see [`Denoiser::null_class`]).
    fn null_class(&self) -> Option<usize> {
        None
    }
}
