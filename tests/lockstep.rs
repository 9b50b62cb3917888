//! Many training steps of ours *are* PyTorch's: the same initial weights, minibatches,
//! timesteps and noise, trained by our trainer and by PyTorch + diffusers (`torch.optim.Adam`,
//! `clip_grad_norm_`, `UNet2DModel`, `EMAModel`), must give the same loss at every step and the
//! same weights and EMA weights at the end. The reference values come from `scripts/fixtures/lockstep.py` (its versions are
//! recorded in the fixture); the inputs it read are the ones this file draws.
//!
//! The model has mnist-small's layout at a quarter of its width: three resolutions (28, 14, 7),
//! stride-2 convolutions with padding 1, attention at 7×7 only, one ResNet block per level.
//!
//! The same steps on native wgpu, with the build's GPU kernels, must give burn-flex's losses:
//! autotuning and kernel fusion may change how a step runs on a GPU, not what it computes.
//!
//! To make the fixture again (after a change that is meant to change training):
//!
//! ```sh
//! cargo test --release --test lockstep -- --ignored   # writes the initial weights and inputs
//! .venv-ref/bin/python scripts/fixtures/lockstep.py            # trains them in PyTorch
//! ```

use std::path::PathBuf;

use burn::module::Module;
use burn::tensor::{Device, DeviceKind, Tensor};
use serde_json::Value;
use tabdiffusion::checkpoint::{DiffusersFolder, ModelSource, named_tensors, to_bytes};
use tabdiffusion::data::{ImageSet, encode_npy};
use tabdiffusion::diffusion::{RandomStream, SamplerKind, Schedule, ScheduleConfig};
use tabdiffusion::pipeline::SampleRun;
use tabdiffusion::model::UNetConfig;
use tabdiffusion::train::Trainer;
use tabdiffusion::spec::RunSpec;

const STEPS: usize = 24;
const BATCH: usize = 4;
const SEED: u64 = 3;
const LEARNING_RATE: f64 = 1e-3;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lockstep")
}

fn model_config() -> UNetConfig {
    UNetConfig::new(28, 1, 1, vec![8, 16, 16], vec![false, false, true], 1).with_norm_num_groups(4)
}

fn train_config() -> RunSpec {
    RunSpec::PAPER.with_random_flip(false).with_batch_size(BATCH).with_seed(SEED).with_learning_rate(LEARNING_RATE).with_ema_decay(0.999)
}

/// 32 grey 28×28 images with some structure: strokes of varying slope and brightness.
fn images() -> ImageSet {
    let pixels = (0..32 * 784)
        .map(|k| {
            let (i, p) = (k / 784, k % 784);
            let (y, x) = (p / 28, p % 28);
            if (x * (i % 5 + 1) + y * 3 + i) % 17 < 4 { 40 + (i * 7 % 200) as u8 } else { 0 }
        })
        .collect();
    ImageSet::new(28, 28, 1, pixels, Vec::new()).unwrap()
}

fn load_initial() -> ModelSource {
    let dir = fixtures().join("initial");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("fixture present");
    let config = String::from_utf8(read(DiffusersFolder::CONFIG)).unwrap();
    let scheduler = String::from_utf8(read(DiffusersFolder::SCHEDULER)).unwrap();
    ModelSource::diffusers(&config, Some(&read(DiffusersFolder::WEIGHTS)), Some(&scheduler)).unwrap()
}

