//! An exponential moving average of the weights, the copy used for sampling (DDPM §4).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// The decay used at `step`: `min(decay, (1 + step) / (10 + step))`, the warm-up of diffusers'
/// `EMAModel`, so short runs (the tab) are not dominated by the random initial weights.
pub fn ema_decay(decay: f64, step: usize) -> f64 {
    decay.min((1.0 + step as f64) / (10.0 + step as f64))
}

/// The decay of Karras et al. 2024's power-function EMA (EDM2, eq. 3) at update `t` (from 1):
/// `(1 − 1/t)^(γ+1)`. Then the average weighs the weights of step τ ≤ t by τ^γ: its length grows
/// with the run instead of being fixed, so a short run and a long one are averaged alike. EDM2
/// gives its length as σ_rel, the profile's standard deviation over t:
/// `σ_rel² = (γ+1) / ((γ+2)² (γ+3))`, so γ = 6.94 is σ_rel = 0.10 and γ = 16.97 is 0.05.
pub fn power_ema_decay(gamma: f64, t: usize) -> f64 {
    (1.0 - 1.0 / t.max(1) as f64).powf(gamma + 1.0)
}

/// Collects every float parameter, flattened, in visiting order.
struct Collect(Vec<Tensor<1>>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().flatten(0, D - 1));
    }
}

/// Replaces every float parameter `e` with `decay · e + (1 − decay) · p`, in the same order.
struct Blend {
    current: std::vec::IntoIter<Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let current = self.current.next().expect("EMA and model have the same parameters");
        let decay = self.decay;
        param.map(|ema| {
            let shape = ema.shape();
            let blended = ema.mul_scalar(decay) + current.reshape(shape).mul_scalar(1.0 - decay);
            blended.detach()
        })
    }
}

/// `ema ← decay · ema + (1 − decay) · model`. `model` may live on an autodiff device; the
/// average takes its values only (no graph).
pub fn update_ema<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut collect = Collect(Vec::new());
    model.valid().visit(&mut collect);
    let mut blend = Blend { current: collect.0.into_iter(), decay };
    ema.map(&mut blend)
}
