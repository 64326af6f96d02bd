//! Learner links on the quorum port (2888): one TCP connection between the leader and
//! each learner, carrying QuorumPackets (`zab::packet`) both ways.
//!
//! Main types: `Link` (the writer's handle: an id and the bytes it queued since its last
//! flush), `LinkEvent` (what the link's reader hands the writer).
//!
//! Threads: each link has a reader (decodes what one read() brought, hands the packets
//! to the writer's inbox together) and a sender for backlog. The writer queues packets in
//! its handle and flushes them once per turn of its loop, straight into the socket with a
//! non-blocking send: most of the time that is the only copy and the only syscall, with
//! no thread woken. What the socket does not take (a slow learner, a SNAP) goes to the
//! sender thread, which writes it blocking; while it holds any, later flushes queue
//! behind it, so bytes keep their order. The writer never blocks on a learner.
//! Dropping every `Link` handle closes the connection: the sender shuts the socket down
//! once its backlog is written, and the reader then reports `Closed`.
//! A malformed packet closes that link, never the server.
//! Limits: a packet's data is bounded by `data_bytes_max` (a SNAP carries a whole
//! snapshot, so the learner side allows more than jute.maxbuffer).

use crate::zab::packet::{kind, QuorumPacket};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

static NEXT_LINK: AtomicU64 = AtomicU64::new(1);

/// A flush leaves at most this much buffer capacity behind (a SNAP may have grown it).
const KEEP_CAPACITY: usize = 1 << 20;

/// The writer's end of a link. Clones share the connection; each queues on its own.
pub struct Link {
    pub id: u64,
    /// Encoded packets not yet flushed.
    out: Vec<u8>,
    way: Way,
}

/// Where a link's bytes go: a socket, or the simulator's wire (testing/).
#[derive(Clone)]
enum Way {
    Tcp(Arc<Shared>),
    Sim(Arc<SimPipe>),
}

/// A simulated link's outgoing bytes, which the simulator takes and delivers. The link
/// is closed once every `Link` handle is gone (the simulator holds the last `Arc`).
#[derive(Default)]
pub struct SimPipe {
    bytes: std::sync::Mutex<Vec<u8>>,
}

impl SimPipe {
    /// What the link's writer flushed since the last call.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Shared {
    /// For the writer's direct, non-blocking sends.
    sock: TcpStream,
    /// Backlog for the sender thread.
    tx: crossbeam_channel::Sender<Vec<u8>>,
    /// Buffers handed to the sender thread and not yet written: while any are, a flush
    /// queues behind them.
    backlog: AtomicUsize,
}

impl Clone for Link {
    fn clone(&self) -> Link {
        Link {
            id: self.id,
            out: Vec::new(),
            way: self.way.clone(),
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // What was queued still goes, ahead of the shutdown.
        self.flush();
    }
}

impl Link {
    /// A link whose bytes the simulator carries: the writer's handle, and the pipe the
    /// simulator reads what it flushes from.
    pub fn simulated() -> (Link, Arc<SimPipe>) {
        let pipe = Arc::new(SimPipe::default());
        let link = Link {
            id: NEXT_LINK.fetch_add(1, Ordering::Relaxed),
            out: Vec::new(),
            way: Way::Sim(pipe.clone()),
        };
        (link, pipe)
    }

    /// Queues a packet until the next `flush`.
    pub fn send(&mut self, p: &QuorumPacket) {
        let mut w = crate::proto::Writer {
            buf: std::mem::take(&mut self.out),
        };
        w.buf.reserve(p.encoded_len());
        p.encode(&mut w);
        self.out = w.buf;
    }

    /// Queues a packet with no auth from borrowed data (`QuorumPacket::encode_plain`).
    pub fn send_plain(&mut self, kind: i32, zxid: i64, data: Option<&[u8]>) {
        QuorumPacket::encode_plain(kind, zxid, data, &mut self.out);
    }

