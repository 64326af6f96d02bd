//! The learner protocol's packets (quorum port, 2888), as ZooKeeper 3.8 writes them.
//!
//! The stream is back-to-back jute QuorumPacket records with no length prefix:
//!   int type · long zxid · buffer data (-1 = null) · vector<Id> authinfo (-1 = null)
//! `LearnerInfo` (the data of FOLLOWERINFO / OBSERVERINFO) is
//!   long serverid · int protocolVersion (0x10000) · long configVersion
//! and a reader takes as many of its fields as are present, as ZooKeeper does.
//!
//! Pure: bytes in, values out; a malformed input is an error, never a panic. Limits:
//! `data` is bounded by the caller's `data_bytes_max` (jute.maxbuffer).

use crate::proto::records::Id;
use crate::proto::{Reader, Writer};

/// QuorumPacket types (Leader.java's constants).
pub mod kind {
    pub const REQUEST: i32 = 1;
    pub const PROPOSAL: i32 = 2;
    pub const ACK: i32 = 3;
    pub const COMMIT: i32 = 4;
    pub const PING: i32 = 5;
    pub const REVALIDATE: i32 = 6;
    pub const SYNC: i32 = 7;
    pub const INFORM: i32 = 8;
    pub const COMMITANDACTIVATE: i32 = 9;
    pub const NEWLEADER: i32 = 10;
    pub const FOLLOWERINFO: i32 = 11;
    pub const UPTODATE: i32 = 12;
    pub const DIFF: i32 = 13;
    pub const TRUNC: i32 = 14;
    pub const SNAP: i32 = 15;
    pub const OBSERVERINFO: i32 = 16;
    pub const LEADERINFO: i32 = 17;
    pub const ACKEPOCH: i32 = 18;
    pub const INFORMANDACTIVATE: i32 = 19;
}

/// The protocol version learners and leaders exchange (0x10000).
pub const PROTOCOL_VERSION: i32 = 0x10000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    pub kind: i32,
    pub zxid: i64,
    pub data: Option<Vec<u8>>,
    pub auth: Option<Vec<Id>>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("unknown quorum packet type {0}")]
    Kind(i32),
    #[error("quorum packet data of {0} bytes is over the limit")]
    TooBig(usize),
    #[error("malformed quorum packet")]
    Malformed,
    #[error("learner info of {0} bytes is too short")]
    LearnerInfo(usize),
}

impl QuorumPacket {
    pub fn new(kind: i32, zxid: i64, data: Option<Vec<u8>>) -> QuorumPacket {
        QuorumPacket {
            kind,
            zxid,
            data,
            auth: None,
        }
    }

    /// The encoded size: `encode` writes exactly this many bytes.
    pub fn encoded_len(&self) -> usize {
        let auth = self.auth.as_ref().map_or(0, |ids| {
            ids.iter().map(|id| 8 + id.scheme.len() + id.id.len()).sum()
        });
        4 + 8 + 4 + self.data.as_ref().map_or(0, Vec::len) + 4 + auth
    }

    /// Appends the encoding of a packet with no auth to `out`, straight from borrowed
    /// data: what a leader sends every learner for each txn.
    pub fn encode_plain(kind: i32, zxid: i64, data: Option<&[u8]>, out: &mut Vec<u8>) {
        out.reserve(20 + data.map_or(0, <[u8]>::len));
        let mut w = Writer {
            buf: std::mem::take(out),
        };
        w.i32(kind).i64(zxid).opt_buffer(&data).i32(-1);
        *out = w.buf;
    }

    pub fn encode(&self, w: &mut Writer) {
        w.i32(self.kind).i64(self.zxid).opt_buffer(&self.data);
        match &self.auth {
            None => {
                w.i32(-1);
            }
            Some(ids) => {
                w.i32(ids.len() as i32);
                for id in ids {
                    w.string(&id.scheme).string(&id.id);
                }
            }
        }
    }

