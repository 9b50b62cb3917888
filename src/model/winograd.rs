//! 3×3 convolutions of stride 1 and padding 1 (most of the U-Net's) by Winograd's minimal
//! filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2016): each 2×2 block of outputs from a 4×4 window of the input with 16 multiplications per
//! (input, output) channel pair instead of 36.
//!
//! Per image: every window d (overlapping by 2, zero outside the image) becomes V = Bᵀ·d·B,
//! every 3×3 filter g becomes U = G·g·Gᵀ (once per call); then for each of the 16 positions ξ
//! one matrix product M_ξ = U_ξ·V_ξ sums over the input channels ([C_out, C]·[C, tiles]), and
//! each tile's 2×2 outputs are Aᵀ·M·A. With
//!   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//!   Aᵀ = [1 1 1 0; 0 1 −1 −1].
//! The input gradient of such a convolution is the same kind of convolution of the output's
//! gradient, with each filter turned by 180° and the channel axes swapped; the weights' gradient
//! is F(3×3, 2×2) over the same windows (`weight_gradient`).

use super::flex::{each_image, matmul_accumulate, matmul_into, sum_over_images, vectorised};
use std::cell::RefCell;

/// Positions of the 4×4 transformed tile.
const POSITIONS: usize = 16;

/// The convolution of `x` [N, C, H, W] with `weight` [C_out, C, 3, 3], stride 1, padding 1, plus
/// `bias` [C_out] if given: [N, C_out, H, W].
pub(super) fn convolve(x: &[f32], n: usize, [c, h, w]: [usize; 3], weight: &[f32], c_out: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert!(x.len() == n * c * h * w && weight.len() == c_out * c * 9, "winograd: sizes do not match");
    let filters = transformed_filters(weight, c_out, c);
    let plane = h * w;
    let mut out = vec![0.0f32; n * c_out * plane];
    let images: Vec<_> = x.chunks_exact(c * plane).zip(out.chunks_exact_mut(c_out * plane)).collect();
    each_image(images, |(image, out), parallel| {
        let tiles = Tiles { h, w };
        let count = tiles.count();
        with_scratch(|[inputs, products]| {
            let inputs = sized(inputs, POSITIONS * c * count);
            let products = sized(products, POSITIONS * c_out * count);
            input_transform(image, &tiles, inputs);
            for ((m, u), v) in products.chunks_exact_mut(c_out * count).zip(filters.chunks_exact(c_out * c)).zip(inputs.chunks_exact(c * count)) {
                matmul_into(m, (u, true), (v, false), [c_out, c, count], parallel);
            }
            output_transform(products, c_out, &tiles, bias, out);
        });
    });
    out
}

thread_local! {
    /// Per thread, the buffers for the transformed inputs and the products of the image it works
    /// on, kept from one image to the next: every element is written before it is read, so they
    /// are not zeroed again (which took a twentieth of a training step).
    static SCRATCH: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// `f` with this thread's buffers (fresh ones if they are in use further up the stack).
fn with_scratch<R>(f: impl FnOnce(&mut [Vec<f32>; 2]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => f(&mut buffers),
        Err(_) => f(&mut [Vec::new(), Vec::new()]),
    })
}

/// The first `len` elements of `buffer`, grown (with zeros) if it is shorter.
fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// The gradient with respect to `x` of `convolve(x, weight)`, given the output's [N, C_out, H, W].
pub(super) fn input_gradient(grad: &[f32], n: usize, [c, h, w]: [usize; 3], weight: &[f32], c_out: usize) -> Vec<f32> {
    // dx[i, q] = Σ_o Σ_k W[o, i, k]·dy[o, q − k + 1] = Σ_o Σ_k W[o, i, 2 − k]·dy[o, q + k − 1].
    let mut turned = vec![0.0f32; weight.len()];
    for o in 0..c_out {
        for i in 0..c {
            for k in 0..9 {
                turned[(i * c_out + o) * 9 + 8 - k] = weight[(o * c + i) * 9 + k];
            }
        }
    }
    convolve(grad, n, [c_out, h, w], &turned, c, None)
}

