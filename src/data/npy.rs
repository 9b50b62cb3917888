//! `.npy` bytes for `f32` arrays (NumPy format version 1.0, NEP 1), so raw results compare
//! across implementations. Written here because the npy crates pull a Python-literal parser
//! for the general case; this is the one dtype and layout we write and read.

use super::{DataError, Format};
use crate::limits;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes a C-order little-endian `f32` array.
pub fn encode_npy(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad with spaces so that the data starts on a 64-byte boundary; end with a newline.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Decodes an array written by [`encode_npy`] (or NumPy: `<f4`, C order, format 1.0). The
/// shape must multiply (without overflow) to exactly the values that follow the header.
pub fn decode_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    let bad = |why: &str| DataError::Malformed { format: Format::Npy, why: why.to_string() };
    if bytes.len() < 10 || &bytes[..6] != MAGIC || bytes[6] != 1 {
        return Err(bad("not a version-1 .npy file"));
    }
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = bytes.get(10..10 + header_len).ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("only little-endian float32 in C order is supported"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad(&format!("shape entry {s:?} is not a size"))))
        .collect::<Result<_, _>>()?;
    limits::at_most(".npy: dimensions", shape.len(), limits::MAX_ARRAY_DIMS)?;
    let data = &bytes[10 + header_len..];
    // The data present bounds the product: a header cannot claim more than the file holds.
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).chain([4]).collect();
    let expected = limits::product_at_most(".npy: data bytes of the shape", &dims, data.len() as u64)
        ?;
    if data.len() as u64 != expected {
        return Err(bad(&format!("{} data bytes for shape {shape:?} ({expected} expected)", data.len())));
    }
    let values = data.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_numpys_and_round_trips() {
        // NEP 1: magic, version 1.0, u16 header length, header padded so data is 64-aligned.
        let bytes = encode_npy(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        assert_eq!((bytes.len() - 24) % 64, 0);
        assert!(String::from_utf8_lossy(&bytes).contains("'shape': (2, 3)"));
        let (shape, values) = decode_npy(&bytes).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(values, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(decode_npy(&bytes[..bytes.len() - 2]).is_err());
    }

    #[test]
    fn a_shape_larger_than_the_data_is_refused_without_overflow() {
        let bytes = encode_npy(&[2, 3], &[0.0; 6]);
        let at = bytes.windows(6).position(|w| w == b"(2, 3)").unwrap();
        let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
        // The same header length: the 19 more digits take 19 spaces of the padding.
        let mut huge = bytes[..at].to_vec();
        huge.extend_from_slice(b"(18446744073709551615, 3)");
        huge.extend_from_slice(&bytes[at + 6..newline - 19]);
        huge.extend_from_slice(&bytes[newline..]);
        let message = decode_npy(&huge).unwrap_err().to_string();
        assert!(message.starts_with(".npy: data bytes of the shape") && message.contains("the limit is 24"), "{message}");
    }
}
