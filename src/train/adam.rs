//! Adam (Kingma & Ba 2015, Algorithm 1) with PyTorch's global gradient-norm clipping.
//!
//! Written here rather than taken from burn because a training run must be saved in the
//! browser: burn's optimizer reads its state synchronously (which WebGPU in wasm forbids) and
//! keys it by per-process random parameter ids. Here the moments are plain tensors keyed by
//! module path (`down_blocks.0.resnets.1.conv1.weight`), read back with the async API.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Adam's settings and its state: the step count and both moments of every parameter.
#[derive(Clone, Debug)]
pub struct Adam {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    /// Scale all gradients together so their global L2 norm is at most this (PyTorch's
    /// `clip_grad_norm_`; DDPM clips at 1.0). `None`: no clipping.
    pub max_grad_norm: Option<f64>,
    /// Steps taken (t in Algorithm 1).
    pub time: usize,
    /// (m, v) of each parameter by module path, flattened, on the plain (non-autodiff) device.
    moments: BTreeMap<String, (Tensor<1>, Tensor<1>)>,
}

/// Module paths joined with dots, as [`ModuleMapper`] and [`ModuleVisitor`] enter them.
#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn key(&self) -> String {
        self.0.join(".")
    }
}

/// Σ‖g‖² over every parameter that has a gradient, as a `[1]` tensor (no read-back).
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: Option<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(grad) = self.grads.get::<D>(param.id) {
            let squares = grad.square().sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// One Adam update of every parameter with a gradient.
struct Step<'a> {
    adam: &'a mut Adam,
    grads: GradientsParams,
    /// min(1, c / (‖g‖ + 1e-6)), broadcast over each gradient.
    clip: Option<Tensor<1>>,
    learning_rate: f64,
    path: Path,
}

impl ModuleMapper for Step<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, value, mapper);
        };
        let adam = &mut *self.adam;
        let (shape, require_grad) = (value.shape(), value.is_require_grad());
        let mut g: Tensor<1> = grad.flatten(0, D - 1);
        if let Some(clip) = &self.clip {
            g = g * clip.clone();
        }
        // m_t = β1 m + (1 − β1) g,  v_t = β2 v + (1 − β2) g²   (Algorithm 1; m_0 = v_0 = 0)
        let key = self.path.key();
        let (m, v) = match adam.moments.remove(&key) {
            Some((m, v)) => (
                m.mul_scalar(adam.beta_1) + g.clone().mul_scalar(1.0 - adam.beta_1),
                v.mul_scalar(adam.beta_2) + g.square().mul_scalar(1.0 - adam.beta_2),
            ),
            None => (g.clone().mul_scalar(1.0 - adam.beta_1), g.square().mul_scalar(1.0 - adam.beta_2)),
        };
        // θ ← θ − α m̂ / (√v̂ + ε),  m̂ = m / (1 − β1^t),  v̂ = v / (1 − β2^t)
        let t = adam.time as i32;
        let (c1, c2) = (1.0 - adam.beta_1.powi(t), 1.0 - adam.beta_2.powi(t));
        let update = m.clone().div_scalar(c1) / v.clone().div_scalar(c2).sqrt().add_scalar(adam.epsilon);
        let updated = value.inner() - update.reshape(shape).mul_scalar(self.learning_rate);
        adam.moments.insert(key, (m, v));
        let updated = Tensor::from_inner(updated);
        Param::from_mapped_value(id, if require_grad { updated.require_grad() } else { updated }, mapper)
    }
}

impl Adam {
    /// PyTorch's defaults (β = 0.9, 0.999; ε = 1e-8), no clipping, no state.
    pub fn new() -> Self {
        Self { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, max_grad_norm: None, time: 0, moments: BTreeMap::new() }
    }

    pub fn with_beta_2(mut self, beta_2: f64) -> Self {
        self.beta_2 = beta_2;
        self
    }

