//! Fresh weights from a seed. burn draws random numbers from one generator per process, and
//! draws each parameter's initial value lazily, at its first use. Seeding that generator and
//! drawing a model is one act here: under one lock, with every parameter drawn before the lock
//! is let go. Two seeded models made at once (two tests, two trainers) then never interleave
//! their draws, and one seed gives one set of weights.

use std::sync::{Mutex, PoisonError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

/// Seeds `device`'s generator with `seed` and makes the model `init` returns, every parameter
/// drawn. Draws made elsewhere without this (a test's random input) can still fall between.
pub fn init_seeded<M: Module>(device: &Device, seed: u64, init: impl FnOnce() -> M) -> M {
    static DRAWING: Mutex<()> = Mutex::new(());
    let _drawing = DRAWING.lock().unwrap_or_else(PoisonError::into_inner);
    device.seed(seed);
    let model = init();
    model.visit(&mut DrawEach);
    model
}

/// Reads every float parameter once, which draws the ones still lazy.
struct DrawEach;

impl ModuleVisitor for DrawEach {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DenoiserConfig, Preset};

    struct Drawn(Vec<bool>);

    impl ModuleVisitor for Drawn {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.is_initialized());
        }
    }

    /// Every parameter is drawn before the lock is let go: none is left for its first use, when
    /// another thread may have drawn from the generator since the seed. (Many threads at once:
    /// tests/seeded.rs, in a process of its own.)
    #[test]
    fn every_parameter_is_drawn_under_the_lock() {
        let device = Device::flex();
        let lazy = Preset::Tiny.config().init_denoiser(&device);
        let mut drawn = Drawn(Vec::new());
        lazy.visit(&mut drawn);
        assert!(drawn.0.iter().all(|d| !d), "burn draws weights lazily: a fresh model has none drawn");
        let seeded = init_seeded(&device, 3, || Preset::Tiny.config().init_denoiser(&device));
        let mut drawn = Drawn(Vec::new());
        seeded.visit(&mut drawn);
        assert!(!drawn.0.is_empty() && drawn.0.iter().all(|d| *d));
    }
}
