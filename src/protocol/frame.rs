//! Length-prefixed framing of the TCP stream: a 4-byte big-endian length, then that many bytes.
//!
//! [`FrameReader`] accumulates bytes from a socket and hands out whole frames. A length of zero
//! or above [`MAX_FRAME`] is an error that closes the one connection it came from.

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;
/// Largest frame body accepted (64 KiB): bounds the memory one peer can make us hold.
pub const MAX_FRAME: usize = 64 * 1024;

/// Why a byte stream is not a valid frame sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`].
    TooLarge,
    /// A zero-length frame, which no message encodes to.
    Empty,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameError::TooLarge => "frame length above the maximum",
            FrameError::Empty => "empty frame",
        })
    }
}

/// Checks whether `buf` starts with a complete frame: `Ok(Some(total_len))` if so (prefix
/// included), `Ok(None)` if more bytes are needed, an error if the prefix is invalid.
pub fn check(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < LEN_PREFIX {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge);
    }
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if buf.len() < LEN_PREFIX + len {
        Ok(None)
    } else {
        Ok(Some(LEN_PREFIX + len))
    }
}

/// The length prefix for a body of `len` bytes (which must not exceed [`MAX_FRAME`]).
pub fn prefix(len: usize) -> [u8; LEN_PREFIX] {
    debug_assert!(len <= MAX_FRAME);
    (len as u32).to_be_bytes()
}

/// One frame as read: its length prefix (authenticated as associated data) and its body.
pub type Frame = ([u8; LEN_PREFIX], Vec<u8>);

/// Reassembles frames from arbitrary chunks of a byte stream.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole frame as (length prefix, body), if one is complete.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let rest = &self.buf[self.start..];
        match check(rest)? {
            None => {
                if self.start > 0 && self.start > self.buf.len() / 2 {
                    self.buf.drain(..self.start);
                    self.start = 0;
                }
                Ok(None)
            }
            Some(total) => {
                let mut p = [0u8; LEN_PREFIX];
                p.copy_from_slice(&rest[..LEN_PREFIX]);
                let body = rest[LEN_PREFIX..total].to_vec();
                self.start += total;
                Ok(Some((p, body)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_frames_split_anywhere() {
        let mut stream = Vec::new();
        for body in [&b"a"[..], b"hello", &[7u8; 1000]] {
            stream.extend_from_slice(&prefix(body.len()));
            stream.extend_from_slice(body);
        }
        for chunk in [1, 2, 3, 7, 1000, 5000] {
            let mut r = FrameReader::new();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                r.push(c);
                while let Some((_, f)) = r.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 3, "chunk {chunk}");
            assert_eq!(got[1], b"hello");
            assert_eq!(r.pending(), 0);
        }
    }

    #[test]
    fn rejects_oversized_and_empty() {
        assert_eq!(check(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::TooLarge));
        assert_eq!(
            check(&((MAX_FRAME as u32 + 1).to_be_bytes())),
            Err(FrameError::TooLarge)
        );
        assert_eq!(check(&[0, 0, 0, 0]), Err(FrameError::Empty));
        assert_eq!(check(&[0, 0, 0]), Ok(None));
        assert_eq!(check(&prefix(MAX_FRAME)), Ok(None));
    }
}
