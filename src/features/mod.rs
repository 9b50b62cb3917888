//! The networks whose features `eval` measures sample quality in: our classifiers (LeNet-5, a
//! small ResNet) and pytorch-fid's Inception-v3, and the batched feature pass over images.

mod classifier;
pub mod inception;

pub use classifier::{Classifier, ClassifierConfig, ClassifierKind};
pub use inception::FidInception;

use burn::tensor::Tensor;

use crate::model::state_dict::read_values;

/// Images per batch of a classifier's features (`eval`, the tab's quality chart).
pub const FEATURE_BATCH: usize = 500;

/// Feature vectors of images `[N, C, H, W]` in [−1, 1] from a feature network `net` (a
/// classifier's penultimate activations, Inception's pool features), computed in batches of
/// `batch`: `N × F` values, row-major.
pub async fn features(images: Tensor<4>, batch: usize, net: impl Fn(Tensor<4>) -> Tensor<2>) -> Result<Vec<f32>, String> {
    let n = images.dims()[0];
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let end = (start + batch.max(1)).min(n);
        let f = net(images.clone().slice(start..end));
        out.extend(read_values(f).await.map_err(|e| e.to_string())?);
        start = end;
    }
    Ok(out)
}
