//! Length-prefixed framing: `int length` + `length` bytes, in both directions.
//!
//! Holds: a frame whose length is negative or above `jute.maxbuffer` is refused before any
//! of it is buffered, so a hostile length cannot make the server allocate.

/// What the next bytes of a stream hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Partial,
    /// A whole frame: body at `start..end` of the buffer.
    Complete { start: usize, end: usize },
    /// A length outside `0..=max`: close the connection.
    BadLength(i32),
}

pub fn next_frame(buf: &[u8], max_bytes: usize) -> Frame {
    if buf.len() < 4 {
        return Frame::Partial;
    }
    let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
    if len < 0 || len as usize > max_bytes {
        return Frame::BadLength(len);
    }
    let end = 4 + len as usize;
    if buf.len() < end {
        Frame::Partial
    } else {
        Frame::Complete { start: 4, end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn frames() {
        assert_eq!(next_frame(&[0, 0], 10), Frame::Partial);
        assert_eq!(next_frame(&[0, 0, 0, 2, 1], 10), Frame::Partial);
        assert_eq!(
            next_frame(&[0, 0, 0, 2, 1, 2, 3], 10),
            Frame::Complete { start: 4, end: 6 }
        );
        assert_eq!(next_frame(&[0, 0, 0, 11], 10), Frame::BadLength(11));
        assert_eq!(next_frame(&[255, 255, 255, 255], 10), Frame::BadLength(-1));
    }
}