/// The gradient with respect to `weight` [C_out, C, 3, 3] of `convolve(x, weight)`, given the
/// output's [N, C_out, H, W], by F(3×3, 2×2): the weights' gradient of one 2×2 block of the
/// output is the correlation of its 4×4 input window d (the forward pass's) with that block b
/// of the output's gradient, Aᵀ·((G·b·Gᵀ) ⊙ (Bᵀ·d·B))·A with
///   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 −1 0 1],  G = [1 0; ½ ½; ½ −½; 0 1],
///   Aᵀ = [1 1 1 0; 0 1 −1 0; 0 1 1 1].
/// This Bᵀ is the forward pass's with its last row negated, so the windows are transformed as
/// there and the signs applied at the end. Summed over the tiles and the images, each position's
/// sum is one product [C_out, tiles]·[tiles, C] per image, accumulated per thread.
pub(super) fn weight_gradient(x: &[f32], grad: &[f32], n: usize, [c, h, w]: [usize; 3], c_out: usize) -> Vec<f32> {
    assert!(x.len() == n * c * h * w && grad.len() == n * c_out * h * w, "winograd: sizes do not match");
    let tiles = Tiles { h, w };
    let (count, plane) = (tiles.count(), h * w);
    let images: Vec<_> = x.chunks_exact(c * plane).zip(grad.chunks_exact(c_out * plane)).collect();
    let fresh = || (vec![0.0f32; POSITIONS * c_out * c], ());
    let accumulate = |(sums, ()): &mut (Vec<f32>, ()), (image, grad): (&[f32], &[f32]), parallel: bool| {
        with_scratch(|[inputs, blocks]| {
            let inputs = sized(inputs, POSITIONS * c * count);
            let blocks = sized(blocks, POSITIONS * count * c_out);
            input_transform(image, &tiles, inputs);
            gradient_transform(grad, &tiles, blocks);
            for ((m, b), v) in sums.chunks_exact_mut(c_out * c).zip(blocks.chunks_exact(c_out * count)).zip(inputs.chunks_exact(c * count)) {
                matmul_accumulate(m, (b, false), (v, true), [c_out, count, c], parallel);
            }
        });
    };
    let sums = sum_over_images(images, fresh, accumulate);
    filter_gradients(&sums, c_out, c)
}

// G·b·Gᵀ for every 2×2 block b of every channel of the output's gradient (0 past its edge), into
// `blocks` as [16][C_out][tiles].
vectorised!(gradient_transform, gradient_transform_kernel, (grad: &[f32], tiles: &Tiles, blocks: &mut [f32]));

