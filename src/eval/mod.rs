//! Sample quality: FID and improved precision / recall between two sets of feature vectors.
//!
//! Plain host math, no I/O and no tensors: the caller embeds images with a feature network
//! (an Inception, a classifier trained on the dataset, ...) and hands the vectors in as
//! [`Features`]. Sums run in `f64` whatever the feature precision.
//!
//! - [`fid`]: the Fréchet distance between Gaussians fitted to each set (Heusel et al. 2017).
//!   One number, lower is better; it sees only means and covariances.
//! - [`precision_recall`]: how much of the generated set lies on the real manifold
//!   (precision, fidelity) and how much of the real manifold the generated set covers
//!   (recall, diversity), with manifolds estimated by k-NN balls (Kynkäänniemi et al. 2019).

mod fid;
mod precision_recall;

pub use fid::{Gaussian, fid, frechet_distance};
pub use precision_recall::{DEFAULT_K, PrecisionRecall, precision_recall};

/// The three numbers of a comparison, as `eval` prints them and the tab's quality chart draws
/// them: FID, and precision and recall with k = [`DEFAULT_K`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    pub fid: f64,
    pub precision: f64,
    pub recall: f64,
}

impl Scores {
    /// `other` measured against `real`.
    pub fn of(real: &Features, other: &Features) -> Result<Self, EvalError> {
        let fid = fid(real, other)?;
        let pr = precision_recall(real, other, DEFAULT_K)?;
        Ok(Self { fid, precision: pr.precision, recall: pr.recall })
    }
}

/// Why a metric could not be computed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("feature vectors need at least one component")]
    ZeroDimension,
    #[error("{len} values do not split into feature vectors of {dim} components")]
    Ragged { len: usize, dim: usize },
    #[error("feature vector {index} has {found} components, but the first has {expected}")]
    RowLength { index: usize, found: usize, expected: usize },
    #[error("no feature vectors given, so their length is unknown")]
    Empty,
    #[error("feature vector {index} holds a NaN or infinite value")]
    NonFinite { index: usize },
    #[error("the two sets' feature vectors differ in length ({first} and {second})")]
    DimensionMismatch { first: usize, second: usize },
    #[error("a {rows}×{cols} covariance does not fit a mean of {dim} components")]
    CovarianceShape { dim: usize, rows: usize, cols: usize },
    #[error("a covariance needs at least 2 feature vectors, but the set has {found}")]
    TooFewForCovariance { found: usize },
    #[error("k must be at least 1 (each radius is the distance to the k-th nearest neighbour)")]
    ZeroK,
    #[error(
        "the {set} set has {found} feature vectors, but k = {k} nearest neighbours need at \
         least {}", .k + 1
    )]
    TooFewForK { set: &'static str, found: usize, k: usize },
}

/// A set of feature vectors of one length, stored row after row.
///
/// Always well formed: `dim > 0`, whole rows, finite values (a NaN from a diverged model
/// would otherwise turn FID into NaN and silently drop points from precision / recall).
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    dim: usize,
    values: Vec<f32>,
}

impl Features {
    /// `values.len() / dim` vectors of `dim` components, row-major (`[N, dim]`).
    pub fn new(dim: usize, values: Vec<f32>) -> Result<Self, EvalError> {
        if dim == 0 {
            return Err(EvalError::ZeroDimension);
        }
        if !values.len().is_multiple_of(dim) {
            return Err(EvalError::Ragged { len: values.len(), dim });
        }
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(EvalError::NonFinite { index: at / dim });
        }
        Ok(Self { dim, values })
    }

    /// One vector per row; all rows must have the length of the first.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self, EvalError> {
        let dim = rows.first().ok_or(EvalError::Empty)?.len();
        if let Some((index, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != dim) {
            return Err(EvalError::RowLength { index, found: row.len(), expected: dim });
        }
        Self::new(dim, rows.concat())
    }

    /// Components per vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The vectors in order.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.dim)
    }

    /// All values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }
}

/// Errors unless both sets have vectors of the same length.
fn check_same_dim(first: &Features, second: &Features) -> Result<(), EvalError> {
    if first.dim != second.dim {
        return Err(EvalError::DimensionMismatch { first: first.dim, second: second.dim });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_split_values_into_rows() {
        let f = Features::new(2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!((f.dim(), f.len()), (2, 3));
        assert_eq!(f.row(1), &[3.0, 4.0]);
        assert_eq!(f.rows().collect::<Vec<_>>(), vec![&[1.0, 2.0][..], &[3.0, 4.0], &[5.0, 6.0]]);
        assert_eq!(Features::from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0], vec![5.0, 6.0]]), Ok(f));
    }

    #[test]
    fn malformed_features_are_refused_in_words() {
        assert_eq!(Features::new(0, vec![]), Err(EvalError::ZeroDimension));
        assert_eq!(Features::new(2, vec![1.0; 3]), Err(EvalError::Ragged { len: 3, dim: 2 }));
        assert_eq!(Features::from_rows(&[]), Err(EvalError::Empty));
        let ragged = Features::from_rows(&[vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert_eq!(ragged.to_string(), "feature vector 1 has 1 components, but the first has 2");
        let nan = Features::new(2, vec![0.0, 0.0, 0.0, f32::NAN]).unwrap_err();
        assert_eq!(nan.to_string(), "feature vector 1 holds a NaN or infinite value");
    }
}
