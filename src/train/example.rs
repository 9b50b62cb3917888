//! The trained example that ships with the site: a model the tab loads with one click, so that a
//! visitor can sample real digits before (or while) their own model trains. The file is
//! committed under `www/` and reproduced by `scripts/fixtures/trained-example` (`tests/example.rs`
//! checks that the file is what this says, and that its samples are digits).

use crate::data::Dataset;
use crate::model::Preset;

/// A trained model shipped with the site.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainedExample {
    /// Its address relative to the site's root, and its path under `www/` in the repository.
    pub path: &'static str,
    /// What the button says.
    pub label: &'static str,
    /// The data it was trained on.
    pub dataset: Dataset,
    /// Its model.
    pub preset: Preset,
    /// Its training steps.
    pub steps: usize,
    /// Its training images (steps × batch).
    pub images: usize,
}

impl TrainedExample {
    /// `mnist-small` trained on MNIST on a 2-core CPU (`scripts/fixtures/trained-example`).
    pub const MNIST: Self = Self {
        path: "examples/mnist-small.safetensors",
        label: "Load a trained model of MNIST digits",
        dataset: Dataset::Mnist,
        preset: Preset::MnistSmall,
        steps: 3200,
        images: 102_400,
    };
}
