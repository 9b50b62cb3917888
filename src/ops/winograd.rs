//! 3×3 convolutions of stride 1 and padding 1 (most of the U-Net's) by Winograd's minimal
//! filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
//! 2016): each 2×2 block of outputs from a 4×4 window of the input with 16 multiplications per
//! (input, output) channel pair instead of 36.
//!
//! Every window d (overlapping by 2, zero outside the image) becomes V = Bᵀ·d·B, every 3×3
//! filter g becomes U = G·g·Gᵀ (once per call); then for each of the 16 positions ξ one matrix
//! product M_ξ = V_ξ·U_ξ sums over the input channels ([tiles, C]·[C, C_out]), and each tile's
//! 2×2 outputs are Aᵀ·M·A. With
//!   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1],  G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1],
//!   Aᵀ = [1 1 1 0; 0 1 −1 −1].
//! The transforms work channels-last, eight channels at a time natively (one AVX2 vector), so
//! every arithmetic step is a whole vector whatever the image's size (along a row of tiles, 4
//! to 14 wide here, most of a vector was idle); the image is first turned channels-last (in
//! blocks of 8×8), and the outputs are turned back the same way. Small images are taken several
//! at a time, their tiles one product, so that products stay large at 7×7. The input gradient of
//! such a convolution is the same kind of convolution of the output's gradient, with each filter
//! turned by 180° and the channel axes swapped; the
//! weights' gradient is F(3×3, 2×2) over the same windows (`weight_gradient`).

use super::flex::{each_image, matmul_accumulate, matmul_into, sum_over_images, threads, vectorised};
use std::cell::RefCell;

/// Positions of the 4×4 transformed tile.
const POSITIONS: usize = 16;
/// Channels per step of the transforms: one AVX2 vector of float32 natively. In the tab's wasm
/// (no vectors) one: its arrays of eight went through memory (12% slower than the row-wise
/// transforms before, `bench.mjs --cpu`), where single floats stay in locals.
const LANES: usize = if cfg!(target_arch = "wasm32") { 1 } else { 8 };
/// Rows and columns of the transposes' blocks (8×8 floats: eight AVX vectors).
const BLOCK: usize = 8;
/// Rows of the products at least, where the batch has the images: tiles of several small
/// images go into one product (a 7×7 image has only 16).
const TILES_PER_PRODUCT: usize = 128;

/// Whether these kernels take a convolution from `c` to `c_out` channels: whole vectors of both.
pub(super) fn fits(c: usize, c_out: usize) -> bool {
    c > 0 && c_out > 0 && c % LANES == 0 && c_out % LANES == 0
}

/// The convolution of `x` [N, C, H, W] with `weight` [C_out, C, 3, 3], stride 1, padding 1, plus
/// `bias` [C_out] if given: [N, C_out, H, W].
pub(super) fn convolve(x: &[f32], n: usize, [c, h, w]: [usize; 3], weight: &[f32], c_out: usize, bias: Option<&[f32]>) -> Vec<f32> {
    assert!(x.len() == n * c * h * w && weight.len() == c_out * c * 9 && fits(c, c_out), "winograd: sizes do not match");
    let filters = transformed_filters(weight, c_out, c);
    let tiles = Tiles { h, w };
    let (plane, group) = (h * w, tiles.images_per_product(n));
    let mut out = vec![0.0f32; n * c_out * plane];
    let items: Vec<_> = x.chunks(group * c * plane).zip(out.chunks_mut(group * c_out * plane)).collect();
    each_image(items, |(images, out), parallel| {
        let m = images.len() / (c * plane) * tiles.count();
        with_scratch(|[plain, inputs, products]| {
            let inputs = sized(inputs, POSITIONS * m * c);
            let products = sized(products, POSITIONS * m * c_out);
            windows(images, c, &tiles, plain, inputs);
            for ((p, v), u) in products.chunks_exact_mut(m * c_out).zip(inputs.chunks_exact(m * c)).zip(filters.chunks_exact(c * c_out)) {
                matmul_into(p, (v, false), (u, false), [m, c, c_out], parallel);
            }
            // The outputs channels-last (where the images were), then each turned into place.
            let outputs = sized(plain, out.len());
            output_transform(products, c_out, &tiles, bias, outputs);
            for (image, out) in outputs.chunks_exact(plane * c_out).zip(out.chunks_exact_mut(c_out * plane)) {
                transpose(image, c_out, out, plane, [plane, c_out]);
            }
        });
    });
    out
}

