//! Jute binary encoding: the record format of ZooKeeper's wire protocol and files.
//!
//! int = 4 bytes, long = 8 bytes, big-endian; buffer/ustring = int length + bytes, with
//! length -1 meaning null; vector = int count + elements, -1 meaning null; boolean = 1 byte.
//! Holds: a `Reader` never reads past its slice and never panics on any input; every length
//! is checked against the bytes left before anything is allocated.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    #[error("record truncated: wanted {wanted} bytes at offset {offset}, {left} left")]
    Truncated {
        offset: usize,
        wanted: usize,
        left: usize,
    },
    #[error("unreasonable length {0}")]
    BadLength(i64),
    #[error("string is not valid UTF-8")]
    Utf8,
    #[error("unexpected value: {0}")]
    Invalid(&'static str),
    /// A null where ZooKeeper dereferences the value (its NullPointerException).
    #[error("null {0}")]
    Null(&'static str),
}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over one frame's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn position(&self) -> usize {
        self.pos
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                wanted: n,
                left: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn read_i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn read_i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub fn read_u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn read_bool(&mut self) -> DecodeResult<bool> {
        Ok(self.read_u8()? != 0)
    }
    /// A buffer; `None` for the null encoding (length -1).
    pub fn read_buffer_opt(&mut self) -> DecodeResult<Option<&'a [u8]>> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(DecodeError::BadLength(len as i64));
        }
        Ok(Some(self.take(len as usize)?))
    }
    /// A buffer where null reads as empty.
    pub fn read_buffer(&mut self) -> DecodeResult<&'a [u8]> {
        Ok(self.read_buffer_opt()?.unwrap_or(&[]))
    }
    pub fn read_string(&mut self) -> DecodeResult<&'a str> {
        let b = self.read_buffer()?;
        std::str::from_utf8(b).map_err(|_| DecodeError::Utf8)
    }
    /// A vector's element count; null reads as 0. The count is checked against the
    /// bytes left (each element takes at least `min_elem_bytes`).
    pub fn read_count(&mut self, min_elem_bytes: usize) -> DecodeResult<usize> {
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(0);
        }
        if n < 0 || (n as usize).saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength(n as i64));
        }
        Ok(n as usize)
    }
    /// A vector's element count as ZooKeeper's BinaryInputArchive reads it: `None` for
    /// null (-1), and any other count below 1 is an empty vector (its index is `done`
    /// at once). Checked against the bytes left as `read_count` is.
    pub fn read_count_opt(&mut self, min_elem_bytes: usize) -> DecodeResult<Option<usize>> {
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n <= 0 {
            return Ok(Some(0));
        }
        if (n as usize).saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::BadLength(n as i64));
        }
        Ok(Some(n as usize))
    }
    /// A string that must not be null (ZooKeeper dereferences it).
    pub fn read_string_nn(&mut self, what: &'static str) -> DecodeResult<&'a str> {
        match self.read_buffer_opt()? {
            None => Err(DecodeError::Null(what)),
            Some(b) => std::str::from_utf8(b).map_err(|_| DecodeError::Utf8),
        }
    }
    pub fn read_strings(&mut self) -> DecodeResult<Vec<String>> {
        let n = self.read_count(4)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.read_string()?.to_owned());
        }
        Ok(v)
    }
}

/// Appends jute values to a byte vector.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }
    pub fn with_capacity(n: usize) -> Self {
        Writer {
            buf: Vec::with_capacity(n),
        }
    }
    /// A writer for one frame: a placeholder length that `finish_frame` fills in.
    pub fn frame() -> Self {
        let mut w = Writer::with_capacity(64);
        w.buf.extend_from_slice(&[0; 4]);
        w
    }
    pub fn finish_frame(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as i32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }
    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }
    /// A buffer that may be null (ZooKeeper keeps null data apart from empty data).
    pub fn opt_buffer<B: AsRef<[u8]>>(&mut self, v: &Option<B>) -> &mut Self {
        match v {
            Some(b) => self.buffer(b.as_ref()),
            None => self.i32(-1),
        }
    }
    pub fn null_buffer(&mut self) -> &mut Self {
        self.i32(-1)
    }
    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }
    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_null() {
        let mut w = Writer::new();
        w.i32(-7)
            .i64(1 << 40)
            .bool(true)
            .buffer(b"abc")
            .null_buffer()
            .string("héllo");
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.read_i32().unwrap(), -7);
        assert_eq!(r.read_i64().unwrap(), 1 << 40);
        assert!(r.read_bool().unwrap());
        assert_eq!(r.read_buffer().unwrap(), b"abc");
        assert_eq!(r.read_buffer_opt().unwrap(), None);
        assert_eq!(r.read_string().unwrap(), "héllo");
        assert_eq!(r.remaining(), 0);
        assert!(matches!(r.read_i32(), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn hostile_lengths_are_errors() {
        let mut w = Writer::new();
        w.i32(i32::MAX);
        assert!(Reader::new(&w.buf).read_buffer().is_err());
        assert!(Reader::new(&w.buf).read_count(4).is_err());
        let mut w = Writer::new();
        w.i32(-5);
        assert_eq!(
            Reader::new(&w.buf).read_buffer(),
            Err(DecodeError::BadLength(-5))
        );
    }
}