/// Writes the fixture's initial weights (fresh ones from the seed) and, to
/// `$LOCKSTEP_INPUTS` (default `/tmp/lockstep-inputs`), each step's x_0, t and ε as the trainer
/// draws them: its random stream gives, per step, the minibatch indices, then t, then ε.
#[test]
#[ignore = "writes the fixture's inputs for scripts/fixtures/lockstep.py"]
fn write_lockstep_inputs() {
    let device = Device::flex();
    let trainer = Trainer::new(model_config(), train_config(), &device);
    let dir = fixtures().join("initial");
    std::fs::create_dir_all(&dir).unwrap();
    let schedule = ScheduleConfig::default();
    let weights = pollster::block_on(to_bytes(&trainer.ema, &trainer.model_config, &schedule, &Default::default())).unwrap();
    let (config_json, scheduler_json) = DiffusersFolder::configs(&trainer.model_config, &schedule);
    std::fs::write(dir.join(DiffusersFolder::CONFIG), config_json).unwrap();
    std::fs::write(dir.join(DiffusersFolder::SCHEDULER), scheduler_json).unwrap();
    std::fs::write(dir.join(DiffusersFolder::WEIGHTS), weights).unwrap();

    let out = PathBuf::from(std::env::var("LOCKSTEP_INPUTS").unwrap_or("/tmp/lockstep-inputs".into()));
    std::fs::create_dir_all(&out).unwrap();
    let set = images();
    let mut rng = RandomStream::new(SEED);
    let (mut x0s, mut ts, mut noises) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..STEPS {
        let indices = rng.indices(BATCH, set.len());
        let x0: Tensor<4> = set.batch(&indices, &device);
        ts.extend(rng.timesteps(BATCH, 1000).into_iter().map(|t| t as f32));
        let noise = rng.normal([BATCH, 1, 28, 28], &device);
        x0s.extend(x0.into_data().try_to_vec::<f32>().unwrap());
        noises.extend(noise.into_data().try_to_vec::<f32>().unwrap());
    }
    let shape = [STEPS, BATCH, 1, 28, 28];
    std::fs::write(out.join("x0.npy"), encode_npy(&shape, &x0s)).unwrap();
    std::fs::write(out.join("noise.npy"), encode_npy(&shape, &noises)).unwrap();
    std::fs::write(out.join("timesteps.npy"), encode_npy(&[STEPS, BATCH], &ts)).unwrap();
    println!("wrote {} and {}", dir.display(), out.display());
}

