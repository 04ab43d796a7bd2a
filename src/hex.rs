//! Lower-case hexadecimal, as every proctor file writes keys, ids and fingerprints. One encoder
//! and one length-checked decoder instead of one per file format.

/// Encodes bytes as lower-case hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes exactly `2 * N` hex digits (either case) into `N` bytes; anything else is `None`.
pub fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (b, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *b = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A short, readable fingerprint: the first 8 bytes as four colon-separated groups.
pub fn fingerprint(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(8)];
    head.chunks(2).map(encode).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_input() {
        let b = [0x00, 0x7f, 0x80, 0xff];
        assert_eq!(encode(&b), "007f80ff");
        assert_eq!(decode::<4>("007F80ff"), Some(b));
        for bad in [
            "",
            "007f80f",
            "007f80fff",
            "007f80fg",
            "007f80é",
            "+07f80ff",
        ] {
            assert_eq!(decode::<4>(bad), None, "{bad:?}");
        }
        assert_eq!(
            fingerprint(&[0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7]),
            "abcd:0102:0304:0506"
        );
    }
}
