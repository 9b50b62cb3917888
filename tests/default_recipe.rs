//! The default recipe learns. `tabdiffusion train` runs as a user runs it, naming only the
//! model, the steps and where the files go: v-prediction, min-SNR-5 weighting, the cosine ᾱ
//! schedule, Adam at 2e-3 warmed up over 80 steps and then decayed ∝ 1/√step, EMA 0.999, batch
//! 32 (`RunSpec::SMALL_DATA`). Its EMA weights must sample digits that LeNet-5 names with
//! confidence and that lie near MNIST's test digits in LeNet's features, far beyond what an
//! untrained model reaches (`tests/common/digits.rs`). A trainer that does not learn (a wrong
//! target, a broken weighting, a schedule off by a step) fails: see the thresholds below.

mod common;

use std::process::Command;

use burn::tensor::Device;
use common::digits::{CONFIDENT, Judge, samples};
use tabdiffusion::checkpoint::ModelSource;
use tabdiffusion::diffusion::{Prediction, Schedule};
use tabdiffusion::model::init_seeded;
use tabdiffusion::spec::RunSpec;

/// The model and the run's length: the default model, long enough that its samples are
/// digits, short enough for about 4 minutes on 2 cores (19,200 images at ~90 images/s).
const MODEL: &str = "mnist-small";
const STEPS: usize = 600;
/// Samples judged (DDIM-20, seed 0).
const COUNT: usize = 100;

#[test]
fn the_default_recipe_trains_a_model_whose_samples_are_digits() {
    let data = common::prepared_data("mnist");
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("model.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_tabdiffusion"))
        .args(["train", "--model", MODEL, "--steps", &STEPS.to_string(), "--checkpoint-every", "0", "--log-every", "100"])
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&weights)
        .arg("--grid")
        .arg(dir.path().join("samples.png"))
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // The run is the default recipe's, as its files record it.
    let source = ModelSource::weights(&std::fs::read(&weights).unwrap()).unwrap();
    let recipe = RunSpec::SMALL_DATA;
    assert_eq!(source.schedule, recipe.schedule_config(), "the default recipe's schedule, prediction and spacing");
    assert_eq!(source.schedule.prediction_type, Prediction::V);
    let card = &source.checkpoint.as_ref().unwrap().card;
    assert_eq!(card.images_seen, (STEPS * recipe.batch_size) as u64);
    assert_eq!(card.run, Some(RunSpec { steps: STEPS, save_every: 0, ..recipe }), "the weights file records the run spec it trained with");

    let device = Device::flex();
    let judge = Judge::new(&device);
    let schedule = Schedule::new(source.schedule.clone());
    let trained = samples(&source.build(&device, 0).unwrap(), &source.config, &schedule, COUNT, 20, &device);
    let fresh = samples(&init_seeded(&device, 0, || source.config.init(&device)), &source.config, &schedule, COUNT, 20, &device);
    let (trained, fresh) = (judge.judge(&trained, COUNT), judge.judge(&fresh, COUNT));
    for (what, v) in [(format!("{MODEL} after {STEPS} steps"), &trained), ("untrained".to_string(), &fresh)] {
        eprintln!(
            "{what}: {:.0}% named with p ≥ {CONFIDENT}; FID {:.1}, precision {:.2}, recall {:.2} against {COUNT} test digits",
            100.0 * v.confident,
            v.scores.fid,
            v.scores.precision,
            v.scores.recall
        );
    }
    // Measured (this test's output, seed 0): after 600 steps 23% named, FID 119.9, recall 0.78;
    // untrained 0% (seeds 0–3 in tests/example.rs), FID 696–810, recall 0.00. Each floor sits
    // far from the untrained value and below the trained one, so noise (an objective that
    // does not learn) fails all three, and a run a little unlucky passes.
    assert!(fresh.confident <= 0.02, "the judge names {} of an untrained model's samples", fresh.confident);
    assert!(trained.confident >= 0.1, "the judge names {} of the samples after {STEPS} steps", trained.confident);
    assert!(trained.scores.fid < 250.0, "FID {} after {STEPS} steps (untrained: {})", trained.scores.fid, fresh.scores.fid);
    assert!(trained.scores.recall >= 0.5, "recall {} after {STEPS} steps (untrained: {})", trained.scores.recall, fresh.scores.recall);
}