/// A row of blocks at a time, each loop along the row: the blocks' four entries as arrays over
/// the row (the even and odd columns of its two rows), then G·b (rows P, Q of 4×2) and ·Gᵀ.
#[inline(always)]
fn gradient_transform_kernel(grad: &[f32], tiles: &Tiles, blocks: &mut [f32]) {
    let (rows, columns, count, (h, w)) = (tiles.rows(), tiles.columns(), tiles.count(), (tiles.h, tiles.w));
    let c_out = grad.len() / (h * w);
    // [top even, top odd, bottom even, bottom odd], then [P, Q] of G·b's four rows.
    let mut entries = vec![0.0f32; 4 * columns];
    let mut pq = vec![0.0f32; 8 * columns];
    for (o, plane) in grad.chunks_exact(h * w).enumerate() {
        for ty in 0..rows {
            entries.fill(0.0);
            for (dy, parts) in entries.chunks_exact_mut(2 * columns).enumerate() {
                let Some(row) = plane.chunks_exact(w).nth(2 * ty + dy) else { continue };
                let (even, odd) = parts.split_at_mut(columns);
                for ((pair, e), o) in row.chunks(2).zip(even.iter_mut()).zip(odd.iter_mut()) {
                    *e = pair[0];
                    *o = pair.get(1).copied().unwrap_or(0.0);
                }
            }
            let (a, b, c, d) = (&entries[..columns], &entries[columns..2 * columns], &entries[2 * columns..3 * columns], &entries[3 * columns..]);
            {
                let (p, q) = pq.split_at_mut(4 * columns);
                p[..columns].copy_from_slice(a);
                q[..columns].copy_from_slice(b);
                combine(&mut p[columns..2 * columns], a, c, |a, c| 0.5 * (a + c));
                combine(&mut q[columns..2 * columns], b, d, |b, d| 0.5 * (b + d));
                combine(&mut p[2 * columns..3 * columns], a, c, |a, c| 0.5 * (a - c));
                combine(&mut q[2 * columns..3 * columns], b, d, |b, d| 0.5 * (b - d));
                p[3 * columns..].copy_from_slice(c);
                q[3 * columns..].copy_from_slice(d);
            }
            let (p, q) = pq.split_at(4 * columns);
            for (i, (p, q)) in p.chunks_exact(columns).zip(q.chunks_exact(columns)).enumerate() {
                let at = |j: usize| ((i * 4 + j) * c_out + o) * count + ty * columns;
                blocks[at(0)..][..columns].copy_from_slice(p);
                combine(&mut blocks[at(1)..][..columns], p, q, |p, q| 0.5 * (p + q));
                combine(&mut blocks[at(2)..][..columns], p, q, |p, q| 0.5 * (p - q));
                blocks[at(3)..][..columns].copy_from_slice(q);
            }
        }
    }
}

/// dW = Aᵀ·(S ⊙ M)·A for every (output, input) channel pair, M its 16 sums and S the signs that
/// turn the forward pass's Bᵀ into this one's (−1 in the last row or column, +1 in both).
fn filter_gradients(sums: &[f32], c_out: usize, c: usize) -> Vec<f32> {
    let mut d_weight = vec![0.0f32; c_out * c * 9];
    let sign = |i: usize| if i == 3 { -1.0f32 } else { 1.0 };
    for (pair, d_filter) in d_weight.chunks_exact_mut(9).enumerate() {
        let m = |i: usize, j: usize| sign(i) * sign(j) * sums[(i * 4 + j) * c_out * c + pair];
        // Aᵀ·M: 3×4, then (Aᵀ·M)·A: 3×3.
        let mut am = [[0.0f32; 4]; 3];
        for j in 0..4 {
            let (m0, m1, m2, m3) = (m(0, j), m(1, j), m(2, j), m(3, j));
            am[0][j] = m0 + m1 + m2;
            am[1][j] = m1 - m2;
            am[2][j] = m1 + m2 + m3;
        }
        for (k, [a0, a1, a2, a3]) in am.into_iter().enumerate() {
            d_filter[k * 3..][..3].copy_from_slice(&[a0 + a1 + a2, a1 - a2, a1 + a2 + a3]);
        }
    }
    d_weight
}

/// The 2×2 output tiles covering an H×W image.
struct Tiles {
    h: usize,
    w: usize,
}

impl Tiles {
    fn rows(&self) -> usize {
        self.h.div_ceil(2)
    }

    fn columns(&self) -> usize {
        self.w.div_ceil(2)
    }

    fn count(&self) -> usize {
        self.rows() * self.columns()
    }
}