#[test]
fn many_training_steps_are_pytorchs() {
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap();
    let expected: Vec<f64> = reference["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(expected.len() >= 20, "at least 20 steps");
    let device = Device::flex();
    let source = load_initial();
    let model = source.build(&device, 0).unwrap(); // loaded weights: the seed draws nothing
    let mut trainer = Trainer::from_model(model, source.config.clone(), train_config(), &device);
    let set = images();
    let mut worst_loss = 0.0f64;
    for (step, want) in expected.iter().enumerate() {
        let x0 = trainer.next_batch(&set);
        let loss = f64::from(trainer.step(x0).into_scalar::<f32>());
        // float32 sums in another order: a few ulps per op, grown a little by 24 updates
        // (measured: 2.4e-7 at worst).
        assert!((loss - want).abs() <= 1e-5 * want.abs(), "step {step}: loss {loss}, PyTorch {want}");
        worst_loss = worst_loss.max((loss - want).abs() / want.abs());
    }
    println!("losses of {} steps: largest relative difference {worst_loss:e}", expected.len());
    // The weights and the EMA weights after the last step, against PyTorch's.
    let config_json = std::fs::read_to_string(fixtures().join("initial").join(DiffusersFolder::CONFIG)).unwrap();
    let theirs = |file: &str| {
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        ModelSource::diffusers(&config_json, Some(&bytes), None).unwrap().checkpoint.unwrap().tensors
    };
    let initial = &source.checkpoint.as_ref().unwrap().tensors;
    for (what, ours, theirs) in [
        ("weights", pollster::block_on(named_tensors(&trainer.model.valid())).unwrap(), theirs("final.safetensors")),
        ("EMA weights", pollster::block_on(named_tensors(&trainer.ema)).unwrap(), theirs("final_ema.safetensors")),
    ] {
        let (mut worst, mut moved) = (0.0f64, 0.0f64);
        for (name, _, values) in &ours {
            let ((_, want), (_, start)) = (&theirs[name], &initial[name]);
            for ((a, b), s) in values.iter().zip(want).zip(start) {
                worst = worst.max(f64::from((a - b).abs()));
                moved = moved.max(f64::from((b - s).abs()));
            }
        }
        // Adam moves each weight by up to lr per step whatever its gradient's size, so a weight
        // whose gradient is near zero can step another way under float32 rounding; the bound is
        // a twentieth of one step's largest move (measured: about a fortieth).
        println!("{what}: largest difference {worst:e}; largest move from the start {moved:e}");
        assert!(moved > LEARNING_RATE, "the {what} moved ({moved})");
        assert!(worst < 0.05 * LEARNING_RATE, "{what} differ by {worst} after {} steps", expected.len());
    }
}

/// Steps of the GPU check: enough for Adam's updates to feed back into the losses.
const GPU_STEPS: usize = 10;
/// Steps of the GPU check's sampling run.
const SAMPLE_STEPS: usize = 10;

/// The losses of the first `steps` training steps from the fixture's initial weights, each read
/// after its step (as the trainer's shells read them).
fn losses(device: &Device, steps: usize) -> Vec<f64> {
    let source = load_initial();
    let model = source.build(device, 0).unwrap();
    let mut trainer = Trainer::from_model(model, source.config.clone(), train_config(), device);
    let set = images();
    (0..steps)
        .map(|_| {
            let x0 = trainer.next_batch(&set);
            f64::from(trainer.step(x0).into_scalar::<f32>())
        })
        .collect()
}

/// Images of a deterministic DDIM run ([`SAMPLE_STEPS`] steps, η = 0) from the fixture's initial
/// weights: the forward pass alone, as sampling runs it.
fn samples(device: &Device) -> Vec<f64> {
    let source = load_initial();
    let model = source.build(device, 0).unwrap();
    let run = SampleRun::new(&source.config, SamplerKind::ddim(SAMPLE_STEPS), &Schedule::ddpm(), BATCH, SEED, device);
    run.finish(&model).into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect()
}

/// Prints the losses of [`GPU_STEPS`] steps and the [`samples`] on native wgpu as JSON lines, for
/// [`gpu_kernels_train_as_burn_flex`], which runs this in a child process: burn reads its
/// fusion settings once per process.
#[test]
#[ignore = "the child process of gpu_kernels_train_as_burn_flex"]
fn wgpu_losses() {
    let device = Device::wgpu(DeviceKind::DefaultDevice);
    println!("\nlosses: {}", serde_json::to_string(&losses(&device, GPU_STEPS)).unwrap());
    println!("samples: {}", serde_json::to_string(&samples(&device)).unwrap());
}

/// Native wgpu (on a machine without a GPU, Mesa's lavapipe: Vulkan on the CPU, which
/// `scripts/setup --browser` installs) trains and samples as burn-flex does with the build's
/// kernels: autotuned and fused (the default features; each candidate autotuning picks from is
/// exact up to the order of float32 sums, and fusion only joins operations), and also with every
/// operation run as its own kernel (`BURN_FUSION_MAX_EXPLORATIONS=0`, burn's switch that runs
/// each segment unfused). The model's last convolution has one output channel, the case burn
/// 0.22.1's fusion got wrong (see `conv2d`): without that function's reshape this test fails.
#[test]
fn gpu_kernels_train_as_burn_flex() {
    let child = |fusion_off: bool| {
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command.args(["--ignored", "--exact", "wgpu_losses", "--nocapture", "--test-threads=1"]);
        if fusion_off {
            command.env("BURN_FUSION_MAX_EXPLORATIONS", "0");
        } else {
            command.env_remove("BURN_FUSION_MAX_EXPLORATIONS");
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "wgpu child failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let read = |what: &str| {
            let line = stdout.lines().find_map(|l| l.strip_prefix(what)).unwrap_or_else(|| panic!("the child prints its {what}"));
            serde_json::from_str::<Vec<f64>>(line).unwrap()
        };
        (read("losses: "), read("samples: "))
    };
    let cpu = (losses(&Device::flex(), GPU_STEPS), samples(&Device::flex()));
    let mut runs = vec![("as built", child(false))];
    if cfg!(feature = "fusion") {
        runs.push(("unfused", child(true)));
    }
    let mut failed = false;
    for (what, (losses, samples)) in &runs {
        let worst = losses.iter().zip(&cpu.0).map(|(g, c)| (g - c).abs() / c.abs()).fold(0.0, f64::max);
        println!("wgpu {what} against burn-flex over {GPU_STEPS} steps: largest relative difference {worst:e}");
        // float32 sums in another order, grown a little by 10 Adam updates (measured on
        // lavapipe, autotuned: about 1e-6).
        assert!(worst <= 1e-4, "wgpu {what}: {losses:?}, burn-flex: {:?}", cpu.0);
        assert_eq!(samples.len(), cpu.1.len());
        let worst = samples.iter().zip(&cpu.1).map(|(g, c)| (g - c).abs()).fold(0.0, f64::max);
        println!("wgpu {what} against burn-flex, DDIM-{SAMPLE_STEPS} samples: largest difference {worst:e}");
        // The model's outputs agree to about 1e-6 (float32 sums in another order); the first
        // steps' x̂_0 = (x_t − √(1−ᾱ_t)·ε)/√ᾱ_t multiply ε's error by up to about 60 (ᾱ_900 ≈ 3e-4
        // for DDPM's linear β). Measured on lavapipe: 1.3e-4 fused and autotuned, 8.5e-5 unfused.
        failed |= worst > 1e-3;
    }
    assert!(!failed, "wgpu's samples differ from burn-flex's");
}
