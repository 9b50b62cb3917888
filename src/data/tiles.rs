//! Tiles: a dataset packed as PNG sprite sheets the browser fetches and decodes.
//!
//! A tile holds up to `COLUMNS × COLUMNS` images in a grid, row-major; labels travel in a
//! separate byte file. Grayscale images are stored as 8-bit gray PNG, colour as RGB.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, RgbImage};

use super::{DataError, Format, ImageSet};
use crate::limits;

/// Images per tile row (and rows per tile).
pub const COLUMNS: usize = 100;

/// Images per tile.
pub const PER_TILE: usize = COLUMNS * COLUMNS;

/// Packs images `start..start+n` (n ≤ PER_TILE) into a grid image.
pub fn grid(set: &ImageSet, indices: &[usize], columns: usize) -> DynamicImage {
    let (h, w, c) = (set.height, set.width, set.channels);
    let rows = indices.len().div_ceil(columns).max(1);
    let (gw, gh) = ((columns * w) as u32, (rows * h) as u32);
    let mut buf = vec![0u8; (gw * gh) as usize * c];
    for (k, &i) in indices.iter().enumerate() {
        let (gx, gy) = ((k % columns) * w, (k / columns) * h);
        let image = set.image(i);
        for y in 0..h {
            let src = &image[y * w * c..(y + 1) * w * c];
            let dst = ((gy + y) * gw as usize + gx) * c;
            buf[dst..dst + w * c].copy_from_slice(src);
        }
    }
    match c {
        1 => DynamicImage::ImageLuma8(GrayImage::from_raw(gw, gh, buf).expect("sized buffer")),
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(gw, gh, buf).expect("sized buffer")),
    }
}

/// Encodes images as one PNG tile.
pub fn encode_tile(set: &ImageSet, indices: &[usize]) -> Vec<u8> {
    let mut bytes = Vec::new();
    grid(set, indices, COLUMNS)
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
        .expect("PNG encoding to memory");
    bytes
}

/// Decodes `count` images of `height × width × channels` from a PNG tile. The tile's
/// dimensions are read from its header first: at least one image wide and at most
/// [`COLUMNS`] images wide and high, with room for `count` images.
pub fn decode_tile(png: &[u8], count: usize, height: usize, width: usize, channels: usize) -> Result<ImageSet, DataError> {
    let bad = |why: String| DataError::Malformed { format: Format::Tile, why };
    if !(channels == 1 || channels == 3) {
        return Err(DataError::Unsupported(format!("tile: {channels} channels per image are not supported")));
    }
    for (what, side) in [("image height", height), ("image width", width)] {
        if side == 0 {
            return Err(bad(format!("{what} is 0")));
        }
        limits::at_most(&format!("tile: {what}"), side, limits::MAX_DATASET_SIDE)?;
    }
    limits::at_most("tile: images", count, PER_TILE)?;
    // At most COLUMNS × COLUMNS images (written by `encode_tile`): 25,600 px a side at most.
    let (max_width, max_height) = ((COLUMNS * width) as u32, (COLUMNS * height) as u32);
    let max_pixels = u64::from(max_width) * u64::from(max_height);
    let image = super::decode::decode_image(png, Some(ImageFormat::Png), max_width, max_height, max_pixels, 8 * max_pixels)
        .map_err(|e| bad(format!("not a PNG image of up to {COLUMNS}×{COLUMNS} images of {height}×{width}: {e}")))?;
    let (gw, raw) = match channels {
        1 => {
            let g = image.into_luma8();
            (g.width() as usize, g.into_raw())
        }
        _ => {
            let g = image.into_rgb8();
            (g.width() as usize, g.into_raw())
        }
    };
    let columns = gw / width;
    let rows = raw.len() / channels / gw.max(1) / height;
    if columns == 0 || count > columns * rows {
        return Err(bad(format!("too small for {count} images of {height}×{width}")));
    }
    let mut pixels = Vec::with_capacity(count * height * width * channels);
    for k in 0..count {
        let (gx, gy) = ((k % columns) * width, (k / columns) * height);
        for y in 0..height {
            let start = ((gy + y) * gw + gx) * channels;
            pixels.extend_from_slice(&raw[start..start + width * channels]);
        }
    }
    ImageSet::new(height, width, channels, pixels, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_round_trip_losslessly() {
        let pixels: Vec<u8> = (0..5 * 4 * 3 * 3).map(|i| (i * 7 % 256) as u8).collect();
        let set = ImageSet::new(4, 3, 3, pixels, vec![0, 1, 2, 3, 4]).unwrap();
        let png = encode_tile(&set, &[0, 1, 2, 3, 4]);
        let back = decode_tile(&png, 5, 4, 3, 3).unwrap();
        assert_eq!(back.pixels, set.pixels);
        assert!(decode_tile(b"not a png", 1, 4, 3, 3).is_err());
    }

    #[test]
    fn a_tile_larger_than_its_images_need_is_refused_before_decoding() {
        // A PNG header claiming 65535×65535 px (IHDR only): refused from the header.
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\xff\xff\0\0\xff\xff\x08\x00\0\0\0".to_vec();
        png.extend_from_slice(&[0; 4]);
        let message = decode_tile(&png, 1, 28, 28, 1).unwrap_err().to_string();
        assert!(message.starts_with("tile:"), "{message}");
        assert!(decode_tile(&png, 1, 0, 28, 1).unwrap_err().to_string().contains("image height is 0"));
        assert!(decode_tile(&png, 1, 4000, 28, 1).unwrap_err().to_string().contains("the limit is 256"));
    }
}
