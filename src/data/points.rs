//! The 2-D playground's data: point clouds generated from a seed (two moons, a Swiss roll,
//! eight Gaussians, a checkerboard) or drawn by the user, and Gaussian mixtures with their exact
//! noised score.
//!
//! A point set is a batch of "images" of shape `[B, 2, 1, 1]` (two channels, one pixel), so
//! the trainer, the forward process and the samplers run on it unchanged.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::DataError;
use crate::limits::{self, OverLimit};

/// The generated shapes of the playground.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointShape {
    TwoMoons,
    SwissRoll,
    EightGaussians,
    Checkerboard,
}

named!(PointShape, "point shape", [
    TwoMoons => "two-moons",
    SwissRoll => "swiss-roll",
    EightGaussians => "eight-gaussians",
    Checkerboard => "checkerboard",
]);

/// How far from the origin a point may lie (generated sets have about unit spread; a drawn
/// point is in the same coordinates, so a larger one is off the canvas).
pub const MAX_COORDINATE: f32 = 10.0;

/// A 2-D point cloud to train on.
#[derive(Clone, Debug, PartialEq)]
pub struct PointSet {
    pub points: Vec<[f32; 2]>,
}

impl PointSet {
    /// `n` points of `shape` from `seed`, scaled to zero mean and a root-mean-square of 1 per
    /// axis (the same scale on both axes, so a shape keeps its proportions); eight Gaussians are
    /// [`GaussianMixture::eight_gaussians`], which has that spread already.
    pub fn generate(shape: PointShape, n: usize, seed: u64) -> Result<Self, OverLimit> {
        limits::at_most("points", n, limits::MAX_POINTS)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uniform = || rng.random::<f64>();
        let points: Vec<[f64; 2]> = match shape {
            PointShape::EightGaussians => return Ok(GaussianMixture::eight_gaussians().sample(n, seed)),
            // scikit-learn's make_moons: two half circles, noise 0.1 here.
            PointShape::TwoMoons => (0..n)
                .map(|i| {
                    let angle = std::f64::consts::PI * uniform();
                    if i % 2 == 0 { [angle.cos(), angle.sin()] } else { [1.0 - angle.cos(), 0.5 - angle.sin()] }
                })
                .collect(),
            // scikit-learn's make_swiss_roll seen from the side: t = 1.5π (1 + 2u), (t cos t, t sin t).
            PointShape::SwissRoll => (0..n)
                .map(|_| {
                    let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * uniform());
                    [t * t.cos(), t * t.sin()]
                })
                .collect(),
            // FFJORD's checkerboard: 8 filled squares of a 4 × 4 board.
            PointShape::Checkerboard => (0..n)
                .map(|_| {
                    let x = 4.0 * uniform() - 2.0;
                    let row = if uniform() < 0.5 { 0.0 } else { -2.0 };
                    let y = uniform() + row + x.floor().rem_euclid(2.0);
                    [x, y]
                })
                .collect(),
        };
        let noise = match shape {
            PointShape::TwoMoons => 0.1,
            PointShape::SwissRoll => 0.5,
            _ => 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
        let noisy = points.into_iter().map(|[x, y]| {
            let (a, b): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            [x + noise * a, y + noise * b]
        });
        Ok(Self { points: standardize(noisy.collect()) })
    }

    /// Points the user drew, in the playground's coordinates: at least two, finite, none
    /// farther than [`MAX_COORDINATE`] on either axis.
    pub fn drawn(points: Vec<[f32; 2]>) -> Result<Self, DataError> {
        limits::at_most("points", points.len(), limits::MAX_POINTS)?;
        if points.len() < 2 {
            let n = points.len();
            return Err(DataError::Unsupported(format!("{n} drawn point{}: draw two or more", if n == 1 { "" } else { "s" })));
        }
        if let Some(p) = points.iter().find(|p| !p.iter().all(|v| v.is_finite() && v.abs() <= MAX_COORDINATE)) {
            return Err(DataError::Unsupported(format!("the point ({}, {}) is outside the canvas (±{MAX_COORDINATE})", p[0], p[1])));
        }
        Ok(Self { points })
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The points at `indices` as a `[B, 2, 1, 1]` tensor.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        points_tensor(indices.iter().map(|&i| self.points[i]), device)
    }
}

