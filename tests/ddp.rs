//! A run moves to PyTorch DDP and back (docs/scale.md, "Bigger than one machine"):
//! `scripts/cluster/train.py` continues a training state of ours on several processes with the
//! gloo backend (real DDP across processes, on the CPU), and writes the same format, which our
//! trainer, `train --resume` and `sample` take again.
//!
//! Every test but the first needs the DDP venv (`scripts/cluster/venv`, torch + diffusers,
//! outside the clone), so they are `#[ignore]`d in a plain `cargo test`; scripts/test's DDP stage
//! runs them where the venv exists:
//!
//! ```sh
//! scripts/cluster/venv                                           # once: creates $CACHE/ddp-venv
//! cargo test --release --test ddp -- --ignored --test-threads 1
//! ```
//!
//! Our random stream (ChaCha8, a ziggurat normal, rand's index draws) is not torch's, so where
//! a test compares the two sides step by step it feeds PyTorch the x_0, t and ε our trainer drew,
//! from files, as tests/lockstep.rs does; the tolerances are those of float32 sums in another
//! order, measured (printed by each test) and bounded with a margin.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::digits::{CONFIDENT, Judge, samples};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use tabdiffusion::checkpoint::{ModelSource, Tensors, named_tensors};
use tabdiffusion::data::{ImageSet, Manifest, decode_tile, encode_npy, tile_count};
use tabdiffusion::diffusion::{RandomStream, Schedule};
use tabdiffusion::model::UNetConfig;
use tabdiffusion::spec::RunSpec;
use tabdiffusion::train::{SavedState, TrainedExample, Trainer, state_metadata};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The DDP venv's python: `$DDP_VENV` or `$TABDIFFUSION_CACHE/ddp-venv` (default
/// ~/.cache/tabdiffusion/ddp-venv), as scripts/cluster/venv makes it. Fails with that command
/// where it is missing: Rust's test runner cannot count a skip.
fn python() -> PathBuf {
    let venv = std::env::var_os("DDP_VENV").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("TABDIFFUSION_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/tabdiffusion"))
            .join("ddp-venv")
    });
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/cluster/venv", python.display());
    python
}