    /// The next packet from the bytes received so far: `Ok(None)` until it is all there,
    /// then the packet and how many bytes it took.
    pub fn decode(
        b: &[u8],
        data_bytes_max: usize,
    ) -> Result<Option<(QuorumPacket, usize)>, PacketError> {
        // The length fields are checked before any read past them, so a partial packet
        // is told apart from a malformed one.
        if b.len() < 16 {
            return Ok(None);
        }
        let kind = i32::from_be_bytes(b[0..4].try_into().unwrap());
        if !(kind::REQUEST..=kind::INFORMANDACTIVATE).contains(&kind) {
            return Err(PacketError::Kind(kind));
        }
        let n = i32::from_be_bytes(b[12..16].try_into().unwrap());
        if n < -1 {
            return Err(PacketError::Malformed);
        }
        if n > 0 && n as usize > data_bytes_max {
            return Err(PacketError::TooBig(n as usize));
        }
        let auth_at = 16 + n.max(0) as usize;
        if b.len() < auth_at + 4 {
            return Ok(None);
        }
        let count = i32::from_be_bytes(b[auth_at..auth_at + 4].try_into().unwrap());
        if !(-1..=1024).contains(&count) {
            return Err(PacketError::Malformed);
        }
        // Walk the ids' length fields first: the packet is whole only once every byte of
        // every id is there, wherever the stream was split.
        let mut pos = auth_at + 4;
        for _ in 0..count.max(0) * 2 {
            if b.len() < pos + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes(b[pos..pos + 4].try_into().unwrap());
            if len < -1 || len as i64 > data_bytes_max as i64 {
                return Err(PacketError::Malformed);
            }
            pos += 4 + len.max(0) as usize;
            if b.len() < pos {
                return Ok(None);
            }
        }
        let mut r = Reader::new(b);
        let _ = r.read_i32();
        let zxid = r.read_i64().map_err(|_| PacketError::Malformed)?;
        let data = r
            .read_buffer_opt()
            .map_err(|_| PacketError::Malformed)?
            .map(<[u8]>::to_vec);
        let count = r.read_i32().map_err(|_| PacketError::Malformed)?;
        let auth = if count < 0 {
            None
        } else {
            let mut ids = Vec::with_capacity(count as usize);
            for _ in 0..count {
                // Every byte is there (walked above): a failed read is malformed text.
                let scheme = r.read_string().map_err(|_| PacketError::Malformed)?;
                let id = r.read_string().map_err(|_| PacketError::Malformed)?;
                ids.push(Id {
                    scheme: scheme.to_owned(),
                    id: id.to_owned(),
                });
            }
            Some(ids)
        };
        let used = r.position();
        Ok(Some((
            QuorumPacket {
                kind,
                zxid,
                data,
                auth,
            },
            used,
        )))
    }
}

/// FOLLOWERINFO / OBSERVERINFO data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub server_id: i64,
    pub protocol_version: i32,
    pub config_version: i64,
}

impl LearnerInfo {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(20);
        b.extend_from_slice(&self.server_id.to_be_bytes());
        b.extend_from_slice(&self.protocol_version.to_be_bytes());
        b.extend_from_slice(&self.config_version.to_be_bytes());
        b
    }
    /// As many fields as are present (an old learner sends only its id).
    pub fn decode(b: &[u8]) -> Result<LearnerInfo, PacketError> {
        if b.len() < 8 {
            return Err(PacketError::LearnerInfo(b.len()));
        }
        let server_id = i64::from_be_bytes(b[0..8].try_into().unwrap());
        let protocol_version = if b.len() >= 12 {
            i32::from_be_bytes(b[8..12].try_into().unwrap())
        } else {
            0
        };
        let config_version = if b.len() >= 20 {
            i64::from_be_bytes(b[12..20].try_into().unwrap())
        } else {
            -1
        };
        Ok(LearnerInfo {
            server_id,
            protocol_version,
            config_version,
        })
    }
}

#[cfg(test)]
mod tests {
    /// A packet with auth ids that arrives split anywhere, inside an id's strings too,
    /// is partial until its last byte (found under load: a split REQUEST's ip id was
    /// taken as malformed and the learner's link closed).
    #[test]
    fn every_prefix_of_a_packet_with_auth_is_partial() {
        let mut p = QuorumPacket::new(kind::REQUEST, -1, Some(vec![7; 40]));
        p.auth = Some(vec![
            Id::new("ip", "127.0.0.1"),
            Id::new("digest", "alice:secret-hash"),
        ]);
        let mut w = Writer::new();
        p.encode(&mut w);
        for n in 0..w.buf.len() {
            assert_eq!(
                QuorumPacket::decode(&w.buf[..n], 1 << 20),
                Ok(None),
                "prefix of {n} bytes"
            );
        }
        let mut more = w.buf.clone();
        more.extend_from_slice(&[0, 0, 0, 5]);
        assert_eq!(
            QuorumPacket::decode(&more, 1 << 20),
            Ok(Some((p, w.buf.len())))
        );
    }

    use super::*;

