//! The election port's bytes (3888), as ZooKeeper 3.8 writes and reads them.
//!
//! Connection start (sent unframed by the side that connects):
//!   long protocolVersion (-65536 = V1) · long sid · int n · n bytes "host:port"
//!   (a first long >= 0 is a pre-3.5 peer that sends only its sid)
//! Then frames: int length (1 .. 512 KiB) · payload. A notification payload:
//!   int state · long leader · long zxid · long electionEpoch · long peerEpoch ·
//!   int version (2) · int configLength · config bytes          (44 + configLength)
//! Readers also take the legacy 28-byte (no peerEpoch: it comes from the zxid) and
//! 40-byte (no version) forms, as ZooKeeper does.
//!
//! Pure: bytes in, values out; a malformed input is an error, never a panic.

use super::election::{Notification, PeerState, Vote};

pub const PROTOCOL_V1: i64 = -65536;
pub const NOTIFICATION_VERSION: i32 = 2;
/// Longest frame a peer may send (ZooKeeper's limit).
pub const FRAME_BYTES_MAX: usize = 512 * 1024;
/// Longest election address in the connection start.
pub const ADDRESS_BYTES_MAX: usize = 2048;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("unknown election protocol version {0}")]
    Protocol(i64),
    #[error("election address length {0} (must be 1..=2048)")]
    AddressLength(i32),
    #[error("election address is not UTF-8")]
    AddressUtf8,
    #[error("frame length {0} (must be 1..=524288)")]
    FrameLength(i32),
    #[error("notification of {0} bytes is too short")]
    Short(usize),
    #[error("notification state {0} is unknown")]
    State(i32),
    #[error("notification config length {0} does not fit")]
    ConfigLength(i32),
}

/// What the connecting side says first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initial {
    pub sid: i64,
    /// The connecting server's election address (None from a pre-3.5 peer).
    pub address: Option<String>,
}

pub fn encode_initial(sid: i64, address: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + address.len());
    b.extend_from_slice(&PROTOCOL_V1.to_be_bytes());
    b.extend_from_slice(&sid.to_be_bytes());
    b.extend_from_slice(&(address.len() as i32).to_be_bytes());
    b.extend_from_slice(address.as_bytes());
    b
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// Reads the connection start from the bytes received so far: `Ok(None)` until they are
/// all there, then the value and how many bytes it took.
pub fn decode_initial(b: &[u8]) -> Result<Option<(Initial, usize)>, WireError> {
    if b.len() < 8 {
        return Ok(None);
    }
    let first = i64_at(b, 0);
    if first >= 0 {
        return Ok(Some((
            Initial {
                sid: first,
                address: None,
            },
            8,
        )));
    }
    if first != PROTOCOL_V1 {
        return Err(WireError::Protocol(first));
    }
    if b.len() < 20 {
        return Ok(None);
    }
    let sid = i64_at(b, 8);
    let n = i32_at(b, 16);
    if n < 1 || n as usize > ADDRESS_BYTES_MAX {
        return Err(WireError::AddressLength(n));
    }
    let end = 20 + n as usize;
    if b.len() < end {
        return Ok(None);
    }
    let address = std::str::from_utf8(&b[20..end]).map_err(|_| WireError::AddressUtf8)?;
    Ok(Some((
        Initial {
            sid,
            address: Some(address.to_owned()),
        },
        end,
    )))
}

