//! Fréchet distance between Gaussians fitted to two sets of features (FID; Heusel et al.
//! 2017, "GANs Trained by a Two Time-Scale Update Rule..."):
//!
//! d² = ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})
//!
//! Σ1 Σ2 is not symmetric, so its square root is not taken directly (pytorch-fid uses
//! `scipy.linalg.sqrtm`, which can return complex noise). Instead, with S = Σ1^{1/2},
//! Σ1 Σ2 = S (S Σ2) has the eigenvalues of (S Σ2) S = M (AB and BA share them, even for a
//! singular S), and M = S Σ2 S is symmetric PSD, so Tr (Σ1 Σ2)^{1/2} = Σ_i √λ_i(M):
//! two symmetric eigendecompositions, no complex numbers.

use nalgebra::{DMatrix, DVector};

use super::{EvalError, Features, check_same_dim};

/// Rows per centred block when accumulating a covariance (bounds the memory to
/// `BLOCK × dim` f64, whatever the set size).
const BLOCK: usize = 1024;

/// A Gaussian N(mean, cov), fitted to features or given exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    mean: DVector<f64>,
    cov: DMatrix<f64>,
}

impl Gaussian {
    /// A Gaussian from its parameters; `cov` must be `dim × dim`, symmetric and positive
    /// semi-definite (only the shape is checked).
    pub fn new(mean: DVector<f64>, cov: DMatrix<f64>) -> Result<Self, EvalError> {
        let dim = mean.len();
        if cov.shape() != (dim, dim) {
            return Err(EvalError::CovarianceShape { dim, rows: cov.nrows(), cols: cov.ncols() });
        }
        Ok(Self { mean, cov })
    }