    fn bytes(p: &QuorumPacket) -> Vec<u8> {
        let mut w = Writer::new();
        p.encode(&mut w);
        w.buf
    }

    #[test]
    fn round_trips_and_layout() {
        let p = QuorumPacket::new(kind::ACK, 0x1_0000_0003, None);
        let b = bytes(&p);
        assert_eq!(b.len(), 4 + 8 + 4 + 4);
        assert_eq!(&b[12..20], &[0xff; 8], "null data and null authinfo");
        assert_eq!(QuorumPacket::decode(&b, 1 << 20), Ok(Some((p, 20))));

        let info = LearnerInfo {
            server_id: 2,
            protocol_version: PROTOCOL_VERSION,
            config_version: 0,
        };
        let p = QuorumPacket {
            kind: kind::FOLLOWERINFO,
            zxid: 1 << 32,
            data: Some(info.encode()),
            auth: Some(vec![Id {
                scheme: "digest".into(),
                id: "alice".into(),
            }]),
        };
        let b = bytes(&p);
        let (q, used) = QuorumPacket::decode(&b, 1 << 20).unwrap().unwrap();
        assert_eq!((q.clone(), used), (p, b.len()));
        assert_eq!(LearnerInfo::decode(q.data.as_deref().unwrap()), Ok(info));
    }

    /// `encoded_len` is what `encode` writes, and `encode_plain` writes what `encode`
    /// does for a packet without auth.
    #[test]
    fn encoded_len_and_plain_encoding_agree_with_encode() {
        let mut with_auth = QuorumPacket::new(kind::REQUEST, 9, Some(vec![3; 17]));
        with_auth.auth = Some(vec![Id::new("ip", "127.0.0.1"), Id::new("x", "")]);
        for p in [
            QuorumPacket::new(kind::PROPOSAL, 0x2_0000_0001, Some(vec![1; 100])),
            QuorumPacket::new(kind::COMMIT, 5, None),
            QuorumPacket::new(kind::INFORM, 6, Some(Vec::new())),
            with_auth,
        ] {
            let b = bytes(&p);
            assert_eq!(p.encoded_len(), b.len(), "{p:?}");
            if p.auth.is_none() {
                let mut plain = vec![7];
                QuorumPacket::encode_plain(p.kind, p.zxid, p.data.as_deref(), &mut plain);
                assert_eq!(plain[1..], b[..], "appended after what was there");
                assert_eq!(plain[0], 7);
            }
        }
    }

    #[test]
    fn partial_packets_wait_and_back_to_back_packets_split() {
        let a = bytes(&QuorumPacket::new(kind::PROPOSAL, 7, Some(vec![1, 2, 3])));
        let b = bytes(&QuorumPacket::new(kind::COMMIT, 7, None));
        for cut in 0..a.len() {
            assert_eq!(QuorumPacket::decode(&a[..cut], 1 << 20), Ok(None), "{cut}");
        }
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let (p, used) = QuorumPacket::decode(&both, 1 << 20).unwrap().unwrap();
        assert_eq!((p.kind, used), (kind::PROPOSAL, a.len()));
        let (p, _) = QuorumPacket::decode(&both[used..], 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(p.kind, kind::COMMIT);
    }

    #[test]
    fn bad_packets_are_errors() {
        let mut b = bytes(&QuorumPacket::new(kind::PING, 0, Some(vec![0; 100])));
        assert_eq!(QuorumPacket::decode(&b, 50), Err(PacketError::TooBig(100)));
        b[3] = 99;
        assert_eq!(
            QuorumPacket::decode(&b, 1 << 20),
            Err(PacketError::Kind(99))
        );
        assert_eq!(
            LearnerInfo::decode(&[0; 7]),
            Err(PacketError::LearnerInfo(7))
        );
        // An old learner: just its id.
        assert_eq!(
            LearnerInfo::decode(&5i64.to_be_bytes()).unwrap(),
            LearnerInfo {
                server_id: 5,
                protocol_version: 0,
                config_version: -1
            }
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0xBEEF;
        let mut byte = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 56) as u8
        };
        for len in 0..80usize {
            for _ in 0..300 {
                let mut b: Vec<u8> = (0..len).map(|_| byte()).collect();
                if len >= 4 {
                    b[0..4].copy_from_slice(&(1 + (len as i32 % 19)).to_be_bytes());
                }
                let _ = QuorumPacket::decode(&b, 1 << 20);
                let _ = LearnerInfo::decode(&b);
            }
        }
    }
}
