//! Adler-32 as `java.util.zip.Adler32` computes it: the checksum of ZooKeeper's txn log
//! records and snapshot seals, here because both file formats (log/, snap/) use it.

/// A running Adler-32, as `java.util.zip.Adler32` computes it over a stream.
#[derive(Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    pub fn update(&mut self, data: &[u8]) {
        const MOD: u32 = 65521;
        // 5552 bytes is the most that can be summed before b can overflow a u32.
        for chunk in data.chunks(5552) {
            for &x in chunk {
                self.a += x as u32;
                self.b += self.a;
            }
            self.a %= MOD;
            self.b %= MOD;
        }
    }
    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

/// The Adler-32 of `data` in one go.
pub fn adler32(data: &[u8]) -> u32 {
    let mut a = Adler32::default();
    a.update(data);
    a.value()
}
