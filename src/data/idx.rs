//! The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

use super::{DataError, Format};
use crate::limits;

/// An IDX array of unsigned bytes: its dimensions and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub values: Vec<u8>,
}

/// Parses an uncompressed IDX file of type `u8` (magic `0x00 0x00 0x08 ndim`). The
/// dimensions must multiply (without overflow) to exactly the bytes that follow the header.
pub fn parse_idx(bytes: &[u8]) -> Result<Idx, DataError> {
    let bad = |why: String| DataError::Malformed { format: Format::Idx, why };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("missing magic number (is the file still gzipped?)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!("element type 0x{:02x}, expected 0x08 (unsigned byte)", bytes[2])));
    }
    let ndim = limits::at_most("IDX: dimensions", bytes[3] as usize, limits::MAX_ARRAY_DIMS)?;
    let header = 4 + 4 * ndim;
    let Some(dims_bytes) = bytes.get(4..header) else {
        return Err(bad(format!("truncated header ({} bytes; {ndim} dimensions need {header})", bytes.len())));
    };
    let dims: Vec<u64> = dims_bytes.as_chunks::<4>().0.iter().map(|d| u64::from(u32::from_be_bytes(*d))).collect();
    let data = (bytes.len() - header) as u64;
    // The data present bounds the product: a header cannot claim more than the file holds.
    let len = limits::product_at_most("IDX: data bytes of the dimensions", &dims, data)?;
    if len != data {
        return Err(bad(format!("{data} data bytes for dimensions {dims:?} ({len} expected)")));
    }
    let dims = dims.into_iter().map(|d| d as usize).collect(); // each ≤ u32::MAX ≤ usize (32 or 64 bits)
    Ok(Idx { dims, values: bytes[header..].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_two_image_file_and_rejects_truncation() {
        // Layout from the IDX spec: magic, then big-endian u32 dimensions, then the bytes.
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1];
        bytes.extend([1, 2, 3, 4]);
        let idx = parse_idx(&bytes).unwrap();
        assert_eq!(idx.dims, vec![2, 2, 1]);
        assert_eq!(idx.values, vec![1, 2, 3, 4]);
        // One byte short: the dimensions claim more than the file holds.
        assert!(matches!(parse_idx(&bytes[..bytes.len() - 1]), Err(DataError::TooLarge(_))));
        assert!(matches!(parse_idx(&[0x1f, 0x8b, 8, 0]), Err(DataError::Malformed { format: Format::Idx, .. })));
    }

    #[test]
    fn dimensions_that_claim_more_than_the_file_holds_are_refused() {
        // 2^32−1 × 2^32−1 images: the product overflows nothing (checked) and exceeds the data.
        let bytes = [0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2];
        let Err(DataError::TooLarge(over)) = parse_idx(&bytes) else { panic!("a header claiming too much is over a limit") };
        assert_eq!(over.limit, "2", "{over}");
        let message = parse_idx(&[0, 0, 8, 200]).unwrap_err().to_string();
        assert_eq!(message, "IDX: dimensions: 200; the limit is 32");
    }
}
