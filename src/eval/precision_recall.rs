//! Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
//! Metric for Assessing Generative Models", Sec. 2).
//!
//! Each set's manifold is the union of balls around its vectors, each ball reaching the
//! vector's k-th nearest neighbour in the same set (eq. 1). Precision is the fraction of
//! generated vectors inside the real manifold; recall is the fraction of real vectors inside
//! the generated manifold (eq. 2).
//!
//! Brute force in f64: no distance matrix is stored. Query rows go in blocks of `BLOCK`,
//! each block streams the other set once (so a block stays in cache), and blocks are shared
//! out over the available cores.

use std::ops::Range;
use std::thread;

use super::{EvalError, Features, check_same_dim};

/// The neighbourhood size the paper recommends and uses for its experiments.
pub const DEFAULT_K: usize = 3;

/// Query rows per block.
const BLOCK: usize = 32;

/// Both numbers lie in [0, 1]; higher is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrecisionRecall {
    /// Fraction of generated vectors within the real manifold (fidelity).
    pub precision: f64,
    /// Fraction of real vectors within the generated manifold (coverage).
    pub recall: f64,
}

/// Precision and recall of `generated` against `real`, with k-th-nearest-neighbour radii.
/// Each set needs more than `k` vectors (a radius needs k neighbours besides the vector).
pub fn precision_recall(
    real: &Features,
    generated: &Features,
    k: usize,
) -> Result<PrecisionRecall, EvalError> {
    check_same_dim(real, generated)?;
    if k == 0 {
        return Err(EvalError::ZeroK);
    }
    for (set, features) in [("real", real), ("generated", generated)] {
        if features.len() <= k {
            return Err(EvalError::TooFewForK { set, found: features.len(), k });
        }
    }
    // Radii are kept squared: comparing squared distances is the same test, without roots.
    let real_radii = kth_neighbour_distances_squared(real, k);
    let generated_radii = kth_neighbour_distances_squared(generated, k);
    Ok(PrecisionRecall {
        precision: fraction_inside(generated, real, &real_radii),
        recall: fraction_inside(real, generated, &generated_radii),
    })
}

/// For each vector, the squared distance to its k-th nearest neighbour among the *other*
/// vectors of the set (excluded by index, so a duplicate still counts as a neighbour).
fn kth_neighbour_distances_squared(set: &Features, k: usize) -> Vec<f64> {
    map_row_blocks(set.len(), |block| {
        // The k smallest squared distances so far, ascending, per query row.
        let mut nearest = vec![vec![f64::INFINITY; k]; block.len()];
        for (j, other) in set.rows().enumerate() {
            for (i, best) in block.clone().zip(nearest.iter_mut()) {
                if i == j {
                    continue;
                }
                let d = squared_distance(set.row(i), other);
                if d < best[k - 1] {
                    best.insert(best.partition_point(|&b| b <= d), d);
                    best.pop();
                }
            }
        }
        nearest.into_iter().map(|best| best[k - 1]).collect()
    })
}

/// Fraction of `queries` within distance √radius_j of some reference vector j (eqs. 1–2).
fn fraction_inside(queries: &Features, reference: &Features, radii_squared: &[f64]) -> f64 {
    let inside = map_row_blocks(queries.len(), |block| {
        let mut inside = vec![false; block.len()];
        let mut outside = block.len();
        for (other, &radius) in reference.rows().zip(radii_squared) {
            for (i, is_inside) in block.clone().zip(inside.iter_mut()) {
                if !*is_inside && squared_distance(queries.row(i), other) <= radius {
                    *is_inside = true;
                    outside -= 1;
                }
            }
            if outside == 0 {
                break; // every query in the block is placed; the rest cannot change that
            }
        }
        inside
    });
    inside.iter().filter(|&&b| b).count() as f64 / queries.len() as f64
}

