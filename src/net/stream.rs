//! A client connection's byte stream: plain TCP, TLS (rustls, driven by the reactor that
//! owns the socket: no extra thread or hop), or not yet known (`client.portUnification`:
//! the first byte tells, as ZooKeeper's Netty handler reads a TLS record header).
//!
//! `read` and `write` behave as a non-blocking socket's: `WouldBlock` only once the
//! socket said so, so edge-triggered polling never misses bytes. TLS records that the
//! handshake or earlier writes left unsent go out with `flush`, which the reactor calls
//! whenever it writes.

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::sync::Arc;

pub enum Stream {
    Plain(TcpStream),
    Tls(TcpStream, Box<ServerConnection>),
    /// Unified port: plain or TLS, decided by the first byte read.
    Sniff(TcpStream, Arc<ServerConfig>),
    /// Only inside `read`, between two of the above, with nothing fallible in between.
    Switching,
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, TlsFailed(e))
}

/// A TLS failure (bad certificate, bad record): the reactor logs it as such.
#[derive(Debug)]
pub struct TlsFailed(pub rustls::Error);

impl std::fmt::Display for TlsFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsFailed {}

impl Stream {
    pub fn tls(sock: TcpStream, cfg: Arc<ServerConfig>) -> io::Result<Stream> {
        let conn = ServerConnection::new(cfg).map_err(tls_error)?;
        Ok(Stream::Tls(sock, Box::new(conn)))
    }

    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) | Stream::Tls(s, _) | Stream::Sniff(s, _) => s,
            Stream::Switching => unreachable!("never left switching"),
        }
    }

    pub fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) | Stream::Tls(s, _) | Stream::Sniff(s, _) => s,
            Stream::Switching => unreachable!("never left switching"),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(..))
    }

    /// The verified client's certificate chain, once the handshake is done.
    pub fn peer_certificates(&self) -> Option<&[rustls::pki_types::CertificateDer<'static>]> {
        match self {
            Stream::Tls(_, c) if !c.is_handshaking() => c.peer_certificates(),
            _ => None,
        }
    }

    pub fn handshaking(&self) -> bool {
        match self {
            Stream::Tls(_, c) => c.is_handshaking(),
            Stream::Sniff(..) => true,
            _ => false,
        }
    }

    /// Plaintext into `buf`: `Ok(0)` at the end of the stream.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Stream::Sniff(sock, cfg) = self {
            let n = sock.read(buf)?;
            let tls = n > 0 && buf[0] == crate::tls::TLS_HANDSHAKE;
            // Made before the switch, so that its failure leaves the stream as it was.
            let conn = if tls {
                Some(ServerConnection::new(cfg.clone()).map_err(tls_error)?)
            } else {
                None
            };
            let Stream::Sniff(sock, _) = std::mem::replace(self, Stream::Switching) else {
                unreachable!("matched above")
            };
            let Some(conn) = conn else {
                *self = Stream::Plain(sock);
                return Ok(n);
            };
            *self = Stream::Tls(sock, Box::new(conn));
            // TLS from here on, whatever these bytes hold: a failure leaves a whole stream
            // to close, and its alert to send.
            let Stream::Tls(sock, conn) = self else {
                unreachable!("just set")
            };
            let mut first = &buf[..n];
            while !first.is_empty() {
                conn.read_tls(&mut first)?;
                if let Err(e) = conn.process_new_packets() {
                    let _ = conn.write_tls(sock);
                    return Err(tls_error(e));
                }
            }
        }
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(sock, conn) => loop {
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if conn.read_tls(sock)? == 0 {
                    return Ok(0);
                }
                if let Err(e) = conn.process_new_packets() {
                    // Send the alert that says why, if the socket takes it.
                    let _ = conn.write_tls(sock);
                    return Err(tls_error(e));
                }
            },
            Stream::Sniff(..) | Stream::Switching => unreachable!("decided above"),
        }
    }

    /// Takes plaintext to send; `WouldBlock` when nothing could be taken.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) | Stream::Sniff(s, _) => s.write(buf),
            Stream::Switching => unreachable!("never left switching"),
            Stream::Tls(sock, conn) => {
                let n = conn.writer().write(buf)?;
                Self::flush_tls(sock, conn)?;
                if n == 0 && !buf.is_empty() {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            }
        }
    }

    fn flush_tls(sock: &mut TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
        while conn.wants_write() {
            match conn.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends TLS records waiting to go (handshake messages, alerts, encrypted data).
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(sock, conn) => Self::flush_tls(sock, conn),
            _ => Ok(()),
        }
    }

    /// Bytes the stream holds that the socket has not taken yet.
    pub fn unsent(&self) -> bool {
        match self {
            Stream::Tls(_, conn) => conn.wants_write(),
            _ => false,
        }
    }

    /// Says goodbye (TLS close_notify) and shuts the socket.
    pub fn shutdown(&mut self) {
        if let Stream::Tls(sock, conn) = self {
            conn.send_close_notify();
            let _ = Self::flush_tls(sock, conn);
        }
        let _ = self.socket().shutdown(std::net::Shutdown::Both);
    }
}