thread_local! {
    /// Per thread, the buffers for the channels-last images, their transformed windows and the
    /// products (or the gradient's transformed blocks), kept from one group of images to the
    /// next: every element is written before it is read, so they are not zeroed again (which took
    /// a twentieth of a training step).
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// `f` with this thread's buffers (fresh ones if they are in use further up the stack).
fn with_scratch<R>(f: impl FnOnce(&mut [Vec<f32>; 3]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffers) => f(&mut buffers),
        Err(_) => f(&mut [Vec::new(), Vec::new(), Vec::new()]),
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
/// sum is one product [C_out, tiles]·[tiles, C] per group of images, accumulated per thread.
pub(super) fn weight_gradient(x: &[f32], grad: &[f32], n: usize, [c, h, w]: [usize; 3], c_out: usize) -> Vec<f32> {
    assert!(x.len() == n * c * h * w && grad.len() == n * c_out * h * w && fits(c, c_out), "winograd: sizes do not match");
    let tiles = Tiles { h, w };
    let (plane, group) = (h * w, tiles.images_per_product(n));
    let items: Vec<_> = x.chunks(group * c * plane).zip(grad.chunks(group * c_out * plane)).collect();
    let fresh = || (vec![0.0f32; POSITIONS * c_out * c], ());
    let accumulate = |(sums, ()): &mut (Vec<f32>, ()), (images, grad): (&[f32], &[f32]), parallel: bool| {
        let m = images.len() / (c * plane) * tiles.count();
        with_scratch(|[plain, inputs, blocks]| {
            let inputs = sized(inputs, POSITIONS * m * c);
            let blocks = sized(blocks, POSITIONS * m * c_out);
            windows(images, c, &tiles, plain, inputs);
            gradient_transform(grad, c_out, &tiles, blocks);
            for ((s, b), v) in sums.chunks_exact_mut(c_out * c).zip(blocks.chunks_exact(m * c_out)).zip(inputs.chunks_exact(m * c)) {
                matmul_accumulate(s, (b, true), (v, false), [c_out, m, c], parallel);
            }
        });
    };
    filter_gradients(&sum_over_images(items, fresh, accumulate), c_out, c)
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

    /// How many of a batch of `n` images go into one product: enough for `TILES_PER_PRODUCT`
    /// rows, but never so many that a thread would be left without a group.
    fn images_per_product(&self, n: usize) -> usize {
        TILES_PER_PRODUCT.div_ceil(self.count()).min(n / threads()).max(1)
    }
}

/// U = G·g·Gᵀ for every filter, as [16][C][C_out]: each position's [C, C_out] matrix, the right
/// operand of its product as it is.
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

/// V = Bᵀ·d·B for every 4×4 window d of a group of images [k][C][H][W], into `v` as
/// [16][tiles][C] (the group's tiles image by image, row by row), by way of the images
/// channels-last, [k][H][W][C], in `plain`.
fn windows(images: &[f32], c: usize, tiles: &Tiles, plain: &mut Vec<f32>, v: &mut [f32]) {
    let plane = tiles.h * tiles.w;
    let plain = sized(plain, images.len());
    for (image, plain) in images.chunks_exact(c * plane).zip(plain.chunks_exact_mut(plane * c)) {
        transpose(image, plane, plain, c, [c, plane]);
    }
    input_transform(plain, c, tiles, v);
}

vectorised!(input_transform, input_transform_kernel, (plain: &[f32], c: usize, tiles: &Tiles, v: &mut [f32]));
// Y = Aᵀ·M·A (+ bias) for every tile, into `out` as [k][H][W][C_out].
vectorised!(output_transform, output_transform_kernel, (products: &[f32], c_out: usize, tiles: &Tiles, bias: Option<&[f32]>, out: &mut [f32]));
// G·b·Gᵀ for every 2×2 block b of the output's gradient [k][C_out][H][W] (0 past its edge), into
// `blocks` as [16][tiles][C_out].
vectorised!(gradient_transform, gradient_transform_kernel, (grad: &[f32], c_out: usize, tiles: &Tiles, blocks: &mut [f32]));

/// dst[j·dst_stride + i] = src[i·src_stride + j] for the [rows, columns] matrix in `src`: blocks
/// of 8×8 turned in registers where the CPU has AVX, the rest element by element.
fn transpose(src: &[f32], src_stride: usize, dst: &mut [f32], dst_stride: usize, [rows, columns]: [usize; 2]) {
    #[cfg(target_arch = "x86_64")]
    let avx = std::arch::is_x86_feature_detected!("avx");
    for i0 in (0..rows).step_by(BLOCK) {
        for j0 in (0..columns).step_by(BLOCK) {
            let (ni, nj) = ((rows - i0).min(BLOCK), (columns - j0).min(BLOCK));
            let (src, dst) = (&src[i0 * src_stride + j0..], &mut dst[j0 * dst_stride + i0..]);
            #[cfg(target_arch = "x86_64")]
            if avx && ni == BLOCK && nj == BLOCK {
                assert!(src.len() >= 7 * src_stride + BLOCK && dst.len() >= 7 * dst_stride + BLOCK);
                // SAFETY: the CPU has AVX, and both blocks lie inside their slices (just checked).
                unsafe { block_avx(src.as_ptr(), src_stride, dst.as_mut_ptr(), dst_stride) };
                continue;
            }
            for i in 0..ni {
                for j in 0..nj {
                    dst[j * dst_stride + i] = src[i * src_stride + j];
                }
            }
        }
    }
}

/// One 8×8 block: rows interleaved in pairs, then in fours, then the 128-bit halves swapped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn block_avx(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY (all loads and stores): the caller gives eight rows of eight at these strides.
    let r: [__m256; 8] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(src.add(i * src_stride)) });
    // t[2k] = (a0 b0 a1 b1 | a4 b4 a5 b5) of rows 2k, 2k + 1; t[2k + 1] the other entries.
    let t: [__m256; 8] = std::array::from_fn(|i| if i % 2 == 0 { _mm256_unpacklo_ps(r[i], r[i + 1]) } else { _mm256_unpackhi_ps(r[i - 1], r[i]) });
    // Columns j and j + 4 of rows 0-3 (s[0..4]) and of rows 4-7 (s[4..8]).
    let s = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    for j in 0..4 {
        unsafe {
            _mm256_storeu_ps(dst.add(j * dst_stride), _mm256_permute2f128_ps::<0x20>(s[j], s[j + 4]));
            _mm256_storeu_ps(dst.add((j + 4) * dst_stride), _mm256_permute2f128_ps::<0x31>(s[j], s[j + 4]));
        }
    }
}