    /// Sample mean and unbiased (n − 1) covariance, as pytorch-fid's `np.cov(rowvar=False)`.
    pub fn fit(features: &Features) -> Result<Self, EvalError> {
        let (n, dim) = (features.len(), features.dim());
        if n < 2 {
            return Err(EvalError::TooFewForCovariance { found: n });
        }
        // Two passes (mean, then centred products): no cancellation from E[x²] − E[x]².
        let mut mean = DVector::<f64>::zeros(dim);
        for row in features.rows() {
            mean += DVector::from_iterator(dim, row.iter().map(|&v| f64::from(v)));
        }
        mean /= n as f64;

        // Σ (x − μ)(x − μ)ᵀ, a block of rows at a time: each row is one column of `centred`.
        let mut cov = DMatrix::<f64>::zeros(dim, dim);
        for start in (0..n).step_by(BLOCK) {
            let rows = BLOCK.min(n - start);
            let block = &features.values()[start * dim..(start + rows) * dim];
            let mut centred =
                DMatrix::from_iterator(dim, rows, block.iter().map(|&v| f64::from(v)));
            for mut column in centred.column_iter_mut() {
                column -= &mean;
            }
            cov.gemm(1.0, &centred, &centred.transpose(), 1.0);
        }
        cov /= (n - 1) as f64;
        Ok(Self { mean, cov })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    pub fn mean(&self) -> &DVector<f64> {
        &self.mean
    }

    pub fn cov(&self) -> &DMatrix<f64> {
        &self.cov
    }
}

/// Squared Fréchet (2-Wasserstein) distance between two Gaussians (Heusel et al. 2017).
pub fn frechet_distance(first: &Gaussian, second: &Gaussian) -> Result<f64, EvalError> {
    if first.dim() != second.dim() {
        return Err(EvalError::DimensionMismatch { first: first.dim(), second: second.dim() });
    }
    let mean_term = (&first.mean - &second.mean).norm_squared();
    let s = psd_sqrt(&first.cov); // S = Σ1^{1/2}
    let m = &s * &second.cov * &s; // M = S Σ2 S, similar to Σ1 Σ2
    let m = (&m + m.transpose()) * 0.5; // symmetric again after rounding
    let trace_sqrt: f64 = m.symmetric_eigenvalues().iter().map(|&l| l.max(0.0).sqrt()).sum();
    let d2 = mean_term + first.cov.trace() + second.cov.trace() - 2.0 * trace_sqrt;
    // A squared distance; a tiny negative value is rounding (identical sets), not information.
    Ok(d2.max(0.0))
}

/// FID between two sets of features: the Fréchet distance of their fitted Gaussians.
pub fn fid(first: &Features, second: &Features) -> Result<f64, EvalError> {
    check_same_dim(first, second)?;
    frechet_distance(&Gaussian::fit(first)?, &Gaussian::fit(second)?)
}

/// Σ^{1/2} = V diag(√max(λ, 0)) Vᵀ for a symmetric PSD Σ = V diag(λ) Vᵀ; eigenvalues that
/// rounding pushed below zero (rank-deficient Σ, e.g. fewer vectors than components) count as 0.
fn psd_sqrt(sigma: &DMatrix<f64>) -> DMatrix<f64> {
    let eigen = sigma.clone().symmetric_eigen();
    let roots = eigen.eigenvalues.map(|l| l.max(0.0).sqrt());
    let v = &eigen.eigenvectors;
    v * DMatrix::from_diagonal(&roots) * v.transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rand_distr::StandardNormal;

    /// `n` samples of N(mean, diag(std²)).
    fn diagonal_gaussian(seed: u64, n: usize, mean: &[f64], std: &[f64]) -> Features {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values = (0..n)
            .flat_map(|_| {
                mean.iter()
                    .zip(std)
                    .map(|(m, s)| m + s * rng.sample::<f64, _>(StandardNormal))
                    .collect::<Vec<_>>()
            })
            .map(|v| v as f32)
            .collect();
        Features::new(mean.len(), values).unwrap()
    }

    fn exact(mean: &[f64], cov: DMatrix<f64>) -> Gaussian {
        Gaussian::new(DVector::from_column_slice(mean), cov).unwrap()
    }

    #[test]
    fn gaussian_fit_uses_the_unbiased_covariance() {
        // The corners of [0, 2]²: mean (1, 1); np.cov divides Σ (±1)² = 4 by n − 1 = 3.
        let corners = Features::new(2, vec![0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 2.0]).unwrap();
        let g = Gaussian::fit(&corners).unwrap();
        assert_eq!(g.mean(), &DVector::from_column_slice(&[1.0, 1.0]));
        let expected = DMatrix::from_row_slice(2, 2, &[4.0 / 3.0, 0.0, 0.0, 4.0 / 3.0]);
        assert!((g.cov() - expected).abs().max() < 1e-12, "{}", g.cov());
    }

    #[test]
    fn fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric() {
        let a = diagonal_gaussian(1, 500, &[0.0; 8], &[1.0, 2.0, 3.0, 0.5, 1.0, 1.0, 4.0, 0.1]);
        let b = diagonal_gaussian(2, 500, &[1.0; 8], &[2.0; 8]);
        let scale = Gaussian::fit(&a).unwrap().cov().trace(); // ≈ Σ σ² ≈ 33
        // d(P, P) = 0 for any metric; only rounding remains.
        assert!(fid(&a, &a).unwrap() < 1e-6 * scale);
        // The Fréchet distance is a metric, so symmetric; the two computations differ only in
        // which covariance is square-rooted first, so they agree to rounding.
        let (ab, ba) = (fid(&a, &b).unwrap(), fid(&b, &a).unwrap());
        assert!((ab - ba).abs() < 1e-9 * ab, "{ab} vs {ba}");
    }

    #[test]
    fn fid_of_a_rank_deficient_set_with_itself_is_zero() {
        // 5 vectors in 10 dimensions: Σ has rank 4, so its eigenvalues include rounding
        // noise around 0 that the square roots must clamp rather than turn into NaN.
        let a = diagonal_gaussian(3, 5, &[0.0; 10], &[1.0; 10]);
        let scale = Gaussian::fit(&a).unwrap().cov().trace();
        let d = fid(&a, &a).unwrap();
        assert!(d.is_finite() && d < 1e-6 * scale, "{d}");
    }

    #[test]
    fn fid_of_sampled_diagonal_gaussians_matches_the_closed_form() {
        // For diagonal covariances Tr(Σ1 Σ2)^{1/2} = Σ σ1ᵢ σ2ᵢ, so
        // d² = Σ (μ1ᵢ − μ2ᵢ)² + Σ (σ1ᵢ − σ2ᵢ)² = (0.25 + 0 + 1 + 0) + (0.25 + 1 + 0 + 4) = 6.5.
        let (mu1, sigma1) = ([0.0, 1.0, -1.0, 2.0], [1.0, 2.0, 0.5, 1.0]);
        let (mu2, sigma2) = ([0.5, 1.0, 0.0, 2.0], [1.5, 1.0, 0.5, 3.0]);
        let n = 20_000;
        let a = diagonal_gaussian(10, n, &mu1, &sigma1);
        let b = diagonal_gaussian(11, n, &mu2, &sigma2);
        // Sampling error, by the delta method: component i contributes a variance of
        // 4 Δμᵢ² (σ1ᵢ² + σ2ᵢ²) / n + 4 Δσᵢ² (σ1ᵢ² + σ2ᵢ²) / 2n, in total ≈ 4.8e-3, so the
        // standard deviation is ≈ 0.07; the bias Σ (σ1ᵢ² + σ2ᵢ²) / n ≈ 1e-3 is negligible.
        // 0.3 is about 4 standard deviations.
        let d = fid(&a, &b).unwrap();
        assert!((d - 6.5).abs() < 0.3, "{d}");
    }

    #[test]
    fn frechet_distance_of_rotated_commuting_covariances_matches_the_closed_form() {
        // Σ1 = Q diag(a) Qᵀ and Σ2 = Q diag(b) Qᵀ share the eigenbasis Q, so
        // (Σ1 Σ2)^{1/2} = Q diag(√(aᵢ bᵢ)) Qᵀ and d² = ‖Δμ‖² + Σ (√aᵢ − √bᵢ)².
        let q = DMatrix::from_row_slice(
            4,
            4,
            &[
                1.0, 2.0, 0.0, -1.0, //
                0.5, -1.0, 3.0, 0.0, //
                2.0, 0.0, 1.0, 1.0, //
                0.0, 1.0, -2.0, 0.5,
            ],
        )
        .qr()
        .q();
        let (a, b): ([f64; 4], [f64; 4]) = ([4.0, 1.0, 0.25, 9.0], [1.0, 1.0, 2.0, 0.5]);
        let rotated =
            |d: &[f64]| &q * DMatrix::from_diagonal(&DVector::from_column_slice(d)) * q.transpose();
        assert!(rotated(&a).abs().min() > 0.01); // full, not diagonal
        let (mu1, mu2) = ([1.0, 0.0, -1.0, 2.0], [0.0, 0.0, 1.0, 2.5]);
        let mean_term: f64 = mu1.iter().zip(&mu2).map(|(x, y)| (x - y) * (x - y)).sum();
        let cov_term: f64 = a.iter().zip(&b).map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2)).sum();
        let d = frechet_distance(&exact(&mu1, rotated(&a)), &exact(&mu2, rotated(&b))).unwrap();
        assert!((d - (mean_term + cov_term)).abs() < 1e-10, "{d} vs {}", mean_term + cov_term);
    }

    #[test]
    fn frechet_distance_of_non_commuting_2x2_covariances_matches_the_closed_form() {
        // Σ1 Σ2 has eigenvalues λ1, λ2 ≥ 0 (it is similar to a PSD matrix), and
        // (√λ1 + √λ2)² = tr + 2 √det, so Tr (Σ1 Σ2)^{1/2} = √(tr(Σ1 Σ2) + 2 √(det Σ1 det Σ2)).
        let s1 = DMatrix::<f64>::from_row_slice(2, 2, &[2.0, 0.5, 0.5, 1.0]);
        let s2 = DMatrix::from_row_slice(2, 2, &[1.0, -0.3, -0.3, 3.0]);
        assert!((&s1 * &s2 - &s2 * &s1).abs().max() > 0.1); // they do not commute
        let trace_sqrt =
            ((&s1 * &s2).trace() + 2.0 * (s1.determinant() * s2.determinant()).sqrt()).sqrt();
        let expected = 1.0 + s1.trace() + s2.trace() - 2.0 * trace_sqrt; // ‖Δμ‖² = 1
        let d = frechet_distance(&exact(&[0.0, 0.0], s1), &exact(&[1.0, 0.0], s2)).unwrap();
        assert!((d - expected).abs() < 1e-10, "{d} vs {expected}");
    }

    #[test]
    fn fid_against_uniform_noise_is_large() {
        // FID sees only the first two moments: U(−5, 5)¹⁶ has mean 0 and variance 100/12, so
        // against N(0, I) it scores as N(0, (10/√12)² I) would: 16 (10/√12 − 1)² ≈ 57.0.
        let dim = 16;
        let real = diagonal_gaussian(20, 2000, &vec![0.0; dim], &vec![1.0; dim]);
        let other_real = diagonal_gaussian(21, 2000, &vec![0.0; dim], &vec![1.0; dim]);
        let mut rng = ChaCha8Rng::seed_from_u64(22);
        let noise =
            Features::new(dim, (0..2000 * dim).map(|_| rng.random_range(-5.0..5.0)).collect())
                .unwrap();
        let expected = dim as f64 * (10.0 / 12f64.sqrt() - 1.0).powi(2);
        let (to_noise, to_real) = (fid(&real, &noise).unwrap(), fid(&real, &other_real).unwrap());
        assert!((to_noise - expected).abs() < 0.05 * expected, "{to_noise} vs {expected}");
        assert!(to_noise > 100.0 * to_real, "{to_noise} vs {to_real}");
    }

    #[test]
    fn fid_refuses_bad_input_in_words() {
        let one = Features::new(3, vec![0.0; 3]).unwrap();
        let two = Features::new(3, vec![0.0; 6]).unwrap();
        let other_dim = Features::new(2, vec![0.0; 6]).unwrap();
        let too_few = fid(&one, &two).unwrap_err();
        assert_eq!(
            too_few.to_string(),
            "a covariance needs at least 2 feature vectors, but the set has 1"
        );
        let mismatch = fid(&two, &other_dim).unwrap_err();
        assert_eq!(
            mismatch.to_string(),
            "the two sets' feature vectors differ in length (3 and 2)"
        );
        let bad_cov = Gaussian::new(DVector::zeros(3), DMatrix::zeros(2, 2)).unwrap_err();
        assert_eq!(bad_cov.to_string(), "a 2×2 covariance does not fit a mean of 3 components");
    }
}
