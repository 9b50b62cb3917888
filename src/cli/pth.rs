//! Reading a PyTorch state dict (`.pth`, as `torch.save` writes it, zip or legacy format) into
//! named `f32` tensors, with burn's `pytorch-reader`; a `.safetensors` file of the same state
//! dict also reads. Used for pytorch-fid's Inception weights.

use std::path::Path;

use pytorch_reader::{DType, PytorchReader};
use safetensors::Dtype;

use super::{CliResult, read_file};
use crate::checkpoint::{self, Tensors, float_values};
use crate::limits;

/// Every floating-point tensor of the file, as `f32` (PyTorch layout). Integer tensors (a
/// BatchNorm's `num_batches_tracked`) are left out. The file's size, its number of tensors and
/// each tensor's size (from the shape the pickle declares, before its bytes are read) are
/// checked against [`limits`]; a panic inside the third-party pickle reader is reported as an
/// unreadable file.
pub fn read_state_dict(path: &Path) -> CliResult<Tensors> {
    let what = |e: &dyn std::fmt::Display| format!("{}: not a readable PyTorch file ({e})", path.display());
    let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
    limits::at_most("file bytes", size, limits::MAX_WEIGHTS_FILE_BYTES).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut tensors = Tensors::new();
    if path.extension().is_some_and(|e| e == "safetensors") {
        let bytes = read_file(path)?;
        let (file, _) = checkpoint::parse_safetensors(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        for (name, view) in file.tensors() {
            if let Some(values) = float_values(view.dtype(), view.data()) {
                tensors.insert(name, (view.shape().to_vec(), values));
            }
        }
    } else {
        let read_all = || -> CliResult<Tensors> {
            let reader = PytorchReader::new(path).map_err(|e| what(&e))?;
            limits::at_most("tensors", reader.len(), limits::MAX_TENSORS).map_err(|e| what(&e))?;
            let mut tensors = Tensors::new();
            for (name, tensor) in reader.tensors() {
                // The same little-endian layouts under safetensors' names.
                let (dtype, size) = match tensor.dtype() {
                    DType::F64 => (Dtype::F64, 8),
                    DType::F32 => (Dtype::F32, 4),
                    DType::F16 => (Dtype::F16, 2),
                    DType::BF16 => (Dtype::BF16, 2),
                    _ => continue,
                };
                let dims: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).chain([size]).collect();
                limits::product_at_most(&format!("tensor {name}: bytes"), &dims, limits::MAX_TENSOR_BYTES)
                    .map_err(|e| what(&e))?;
                let bytes = tensor.read().map_err(|e| what(&e))?;
                let values = float_values(dtype, &bytes).expect("a floating-point dtype");
                tensors.insert(name.clone(), (tensor.shape().to_vec(), values));
            }
            Ok(tensors)
        };
        tensors = std::panic::catch_unwind(read_all).unwrap_or_else(|_| Err(what(&"the pickle reader gave up on it")))?;
    }
    if tensors.is_empty() {
        return Err(format!("{}: the file holds no floating-point tensors", path.display()));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by scripts/fixtures/inception_fixtures.py with torch.save, in both container formats:
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
        // times √(24 / 27) (scripts/fixtures/inception_fixtures.py).
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