/// ‖a − b‖² in f64. Eight partial sums, because one running sum is a serial chain of
/// additions that the compiler may not reorder; independent lanes become SIMD.
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    let square = |(&x, &y): (&f32, &f32)| (f64::from(x) - f64::from(y)).powi(2);
    let ((a8, a_rest), (b8, b_rest)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let mut lanes = [0.0; 8];
    for (x, y) in a8.iter().zip(b8) {
        for (lane, d2) in lanes.iter_mut().zip(x.iter().zip(y).map(square)) {
            *lane += d2;
        }
    }
    lanes.iter().sum::<f64>() + a_rest.iter().zip(b_rest).map(square).sum::<f64>()
}

/// `per_block` over `0..rows` in blocks of `BLOCK`, concatenated in order. Blocks are dealt
/// round-robin to one thread per core (round-robin evens out the early exits of
/// `fraction_inside`); where threads are unavailable (wasm32) everything runs here.
fn map_row_blocks<T: Send>(
    rows: usize,
    per_block: impl Fn(Range<usize>) -> Vec<T> + Sync,
) -> Vec<T> {
    let blocks: Vec<Range<usize>> =
        (0..rows).step_by(BLOCK).map(|s| s..rows.min(s + BLOCK)).collect();
    let threads = thread::available_parallelism().map_or(1, |n| n.get()).min(blocks.len()).max(1);
    let work = |first: usize| -> Vec<(usize, Vec<T>)> {
        let mine = blocks.iter().skip(first).step_by(threads);
        mine.map(|block| (block.start, per_block(block.clone()))).collect()
    };
    let mut results = if threads == 1 {
        work(0)
    } else {
        thread::scope(|scope| {
            let workers: Vec<_> = (0..threads).map(|t| scope.spawn(move || work(t))).collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect::<Vec<_>>()
        })
    };
    results.sort_by_key(|&(start, _)| start);
    results.into_iter().flat_map(|(_, values)| values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    /// `n` samples of N(center, I) in 2-D.
    fn blob(rng: &mut ChaCha8Rng, n: usize, center: [f32; 2]) -> Vec<f32> {
        (0..n)
            .flat_map(|_| {
                center.map(|c| {
                    c + <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng)
                })
            })
            .collect()
    }

    fn features(values: Vec<f32>) -> Features {
        Features::new(2, values).unwrap()
    }

    #[test]
    fn k_nearest_radii_exclude_the_vector_itself() {
        // Points 0, 1, 3, 7 on a line: the 1st neighbours are 1, 1, 2, 4 away, the 2nd 3, 2, 3, 6.
        let line = Features::new(1, vec![0.0, 1.0, 3.0, 7.0]).unwrap();
        assert_eq!(kth_neighbour_distances_squared(&line, 1), vec![1.0, 1.0, 4.0, 16.0]);
        assert_eq!(kth_neighbour_distances_squared(&line, 2), vec![9.0, 4.0, 9.0, 36.0]);
        // A duplicate is a neighbour at distance 0; the vector itself is not.
        let twins = Features::new(1, vec![5.0, 5.0, 6.0]).unwrap();
        assert_eq!(kth_neighbour_distances_squared(&twins, 1), vec![0.0, 0.0, 1.0]);
    }

    #[test]
    fn blocks_and_threads_do_not_change_the_result() {
        // More rows than one block, so several threads each take several blocks.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let set = features(blob(&mut rng, 10 * BLOCK + 5, [0.0, 0.0]));
        let serial: Vec<f64> = (0..set.len())
            .map(|i| {
                let mut d: Vec<f64> = (0..set.len())
                    .filter(|&j| j != i)
                    .map(|j| squared_distance(set.row(i), set.row(j)))
                    .collect();
                d.sort_by(f64::total_cmp);
                d[DEFAULT_K - 1]
            })
            .collect();
        assert_eq!(kth_neighbour_distances_squared(&set, DEFAULT_K), serial);
    }

    #[test]
    fn identical_distributions_give_high_precision_and_recall() {
        // Two samples of one distribution: each set's k-NN balls cover its support up to the
        // sparse tails, so both fractions approach 1 as n grows (Kynkäänniemi et al. 2019,
        // Fig. 2: k = 3 keeps them high without covering empty space).
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let real = features(blob(&mut rng, 2000, [0.0, 0.0]));
        let generated = features(blob(&mut rng, 2000, [0.0, 0.0]));
        let pr = precision_recall(&real, &generated, DEFAULT_K).unwrap();
        assert!(pr.precision > 0.9 && pr.recall > 0.9, "{pr:?}");
    }

    #[test]
    fn a_far_shifted_set_has_zero_precision_and_recall() {
        // Shifted by 100 per axis (≈ 141 apart): the closest cross pairs are still > 100 apart
        // (|z| < 6σ for all 4000 draws), while a k = 3 radius in a set of 2000 is below 2, so no
        // vector lies in the other set's balls: both fractions are exactly 0.
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let real = features(blob(&mut rng, 2000, [0.0, 0.0]));
        let generated = features(blob(&mut rng, 2000, [100.0, 100.0]));
        let pr = precision_recall(&real, &generated, DEFAULT_K).unwrap();
        assert_eq!(pr, PrecisionRecall { precision: 0.0, recall: 0.0 });
    }

    #[test]
    fn a_set_covering_one_of_two_modes_has_full_precision_and_half_recall() {
        // Real: half N((−10, 0), I), half N((10, 0), I); generated: only the first mode.
        // Every real ball stays inside its own mode (radii ≪ 20, the gap), so precision is
        // the coverage of the first mode by real balls, ≈ 1. The generated balls all sit on
        // the first mode, so no real vector of the second mode is inside one: recall is at
        // most 1/2, and ≈ 1/2 times the first mode's coverage.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut real = blob(&mut rng, 1000, [-10.0, 0.0]);
        real.extend(blob(&mut rng, 1000, [10.0, 0.0]));
        let generated = features(blob(&mut rng, 2000, [-10.0, 0.0]));
        let pr = precision_recall(&features(real), &generated, DEFAULT_K).unwrap();
        assert!(pr.precision > 0.9, "{pr:?}");
        assert!(pr.recall <= 0.5 && pr.recall > 0.45, "{pr:?}");
    }

    #[test]
    fn a_half_off_manifold_set_has_half_precision() {
        // Half the generated vectors come from the real distribution (inside ≈ 1 of the time,
        // as above) and half sit 100 away (never inside), so precision ≈ 1/2, at most 1/2.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let real = features(blob(&mut rng, 2000, [0.0, 0.0]));
        let mut generated = blob(&mut rng, 1000, [0.0, 0.0]);
        generated.extend(blob(&mut rng, 1000, [100.0, 0.0]));
        let pr = precision_recall(&real, &features(generated), DEFAULT_K).unwrap();
        assert!(pr.precision <= 0.5 && pr.precision > 0.45, "{pr:?}");
    }

    #[test]
    fn bad_input_is_refused_in_words() {
        let four = features(vec![0.0; 8]);
        let three = features(vec![0.0; 6]);
        let empty = features(vec![]);
        let other_dim = Features::new(3, vec![0.0; 12]).unwrap();
        let message = |real: &Features, generated: &Features, k| {
            precision_recall(real, generated, k).unwrap_err().to_string()
        };
        assert_eq!(
            message(&four, &three, 3),
            "the generated set has 3 feature vectors, but k = 3 nearest neighbours need at least 4"
        );
        assert_eq!(
            message(&empty, &four, 3),
            "the real set has 0 feature vectors, but k = 3 nearest neighbours need at least 4"
        );
        assert_eq!(
            message(&four, &other_dim, 3),
            "the two sets' feature vectors differ in length (2 and 3)"
        );
        assert_eq!(
            message(&four, &four, 0),
            "k must be at least 1 (each radius is the distance to the k-th nearest neighbour)"
        );
    }
}