    pub fn with_max_grad_norm(mut self, max_grad_norm: Option<f64>) -> Self {
        self.max_grad_norm = max_grad_norm;
        self
    }

    /// One step on `module` (on an autodiff device) with its gradients.
    pub fn step<M: Module>(&mut self, learning_rate: f64, module: M, grads: GradientsParams) -> M {
        self.time += 1;
        let clip = self.max_grad_norm.and_then(|max_norm| {
            let mut norm = SquaredNorm { grads: &grads, total: None };
            module.visit(&mut norm);
            // clip_coef = max_norm / (‖g‖ + 1e-6), clamped to 1 (torch.nn.utils.clip_grad_norm_)
            norm.total.map(|total| total.sqrt().add_scalar(1e-6).recip().mul_scalar(max_norm).clamp_max(1.0))
        });
        let mut step = Step { adam: self, grads, clip, learning_rate, path: Path::default() };
        module.map(&mut step)
    }

    /// The moments as named flat tensors (`m.{path}`, `v.{path}`), for saving.
    pub fn moments(&self) -> Vec<(String, Tensor<1>)> {
        self.moments
            .iter()
            .flat_map(|(path, (m, v))| [(format!("m.{path}"), m.clone()), (format!("v.{path}"), v.clone())])
            .collect()
    }

    /// Restores moments saved by [`Adam::moments`] after `time` steps. Every parameter of
    /// `module` must have both moments of its size; anything else is an error that names it.
    pub fn load_moments<M: Module>(&mut self, module: &M, time: usize, mut saved: BTreeMap<String, Tensor<1>>) -> Result<(), String> {
        struct Sizes(Path, Vec<(String, usize)>);
        impl ModuleVisitor for Sizes {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.0.enter(name);
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.0.exit();
            }
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.1.push((self.0.key(), param.shape().num_elements()));
            }
        }
        let mut sizes = Sizes(Path::default(), Vec::new());
        module.visit(&mut sizes);
        let mut moments = BTreeMap::new();
        for (path, size) in sizes.1 {
            let mut take = |kind: &str| -> Result<Tensor<1>, String> {
                let name = format!("{kind}.{path}");
                let tensor = saved.remove(&name).ok_or_else(|| format!("Adam's {name} is missing"))?;
                match tensor.dims() {
                    [n] if n == size => Ok(tensor),
                    [n] => Err(format!("Adam's {name} has {n} values; the parameter has {size}")),
                }
            };
            let pair = (take("m")?, take("v")?);
            moments.insert(path, pair);
        }
        if let Some(name) = saved.keys().next() {
            return Err(format!("Adam's {name} belongs to no parameter of this model"));
        }
        self.moments = moments;
        self.time = time;
        Ok(())
    }
}

impl Default for Adam {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::{Device, TensorData};

    use super::*;

    #[derive(Module, Debug)]
    struct Net {
        layer: Linear,
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.into_data().convert::<f64>().try_to_vec::<f64>().unwrap()
    }

