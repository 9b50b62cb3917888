//! The loss on a fixed batch (`Trainer::fixed_batch_loss`), which the tab shows so that a
//! visitor sees whether training helps: it is the step's own loss on that batch, and it falls
//! over the first steps of the default recipe on real MNIST images.

mod common;

use burn::tensor::{Device, Tensor};

use tabdiffusion::data::{ImageSet, Manifest, decode_tile, tile_count};
use tabdiffusion::model::{Preset, UNetConfig};
use tabdiffusion::train::{FIXED_BATCH_SEED, Trainer};
use tabdiffusion::web::settings::Settings;

/// The first tile (10,000 images) of the MNIST training split prepared by `scripts/setup`, with
/// their labels: the images the tab trains on with `?tiles=1`, in the same order.
fn mnist_first_tile() -> ImageSet {
    let dir = common::prepared_data("mnist");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let png = std::fs::read(dir.join(&manifest.train.tiles[0])).unwrap();
    let mut set = decode_tile(&png, tile_count(manifest.train.count, 0), 28, 28, 1).unwrap();
    set.labels = std::fs::read(dir.join(&manifest.train.labels)).unwrap()[..set.len()].to_vec();
    set
}

fn scalar(loss: Tensor<1>) -> f32 {
    loss.into_data().try_to_vec::<f32>().unwrap()[0]
}

/// A trainer as the tab makes one for `?model=tiny&batch=4&lr=0.003&warmup=0&seed=N` (no
/// `prediction=`, `schedule=` or `min_snr=`: the default recipe's v-prediction, min-SNR-5 and
/// cosine schedule), as the browser test trains it.
fn tab_trainer(model: UNetConfig, seed: u64) -> Trainer {
    let query = [("model", "tiny".to_string()), ("batch", "4".into()), ("lr", "0.003".into()), ("warmup", "0".into()), ("seed", seed.to_string())];
    let settings = Settings::from_query(|key| query.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone())).unwrap();
    let spec = settings.spec;
    Trainer::new(model, spec.clone(), &Device::flex()).with_schedule(spec.schedule_config())
}

/// Computed two ways: measured, and reported by a step on that batch with the same draws (a
/// trainer seeded with the fixed batch's seed draws them in its first step). The target, the
/// weighting, the schedule, the draws and their order must all agree for these to be equal.
#[test]
fn the_fixed_batch_loss_is_the_steps_loss_on_that_batch() {
    let data = mnist_first_tile();
    for model in [Preset::Tiny.config(), Preset::Tiny.config().conditional_on(10)] {
        let conditional = model.num_class_embeds.is_some();
        let mut trainer = tab_trainer(model, FIXED_BATCH_SEED);
        let measured = scalar(trainer.fixed_batch_loss(&data).unwrap());
        let batch = trainer.fixed_batch(&data).unwrap();
        assert_eq!(batch.images.dims(), [4, 1, 28, 28]);
        let stepped = scalar(trainer.step_batch(batch));
        println!("conditional {conditional}: measured {measured}, the step's {stepped}");
        // The measurement runs the plain device, the step the autodiff one: the same kernels.
        assert!((measured - stepped).abs() <= 1e-6 * stepped, "conditional {conditional}: measured {measured}, the step's loss {stepped}");
        // The step moved the weights; the measurement follows them.
        assert_ne!(scalar(trainer.fixed_batch_loss(&data).unwrap()), measured);
    }
}

/// Measuring takes nothing from the run's random stream: a run measured between its steps
/// trains exactly as one that is not.
#[test]
fn measuring_the_fixed_batch_does_not_change_the_run() {
    let data = mnist_first_tile();
    let (mut measured, mut plain) = (tab_trainer(Preset::Tiny.config(), 7), tab_trainer(Preset::Tiny.config(), 7));
    for _ in 0..3 {
        measured.fixed_batch_loss(&data).unwrap();
        let (a, b) = (measured.next_batch(&data), plain.next_batch(&data));
        assert_eq!(scalar(measured.step(a)), scalar(plain.step(b)));
    }
}

/// The default objective learns, as the browser test sees it (`tests/browser/e2e.mjs`: this
/// trainer, seed 7, its loss on the fixed batch measured at step 0, at the preview of step 10
/// and on Pause at step 14 or a little later). Measured here for seeds 0 to 9 (the tab's weights
/// are drawn by the GPU's generator, so its seed 7 is another draw of the same kind): at step 14
/// the loss is 0.47 to 0.63 of its value at step 0, at step 10 0.48 to 0.71, and it falls by
/// the first step in every seed (to 0.78 to 0.90). The browser asserts below 0.8 of the start
/// at both, and here every seed must.
#[test]
fn the_fixed_batch_loss_falls_over_the_first_steps_of_the_default_recipe() {
    let data = mnist_first_tile();
    for seed in 0..10u64 {
        let mut trainer = tab_trainer(Preset::Tiny.config(), seed);
        let mut fixed = vec![scalar(trainer.fixed_batch_loss(&data).unwrap())];
        for _ in 0..14 {
            let batch = trainer.next_batch(&data);
            trainer.step(batch);
            fixed.push(scalar(trainer.fixed_batch_loss(&data).unwrap()));
        }
        let ratio = |step: usize| fixed[step] / fixed[0];
        println!("seed {seed}: {:.4} at step 0; of it {:.2} at step 1, {:.2} at step 10, {:.2} at step 14", fixed[0], ratio(1), ratio(10), ratio(14));
        assert!(ratio(1) < 1.0 && ratio(10) < 0.8 && ratio(14) < 0.8, "seed {seed}: the fixed-batch loss did not fall: {fixed:?}");
    }
}
