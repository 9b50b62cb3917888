//! Parameter ids that are the same in every process.
//!
//! burn keys the optimizer's state (Adam's moments and step count) by `ParamId`, and a fresh
//! id is random per process. Deriving each id from the parameter's module path makes a saved
//! optimizer state apply to the same parameters after a restart.

use burn::module::{ModuleMapper, Param, ParamId};
use burn::tensor::Tensor;

/// Replaces every parameter's id with a hash (FNV-1a, 64 bit) of its module path.
#[derive(Default)]
pub struct StableIds(Vec<String>);

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl ModuleMapper for StableIds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.0.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.0.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        Param::from_mapped_value(ParamId::from(fnv1a(&self.0.join("."))), value, mapper)
    }
}