    /// Sends what was queued: into the socket as far as it takes it without blocking,
    /// the rest through the sender thread. False once the connection is broken (its
    /// reader reports `Closed`).
    pub fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let shared = match &self.way {
            Way::Tcp(shared) => shared.clone(),
            Way::Sim(pipe) => {
                let mut bytes = pipe.bytes.lock().unwrap_or_else(|e| e.into_inner());
                bytes.extend_from_slice(&self.out);
                self.out.clear();
                return true;
            }
        };
        let mut done = 0;
        if shared.backlog.load(Ordering::Acquire) == 0 {
            let fd = shared.sock.as_raw_fd();
            while done < self.out.len() {
                let rest = &self.out[done..];
                // SAFETY: a valid fd for the Arc's lifetime; the pointer and length
                // describe `rest`. MSG_DONTWAIT keeps this call from blocking without
                // making the reader's blocking reads non-blocking too.
                let n = unsafe {
                    libc::send(
                        fd,
                        rest.as_ptr().cast(),
                        rest.len(),
                        libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                    )
                };
                if n > 0 {
                    done += n as usize;
                    continue;
                }
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    std::io::ErrorKind::Interrupted => continue,
                    std::io::ErrorKind::WouldBlock => break,
                    _ => {
                        self.out.clear();
                        return false;
                    }
                }
            }
        }
        let ok = if done < self.out.len() {
            let rest = if done == 0 {
                std::mem::take(&mut self.out)
            } else {
                self.out[done..].to_vec()
            };
            shared.backlog.fetch_add(1, Ordering::AcqRel);
            shared.tx.send(rest).is_ok()
        } else {
            true
        };
        self.out.clear();
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        ok
    }
}

