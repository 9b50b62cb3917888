//! The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/).

use super::DataError;

/// An IDX array of unsigned bytes: its dimensions and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub values: Vec<u8>,
}

/// Parses an uncompressed IDX file of type `u8` (magic `0x00 0x00 0x08 ndim`).
pub fn parse_idx(bytes: &[u8]) -> Result<Idx, DataError> {
    let bad = |why: String| DataError::Format(format!("IDX: {why}"));
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad("missing magic number (is the file still gzipped?)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(bad(format!("element type 0x{:02x}, expected 0x08 (unsigned byte)", bytes[2])));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let len: usize = dims.iter().product();
    if bytes.len() != header + len {
        return Err(bad(format!("{} data bytes for dimensions {dims:?} ({len} expected)", bytes.len() - header)));
    }
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
        assert!(parse_idx(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_idx(&[0x1f, 0x8b, 8, 0]).is_err());
    }
}