/// A window's 16 entries, LANES channels at a time (zero outside the image): Bᵀ·d on its
/// columns, then ·B on its rows.
#[inline(always)]
fn input_transform_kernel(plain: &[f32], c: usize, tiles: &Tiles, v: &mut [f32]) {
    let (h, w) = (tiles.h, tiles.w);
    let m = plain.len() / (h * w * c) * tiles.count();
    let mut tile = 0;
    for image in plain.chunks_exact(h * w * c) {
        for ty in 0..tiles.rows() {
            for tx in 0..tiles.columns() {
                // Window row r, column k is image pixel (2ty + r − 1, 2tx + k − 1).
                let inside = |r: usize, k: usize| (1..=h).contains(&(2 * ty + r)) && (1..=w).contains(&(2 * tx + k));
                let at = |r: usize, k: usize| ((2 * ty + r - 1) * w + 2 * tx + k - 1) * c;
                for l in (0..c).step_by(LANES) {
                    let d = |r: usize, k: usize| if inside(r, k) { load(&image[at(r, k) + l..]) } else { [0.0; LANES] };
                    let mut t = [[[0.0; LANES]; 4]; 4];
                    for k in 0..4 {
                        let (d0, d1, d2, d3) = (d(0, k), d(1, k), d(2, k), d(3, k));
                        (t[0][k], t[1][k], t[2][k], t[3][k]) = (sub(d0, d2), add(d1, d2), sub(d2, d1), sub(d1, d3));
                    }
                    for (i, [t0, t1, t2, t3]) in t.into_iter().enumerate() {
                        for (j, value) in [sub(t0, t2), add(t1, t2), sub(t2, t1), sub(t1, t3)].into_iter().enumerate() {
                            store(&mut v[((i * 4 + j) * m + tile) * c + l..], value);
                        }
                    }
                }
                tile += 1;
            }
        }
    }
}

