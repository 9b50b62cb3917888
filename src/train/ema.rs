//! An exponential moving average of the weights, the copy used for sampling (DDPM §4).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

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
