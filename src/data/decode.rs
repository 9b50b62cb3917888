//! Datasets that arrive as something other than IDX: CIFAR-10's binary batches and ordinary
//! image files (PNG, JPEG).

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::{DataError, Format, ImageSet};
use crate::limits;

/// CIFAR-10's classes, in label order (the dataset's `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Fashion-MNIST's classes, in label order (its README).
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

const CIFAR_SIZE: usize = 32;
const CIFAR_RECORD: usize = 1 + 3 * CIFAR_SIZE * CIFAR_SIZE;

/// One or more of CIFAR-10's binary batch files (`data_batch_1.bin`, …, `test_batch.bin`)
/// concatenated: records of one label byte, then the red, green and blue 32×32 planes.
pub fn images_from_cifar_binary(bytes: &[u8]) -> Result<ImageSet, DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        let why = format!("{} bytes is not a whole number of records ({CIFAR_RECORD} bytes each)", bytes.len());
        return Err(DataError::Malformed { format: Format::CifarBinary, why });
    }
    let plane = CIFAR_SIZE * CIFAR_SIZE;
    let n = bytes.len() / CIFAR_RECORD;
    let mut pixels = Vec::with_capacity(n * 3 * plane);
    let mut labels = Vec::with_capacity(n);
    for record in bytes.as_chunks::<CIFAR_RECORD>().0 {
        if record[0] as usize >= CIFAR10_CLASSES.len() {
            return Err(DataError::Malformed { format: Format::CifarBinary, why: format!("label {} is not a class", record[0]) });
        }
        labels.push(record[0]);
        let planes = &record[1..];
        // planar RGB -> interleaved (H, W, C)
        for i in 0..plane {
            pixels.extend_from_slice(&[planes[i], planes[plane + i], planes[2 * plane + i]]);
        }
    }
    ImageSet::new(CIFAR_SIZE, CIFAR_SIZE, 3, pixels, labels)
}

/// Decodes image files (PNG or JPEG bytes, each with its label), centre-crops each to a square,
/// resizes it to `size`×`size` (Lanczos, or as is when it already fits) and keeps 1 (gray) or
/// 3 (RGB) channels. Names are only for messages. Each file's dimensions are read from its
/// header and checked against [`limits::MAX_IMAGE_SIDE`] and [`limits::MAX_IMAGE_PIXELS`]
/// before it is decoded; the decoded set may hold at most [`limits::MAX_DATASET_BYTES`].
pub fn images_from_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a [u8], u8)>,
    size: usize,
    channels: usize,
) -> Result<ImageSet, DataError> {
    if size == 0 || !(channels == 1 || channels == 3) {
        return Err(DataError::Unsupported(format!("cannot make {size}×{size}×{channels} images (channels: 1 or 3)")));
    }
    limits::at_most("image size", size, limits::MAX_DATASET_SIDE)?;
    let image_bytes = (size * size * channels) as u64; // at most 256 · 256 · 3
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (name, bytes, label) in files {
        let total = image_bytes * (labels.len() as u64 + 1);
        limits::at_most("images: decoded bytes", total, limits::MAX_DATASET_BYTES)?;
        let image = decode_image(
            bytes,
            None,
            limits::MAX_IMAGE_SIDE,
            limits::MAX_IMAGE_SIDE,
            limits::MAX_IMAGE_PIXELS,
            limits::MAX_IMAGE_ALLOC,
        )
            .map_err(|e| DataError::BadImage { name: name.to_string(), why: e.to_string() })?;
        let (w, h) = (image.width(), image.height());
        let side = w.min(h);
        if side == 0 {
            return Err(DataError::BadImage { name: name.to_string(), why: format!("it is empty ({w}×{h})") });
        }
        let square = image.crop_imm((w - side) / 2, (h - side) / 2, side, side);
        let square = if side as usize == size {
            square
        } else {
            square.resize_exact(size as u32, size as u32, FilterType::Lanczos3)
        };
        match channels {
            1 => pixels.extend_from_slice(square.to_luma8().as_raw()),
            _ => pixels.extend_from_slice(square.to_rgb8().as_raw()),
        }
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(DataError::NoImages { among: "the files given".into() });
    }
    ImageSet::new(size, size, channels, pixels, labels)
}

/// Decodes a PNG or JPEG (`format`, or guessed from the bytes) after reading its dimensions
/// from the header: each side at most `max_width` / `max_height`, at most `max_pixels`
/// pixels, and the decoder allocates at most `max_alloc` bytes.
pub(super) fn decode_image(
    bytes: &[u8],
    format: Option<ImageFormat>,
    max_width: u32,
    max_height: u32,
    max_pixels: u64,
    max_alloc: u64,
) -> Result<DynamicImage, String> {
    let reader = || -> Result<ImageReader<Cursor<&[u8]>>, String> {
        let mut reader = match format {
            Some(format) => ImageReader::with_format(Cursor::new(bytes), format),
            None => ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?,
        };
        let mut limits = Limits::default();
        limits.max_image_width = Some(max_width);
        limits.max_image_height = Some(max_height);
        limits.max_alloc = Some(max_alloc);
        reader.limits(limits);
        Ok(reader)
    };
    let (width, height) = reader()?.into_dimensions().map_err(|e| e.to_string())?;
    limits::at_most("image width", width, max_width)?;
    limits::at_most("image height", height, max_height)?;
    limits::product_at_most("image pixels", &[u64::from(width), u64::from(height)], max_pixels)?;
    reader()?.decode().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_records_become_interleaved_rgb() {
        // Two records per the format on the CIFAR-10 home page: label, 1024 R, 1024 G, 1024 B.
        let mut bytes = Vec::new();
        for (label, r, g, b) in [(3u8, 10u8, 20u8, 30u8), (9, 200, 100, 0)] {
            bytes.push(label);
            for value in [r, g, b] {
                bytes.extend(std::iter::repeat_n(value, 1024));
            }
        }
        let set = images_from_cifar_binary(&bytes).unwrap();
        assert_eq!((set.len(), set.height, set.width, set.channels), (2, 32, 32, 3));
        assert_eq!(set.labels, vec![3, 9]);
        assert_eq!(&set.image(0)[..6], &[10, 20, 30, 10, 20, 30]);
        assert_eq!(&set.image(1)[..3], &[200, 100, 0]);
        assert!(images_from_cifar_binary(&bytes[..100]).is_err());
    }

    #[test]
    fn files_are_centre_cropped_and_resized() {
        // A 6×4 RGB PNG: a red 4×4 centre between two blue columns on each side.
        let mut image = image::RgbImage::from_pixel(6, 4, image::Rgb([0, 0, 255]));
        for y in 0..4 {
            for x in 1..5 {
                image.put_pixel(x, y, image::Rgb([255, 0, 0]));
            }
        }
        let mut png = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let set = images_from_files([("a.png", png.as_slice(), 2)], 4, 3).unwrap();
        assert!(set.image(0).chunks(3).all(|p| p == [255, 0, 0]), "only the red centre is kept");
        let gray = images_from_files([("a.png", png.as_slice(), 0)], 2, 1).unwrap();
        assert_eq!((gray.channels, gray.image(0).len()), (1, 4));
        let message = images_from_files([("notes.txt", b"hello".as_slice(), 0)], 4, 3).unwrap_err().to_string();
        assert!(message.contains("notes.txt is not a readable PNG or JPEG image"), "{message}");
    }
}
