//! One seed, one set of fresh weights, while other threads draw theirs. burn's CPU device
//! draws from one generator per process, so this runs in a process of its own: a draw made
//! elsewhere without `init_seeded` (another test's random input) could fall between a seed and
//! its draws.

use burn::tensor::Device;
use tabdiffusion::model::state_dict::named_tensors;
use tabdiffusion::model::{DenoiserConfig, Preset, init_seeded};

fn weights(device: &Device, seed: u64) -> Vec<f32> {
    let model = init_seeded(device, seed, || Preset::Tiny.config().init_denoiser(device));
    let named = pollster::block_on(named_tensors(&model)).unwrap();
    named.into_iter().flat_map(|(_, _, values)| values).collect()
}

#[test]
fn a_seed_gives_the_same_weights_while_other_threads_draw() {
    let device = Device::flex();
    let alone = weights(&device, 3);
    let together: Vec<Vec<f32>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..4u64).map(|i| s.spawn({
            let device = device.clone();
            move || (weights(&device, 3), weights(&device, 10 + i))
        })).collect();
        threads.into_iter().map(|t| t.join().unwrap().0).collect()
    });
    assert!(together.iter().all(|w| *w == alone), "a seed drawn beside others gave other weights");
    assert_ne!(weights(&device, 4), alone, "another seed, other weights");
}
