//! The GPU kernels (burn's fusion and autotuning, the default features, which the tab's tuned
//! build runs) train and sample as burn-flex does, on every layout the tab and the CLI ship
//! beyond `tests/lockstep.rs`'s one-channel MNIST model: CIFAR-10's three channels at 32×32,
//! a class-conditional model with guided samples, attention at two resolutions with several
//! heads, and the default recipe (v-prediction, min-SNR-5, cosine ᾱ). Natively, on whatever
//! Vulkan driver is present (Mesa's lavapipe on a machine without a GPU, which
//! `scripts/setup --browser` installs). The same initial weights and the same draws (our
//! random stream runs on the CPU) go to both devices.

use burn::module::Module;
use burn::tensor::{Device, DeviceKind};
use tabdiffusion::data::ImageSet;
use tabdiffusion::diffusion::{SamplerKind, Schedule, ScheduleConfig};
use tabdiffusion::model::{Preset, UNetConfig, init_seeded};
use tabdiffusion::pipeline::{Guidance, SampleRun};
use tabdiffusion::spec::RunSpec;
use tabdiffusion::train::Trainer;

/// Training steps per layout: enough for Adam's updates to feed back into the losses.
const STEPS: usize = 6;
/// DDIM steps of the samples.
const SAMPLE_STEPS: usize = 5;
const BATCH: usize = 2;

struct Layout {
    name: &'static str,
    config: UNetConfig,
    spec: RunSpec,
    /// Guide the samples to these classes (a class-conditional model).
    guided: Option<Vec<usize>>,
}

fn layouts() -> Vec<Layout> {
    // ε on linear β at a constant rate (the paper's objective), unless the layout is the recipe's.
    let plain = RunSpec::PAPER.with_batch_size(BATCH).with_seed(1).with_learning_rate(1e-3);
    vec![
        Layout { name: "3-channel 32×32 (CIFAR-10's), flipped", config: Preset::Tiny.config_for(32, 3), spec: plain.clone(), guided: None },
        Layout { name: "class-conditional, guided", config: Preset::Tiny.config().conditional_on(3), spec: plain.clone(), guided: Some(vec![2, 0]) },
        Layout {
            name: "attention at 8×8 and 4×4, 4 heads",
            config: UNetConfig::new(16, 1, 1, vec![16, 32, 32], vec![false, true, true], 1).with_norm_num_groups(4).with_attention_head_dim(Some(8)),
            spec: plain.clone().with_random_flip(false),
            guided: None,
        },
        Layout {
            name: "the default recipe: v, min-SNR-5, cosine",
            config: Preset::Tiny.config(),
            spec: RunSpec::SMALL_DATA.with_batch_size(BATCH).with_seed(1).with_warmup_steps(0),
            guided: None,
        },
    ]
}

/// Deterministic images of a layout's shape, labelled 0, 1, 2, 0, …
fn images(config: &UNetConfig) -> ImageSet {
    let (s, c) = (config.sample_size, config.in_channels);
    let n = 8;
    let pixels = (0..n * s * s * c).map(|i| ((i * 37 + i / 7) % 256) as u8).collect();
    ImageSet::new(s, s, c, pixels, (0..n).map(|i| (i % 3) as u8).collect()).unwrap()
}

/// The losses of [`STEPS`] steps from `initial`'s weights on `device`, and DDIM samples of the
/// EMA weights after them.
fn run(layout: &Layout, device: &Device) -> (Vec<f64>, Vec<f64>) {
    let flex = Device::flex();
    let initial = init_seeded(&flex, 5, || layout.config.init(&flex));
    let schedule: ScheduleConfig = layout.spec.schedule_config();
    let mut trainer = Trainer::from_model(initial.to_device(device), layout.config.clone(), layout.spec.clone(), device).with_schedule(schedule);
    let set = images(&layout.config);
    let losses = (0..STEPS)
        .map(|_| {
            let batch = trainer.next_labelled_batch(&set).unwrap();
            f64::from(trainer.step_batch(batch).into_scalar::<f32>())
        })
        .collect();
    let kind = SamplerKind::ddim(SAMPLE_STEPS);
    let mut sampling = SampleRun::new(&layout.config, kind, &Schedule::new(trainer.schedule.config.clone()), BATCH, 3, device);
    if let Some(classes) = &layout.guided {
        sampling = sampling.with_guidance(&layout.config, Guidance { classes: classes.clone(), scale: 3.0 }).unwrap();
    }
    let samples = sampling.finish(&trainer.ema).into_data().try_to_vec::<f32>().unwrap().into_iter().map(f64::from).collect();
    (losses, samples)
}

#[test]
fn fused_kernels_train_and_sample_as_burn_flex_on_every_layout() {
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let mut failures = Vec::new();
    for layout in layouts() {
        layout.config.validate().unwrap();
        let (cpu_losses, cpu_samples) = run(&layout, &Device::flex());
        let (gpu_losses, gpu_samples) = run(&layout, &gpu);
        let losses = gpu_losses.iter().zip(&cpu_losses).map(|(g, c)| (g - c).abs() / c.abs()).fold(0.0, f64::max);
        let samples = gpu_samples.iter().zip(&cpu_samples).map(|(g, c)| (g - c).abs()).fold(0.0, f64::max);
        println!("{}: losses within {losses:e} (relative), DDIM-{SAMPLE_STEPS} samples within {samples:e}", layout.name);
        // The bounds of tests/lockstep.rs's GPU check: float32 sums in another order, grown a
        // little by Adam's updates (1e-4 relative); samples whose first steps multiply the
        // model's error by up to about 60 (1e-3).
        if !(losses <= 1e-4 && samples <= 1e-3 && gpu_samples.len() == cpu_samples.len()) {
            failures.push(format!("{}: losses {gpu_losses:?} vs {cpu_losses:?}; samples differ by {samples:e}", layout.name));
        }
        assert!(cpu_losses.iter().all(|l| l.is_finite()) && cpu_losses.first() != cpu_losses.last(), "{}: {cpu_losses:?}", layout.name);
    }
    assert!(failures.is_empty(), "the GPU kernels differ from burn-flex:\n{}", failures.join("\n"));
}