/// A tile's four outputs, LANES channels at a time: Aᵀ·M, then ·A.
#[inline(always)]
fn output_transform_kernel(products: &[f32], c_out: usize, tiles: &Tiles, bias: Option<&[f32]>, out: &mut [f32]) {
    let (h, w, plane) = (tiles.h, tiles.w, tiles.h * tiles.w);
    let m = out.len() / (c_out * plane) * tiles.count();
    let mut tile = 0;
    for image in out.chunks_exact_mut(plane * c_out) {
        for ty in 0..tiles.rows() {
            for tx in 0..tiles.columns() {
                for l in (0..c_out).step_by(LANES) {
                    let p = |i: usize, j: usize| load(&products[((i * 4 + j) * m + tile) * c_out + l..]);
                    let mut a = [[[0.0; LANES]; 4]; 2];
                    for j in 0..4 {
                        let (m0, m1, m2, m3) = (p(0, j), p(1, j), p(2, j), p(3, j));
                        (a[0][j], a[1][j]) = (add(add(m0, m1), m2), sub(sub(m1, m2), m3));
                    }
                    let b = bias.map_or([0.0; LANES], |bias| load(&bias[l..]));
                    for (dy, [a0, a1, a2, a3]) in a.into_iter().enumerate() {
                        let y = 2 * ty + dy;
                        for (dx, value) in [add(add(add(a0, a1), a2), b), add(sub(sub(a1, a2), a3), b)].into_iter().enumerate() {
                            let x = 2 * tx + dx;
                            if y < h && x < w {
                                store(&mut image[(y * w + x) * c_out + l..], value);
                            }
                        }
                    }
                }
                tile += 1;
            }
        }
    }
}

/// A block's 16 entries, LANES channels at a time: G·b (its rows P, Q), then ·Gᵀ.
#[inline(always)]
fn gradient_transform_kernel(grad: &[f32], c_out: usize, tiles: &Tiles, blocks: &mut [f32]) {
    let (h, w, plane) = (tiles.h, tiles.w, tiles.h * tiles.w);
    let m = grad.len() / (c_out * plane) * tiles.count();
    let half = |a: [f32; LANES]| a.map(|a| 0.5 * a);
    let mut tile = 0;
    for image in grad.chunks_exact(c_out * plane) {
        for ty in 0..tiles.rows() {
            for tx in 0..tiles.columns() {
                for l in (0..c_out).step_by(LANES) {
                    let b = |dy: usize, dx: usize| {
                        let (y, x) = (2 * ty + dy, 2 * tx + dx);
                        if y < h && x < w { std::array::from_fn(|lane| image[(l + lane) * plane + y * w + x]) } else { [0.0; LANES] }
                    };
                    let (b00, b01, b10, b11) = (b(0, 0), b(0, 1), b(1, 0), b(1, 1));
                    let gb = [[b00, b01], [half(add(b00, b10)), half(add(b01, b11))], [half(sub(b00, b10)), half(sub(b01, b11))], [b10, b11]];
                    for (i, [p, q]) in gb.into_iter().enumerate() {
                        for (j, value) in [p, half(add(p, q)), half(sub(p, q)), q].into_iter().enumerate() {
                            store(&mut blocks[((i * 4 + j) * m + tile) * c_out + l..], value);
                        }
                    }
                }
                tile += 1;
            }
        }
    }
}

/// LANES channels from the start of `s`.
#[inline(always)]
fn load(s: &[f32]) -> [f32; LANES] {
    s[..LANES].try_into().expect("a whole vector of channels")
}

#[inline(always)]
fn store(s: &mut [f32], value: [f32; LANES]) {
    s[..LANES].copy_from_slice(&value);
}

#[inline(always)]
fn add(a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    std::array::from_fn(|i| a[i] + b[i])
}

#[inline(always)]
fn sub(a: [f32; LANES], b: [f32; LANES]) -> [f32; LANES] {
    std::array::from_fn(|i| a[i] - b[i])
}