/// U = G·g·Gᵀ for every filter, as [16][C][C_out]: each position's [C_out, C] matrix stored
/// column by column, which the products read as it is (row by row, `gemm` would copy it into
/// that order again for every image).
fn transformed_filters(weight: &[f32], c_out: usize, c: usize) -> Vec<f32> {
    let mut u = vec![0.0f32; POSITIONS * c_out * c];
    for (filter, g) in weight.chunks_exact(9).enumerate() {
        // G·g: 4×3, then (G·g)·Gᵀ: 4×4.
        let mut gg = [[0.0f32; 3]; 4];
        for j in 0..3 {
            let (g0, g1, g2) = (g[j], g[3 + j], g[6 + j]);
            gg[0][j] = g0;
            gg[1][j] = 0.5 * (g0 + g1 + g2);
            gg[2][j] = 0.5 * (g0 - g1 + g2);
            gg[3][j] = g2;
        }
        for (i, [g0, g1, g2]) in gg.into_iter().enumerate() {
            let row = [g0, 0.5 * (g0 + g1 + g2), 0.5 * (g0 - g1 + g2), g2];
            for (j, value) in row.into_iter().enumerate() {
                let (o, input) = (filter / c, filter % c);
                u[((i * 4 + j) * c + input) * c_out + o] = value;
            }
        }
    }
    u
}

// V = Bᵀ·d·B for every 4×4 window d of every channel, into `v` as [16][C][tiles].
vectorised!(input_transform, input_transform_kernel, (image: &[f32], tiles: &Tiles, v: &mut [f32]));
// Y = Aᵀ·M·A (+ bias) for every tile of every output channel, into `out` [C_out, H, W].
vectorised!(output_transform, output_transform_kernel, (products: &[f32], c_out: usize, tiles: &Tiles, bias: Option<&[f32]>, out: &mut [f32]));

/// A row of tiles at a time, so that every loop runs along a row with unit stride: the padded
/// plane is kept as its even and its odd columns (window tx covers even and odd columns tx and
/// tx + 1); Bᵀ·d combines the four input rows of the row of windows, then ·B gives each
/// position's values, contiguous over the windows of the row.
#[inline(always)]
fn input_transform_kernel(image: &[f32], tiles: &Tiles, v: &mut [f32]) {
    let (rows, columns, count, plane) = (tiles.rows(), tiles.columns(), tiles.count(), tiles.h * tiles.w);
    let c = image.len() / plane;
    // One channel at a time, zero-padded by one pixel (and to whole tiles) so that every window
    // lies inside: padded column p of row y is even[y][p / 2] or odd[y][p / 2].
    let half = columns + 1;
    let (mut even, mut odd) = (vec![0.0f32; (2 * rows + 2) * half], vec![0.0f32; (2 * rows + 2) * half]);
    let mut bd = vec![0.0f32; 8 * half];
    for (channel, source) in image.chunks_exact(plane).enumerate() {
        for (y, row) in source.chunks_exact(tiles.w).enumerate() {
            // Image column x is padded column x + 1.
            let (even, odd) = (&mut even[(y + 1) * half..][..half], &mut odd[(y + 1) * half..][..half]);
            let pairs = row.chunks_exact(2);
            if let [last] = pairs.remainder() {
                odd[tiles.w / 2] = *last;
            }
            for ((pair, odd), even) in pairs.zip(odd.iter_mut()).zip(even[1..].iter_mut()) {
                (*odd, *even) = (pair[0], pair[1]);
            }
        }
        for ty in 0..rows {
            for (parity, padded) in [&even, &odd].into_iter().enumerate() {
                let d = &padded[2 * ty * half..][..4 * half];
                let (d0, d1, d2, d3) = (&d[..half], &d[half..2 * half], &d[2 * half..3 * half], &d[3 * half..]);
                let out = &mut bd[parity * 4 * half..][..4 * half];
                let (b0, rest) = out.split_at_mut(half);
                let (b1, rest) = rest.split_at_mut(half);
                let (b2, b3) = rest.split_at_mut(half);
                rows_combined([d0, d1, d2, d3], [b0, b1, b2, b3]);
            }
            let (bd_even, bd_odd) = bd.split_at(4 * half);
            for (i, (e, o)) in bd_even.chunks_exact(half).zip(bd_odd.chunks_exact(half)).enumerate() {
                let at = |j: usize| ((i * 4 + j) * c + channel) * count + ty * columns;
                // Window tx: (e[tx], o[tx], e[tx + 1], o[tx + 1]).
                let (e0, e1, o0, o1) = (&e[..columns], &e[1..], &o[..columns], &o[1..]);
                combine(&mut v[at(0)..][..columns], e0, e1, |a, b| a - b);
                combine(&mut v[at(1)..][..columns], o0, e1, |a, b| a + b);
                combine(&mut v[at(2)..][..columns], e1, o0, |a, b| a - b);
                combine(&mut v[at(3)..][..columns], o0, o1, |a, b| a - b);
            }
        }
    }
}

