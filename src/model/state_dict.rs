//! A module's parameters as PyTorch names them (its state dict): the mapping between burn's
//! module tree and named tensors, which every weights format (ours, diffusers, a `.pth`) goes
//! through. A leaf: it knows modules and tensors, no file format.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};

/// Named `f32` tensors: shape (PyTorch layout) and values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Why named tensors and a module did not go together.
#[derive(Debug, thiserror::Error)]
pub enum StateDictError {
    /// Names or shapes differ (the first differences are listed).
    #[error("the weights do not match the model config: {0}")]
    Mismatch(String),
    /// The device would not give the values back.
    #[error("could not read the weights from the device: {0}")]
    Device(String),
}

/// The state-dict name of a parameter path.
fn state_dict_name(path: &[String]) -> String {
    let mut parts: Vec<&str> = path.iter().map(String::as_str).collect();
    if let Some(last) = parts.last_mut() {
        *last = match *last {
            "gamma" => "weight",
            "beta" => "bias",
            other => other,
        };
    }
    parts.join(".")
}

/// Tracks the module path during a visit or a map, and the type of the innermost module.
#[derive(Default)]
struct Path {
    names: Vec<String>,
    containers: Vec<String>,
}

impl Path {
    fn enter(&mut self, name: &str, container_type: &str) {
        self.names.push(name.to_string());
        self.containers.push(container_type.to_string());
    }
    fn exit(&mut self) {
        self.names.pop();
        self.containers.pop();
    }
    fn name(&self) -> String {
        state_dict_name(&self.names)
    }
    /// Whether a 2-D parameter here is stored transposed relative to PyTorch: burn's Linear
    /// keeps `[in, out]` where PyTorch keeps `[out, in]`; an Embedding is `[labels, dim]` in both.
    fn transposed(&self) -> bool {
        self.containers.last().is_none_or(|c| c != "Struct:Embedding")
    }
}

/// Every float parameter: its name, its PyTorch-layout shape and its values as a flat tensor.
struct Collect {
    path: Path,
    out: Vec<(String, Vec<usize>, Tensor<1>)>,
}

impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        // burn's Linear stores [in, out]; PyTorch stores [out, in].
        let value = if D == 2 && self.path.transposed() { value.transpose() } else { value };
        let shape = value.dims().to_vec();
        self.out.push((self.path.name(), shape, value.flatten(0, D - 1)));
    }
}

/// A float tensor's values, read back from its device asynchronously: the one way the crate
/// reads a device (a synchronous read panics on WebGPU in the browser).
pub async fn read_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, StateDictError> {
    let data = tensor.into_data_async().await.map_err(|e| StateDictError::Device(format!("{e:?}")))?;
    data.try_to_vec::<f32>().map_err(|e| StateDictError::Device(format!("{e:?}")))
}

/// Every float parameter of a module: its state-dict name, PyTorch-layout shape and values.
/// Reads the device asynchronously (the browser's sync reads panic).
pub async fn named_tensors<M: Module>(module: &M) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>, StateDictError> {
    let mut collect = Collect { path: Path::default(), out: Vec::new() };
    module.visit(&mut collect);
    let mut tensors = Vec::with_capacity(collect.out.len());
    for (name, shape, flat) in collect.out {
        tensors.push((name, shape, read_values(flat).await?));
    }
    Ok(tensors)
}

/// Writes named tensors into a freshly built module, after checking that every name and shape
/// matches (the first mismatches are listed).
pub fn load_tensors<M: Module>(module: M, tensors: &Tensors, device: &Device) -> Result<M, StateDictError> {
    let mut collect = Collect { path: Path::default(), out: Vec::new() };
    module.visit(&mut collect);
    let expected: BTreeMap<String, Vec<usize>> = collect.out.into_iter().map(|(name, shape, _)| (name, shape)).collect();
    let missing: Vec<&String> = expected.keys().filter(|n| !tensors.contains_key(*n)).collect();
    let unexpected: Vec<&String> = tensors.keys().filter(|n| !expected.contains_key(*n)).collect();
    let shapes: Vec<String> = expected
        .iter()
        .filter_map(|(name, shape)| {
            let (found, _) = tensors.get(name)?;
            (found != shape).then(|| format!("{name} is {found:?}, expected {shape:?}"))
        })
        .collect();
    let problems: Vec<String> =
        [list("missing", &missing), list("unexpected", &unexpected), list("wrong shape", &shapes)]
            .into_iter()
            .flatten()
            .collect();
    if !problems.is_empty() {
        return Err(StateDictError::Mismatch(problems.join(". ")));
    }
    let mut load = Load { path: Path::default(), tensors, device: device.clone() };
    Ok(module.map(&mut load))
}

/// Writes a checkpoint's tensors into a freshly built model, keeping its parameter ids.
struct Load<'a> {
    path: Path,
    tensors: &'a Tensors,
    device: Device,
}

impl ModuleMapper for Load<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (shape, values) = &self.tensors[&self.path.name()]; // names checked beforehand
        let device = self.device.clone();
        // Transposed on the host, so the tensor is contiguous exactly as a trained one is (a
        // transposed view would change the matmul's summation order and the last bits).
        let data = if D == 2 && self.path.transposed() {
            let (rows, cols) = (shape[0], shape[1]);
            let transposed = (0..rows * cols).map(|k| values[(k % rows) * cols + k / rows]).collect();
            TensorData::new(transposed, [cols, rows])
        } else {
            TensorData::new(values.clone(), shape.clone())
        };
        param.map(|_| Tensor::<D>::from_data(data, &device))
    }
}

const SHOW: usize = 5;

fn list<T: std::fmt::Display>(what: &str, items: &[T]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let shown: Vec<String> = items.iter().take(SHOW).map(|i| i.to_string()).collect();
    let more = if items.len() > SHOW { format!(" and {} more", items.len() - SHOW) } else { String::new() };
    Some(format!("{what}: {}{more}", shown.join("; ")))
}

