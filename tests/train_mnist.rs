//! A tiny U-Net trained natively on real MNIST images: the loss falls, and the weights survive
//! a save/load round trip bit for bit (same samples).

mod common;

use burn::tensor::Device;

use tabdiffusion::checkpoint::{decode, to_bytes};
use tabdiffusion::data::{ImageSet, Manifest, decode_tile, tile_count};
use tabdiffusion::diffusion::{SamplerKind, Schedule};
use tabdiffusion::model::{Preset, UNet, UNetConfig};
use tabdiffusion::pipeline::SampleRun;
use tabdiffusion::train::Trainer;
use tabdiffusion::spec::RunSpec;

/// The first tile (10,000 images) of the MNIST training split prepared by `scripts/setup`.
pub fn mnist_first_tile() -> ImageSet {
    let dir = common::prepared_data("mnist");
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let manifest: Manifest = serde_json::from_slice(&manifest).unwrap();
    let png = std::fs::read(dir.join(&manifest.train.tiles[0])).unwrap();
    decode_tile(&png, tile_count(manifest.train.count, 0), 28, 28, 1).unwrap()
}

fn samples(model: &UNet, config: &UNetConfig, device: &Device) -> Vec<f32> {
    let kind = SamplerKind::ddim(10);
    let run = SampleRun::new(config, kind, &Schedule::ddpm(), 2, 11, device);
    run.finish(model).into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn tiny_unet_on_mnist_has_a_falling_loss_and_round_trips() {
    let device = Device::flex();
    let data = mnist_first_tile();
    assert_eq!(data.len(), 10_000);
    let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(16).with_learning_rate(3e-3).with_ema_decay(0.9).with_seed(1);
    let mut trainer = Trainer::new(Preset::Tiny.config(), config, &device);

    let losses: Vec<f32> = (0..60)
        .map(|_| {
            let batch = trainer.next_batch(&data);
            let loss = trainer.step(batch);
            loss.into_data().try_to_vec::<f32>().unwrap()[0]
        })
        .collect();
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (first, last) = (mean(&losses[..10]), mean(&losses[50..]));
    println!("loss: first 10 steps {first:.4}, last 10 steps {last:.4}");
    assert!(last < 0.8 * first, "loss did not fall: {first} -> {last}");

    let card = trainer.card("mnist");
    let bytes = pollster::block_on(to_bytes(&trainer.ema, &trainer.model_config, &trainer.schedule.config, &card)).unwrap();
    let loaded = decode(&bytes).unwrap().load(&device).unwrap();
    let before = samples(&trainer.ema, &trainer.model_config, &device);
    let after = samples(&loaded, &trainer.model_config, &device);
    assert_eq!(before, after, "save -> load must give identical samples");
}
