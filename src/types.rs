//! Identifiers and limits shared by every layer.

/// zxid = epoch << 32 | counter.
pub type Zxid = i64;
pub type SessionId = i64;
/// A connection's identity across reactors: reactor index in the top 16 bits.
pub type ConnId = u64;

pub fn conn_reactor(conn: ConnId) -> usize {
    (conn >> 48) as usize
}

/// ZooKeeper's default `jute.maxbuffer`: 0xfffff bytes.
pub const JUTE_MAXBUFFER_DEFAULT: usize = 0xfffff;

/// A password from the configuration: shown as `****` everywhere.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: &str) -> Secret {
        Secret(s.to_owned())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}
