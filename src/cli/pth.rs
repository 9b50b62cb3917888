//! Reading a PyTorch state dict (`.pth`, as `torch.save` writes it, zip or legacy format) into
//! named `f32` tensors, with burn's `pytorch-reader`; a `.safetensors` file of the same state
//! dict also reads. Used for pytorch-fid's Inception weights.

use std::path::Path;

use pytorch_reader::{DType, PytorchReader};
use safetensors::{Dtype, SafeTensors};

use super::{CliResult, read};
use crate::checkpoint::{Tensors, float_values};

/// Every floating-point tensor of the file, as `f32` (PyTorch layout). Integer tensors (a
/// BatchNorm's `num_batches_tracked`) are left out.
pub fn read_state_dict(path: &Path) -> CliResult<Tensors> {
    let what = |e: &dyn std::fmt::Display| format!("{}: not a readable PyTorch file ({e})", path.display());
    let mut tensors = Tensors::new();
    if path.extension().is_some_and(|e| e == "safetensors") {
        let bytes = read(path)?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| format!("{}: not a readable .safetensors file ({e})", path.display()))?;
        for (name, view) in file.tensors() {
            if let Some(values) = float_values(view.dtype(), view.data()) {
                tensors.insert(name, (view.shape().to_vec(), values));
            }
        }
    } else {
        let reader = PytorchReader::new(path).map_err(|e| what(&e))?;
        for (name, tensor) in reader.tensors() {
            // The same little-endian layouts under safetensors' names.
            let dtype = match tensor.dtype() {
                DType::F64 => Dtype::F64,
                DType::F32 => Dtype::F32,
                DType::F16 => Dtype::F16,
                DType::BF16 => Dtype::BF16,
                _ => continue,
            };
            let bytes = tensor.read().map_err(|e| what(&e))?;
            let values = float_values(dtype, &bytes).expect("a floating-point dtype");
            tensors.insert(name.clone(), (tensor.shape().to_vec(), values));
        }
    }
    if tensors.is_empty() {
        return Err(format!("{}: the file holds no floating-point tensors", path.display()));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by scripts/inception_fixtures.py with torch.save, in both container formats:
    /// a [4, 3, 3, 3] and a [4] float32 tensor from the fixture formula, and an int64 scalar.
    #[test]
    fn reads_zip_and_legacy_pth_files_alike() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception");
        let zip = read_state_dict(&dir.join("small-zip.pth")).unwrap();
        let legacy = read_state_dict(&dir.join("small-legacy.pth")).unwrap();
        assert_eq!(zip, legacy);
        assert_eq!(zip.keys().collect::<Vec<_>>(), ["Conv2d_1a_3x3.bn.running_var", "Conv2d_1a_3x3.conv.weight"]);
        let (shape, weight) = &zip["Conv2d_1a_3x3.conv.weight"];
        assert_eq!(shape, &[4, 3, 3, 3]);
        // The formula's element 0: u = seed / 2^32 − ½, seed = 40503 · Σ bytes mod 2^32,
        // times √(24 / 27) (scripts/inception_fixtures.py).
        let seed = (40503u64 * "Conv2d_1a_3x3.conv.weight".bytes().map(u64::from).sum::<u64>()) % (1 << 32);
        let u = seed as f64 / 2f64.powi(32) - 0.5;
        assert_eq!(weight[0], (u * (24.0f64 / 27.0).sqrt()) as f32);
    }

    #[test]
    fn other_files_get_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.pth");
        std::fs::write(&path, b"not a checkpoint at all").unwrap();
        let err = read_state_dict(&path).unwrap_err();
        assert!(err.contains("not a readable PyTorch file"), "{err}");
        let missing = read_state_dict(&dir.path().join("nowhere.pth")).unwrap_err();
        assert!(missing.contains("nowhere.pth"), "{missing}");
    }
}
