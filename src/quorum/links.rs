//! Learner links on the quorum port (2888): one TCP connection between the leader and
//! each learner, carrying QuorumPackets (`zab::packet`) both ways.
//!
//! Main types: `Link` (the writer's handle: an id and a queue of encoded packets),
//! `LinkEvent` (what the link's reader hands the writer).
//!
//! Threads: each link has a reader (decodes packets, sends them to the writer's inbox)
//! and a sender (writes what the writer queued). Dropping every `Link` handle closes the
//! connection: the sender shuts the socket down, and the reader then reports `Closed`.
//! A malformed packet closes that link, never the server.
//! Limits: a packet's data is bounded by `data_bytes_max` (a SNAP carries a whole
//! snapshot, so the learner side allows more than jute.maxbuffer).

use crate::zab::packet::{kind, QuorumPacket};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// The writer's end of a link.
#[derive(Clone)]
pub struct Link {
    pub id: u64,
    tx: crossbeam_channel::Sender<Vec<u8>>,
}

impl Link {
    /// Queues a packet; false once the link is gone.
    pub fn send(&self, p: &QuorumPacket) -> bool {
        let mut w = crate::proto::Writer {
            buf: Vec::with_capacity(p.encoded_len()),
        };
        p.encode(&mut w);
        self.tx.send(w.buf).is_ok()
    }

    /// Queues a packet already encoded (`QuorumPacket::encode_plain`).
    pub fn send_encoded(&self, bytes: Vec<u8>) -> bool {
        self.tx.send(bytes).is_ok()
    }
}

/// What a link's reader reports.
pub enum LinkEvent {
    Packet { link: u64, pkt: QuorumPacket },
    Closed { link: u64 },
}

/// Starts the reader and sender of a connected socket. `first` is what the caller
/// already read past the first packet (the leader reads FOLLOWERINFO itself);
/// `on_open` runs before the reader starts, so what it announces comes before any packet.
pub fn open(
    s: TcpStream,
    name: &str,
    first: Vec<u8>,
    data_bytes_max: usize,
    on_open: impl FnOnce(&Link),
    to_writer: impl Fn(LinkEvent) -> bool + Send + 'static,
) -> std::io::Result<Link> {
    let id = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
    let _ = s.set_nodelay(true);
    let mut w = s.try_clone()?;
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    std::thread::Builder::new()
        .name(format!("{name}-send"))
        .spawn(move || {
            while let Ok(mut bytes) = rx.recv() {
                // Write what queued meanwhile in one go.
                while let Ok(more) = rx.try_recv() {
                    bytes.extend_from_slice(&more);
                }
                if w.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = w.shutdown(Shutdown::Both);
        })?;
    let link = Link { id, tx };
    on_open(&link);
    let mut r = s;
    std::thread::Builder::new()
        .name(format!("{name}-read"))
        .spawn(move || {
            let mut buf = first;
            let mut chunk = vec![0u8; 64 * 1024];
            'read: loop {
                let mut used_total = 0;
                loop {
                    match QuorumPacket::decode(&buf[used_total..], data_bytes_max) {
                        Ok(Some((pkt, used))) => {
                            used_total += used;
                            if !to_writer(LinkEvent::Packet { link: id, pkt }) {
                                break 'read;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log::warn!("quorum link {id}: {e}; closing it");
                            break 'read;
                        }
                    }
                }
                buf.drain(..used_total);
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            let _ = r.shutdown(Shutdown::Both);
            to_writer(LinkEvent::Closed { link: id });
        })?;
    Ok(link)
}

/// Reads the first packet of a new learner connection (FOLLOWERINFO or OBSERVERINFO)
/// within `timeout`: (packet, bytes read past it).
pub fn read_first(
    s: &mut TcpStream,
    timeout: std::time::Duration,
) -> Result<(QuorumPacket, Vec<u8>), String> {
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let got = loop {
        match QuorumPacket::decode(&buf, 1 << 20) {
            Ok(Some((p, used))) => break (p, buf[used..].to_vec()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("closed before its first packet".into()),
            Err(e) => return Err(e.to_string()),
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    };
    s.set_read_timeout(None).map_err(|e| e.to_string())?;
    if got.0.kind != kind::FOLLOWERINFO && got.0.kind != kind::OBSERVERINFO {
        return Err(format!(
            "first packet is of type {}, not FOLLOWERINFO or OBSERVERINFO",
            got.0.kind
        ));
    }
    Ok(got)
}
