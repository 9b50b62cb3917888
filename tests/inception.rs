//! Our FID Inception-v3 against pytorch-fid's: `scripts/fixtures/inception_fixtures.py` ran
//! `pytorch_fid.inception.InceptionV3([3])` (pytorch-fid 0.3.0, its own constructor, with the
//! weight download replaced by a formula) on two images and kept the state dict's names and
//! shapes and the 2048-d features in tests/fixtures/inception/. The formula is repeated here, so
//! the same weights go into our network by the same names.

use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use tabdiffusion::checkpoint::Tensors;
use tabdiffusion::features::FidInception;
use tabdiffusion::features::inception::FEATURES;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture present")).expect("fixture is JSON")
}

/// scripts/fixtures/inception_fixtures.py's `formula`: element i of tensor `name` is
/// u = ((i · 2654435761 + seed) mod 2³²) / 2³² − ½ with seed = 40503 · Σ bytes(name) mod 2³²,
/// scaled by kind.
fn formula(name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let seed = (40503 * name.bytes().map(u64::from).sum::<u64>()) % (1 << 32);
    (0..n as u64)
        .map(|i| {
            let u = ((i * 2_654_435_761 + seed) % (1 << 32)) as f64 / 2f64.powi(32) - 0.5;
            let v = if name.ends_with("conv.weight") {
                let fan_in: usize = shape[1..].iter().product();
                u * (24.0 / fan_in as f64).sqrt()
            } else if name.ends_with("bn.weight") {
                1.0 + 0.2 * u
            } else if name.ends_with("bn.running_var") {
                1.0 + 0.5 * (u + 0.5)
            } else if name.ends_with("bn.bias") || name.ends_with("bn.running_mean") {
                0.2 * u
            } else {
                0.01 * u
            };
            v as f32
        })
        .collect()
}

fn formula_state_dict() -> Tensors {
    let shapes = fixture("state_dict_shapes.json");
    shapes
        .as_object()
        .expect("an object of shapes")
        .iter()
        .map(|(name, shape)| {
            let shape: Vec<usize> = shape.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            (name.clone(), (shape.clone(), formula(name, &shape)))
        })
        .collect()
}

#[test]
fn features_equal_pytorch_fids() {
    let device = Device::flex();
    let net = FidInception::from_state_dict(&formula_state_dict(), &device).expect("every tensor fits");
    let reference = fixture("features.json");
    let shape: Vec<usize> = reference["images_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    // pytorch-fid read levels / 255 in [0, 1] and scaled to [−1, 1]; we take [−1, 1] directly.
    let pixels: Vec<f32> =
        reference["images_levels"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32 / 127.5 - 1.0).collect();
    let images = Tensor::<4>::from_data(TensorData::new(pixels, [shape[0], shape[1], shape[2], shape[3]]), &device);
    let ours = net.features(images.clone()).into_data().try_to_vec::<f32>().unwrap();
    let theirs: Vec<f32> = reference["features"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
        .collect();
    assert_eq!(ours.len(), 2 * FEATURES);
    let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(scale > 0.01, "the fixture's features are not all near zero (max {scale})");
    eprintln!("max difference {worst}, features up to {scale}");
    // Measured: 8.9e-8 at features up to 0.23, 3.8e-7 of their size (float32 sums in
    // another order than PyTorch's); asserted 1e-6 of their size, so that any real difference
    // (a pool counting its padding is off by 1.3e-3) fails.
    assert!(worst < 1e-6 * scale, "max difference {worst}, features up to {scale}");

    // A gray image is the RGB image of three equal channels.
    let gray = images.clone().slice([0..2, 0..1]);
    let rgb = gray.clone().repeat_dim(1, 3);
    let (a, b) = (net.features(gray).into_data().try_to_vec::<f32>().unwrap(), net.features(rgb).into_data().try_to_vec::<f32>().unwrap());
    assert_eq!(a, b);
}

#[test]
fn wrong_weight_files_are_named() {
    let device = Device::flex();
    let mut state = formula_state_dict();
    // torchvision's ImageNet weights: the same convolutions, 1000 classes.
    let mut imagenet = state.clone();
    imagenet.insert("fc.weight".into(), (vec![1000, FEATURES], vec![0.0; 1000 * FEATURES]));
    let err = FidInception::from_state_dict(&imagenet, &device).unwrap_err().to_string();
    assert!(err.contains("not pytorch-fid's FID weights"), "{err}");
    // A missing layer and a stray one.
    state.remove("Mixed_7c.branch_pool.bn.running_mean");
    state.insert("AuxLogits.fc.weight".into(), (vec![2], vec![0.0, 0.0]));
    let err = FidInception::from_state_dict(&state, &device).unwrap_err().to_string();
    assert!(err.contains("missing Mixed_7c.branch_pool.bn.running_mean"), "{err}");
    state.remove("Mixed_7c.branch_pool.conv.weight");
    let err = FidInception::from_state_dict(&state, &device).unwrap_err().to_string();
    assert!(err.contains("missing") && err.contains("mixed_7c.branch_pool.conv.weight"), "{err}");
    assert!(err.contains("unexpected") && err.contains("AuxLogits.fc.weight"), "{err}");
}

/// The CLI measures in these features with `eval --inception FILE` (a .pth, or the same state
/// dict as .safetensors, which is what this test can write).
#[test]
fn eval_measures_in_inception_features() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("inception.safetensors");
    let state = formula_state_dict();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = state
        .iter()
        .map(|(name, (shape, values))| (name.clone(), shape.clone(), values.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            (name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data).unwrap())
        })
        .collect();
    std::fs::write(&weights, safetensors::serialize(views, None).unwrap()).unwrap();

    let run = |extra: &[&str]| {
        let mut args = vec!["eval", "--model", "tiny", "--data", "www/data/mnist", "--inception", weights.to_str().unwrap()];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_tabdiffusion"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let out = run(&["--count", "8", "--batch", "8", "--sampler", "ddim", "--steps", "2", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["features"], "Inception-v3 (pytorch-fid weights, 2048-d pool features)");
    // An untrained model's noise is farther from the test digits than training digits are.
    let (fid, floor) = (report["fid"].as_f64().unwrap(), report["floor_fid"].as_f64().unwrap());
    assert!(fid > floor && floor >= 0.0, "FID {fid}, floor {floor}");

    let out = run(&["--count", "8", "--guidance", "2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("give --classifier, not --inception"));
}
