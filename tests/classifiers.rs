//! The feature classifiers that ship with the site (`www/classifiers/`, written by
//! `scripts/fixtures/classifiers`): the tab's quality chart measures in their features, so they must
//! know their dataset. LeNet-5 on MNIST reaches 99% in LeCun et al. 1998 (0.95% error); we ask
//! 98% of ours after 2,000 steps, and 88% on Fashion-MNIST (Xiao et al. 2017 list 89–91% for
//! small CNNs).

mod common;

use std::path::PathBuf;

use burn::tensor::Device;
use tabdiffusion::checkpoint::load_classifier;
use tabdiffusion::data::{ImageSet, Manifest, decode_tile, tile_count};
use tabdiffusion::train::accuracy;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test split of a dataset `scripts/setup` prepared, with its labels.
fn test_split(dataset: &str) -> ImageSet {
    let dir = common::prepared_data(dataset);
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let (h, w, c) = (manifest.height, manifest.width, manifest.channels);
    let mut set = ImageSet { height: h, width: w, channels: c, pixels: Vec::new(), labels: Vec::new() };
    for (k, tile) in manifest.test.tiles.iter().enumerate() {
        set.extend(&decode_tile(&std::fs::read(dir.join(tile)).unwrap(), tile_count(manifest.test.count, k), h, w, c).unwrap());
    }
    set.labels = std::fs::read(dir.join(&manifest.test.labels)).unwrap();
    set
}

fn check(dataset: &str, floor: f64) {
    let device = Device::flex();
    let file = root().join(format!("www/classifiers/{dataset}.safetensors"));
    let (net, config, card) = load_classifier(&std::fs::read(&file).unwrap(), &device).unwrap();
    assert_eq!(card.dataset, dataset, "{} is {}'s classifier", file.display(), card.dataset);
    assert!(card.test_accuracy >= floor, "its card says {}", card.test_accuracy);
    let test = test_split(dataset);
    assert_eq!((config.sample_size, config.in_channels), (test.height, test.channels));
    let measured = pollster::block_on(accuracy(&net, &test, 500, &device)).unwrap();
    eprintln!("{dataset}: {:.2}% of {} test images", 100.0 * measured, test.len());
    assert!(measured >= floor, "{dataset}: test accuracy {measured} < {floor}");
}

#[test]
fn the_mnist_classifier_is_98_percent_accurate() {
    check("mnist", 0.98);
}

#[test]
fn the_fashion_mnist_classifier_is_88_percent_accurate() {
    check("fashion-mnist", 0.88);
}