/// A whole frame (length prefix included) holding `payload`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    assert!(
        !payload.is_empty() && payload.len() <= FRAME_BYTES_MAX,
        "frames we send fit the limit"
    );
    let mut b = Vec::with_capacity(4 + payload.len());
    b.extend_from_slice(&(payload.len() as i32).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The next frame's payload from the bytes received so far: `Ok(None)` until it is all
/// there, then the payload and how many bytes the frame took.
pub fn decode_frame(b: &[u8]) -> Result<Option<(&[u8], usize)>, WireError> {
    if b.len() < 4 {
        return Ok(None);
    }
    let n = i32_at(b, 0);
    if n < 1 || n as usize > FRAME_BYTES_MAX {
        return Err(WireError::FrameLength(n));
    }
    let end = 4 + n as usize;
    if b.len() < end {
        return Ok(None);
    }
    Ok(Some((&b[4..end], end)))
}

/// A notification's payload (without the frame's length), with `config` the sender's
/// server list in ZooKeeper's text form.
pub fn encode_notification(n: &Notification, config: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(44 + config.len());
    b.extend_from_slice(&(n.state as i32).to_be_bytes());
    b.extend_from_slice(&n.vote.leader.to_be_bytes());
    b.extend_from_slice(&n.vote.zxid.to_be_bytes());
    b.extend_from_slice(&n.election_epoch.to_be_bytes());
    b.extend_from_slice(&n.vote.peer_epoch.to_be_bytes());
    b.extend_from_slice(&NOTIFICATION_VERSION.to_be_bytes());
    b.extend_from_slice(&(config.len() as i32).to_be_bytes());
    b.extend_from_slice(config);
    b
}

/// A notification from `from`, and the config bytes it carried (empty for legacy forms).
pub fn decode_notification(from: i64, b: &[u8]) -> Result<(Notification, &[u8]), WireError> {
    if b.len() < 28 {
        return Err(WireError::Short(b.len()));
    }
    let state = match i32_at(b, 0) {
        0 => PeerState::Looking,
        1 => PeerState::Following,
        2 => PeerState::Leading,
        3 => PeerState::Observing,
        s => return Err(WireError::State(s)),
    };
    let leader = i64_at(b, 4);
    let zxid = i64_at(b, 12);
    let election_epoch = i64_at(b, 20);
    let (peer_epoch, version, at) = if b.len() == 28 {
        (zxid >> 32, 0, 28)
    } else if b.len() < 36 {
        return Err(WireError::Short(b.len()));
    } else if b.len() == 40 {
        (i64_at(b, 28), 0, 40)
    } else if b.len() < 40 {
        (i64_at(b, 28), 0, 36)
    } else {
        (i64_at(b, 28), i32_at(b, 36), 40)
    };
    let config: &[u8] = if version > 1 {
        if b.len() < at + 4 {
            return Err(WireError::Short(b.len()));
        }
        let n = i32_at(b, at);
        if n < 0 || at + 4 + n as usize > b.len() {
            return Err(WireError::ConfigLength(n));
        }
        &b[at + 4..at + 4 + n as usize]
    } else {
        &[]
    };
    Ok((
        Notification {
            from,
            state,
            vote: Vote {
                leader,
                zxid,
                peer_epoch,
            },
            election_epoch,
        },
        config,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Notification {
        Notification {
            from: 3,
            state: PeerState::Following,
            vote: Vote {
                leader: 2,
                zxid: 0x1_0000_0005,
                peer_epoch: 1,
            },
            election_epoch: 7,
        }
    }

    #[test]
    fn notification_round_trip_and_layout() {
        let config = b"server.1=127.0.0.1:2888:3888:participant\nversion=0";
        let b = encode_notification(&sample(), config);
        assert_eq!(b.len(), 44 + config.len());
        assert_eq!(&b[0..4], &1i32.to_be_bytes());
        assert_eq!(&b[36..40], &2i32.to_be_bytes());
        let (n, c) = decode_notification(3, &b).unwrap();
        assert_eq!(n, sample());
        assert_eq!(c, config);
    }

    #[test]
    fn legacy_forms() {
        let full = encode_notification(&sample(), b"");
        // 28 bytes: no peer epoch, taken from the zxid.
        let (n, c) = decode_notification(3, &full[..28]).unwrap();
        assert_eq!(n.vote.peer_epoch, 1);
        assert!(c.is_empty());
        // 40 bytes: a peer epoch, no version.
        let mut forty = full[..36].to_vec();
        forty.extend_from_slice(&[0, 0, 0, 9]);
        let (n, _) = decode_notification(3, &forty).unwrap();
        assert_eq!(n.vote.peer_epoch, 1);
        assert_eq!(n.election_epoch, 7);
    }

    #[test]
    fn bad_notifications_are_errors() {
        let full = encode_notification(&sample(), b"abc");
        assert_eq!(
            decode_notification(3, &full[..27]),
            Err(WireError::Short(27))
        );
        let mut bad = full.clone();
        bad[3] = 9;
        assert_eq!(decode_notification(3, &bad), Err(WireError::State(9)));
        let mut bad = full.clone();
        bad[40..44].copy_from_slice(&100i32.to_be_bytes());
        assert_eq!(
            decode_notification(3, &bad),
            Err(WireError::ConfigLength(100))
        );
        let mut bad = full;
        bad[40..44].copy_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(
            decode_notification(3, &bad),
            Err(WireError::ConfigLength(-1))
        );
    }

    #[test]
    fn connection_start() {
        let b = encode_initial(5, "127.0.0.5:3888");
        for cut in 0..b.len() {
            assert_eq!(decode_initial(&b[..cut]), Ok(None), "{cut} bytes");
        }
        let (i, used) = decode_initial(&b).unwrap().unwrap();
        assert_eq!(used, b.len());
        assert_eq!(
            i,
            Initial {
                sid: 5,
                address: Some("127.0.0.5:3888".into())
            }
        );
        // A pre-3.5 peer: just its sid.
        let (i, used) = decode_initial(&9i64.to_be_bytes()).unwrap().unwrap();
        assert_eq!((i.sid, i.address, used), (9, None, 8));
        assert_eq!(
            decode_initial(&(-7i64).to_be_bytes()),
            Err(WireError::Protocol(-7))
        );
        let mut long = encode_initial(5, "x");
        long[16..20].copy_from_slice(&4096i32.to_be_bytes());
        assert_eq!(decode_initial(&long), Err(WireError::AddressLength(4096)));
    }

    #[test]
    fn frames() {
        let f = frame(b"hello");
        assert_eq!(decode_frame(&f[..6]), Ok(None));
        assert_eq!(decode_frame(&f), Ok(Some((&b"hello"[..], 9))));
        assert_eq!(
            decode_frame(&0i32.to_be_bytes()),
            Err(WireError::FrameLength(0))
        );
        assert_eq!(
            decode_frame(&(600_000i32).to_be_bytes()),
            Err(WireError::FrameLength(600_000))
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x5EED;
        let mut byte = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 56) as u8
        };
        for len in 0..120usize {
            for _ in 0..200 {
                let b: Vec<u8> = (0..len).map(|_| byte()).collect();
                let _ = decode_notification(1, &b);
                let _ = decode_initial(&b);
                let _ = decode_frame(&b);
            }
        }
    }
}