/// What a link's reader reports.
pub enum LinkEvent {
    /// What one read() brought, in order.
    Packets {
        link: u64,
        pkts: Vec<QuorumPacket>,
    },
    Closed {
        link: u64,
    },
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
    let shared = Arc::new(Shared {
        sock: s.try_clone()?,
        tx,
        backlog: AtomicUsize::new(0),
    });
    let sender_view = Arc::downgrade(&shared);
    std::thread::Builder::new()
        .name(format!("{name}-send"))
        .spawn(move || {
            while let Ok(mut bytes) = rx.recv() {
                // Write what queued meanwhile in one go.
                let mut n = 1;
                while let Ok(more) = rx.try_recv() {
                    bytes.extend_from_slice(&more);
                    n += 1;
                }
                if w.write_all(&bytes).is_err() {
                    break;
                }
                match sender_view.upgrade() {
                    Some(s) => s.backlog.fetch_sub(n, Ordering::AcqRel),
                    None => continue, // every handle is gone: the channel ends too
                };
            }
            let _ = w.shutdown(Shutdown::Both);
        })?;
    let link = Link {
        id,
        out: Vec::new(),
        way: Way::Tcp(shared),
    };
    on_open(&link);
    let mut r = s;
    std::thread::Builder::new()
        .name(format!("{name}-read"))
        .spawn(move || {
            let mut buf = first;
            let mut chunk = vec![0u8; 64 * 1024];
            'read: loop {
                let mut used_total = 0;
                let mut pkts = Vec::new();
                let mut bad = false;
                loop {
                    match QuorumPacket::decode(&buf[used_total..], data_bytes_max) {
                        Ok(Some((pkt, used))) => {
                            used_total += used;
                            pkts.push(pkt);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log::warn!("quorum link {id}: {e}; closing it");
                            bad = true;
                            break;
                        }
                    }
                }
                if !pkts.is_empty() && !to_writer(LinkEvent::Packets { link: id, pkts }) {
                    break 'read;
                }
                if bad {
                    break;
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

/// Why a new learner connection's first packet was not taken.
#[derive(Debug, thiserror::Error)]
pub enum FirstPacketError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Packet(#[from] crate::zab::packet::PacketError),
    #[error("closed before its first packet")]
    Closed,
    #[error("first packet is of type {0}, not FOLLOWERINFO or OBSERVERINFO")]
    NotLearnerInfo(i32),
}

/// Reads the first packet of a new learner connection (FOLLOWERINFO or OBSERVERINFO)
/// within `timeout`: (packet, bytes read past it).
pub fn read_first(
    s: &mut TcpStream,
    timeout: std::time::Duration,
) -> Result<(QuorumPacket, Vec<u8>), FirstPacketError> {
    s.set_read_timeout(Some(timeout))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let got = loop {
        if let Some((p, used)) = QuorumPacket::decode(&buf, 1 << 20)? {
            break (p, buf[used..].to_vec());
        }
        match s.read(&mut chunk)? {
            0 => return Err(FirstPacketError::Closed),
            k => buf.extend_from_slice(&chunk[..k]),
        }
    };
    s.set_read_timeout(None)?;
    if got.0.kind != kind::FOLLOWERINFO && got.0.kind != kind::OBSERVERINFO {
        return Err(FirstPacketError::NotLearnerInfo(got.0.kind));
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    /// A slow peer: first it does not read at all, so the socket fills and the rest goes
    /// to the sender thread; then it reads slowly while more is flushed, so the socket
    /// has room while the sender still holds a backlog. The writer's flushes never block,
    /// and the peer gets every packet once and in order. A packet the peer sends arrives
    /// as an event; dropping the handle closes the connection after the backlog.
    #[test]
    fn a_slow_peer_gets_everything_in_order_and_never_blocks_the_writer() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (ours, _) = l.accept().unwrap();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        let mut link = open(
            ours,
            "test",
            Vec::new(),
            1 << 20,
            |_| {},
            move |e| ev_tx.send(e).is_ok(),
        )
        .unwrap();

        // The peer starts reading when told, or after 30 s if a flush blocked; then it
        // reads 64 KiB per millisecond.
        let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
        let mut peer_r = peer.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let told = go_rx.recv_timeout(Duration::from_secs(30)).is_ok();
            let (mut all, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
            loop {
                match peer_r.read(&mut chunk).unwrap() {
                    0 => break,
                    k => all.extend_from_slice(&chunk[..k]),
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (told, all)
        });

        let size = 8 * 1024;
        let packet =
            |z: i64| QuorumPacket::new(kind::PROPOSAL, z, Some(vec![(z % 251) as u8; size]));
        // 32 MiB the peer does not read.
        let mut z = 0i64;
        while z < 4000 {
            z += 1;
            link.send(&packet(z));
            if z % 10 == 0 {
                assert!(link.flush());
            }
        }
        assert!(link.flush());
        let Way::Tcp(shared) = &link.way else {
            unreachable!("a socket link")
        };
        assert!(
            shared.backlog.load(Ordering::Acquire) > 0,
            "what the peer does not read waits with the sender thread"
        );
        go_tx.send(()).unwrap();
        // 16 MiB more while the peer reads slowly.
        while z < 6000 {
            z += 1;
            link.send(&packet(z));
            assert!(link.flush());
            if z % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }

        // The other way: a packet from the peer is an event.
        let mut ack = Vec::new();
        QuorumPacket::encode_plain(kind::ACK, 7, None, &mut ack);
        peer.write_all(&ack).unwrap();
        match ev_rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            LinkEvent::Packets { pkts, .. } => {
                assert_eq!((pkts[0].kind, pkts[0].zxid), (kind::ACK, 7))
            }
            LinkEvent::Closed { .. } => panic!("closed instead of the ACK"),
        }

        drop(link);
        let (told, all) = reader.join().unwrap();
        assert!(told, "a flush blocked on the unread socket");
        let (mut at, mut next) = (0, 1i64);
        while let Some((p, used)) = QuorumPacket::decode(&all[at..], 1 << 20).unwrap() {
            assert_eq!(p.zxid, next, "packets out of order or lost");
            assert_eq!(p.data, packet(next).data);
            at += used;
            next += 1;
        }
        assert_eq!((next - 1, at), (z, all.len()), "every packet, nothing more");
    }
}