/// Bᵀ·d for a row of windows: the four combinations of its four input rows, element by element.
#[inline(always)]
fn rows_combined([d0, d1, d2, d3]: [&[f32]; 4], [b0, b1, b2, b3]: [&mut [f32]; 4]) {
    let inputs = d0.iter().zip(d1).zip(d2.iter().zip(d3));
    let outputs = b0.iter_mut().zip(b1.iter_mut()).zip(b2.iter_mut().zip(b3.iter_mut()));
    for (((b0, b1), (b2, b3)), ((&d0, &d1), (&d2, &d3))) in outputs.zip(inputs) {
        *b0 = d0 - d2;
        *b1 = d1 + d2;
        *b2 = d2 - d1;
        *b3 = d1 - d3;
    }
}

/// out[i] = f(a[i], b[i]).
#[inline(always)]
fn combine(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (out, (&a, &b)) in out.iter_mut().zip(a.iter().zip(b)) {
        *out = f(a, b);
    }
}

/// A row of tiles at a time: Aᵀ·M for the row's tiles, each position contiguous over them; then
/// ·A gives the even and the odd columns of the two output rows, interleaved into place.
#[inline(always)]
fn output_transform_kernel(products: &[f32], c_out: usize, tiles: &Tiles, bias: Option<&[f32]>, out: &mut [f32]) {
    let (rows, columns, count) = (tiles.rows(), tiles.columns(), tiles.count());
    let (h, w) = (tiles.h, tiles.w);
    let mut am = vec![0.0f32; 8 * columns];
    let (mut even, mut odd) = (vec![0.0f32; columns], vec![0.0f32; columns]);
    for (o, plane) in out.chunks_exact_mut(h * w).enumerate() {
        let b = bias.map_or(0.0, |bias| bias[o]);
        for ty in 0..rows {
            let m = |i: usize, j: usize| &products[((i * 4 + j) * c_out + o) * count + ty * columns..][..columns];
            for j in 0..4 {
                let (m0, m1, m2, m3) = (m(0, j), m(1, j), m(2, j), m(3, j));
                let (top, bottom) = am.split_at_mut(4 * columns);
                let (top, bottom) = (&mut top[j * columns..][..columns], &mut bottom[j * columns..][..columns]);
                for (((t, u), (&m0, &m1)), (&m2, &m3)) in top.iter_mut().zip(bottom).zip(m0.iter().zip(m1)).zip(m2.iter().zip(m3)) {
                    *t = m0 + m1 + m2;
                    *u = m1 - m2 - m3;
                }
            }
            for (dy, a) in am.chunks_exact(4 * columns).enumerate() {
                let y = 2 * ty + dy;
                if y >= h {
                    break;
                }
                let (a0, a1, a2, a3) = (&a[..columns], &a[columns..2 * columns], &a[2 * columns..3 * columns], &a[3 * columns..]);
                for (((e, o), (&a0, &a1)), (&a2, &a3)) in even.iter_mut().zip(odd.iter_mut()).zip(a0.iter().zip(a1)).zip(a2.iter().zip(a3)) {
                    *e = a0 + a1 + a2 + b;
                    *o = a1 - a2 - a3 + b;
                }
                let row = &mut plane[y * w..][..w];
                for (pair, (e, o)) in row.chunks_exact_mut(2).zip(even.iter().zip(&odd)) {
                    pair[0] = *e;
                    pair[1] = *o;
                }
                if w % 2 == 1 {
                    row[w - 1] = even[columns - 1];
                }
            }
        }
    }
}