/// scripts/cluster/train.py on `procs` processes: plain python for one, torchrun (as
/// `python -m torch.distributed.run --standalone`) for more. One torch thread per process.
fn cluster(procs: usize, args: &[&str]) -> Output {
    let script = repo().join("scripts/cluster/train.py");
    let mut command = Command::new(python());
    if procs > 1 {
        command.args(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", &procs.to_string()]);
    }
    command.arg(&script).args(args).args(["--threads", "1"]).env("OMP_NUM_THREADS", "1").current_dir(repo());
    command.output().expect("the venv's python runs")
}

fn cluster_ok(procs: usize, args: &[&str]) -> String {
    let out = cluster(procs, args);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "scripts/cluster/train.py {args:?} on {procs} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

/// Its message where it must refuse: it exits 2 with the reason on stderr.
fn cluster_refuses(env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = Command::new(python());
    command.arg(repo().join("scripts/cluster/train.py")).args(args).envs(env.iter().copied()).current_dir(repo());
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "scripts/cluster/train.py {args:?} should refuse: {stderr}");
    stderr
}

fn cli(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tabdiffusion")).args(args).current_dir(repo()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tabdiffusion {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tests/lockstep.rs's model: mnist-small's layout at a quarter of its width (28, 14, 7;
/// attention at 7×7), small enough for many steps on two cores.
fn model_config() -> UNetConfig {
    UNetConfig::new(28, 1, 1, vec![8, 16, 16], vec![false, false, true], 1).with_norm_num_groups(4)
}

/// 32 grey 28×28 images of strokes (tests/lockstep.rs's), as PNG files, made into a tiled
/// dataset by `tabdiffusion data folder` (which keeps some as its test split); returns the
/// folder, its name and its training images as our trainer reads them.
fn dataset(dir: &Path) -> (PathBuf, String, ImageSet) {
    dataset_of(dir, false)
}

/// [`dataset`], its images in two class folders (`a`, `b`: labels 0 and 1) when `classes`.
fn dataset_of(dir: &Path, classes: bool) -> (PathBuf, String, ImageSet) {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for i in 0..32usize {
        let pixels = (0..784)
            .map(|p| {
                let (y, x) = (p / 28, p % 28);
                if (x * (i % 5 + 1) + y * 3 + i) % 17 < 4 { 40 + (i * 7 % 200) as u8 } else { 0 }
            })
            .collect();
        let folder = if classes { images.join(["a", "b"][i % 2]) } else { images.clone() };
        std::fs::create_dir_all(&folder).unwrap();
        image::GrayImage::from_raw(28, 28, pixels).unwrap().save(folder.join(format!("{i:02}.png"))).unwrap();
    }
    let data = dir.join("data");
    cli(&["data", "folder", "--from", s(&images), "--size", "28", "--channels", "1", "--out", s(&data)]);
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(data.join("manifest.json")).unwrap()).unwrap();
    let split = &manifest.train;
    let mut set = ImageSet { height: 28, width: 28, channels: 1, pixels: Vec::new(), labels: Vec::new() };
    for (k, tile) in split.tiles.iter().enumerate() {
        let part = decode_tile(&std::fs::read(data.join(tile)).unwrap(), tile_count(split.count, k), 28, 28, 1).unwrap();
        set.pixels.extend(part.pixels);
    }
    (data, manifest.name, set)
}

/// A fresh run of `spec` on our trainer, its schedule the spec's (as `train` makes one).
fn fresh(spec: &RunSpec) -> Trainer {
    fresh_of(spec, model_config())
}

fn fresh_of(spec: &RunSpec, config: UNetConfig) -> Trainer {
    let device = Device::flex();
    Trainer::new(config, spec.clone(), &device).with_schedule(spec.schedule_config())
}

fn train(trainer: &mut Trainer, set: &ImageSet, steps: usize) -> Vec<f64> {
    (0..steps)
        .map(|_| {
            let x0 = trainer.next_batch(set);
            f64::from(trainer.step(x0).into_scalar::<f32>())
        })
        .collect()
}

fn state(trainer: &Trainer, dataset: &str) -> Vec<u8> {
    pollster::block_on(trainer.state_bytes(&trainer.card(dataset))).unwrap()
}

fn read_state(path: &Path) -> SavedState {
    Trainer::read_state(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The losses the cluster trainer logged (`--losses`), one per step.
fn logged_losses(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap())
        .collect()
}

/// The largest difference between the tensors under `prefix` in two states, and the largest
/// magnitude among them (every name must be in both).
fn difference(a: &Tensors, b: &Tensors, prefix: &str) -> (f64, f64) {
    let names: Vec<&String> = a.keys().filter(|n| n.starts_with(prefix)).collect();
    assert!(!names.is_empty(), "no tensors {prefix}*");
    assert_eq!(names.len(), b.keys().filter(|n| n.starts_with(prefix)).count(), "{prefix}: the same tensors");
    let (mut worst, mut largest) = (0.0f64, 0.0f64);
    for name in names {
        let ((sa, va), (sb, vb)) = (&a[name], b.get(name).unwrap_or_else(|| panic!("{name} missing")));
        assert_eq!(sa, sb, "{name}");
        for (x, y) in va.iter().zip(vb) {
            worst = worst.max(f64::from((x - y).abs()));
            largest = largest.max(f64::from(x.abs()));
        }
    }
    (worst, largest)
}

/// Relative differences of two loss curves, step by step.
fn worst_relative(ours: &[f64], theirs: &[f64]) -> f64 {
    assert_eq!(ours.len(), theirs.len(), "a loss per step on both sides: {ours:?} {theirs:?}");
    ours.iter().zip(theirs).map(|(a, b)| (a - b).abs() / a.abs()).fold(0.0, f64::max)
}

/// The small-data recipe (v, min-SNR-5, cosine ᾱ, warm-up then 1/√step) with a batch of 8 and
/// a warm-up short enough that these few steps see the rate change.
fn default_recipe() -> RunSpec {
    RunSpec::SMALL_DATA.with_batch_size(8).with_warmup_steps(4).with_inverse_sqrt_decay_from(Some(10)).with_seed(5)
}

/// A training state's weights sample: `ModelSource::weights` (what `sample`, `eval` and the
/// tab's Import read) takes a run's file as its EMA weights. Needs no venv.
#[test]
fn a_training_state_is_a_model_of_its_ema_weights() {
    let dir = tempfile::tempdir().unwrap();
    let spec = default_recipe();
    let mut trainer = fresh(&spec);
    let set = ImageSet::new(28, 28, 1, (0..8 * 784).map(|i| (i % 253) as u8).collect(), Vec::new()).unwrap();
    train(&mut trainer, &set, 2);
    let bytes = state(&trainer, "folder");
    let source = ModelSource::weights(&bytes).unwrap();
    assert_eq!(source.config, trainer.model_config);
    assert_eq!(source.schedule, trainer.schedule.config);
    assert_eq!(source.steps(), 2);
    let loaded = pollster::block_on(named_tensors(&source.build(&Device::flex(), 0).unwrap())).unwrap();
    let ema = pollster::block_on(named_tensors(&trainer.ema)).unwrap();
    let model = pollster::block_on(named_tensors(&trainer.model.valid())).unwrap();
    assert_eq!(loaded, ema, "the EMA weights");
    assert_ne!(loaded, model, "not the online weights");
    // The CLI samples from it.
    let (file, png) = (dir.path().join("run.safetensors"), dir.path().join("s.png"));
    std::fs::write(&file, &bytes).unwrap();
    cli(&["sample", "--model", s(&file), "--steps", "2", "--count", "2", "--out", s(&png)]);
    assert!(png.exists());
}

/// (a) DDP's contract: 2 processes, each a contiguous half of the batch of 8, give 1 process's
/// steps at batch 8, over 24 steps of the default recipe with the script's own random draws
/// (one generator per step, the whole batch's draws on every rank): the loss of every step and
/// the final weights, EMA and Adam moments, to float tolerance.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv); scripts/test runs it"]
fn two_processes_at_half_the_batch_each_are_one_process_at_the_whole_batch() {
    one_process_is_two(default_recipe(), model_config(), false);
}

/// (a) for a class-conditional model (2 classes and the null one) with random flips and class
/// dropout: the draws of labels, flips and dropped labels are shared out as the images are.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv); scripts/test runs it"]
fn two_processes_are_one_with_class_labels_flips_and_class_dropout() {
    let spec = default_recipe().with_random_flip(true).with_class_dropout(0.5);
    one_process_is_two(spec, model_config().with_num_class_embeds(Some(3)), true);
}

fn one_process_is_two(spec: RunSpec, config: UNetConfig, classes: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (data, name, set) = dataset_of(dir.path(), classes);
    let mut trainer = fresh_of(&spec, config);
    train(&mut trainer, &set, 2);
    std::fs::write(path("start"), state(&trainer, &name)).unwrap();
    let steps = "26";
    for (procs, out) in [(1, "one"), (2, "two")] {
        let losses = format!("{out}.jsonl");
        cluster_ok(procs, &["--state", s(&path("start")), "--out", s(&path(out)), "--steps", steps, "--data", s(&data), "--losses", s(&path(&losses))]);
    }
    let (one, two) = (logged_losses(&path("one.jsonl")), logged_losses(&path("two.jsonl")));
    assert_eq!(one.len(), 24);
    let worst = worst_relative(&one, &two);
    println!("{}: 24 steps, 1 process at batch 8 against 2 at 4 each: losses differ by {worst:e} at most (relative)", spec.describe());
    // float32 sums in another order (DDP's all-reduce, the convolutions' blocking at another
    // batch): measured 1e-7.
    assert!(worst < 1e-5, "{one:?}\n{two:?}");
    let (a, b, start) = (read_state(&path("one")), read_state(&path("two")), read_state(&path("start")));
    assert_eq!((a.step, b.step, a.adam_time, b.adam_time), (26, 26, 26, 26));
    let (moved, _) = difference(&a.tensors, &start.tensors, "model.");
    let lr = spec.learning_rate;
    for prefix in ["model.", "ema.", "adam.m.", "adam.v."] {
        let (worst, largest) = difference(&a.tensors, &b.tensors, prefix);
        println!("{prefix}*: largest difference {worst:e}, largest value {largest:e}");
        // Weights: a twentieth of one step's largest move, as tests/lockstep.rs (Adam moves a
        // weight by up to lr per step whatever its gradient's size). Moments: 1e-3 of the
        // largest (measured: about 1e-6).
        let bound = if prefix.starts_with("adam") { 1e-3 * largest } else { 0.05 * lr };
        assert!(worst < bound, "{prefix}: {worst} (bound {bound})");
    }
    assert!(moved > lr, "the weights moved ({moved})");
}

/// The x_0, t, ε our trainer draws for `steps` steps of a run whose state is `bytes` (its
/// random stream resumed where the state left it: per step the indices, then t, then ε, as
/// `Trainer::step` draws them), written for `--inputs`, with the stream's position after each.
fn write_inputs(bytes: &[u8], set: &ImageSet, steps: usize, dir: &Path) {
    let info = state_metadata(bytes).unwrap();
    let spec = RunSpec::from_state_json(&info["train"]).unwrap();
    assert!(!spec.random_flip, "the flips' coins are not written");
    let mut rng = RandomStream::resume(spec.seed, info["rng_position"].parse().unwrap());
    let device = Device::flex();
    let b = spec.batch_size;
    let (mut x0s, mut ts, mut noises, mut positions) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..steps {
        let indices = rng.indices(b, set.len());
        let x0: Tensor<4> = set.batch(&indices, &device);
        ts.extend(rng.timesteps(b, 1000).into_iter().map(|t| t as f32));
        let noise = rng.normal([b, 1, 28, 28], &device);
        x0s.extend(x0.into_data().try_to_vec::<f32>().unwrap());
        noises.extend(noise.into_data().try_to_vec::<f32>().unwrap());
        positions.push(rng.position().to_string());
    }
    std::fs::create_dir_all(dir).unwrap();
    let shape = [steps, b, 1, 28, 28];
    std::fs::write(dir.join("x0.npy"), encode_npy(&shape, &x0s)).unwrap();
    std::fs::write(dir.join("noise.npy"), encode_npy(&shape, &noises)).unwrap();
    std::fs::write(dir.join("timesteps.npy"), encode_npy(&[steps, b], &ts)).unwrap();
    std::fs::write(dir.join("rng_positions.txt"), positions.join("\n")).unwrap();
}

/// (b) for one recipe: our trainer k steps, then the cluster trainer k more from that state on
/// 2 processes, equals our own resumed run for those k steps (fed the same x_0, t, ε): losses,
/// weights, EMA weights, Adam's moments, step, Adam's step count and the random stream's
/// position. Then our trainer resumes the cluster's state and steps as it steps its own.
fn continues_as_ours(spec: RunSpec, k: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (_, name, set) = dataset(dir.path());
    let mut trainer = fresh(&spec);
    train(&mut trainer, &set, k);
    let start = state(&trainer, &name);
    std::fs::write(path("start"), &start).unwrap();
    // Ours: `train --resume` for k more steps, as the CLI does it (Trainer::from_state_bytes).
    let (mut ours, _) = Trainer::from_state_bytes(&start, &Device::flex()).unwrap();
    let our_losses = train(&mut ours, &set, k);
    let ours_bytes = state(&ours, &name);
    // Theirs: the same k steps on 2 processes, fed our draws.
    write_inputs(&start, &set, k, &path("inputs"));
    let total = (2 * k).to_string();
    cluster_ok(2, &["--state", s(&path("start")), "--out", s(&path("theirs")), "--steps", &total, "--inputs", s(&path("inputs")), "--losses", s(&path("losses"))]);
    let their_losses = logged_losses(&path("losses"));
    let worst = worst_relative(&our_losses, &their_losses);
    println!("{}: {k} steps after {k}: losses differ by {worst:e} at most (relative)", spec.describe());
    // float32 sums in another order (tests/lockstep.rs measured 2.4e-7 over 24 steps).
    assert!(worst < 1e-5, "ours {our_losses:?}\ntheirs {their_losses:?}");
    let theirs = read_state(&path("theirs"));
    let mine = Trainer::read_state(&ours_bytes).unwrap();
    assert_eq!((theirs.step, theirs.adam_time, theirs.rng_position), (mine.step, mine.adam_time, mine.rng_position));
    assert_eq!((theirs.config, theirs.model_config, theirs.schedule), (mine.config, mine.model_config, mine.schedule), "the recipe travels unchanged");
    assert_eq!(theirs.card.steps, mine.card.steps);
    let lr = spec.learning_rate;
    for prefix in ["model.", "ema.", "adam.m.", "adam.v."] {
        let (worst, largest) = difference(&mine.tensors, &theirs.tensors, prefix);
        println!("  {prefix}*: largest difference {worst:e}, largest value {largest:e}");
        // As tests/lockstep.rs for the weights; moments to 1e-3 of their largest value.
        let bound = if prefix.starts_with("adam") { 1e-3 * largest } else { 0.05 * lr };
        assert!(worst < bound, "{prefix}: {worst} (bound {bound})");
    }
    let (moved, _) = difference(&theirs.tensors, &Trainer::read_state(&start).unwrap().tensors, "model.");
    assert!(moved > 0.1 * lr, "the weights moved ({moved})");
    // `train --resume` takes their state: its next step is our run's next step.
    let (mut resumed, card) = Trainer::from_state_bytes(&std::fs::read(path("theirs")).unwrap(), &Device::flex()).unwrap();
    assert_eq!((resumed.step, card.dataset.as_str()), (2 * k, name.as_str()));
    let (a, b) = (train(&mut resumed, &set, 1)[0], train(&mut ours, &set, 1)[0]);
    assert!((a - b).abs() <= 1e-4 * b.abs(), "the step after: {a} against {b}");
}

/// (b) with the default recipe: v-prediction, min-SNR-5 weighting, the cosine ᾱ schedule, the
/// linear warm-up and the inverse square root decay, the EMA under diffusers' warm-up.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv); scripts/test runs it"]
fn the_cluster_continues_the_default_recipe_as_our_resume_does() {
    continues_as_ours(default_recipe(), 10);
}

/// (b) with the paper's objective and the other options: ε-prediction with the plain mean on
/// linear β, Adam's β₂ 0.99, clipping at 0.5, the cosine decay and the power EMA.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv); scripts/test runs it"]
fn the_cluster_continues_the_papers_objective_and_the_other_options_as_ours() {
    let spec = RunSpec::PAPER
        .with_random_flip(false)
        .with_batch_size(8)
        .with_learning_rate(1e-3)
        .with_adam_beta_2(0.99)
        .with_grad_clip(0.5)
        .with_warmup_steps(3)
        .with_decay_steps(Some(30))
        .with_ema_power(Some(6.94))
        .with_seed(8);
    continues_as_ours(spec, 10);
}

/// A plain continuation with the script's own random draws keeps training: the loss on a
/// fixed batch (our trainer's measure, `Trainer::fixed_batch_loss`) falls over 60 steps on 2
/// processes; then the run comes back through the CLI: `train --resume` goes on from it and
/// `sample` draws from it.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv); scripts/test runs it"]
fn a_plain_continuation_keeps_training_and_comes_back_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (data, name, set) = dataset(dir.path());
    let spec = default_recipe().with_learning_rate(3e-3);
    let mut trainer = fresh(&spec);
    train(&mut trainer, &set, 5);
    std::fs::write(path("start"), state(&trainer, &name)).unwrap();
    let stdout = cluster_ok(2, &["--state", s(&path("start")), "--out", s(&path("cluster")), "--steps", "65", "--data", s(&data)]);
    assert!(stdout.contains("\"world\": 2"), "{stdout}");
    let fixed = |file: &Path| {
        let (t, _) = Trainer::from_state_bytes(&std::fs::read(file).unwrap(), &Device::flex()).unwrap();
        f64::from(t.fixed_batch_loss(&set).unwrap().into_scalar::<f32>())
    };
    let (before, after) = (fixed(&path("start")), fixed(&path("cluster")));
    println!("fixed-batch loss: {before} after 5 steps of ours, {after} after 60 more on 2 DDP processes");
    assert!(after < 0.8 * before, "the loss fell: {before} -> {after}");
    // Back through the CLI: train --resume, and sample (its EMA weights).
    let resumed = cli(&["train", "--resume", s(&path("cluster")), "--data", s(&data), "--steps", "67", "--backend", "cpu",
        "--state", s(&path("again")), "--grid", s(&path("grid.png")), "--out", s(&path("model.safetensors"))]);
    assert!(resumed.contains("resuming at step 65"), "{resumed}");
    assert_eq!(read_state(&path("again")).step, 67);
    let png = path("samples.png");
    cli(&["sample", "--model", s(&path("cluster")), "--steps", "5", "--count", "4", "--out", s(&png)]);
    assert!(image::open(&png).is_ok());
}

/// Bad input is refused in words, before anything is written: a world size that does not
/// divide the batch, a half-written state, an --out holding another run, a recipe with a field
/// the script does not know; the files stay as they were.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv); scripts/test runs it"]
fn bad_input_is_refused_in_words_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let (data, name, set) = dataset(dir.path());
    let mut trainer = fresh(&default_recipe());
    train(&mut trainer, &set, 1);
    let start = state(&trainer, &name);
    std::fs::write(path("start"), &start).unwrap();
    let args = |state: &Path, out: &Path| -> Vec<String> {
        ["--state", s(state), "--out", s(out), "--steps", "3", "--data", s(&data)].map(String::from).to_vec()
    };
    let run = |env: &[(&str, &str)], state: &Path, out: &Path| {
        let a = args(state, out);
        cluster_refuses(env, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // 3 processes cannot share a batch of 8 equally (the check comes before any rendezvous).
    let msg = run(&[("WORLD_SIZE", "3"), ("RANK", "0")], &path("start"), &path("out"));
    assert!(msg.contains("a world of 3 processes does not divide the run's batch of 8 images"), "{msg}");
    assert!(!path("out").exists());
    // Half a file.
    std::fs::write(path("half"), &start[..start.len() / 2]).unwrap();
    let msg = run(&[], &path("half"), &path("out"));
    assert!(msg.contains("not a complete safetensors file"), "{msg}");
    assert!(!path("out").exists());
    // --out holds another run (another seed): kept as it was.
    let mut other = fresh(&default_recipe().with_seed(99));
    train(&mut other, &set, 1);
    let other = state(&other, &name);
    std::fs::write(path("other"), &other).unwrap();
    let msg = run(&[], &path("start"), &path("other"));
    assert!(msg.contains("holds another run"), "{msg}");
    assert_eq!(std::fs::read(path("other")).unwrap(), other);
    // A recipe field this script does not know (a newer recipe): refused by name.
    let newer = with_train_field(&start, "some_new_option", "true");
    std::fs::write(path("newer"), newer).unwrap();
    let msg = run(&[], &path("newer"), &path("out"));
    assert!(msg.contains("fields this trainer does not know: some_new_option"), "{msg}");
    // A weights file, not a run.
    let weights = path("weights");
    std::fs::write(&weights, pollster::block_on(tabdiffusion::checkpoint::to_bytes(&trainer.ema, &trainer.model_config, &trainer.schedule.config, &Default::default())).unwrap()).unwrap();
    let msg = run(&[], &weights, &path("out"));
    assert!(msg.contains("not a training-state file"), "{msg}");
    assert!(!path("out").exists());
    assert_eq!(std::fs::read(path("start")).unwrap(), start, "the state read is never written");
}

/// `bytes` with one more field in its run spec (the metadata key `train`).
fn with_train_field(bytes: &[u8], field: &str, value: &str) -> Vec<u8> {
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let train = metadata["train"].trim_end_matches('}').to_string();
    metadata.insert("train".into(), format!("{train},\"{field}\":{value}}}"));
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = file.tensors();
    safetensors::serialize(tensors, Some(metadata)).unwrap()
}

/// Samples the digits check draws: enough that a share moves by 1% per image (tests/example.rs).
const DIGITS: usize = 100;

/// The issue's round trip on real data: a tab run (the shipped example, `mnist-small` trained
/// 3,200 steps by the default recipe, as the tab's run stands when exported whole), continued for
/// 20 steps on MNIST by two DDP processes, comes back and samples digits in the CLI. The digits
/// are judged by the LeNet-5 of tests/example.rs, whose threshold (30% named with probability
/// ≥ 0.99; the example itself reaches 47%, an untrained network 0%) this test keeps.
#[test]
#[ignore = "needs the DDP venv (scripts/cluster/venv) and MNIST (scripts/setup); scripts/test runs it"]
fn a_tab_run_continued_by_two_ddp_processes_samples_digits_in_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let data = common::prepared_data("mnist");
    let device = Device::flex();
    let example = TrainedExample::MNIST;
    let source = ModelSource::weights(&std::fs::read(repo().join("www").join(example.path)).unwrap()).unwrap();
    let card = source.checkpoint.as_ref().unwrap().card.clone();
    let spec = card.run.clone().unwrap_or(RunSpec::SMALL_DATA);
    let model = source.build(&device, 0).unwrap();
    let mut trainer = Trainer::from_model(model, source.config.clone(), spec, &device).with_schedule(source.schedule.clone());
    trainer.step = example.steps; // where the run stood: its rate and EMA decay
    // One step of ours on MNIST's first tile, so that the run has Adam's moments to export.
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(data.join("manifest.json")).unwrap()).unwrap();
    let first = decode_tile(&std::fs::read(data.join(&manifest.train.tiles[0])).unwrap(), tile_count(manifest.train.count, 0), 28, 28, 1).unwrap();
    train(&mut trainer, &first, 1);
    std::fs::write(path("tab-run"), state(&trainer, &card.dataset)).unwrap();
    let end = (example.steps + 21).to_string();
    cluster_ok(2, &["--state", s(&path("tab-run")), "--out", s(&path("cluster")), "--steps", &end, "--data", s(&data)]);
    let back = read_state(&path("cluster"));
    assert_eq!(back.step, example.steps + 21);
    // The CLI samples it; the judge looks at the same loader's samples.
    cli(&["sample", "--model", s(&path("cluster")), "--steps", "20", "--count", "16", "--out", s(&path("digits.png"))]);
    let source = ModelSource::weights(&std::fs::read(path("cluster")).unwrap()).unwrap();
    let schedule = Schedule::new(source.schedule.clone());
    let images = samples(&source.build(&device, 0).unwrap(), &source.config, &schedule, DIGITS, 20, &device);
    let verdict = Judge::new(&device).judge(&images, DIGITS);
    println!("after 20 DDP steps: {:.0}% named with probability ≥ {CONFIDENT}, {:?}", 100.0 * verdict.confident, verdict.scores);
    assert!(verdict.confident >= 0.3, "the classifier names {} of its samples", verdict.confident);
}