/// Points as a `[B, 2, 1, 1]` tensor.
pub fn points_tensor(points: impl IntoIterator<Item = [f32; 2]>, device: &Device) -> Tensor<4> {
    let values: Vec<f32> = points.into_iter().flatten().collect();
    let n = values.len() / 2;
    Tensor::from_data(TensorData::new(values, [n, 2, 1, 1]), device)
}

/// A `[B, 2, 1, 1]` tensor's values as points.
pub fn tensor_points(values: &[f32]) -> Vec<[f32; 2]> {
    values.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

fn standardize(points: Vec<[f64; 2]>) -> Vec<[f32; 2]> {
    let n = points.len().max(1) as f64;
    let mean = [0, 1].map(|a| points.iter().map(|p| p[a]).sum::<f64>() / n);
    let square = points.iter().map(|p| (p[0] - mean[0]).powi(2) + (p[1] - mean[1]).powi(2)).sum::<f64>() / (2.0 * n);
    let scale = if square > 0.0 { square.sqrt() } else { 1.0 };
    points.iter().map(|p| [((p[0] - mean[0]) / scale) as f32, ((p[1] - mean[1]) / scale) as f32]).collect()
}

/// One component of a [`GaussianMixture`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub weight: f64,
    pub mean: [f64; 2],
    /// Symmetric positive definite.
    pub covariance: [[f64; 2]; 2],
}

/// A mixture of 2-D Gaussians. Noising it by q(x_t | x_0) gives another mixture, so its score
/// ∇ log p_t is known in closed form ([`GaussianMixture::noised`], [`GaussianMixture::score`]).
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianMixture {
    pub components: Vec<Gaussian>,
}

impl Gaussian {
    fn inverse(&self) -> [[f64; 2]; 2] {
        let [[a, b], [c, d]] = self.covariance;
        let det = a * d - b * c;
        [[d / det, -b / det], [-c / det, a / det]]
    }

    /// log N(x; μ, Σ).
    fn log_density(&self, x: [f64; 2]) -> f64 {
        let [[a, b], [c, d]] = self.covariance;
        let det = a * d - b * c;
        let [dx, dy] = [x[0] - self.mean[0], x[1] - self.mean[1]];
        let inv = self.inverse();
        let quad = dx * (inv[0][0] * dx + inv[0][1] * dy) + dy * (inv[1][0] * dx + inv[1][1] * dy);
        -0.5 * quad - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln()
    }

    /// ∇ log N(x; μ, Σ) = −Σ⁻¹ (x − μ).
    fn score(&self, x: [f64; 2]) -> [f64; 2] {
        let inv = self.inverse();
        let [dx, dy] = [x[0] - self.mean[0], x[1] - self.mean[1]];
        [-(inv[0][0] * dx + inv[0][1] * dy), -(inv[1][0] * dx + inv[1][1] * dy)]
    }
}

impl GaussianMixture {
    /// Eight equal Gaussians of standard deviation 0.1 on a circle of radius √(2 (1 − 0.1²)),
    /// so that each axis has variance 1 (the shape of Grathwohl et al.'s FFJORD toys).
    pub fn eight_gaussians() -> Self {
        let sigma: f64 = 0.1;
        let radius = (2.0 * (1.0 - sigma * sigma)).sqrt();
        let components = (0..8)
            .map(|k| {
                let angle = std::f64::consts::PI * k as f64 / 4.0;
                Gaussian { weight: 0.125, mean: [radius * angle.cos(), radius * angle.sin()], covariance: [[sigma * sigma, 0.0], [0.0, sigma * sigma]] }
            })
            .collect();
        Self { components }
    }

