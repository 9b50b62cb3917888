//! A set of same-sized 8-bit images in memory, and minibatches of it as tensors.

use burn::tensor::{Device, Tensor, TensorData};

use super::{DataError};
use crate::limits;

/// Images stored `[N, H, W, C]` as bytes, with optional class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl ImageSet {
    /// Checks that the pixels are whole images of a shape within [`limits`] and that there is
    /// one label per image (or none).
    pub fn new(height: usize, width: usize, channels: usize, pixels: Vec<u8>, labels: Vec<u8>) -> Result<Self, DataError> {
        for (what, side) in [("image height", height), ("image width", width)] {
            limits::at_most(what, side, limits::MAX_DATASET_SIDE)?;
        }
        limits::at_most("image channels", channels, limits::MAX_DATASET_CHANNELS)?;
        let size = height * width * channels; // at most 256 · 256 · 4: no overflow
        if size == 0 || !pixels.len().is_multiple_of(size) {
            return Err(DataError::Mismatch(format!(
                "{} bytes is not a whole number of {height}×{width}×{channels} images",
                pixels.len()
            )));
        }
        if !labels.is_empty() && labels.len() != pixels.len() / size {
            return Err(DataError::Mismatch(format!(
                "{} labels for {} images",
                labels.len(),
                pixels.len() / size
            )));
        }
        Ok(Self { height, width, channels, pixels, labels })
    }

    pub fn image_size(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn len(&self) -> usize {
        self.pixels.len() / self.image_size()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_size();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// The first `n` images (or all).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            pixels: self.pixels[..n * self.image_size()].to_vec(),
            labels: self.labels.iter().take(n).copied().collect(),
            ..*self
        }
    }

    /// Appends another set of the same image size.
    pub fn extend(&mut self, other: &ImageSet) {
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
    }

    /// The images at `indices` as a `[B, C, H, W]` tensor scaled to [−1, 1] (DDPM §3.3).
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        self.batch_flipped(indices, &[], device)
    }

    /// As [`Self::batch`], mirroring left–right each image whose entry in `flips` is true
    /// (DDPM's random horizontal flips for CIFAR-10); missing entries mean no flip.
    pub fn batch_flipped(&self, indices: &[usize], flips: &[bool], device: &Device) -> Tensor<4> {
        let (h, w, c) = (self.height, self.width, self.channels);
        let mut values = Vec::with_capacity(indices.len() * self.image_size());
        for (k, &i) in indices.iter().enumerate() {
            let image = self.image(i);
            let flip = flips.get(k).copied().unwrap_or(false);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let x = if flip { w - 1 - x } else { x };
                        values.push(image[(y * w + x) * c + ch] as f32 / 127.5 - 1.0);
                    }
                }
            }
        }
        Tensor::from_data(TensorData::new(values, [indices.len(), c, h, w]), device)
    }
}

/// Converts `[B, C, H, W]` values in [−1, 1] to bytes `[B, H, W, C]` (clamped, rounded).
pub fn to_pixels(values: &[f32], batch: usize, channels: usize, height: usize, width: usize) -> Vec<u8> {
    let mut out = vec![0u8; values.len()];
    for b in 0..batch {
        for c in 0..channels {
            for p in 0..height * width {
                let v = values[((b * channels + c) * height * width) + p];
                let byte = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                out[(b * height * width + p) * channels + c] = byte;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_batches_mirror_each_row() {
        // One 2×3 RGB image whose red channel counts 0..6 along the rows.
        let pixels: Vec<u8> = (0..6u8).flat_map(|v| [v, 0, 255]).collect();
        let set = ImageSet::new(2, 3, 3, pixels, vec![]).unwrap();
        let device = Device::flex();
        let red = |t: Tensor<4>| -> Vec<f32> {
            t.into_data().try_to_vec::<f32>().unwrap()[..6].iter().map(|v| ((v + 1.0) * 127.5).round()).collect()
        };
        assert_eq!(red(set.batch(&[0], &device)), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(red(set.batch_flipped(&[0], &[true], &device)), vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    }
}