    /// Adam on one scalar, in f64, exactly as Kingma & Ba 2015 write Algorithm 1.
    fn reference(mut theta: f64, grads: &[f64], lr: f64, b2: f64) -> f64 {
        let (b1, eps) = (0.9f64, 1e-8);
        let (mut m, mut v) = (0.0, 0.0);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            theta -= lr * (m / (1.0 - b1.powi(t))) / ((v / (1.0 - b2.powi(t))).sqrt() + eps);
        }
        theta
    }

    /// A net y = W x + b whose loss is `scale · (y · 1)`: dL/dW_ij = scale · x_j, dL/db = scale.
    fn run(scales: &[f64], mut adam: Adam) -> (Net, Adam, Vec<f64>, Vec<f64>) {
        let device = Device::flex().autodiff();
        let mut net = Net { layer: LinearConfig::new(3, 2).init(&device) };
        let start = values(net.layer.weight.val()).into_iter().chain(values(net.layer.bias.clone().unwrap().val())).collect();
        let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, -2.0, 4.0], [1, 3]), &device);
        for &scale in scales {
            let loss = net.layer.forward(x.clone()).sum().mul_scalar(scale);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = adam.step(0.01, net, grads);
        }
        let end = values(net.layer.weight.val()).into_iter().chain(values(net.layer.bias.clone().unwrap().val())).collect();
        (net, adam, start, end)
    }

    /// With PyTorch's β₂ = 0.999 and EDM2's 0.99 (whose three steps here differ from 0.999's by
    /// 1.3e-5 per parameter, 13 times the tolerance).
    #[test]
    fn steps_follow_algorithm_1() {
        let scales = [1.0, -0.5, 2.0];
        for beta_2 in [0.999, 0.99] {
            let (_, adam, start, end) = run(&scales, Adam::new().with_beta_2(beta_2));
            assert_eq!(adam.time, 3);
            // Weight (i, j) has gradient scale · x_j; the bias, scale. Burn's Linear weight is [in, out].
            let x = [0.5, -2.0, 4.0];
            for (k, (&s, &e)) in start.iter().zip(&end).enumerate() {
                let input = if k < 6 { x[k / 2] } else { 1.0 };
                let expected = reference(s, &scales.map(|c| c * input), 0.01, beta_2);
                assert!((e - expected).abs() < 1e-6, "β₂ {beta_2}, parameter {k}: {e} vs Algorithm 1's {expected}");
            }
        }
    }

    #[test]
    fn clipping_scales_all_gradients_by_the_global_norm() {
        // ‖g‖ = √(2 · (0.25 + 4 + 16) + 2) = √42.5 > 1: every gradient is scaled by 1 / √42.5
        // (clip_grad_norm_). One Adam step moves each parameter by lr · ĝ / (|ĝ| + ε), so the
        // effect shows on the second step, whose gradients differ.
        let x = [0.5, -2.0, 4.0];
        let norm = |scale: f64| (scale * scale * 42.5f64).sqrt();
        let scales = [1.0, 0.01];
        let (_, _, start, end) = run(&scales, Adam::new().with_max_grad_norm(Some(1.0)));
        for (k, (&s, &e)) in start.iter().zip(&end).enumerate() {
            let input = if k < 6 { x[k / 2] } else { 1.0 };
            let clipped = scales.map(|c| c * input * (1.0 / (norm(c) + 1e-6)).min(1.0));
            let expected = reference(s, &clipped, 0.01, 0.999);
            assert!((e - expected).abs() < 1e-6, "parameter {k}: {e} vs {expected}");
        }
    }

    #[test]
    fn moments_round_trip_by_path_and_mismatches_are_named() {
        let (net, adam, _, _) = run(&[1.0, 2.0], Adam::new());
        let saved: BTreeMap<String, Tensor<1>> = adam.moments().into_iter().collect();
        let names: Vec<&str> = saved.keys().map(String::as_str).collect();
        assert_eq!(names, ["m.layer.bias", "m.layer.weight", "v.layer.bias", "v.layer.weight"]);
        let mut restored = Adam::new();
        restored.load_moments(&net, adam.time, saved.clone()).unwrap();
        assert_eq!(restored.time, 2);
        for ((_, a), (_, b)) in adam.moments().into_iter().zip(restored.moments()) {
            assert_eq!(values(a), values(b));
        }
        let mut missing = saved.clone();
        missing.remove("v.layer.bias");
        assert!(Adam::new().load_moments(&net, 2, missing).unwrap_err().contains("v.layer.bias is missing"));
        let mut wrong = saved;
        wrong.insert("m.layer.bias".into(), Tensor::zeros([5], &Device::flex()));
        assert!(Adam::new().load_moments(&net, 2, wrong).unwrap_err().contains("has 5 values"));
    }
}