    /// `n` points from `seed`: component k with probability w_k, then its Gaussian (through the
    /// Cholesky factor of Σ_k).
    pub fn sample(&self, n: usize, seed: u64) -> PointSet {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let total: f64 = self.components.iter().map(|c| c.weight).sum();
        let points = (0..n)
            .map(|_| {
                let mut u = rng.random::<f64>() * total;
                let c = self.components.iter().find(|c| {
                    u -= c.weight;
                    u < 0.0
                });
                let c = c.unwrap_or(&self.components[self.components.len() - 1]);
                let [[a, b], [_, d]] = c.covariance;
                let (l11, l21) = (a.sqrt(), b / a.sqrt());
                let l22 = (d - l21 * l21).sqrt();
                let (z1, z2): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
                [(c.mean[0] + l11 * z1) as f32, (c.mean[1] + l21 * z1 + l22 * z2) as f32]
            })
            .collect();
        PointSet { points }
    }

    /// The density of x_t = √ᾱ x_0 + √(1 − ᾱ) ε for x_0 from this mixture: the same weights,
    /// means √ᾱ μ_k, covariances ᾱ Σ_k + (1 − ᾱ) I.
    pub fn noised(&self, alpha_bar: f64) -> Self {
        let (s, v) = (alpha_bar.sqrt(), 1.0 - alpha_bar);
        let components = self
            .components
            .iter()
            .map(|c| {
                let [[a, b], [e, d]] = c.covariance;
                Gaussian {
                    weight: c.weight,
                    mean: [s * c.mean[0], s * c.mean[1]],
                    covariance: [[alpha_bar * a + v, alpha_bar * b], [alpha_bar * e, alpha_bar * d + v]],
                }
            })
            .collect();
        Self { components }
    }

    /// log p(x), by log-sum-exp over the components.
    pub fn log_density(&self, x: [f64; 2]) -> f64 {
        let total: f64 = self.components.iter().map(|c| c.weight).sum();
        let logs: Vec<f64> = self.components.iter().map(|c| (c.weight / total).ln() + c.log_density(x)).collect();
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + logs.iter().map(|l| (l - top).exp()).sum::<f64>().ln()
    }

    /// The posterior weight of each component at x: w_k N_k(x) / p(x).
    pub fn responsibilities(&self, x: [f64; 2]) -> Vec<f64> {
        let total: f64 = self.components.iter().map(|c| c.weight).sum();
        let log_p = self.log_density(x);
        self.components.iter().map(|c| ((c.weight / total).ln() + c.log_density(x) - log_p).exp()).collect()
    }

    /// ∇_x log p(x) = Σ_k r_k(x) (−Σ_k⁻¹ (x − μ_k)), r_k the responsibilities.
    pub fn score(&self, x: [f64; 2]) -> [f64; 2] {
        let r = self.responsibilities(x);
        self.components.iter().zip(r).fold([0.0, 0.0], |acc, (c, r)| {
            let s = c.score(x);
            [acc[0] + r * s[0], acc[1] + r * s[1]]
        })
    }

    /// The component most likely to have produced x.
    pub fn nearest(&self, x: [f64; 2]) -> usize {
        let r = self.responsibilities(x);
        (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skewed() -> GaussianMixture {
        GaussianMixture {
            components: vec![
                Gaussian { weight: 0.3, mean: [-1.0, 0.5], covariance: [[0.2, 0.05], [0.05, 0.1]] },
                Gaussian { weight: 0.7, mean: [1.0, -0.4], covariance: [[0.05, -0.02], [-0.02, 0.3]] },
            ],
        }
    }

    /// The closed-form score is the gradient of the log density: central differences
    /// (h = 1e-5, error O(h²)) agree to 1e-6 at points near, between and far from the modes,
    /// before and after noising.
    #[test]
    fn the_score_is_the_gradient_of_the_log_density() {
        for mixture in [skewed(), skewed().noised(0.4), GaussianMixture::eight_gaussians().noised(0.9)] {
            for x in [[-1.0, 0.5], [0.1, 0.0], [2.5, -3.0], [0.7, 1.3]] {
                let h = 1e-5;
                let d = |dx: f64, dy: f64| mixture.log_density([x[0] + dx, x[1] + dy]);
                let numeric = [(d(h, 0.0) - d(-h, 0.0)) / (2.0 * h), (d(0.0, h) - d(0.0, -h)) / (2.0 * h)];
                let exact = mixture.score(x);
                for a in 0..2 {
                    assert!((numeric[a] - exact[a]).abs() < 1e-6 * (1.0 + exact[a].abs()), "{x:?}: {numeric:?} vs {exact:?}");
                }
            }
        }
    }

    /// The noised mixture is the law of √ᾱ x_0 + √(1 − ᾱ) ε: its mean and covariance match
    /// the moments of 200k noised samples (standard errors ~0.003).
    #[test]
    fn noising_a_mixture_gives_the_law_of_x_t() {
        let (mixture, alpha_bar) = (skewed(), 0.3f64);
        let x0 = mixture.sample(200_000, 1).points;
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let xt: Vec<[f64; 2]> = x0
            .iter()
            .map(|p| {
                let e: [f64; 2] = [rng.sample(StandardNormal), rng.sample(StandardNormal)];
                [0, 1].map(|a| alpha_bar.sqrt() * f64::from(p[a]) + (1.0 - alpha_bar).sqrt() * e[a])
            })
            .collect();
        let moments = |points: &[[f64; 2]]| {
            let n = points.len() as f64;
            let m = [0, 1].map(|a| points.iter().map(|p| p[a]).sum::<f64>() / n);
            let c = |a: usize, b: usize| points.iter().map(|p| (p[a] - m[a]) * (p[b] - m[b])).sum::<f64>() / n;
            (m, [c(0, 0), c(0, 1), c(1, 1)])
        };
        let noised = mixture.noised(alpha_bar);
        let (m, c) = moments(&xt);
        let total: f64 = noised.components.iter().map(|c| c.weight).sum();
        let mean = [0, 1].map(|a| noised.components.iter().map(|c| c.weight * c.mean[a]).sum::<f64>() / total);
        let second = |a: usize, b: usize| {
            noised.components.iter().map(|c| c.weight * (c.covariance[a][b] + c.mean[a] * c.mean[b])).sum::<f64>() / total - mean[a] * mean[b]
        };
        for a in 0..2 {
            assert!((m[a] - mean[a]).abs() < 0.01, "mean {m:?} vs {mean:?}");
        }
        for (got, want) in c.iter().zip([second(0, 0), second(0, 1), second(1, 1)]) {
            assert!((got - want).abs() < 0.01, "covariance {c:?}");
        }
    }

    #[test]
    fn generated_sets_have_unit_spread_and_drawn_ones_are_checked() {
        for &shape in PointShape::ALL {
            let set = PointSet::generate(shape, 4000, 3).unwrap();
            assert_eq!(set.len(), 4000);
            let rms = (set.points.iter().map(|p| p[0] * p[0] + p[1] * p[1]).sum::<f32>() / 8000.0).sqrt();
            assert!((rms - 1.0).abs() < 0.05, "{shape:?}: {rms}");
            assert_eq!(set, PointSet::generate(shape, 4000, 3).unwrap(), "the seed fixes the set");
        }
        assert!(PointSet::generate(PointShape::TwoMoons, limits::MAX_POINTS + 1, 0).is_err());
        assert!(matches!(PointSet::drawn(vec![[0.0, 0.0]]), Err(DataError::Unsupported(_))));
        assert!(matches!(PointSet::drawn(vec![[0.0, 0.0], [f32::NAN, 1.0]]), Err(DataError::Unsupported(_))));
        assert!(matches!(PointSet::drawn(vec![[0.0, 0.0], [11.0, 1.0]]), Err(DataError::Unsupported(_))));
        assert!(matches!(PointSet::drawn(vec![[0.0, 0.0]; limits::MAX_POINTS + 1]), Err(DataError::TooLarge(_))));
        assert!(PointSet::drawn(vec![[0.0, 0.0], [1.0, -2.0]]).is_ok());
    }

    #[test]
    fn a_batch_is_points_as_two_channel_pixels() {
        let set = PointSet::drawn(vec![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
        let batch = set.batch(&[2, 0], &Device::flex());
        assert_eq!(batch.dims(), [2, 2, 1, 1]);
        assert_eq!(tensor_points(&batch.into_data().try_to_vec::<f32>().unwrap()), vec![[5.0, 6.0], [1.0, 2.0]]);
    }
}
