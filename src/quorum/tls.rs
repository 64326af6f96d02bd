//! TLS between servers (`sslQuorum=true`, `ssl.quorum.*`): mutual TLS on the election and
//! quorum ports, each side verifying the other's certificate against the quorum trust
//! store and, with `ssl.quorum.hostnameVerification` (the default), against the address
//! it dialled or was dialled from, as ZooKeeper's ZKTrustManager does.
//!
//! A secured connection is handed to the election and learner code as a plain loopback
//! `TcpStream` (a tunnel): two pump threads carry bytes between it and the TLS session,
//! so that code keeps its blocking reads, cloned writers and non-blocking sends
//! unchanged. The cost is a copy and a loopback hop per packet between servers (not on
//! the client port, whose reactors drive TLS themselves).
//!
//! With `portUnification=true` an accepting side also takes plain connections (the first
//! byte tells), for rolling an ensemble to TLS one member at a time.

use crate::config::tls::TlsKeys;
use crate::tls::TlsError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The quorum's TLS: configurations for both ends of a connection.
pub struct QuorumTls {
    keys: TlsKeys,
    unify: bool,
    server: Mutex<Arc<ServerConfig>>,
    client: Mutex<Arc<ClientConfig>>,
    /// Files' modification times, for `sslQuorumReloadCertFiles`.
    stamps: Mutex<Vec<Option<std::time::SystemTime>>>,
}

/// Accepts a certificate valid for any name (when hostname verification is off), after
/// checking its chain as the normal verifier does.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

fn client_config(keys: &TlsKeys) -> Result<Arc<ClientConfig>, TlsError> {
    let ks = keys.key_store.as_ref().ok_or_else(|| {
        TlsError::Setup("ssl.quorum.keyStore.location is required for sslQuorum".into())
    })?;
    let ts = keys.trust_store.as_ref().ok_or_else(|| {
        TlsError::Setup("ssl.quorum.trustStore.location is required for sslQuorum".into())
    })?;
    let id = crate::tls::load_identity(ks)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in crate::tls::load_roots(ts)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Setup(format!("{}: {e}", ts.location.display())))?;
    }
    let provider = crate::tls::provider(keys)?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| TlsError::Setup(format!("ssl.quorum.trustStore: {e}")))?;
    let b = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&crate::tls::versions(keys))
        .map_err(|e| TlsError::Setup(format!("ssl.quorum.protocol: {e}")))?;
    let b = if keys.hostname_verification {
        b.with_webpki_verifier(verifier)
    } else {
        b.dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
    };
    let cfg = b
        .with_client_auth_cert(id.chain, id.key)
        .map_err(|e| TlsError::Setup(format!("{}: {e}", ks.location.display())))?;
    Ok(Arc::new(cfg))
}

fn server_config(keys: &TlsKeys) -> Result<Arc<ServerConfig>, TlsError> {
    // Members always prove who they are to each other (ZooKeeper's quorum asks for the
    // client certificate whatever ssl.quorum.clientAuth says).
    let mut k = keys.clone();
    k.client_auth = crate::config::tls::ClientAuth::Need;
    crate::tls::server_config(&k)
}

impl QuorumTls {
    pub fn new(keys: TlsKeys, unify: bool) -> Result<Arc<QuorumTls>, TlsError> {
        let server = server_config(&keys)?;
        let client = client_config(&keys)?;
        let stamps = crate::tls::stamps(&keys);
        Ok(Arc::new(QuorumTls {
            keys,
            unify,
            server: Mutex::new(server),
            client: Mutex::new(client),
            stamps: Mutex::new(stamps),
        }))
    }

    /// `sslQuorumReloadCertFiles`: reads the stores again when they change (checked
    /// every `every`); a bad replacement is logged and the previous stays.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("quorum-tls-reload".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let Some(t) = me.upgrade() else { return };
                let now = crate::tls::stamps(&t.keys);
                if *t.stamps.lock().unwrap() == now {
                    continue;
                }
                *t.stamps.lock().unwrap() = now;
                match (server_config(&t.keys), client_config(&t.keys)) {
                    (Ok(s), Ok(c)) => {
                        *t.server.lock().unwrap() = s;
                        *t.client.lock().unwrap() = c;
                        log::info!("ssl.quorum: key or trust store changed; new connections use it");
                    }
                    (Err(e), _) | (_, Err(e)) => log::error!(
                        "ssl.quorum: key or trust store changed but cannot be used ({e}); keeping the previous one"
                    ),
                }
            });
    }

    /// An accepted connection from `peer`: its TLS handshake done and the peer's
    /// certificate checked, the plaintext end of its tunnel. With portUnification a plain
    /// connection is passed through as it is.
    pub fn accept(&self, s: TcpStream, peer: IpAddr, timeout: Duration) -> io::Result<TcpStream> {
        if self.unify {
            let mut first = [0u8; 1];
            s.set_read_timeout(Some(timeout))?;
            let n = s.peek(&mut first)?;
            s.set_read_timeout(None)?;
            if n == 1 && first[0] != crate::tls::TLS_HANDSHAKE {
                return Ok(s);
            }
        }
        let cfg = self.server.lock().unwrap().clone();
        let conn = ServerConnection::new(cfg).map_err(tls_io)?;
        let mut conn = Connection::Server(conn);
        let s = handshake(s, &mut conn, timeout)?;
        if self.keys.hostname_verification {
            let leaf = conn
                .peer_certificates()
                .and_then(|c| c.first())
                .ok_or_else(|| io::Error::new(io::ErrorKind::PermissionDenied, "no certificate"))?;
            valid_for(leaf, peer)?;
        }
        tunnel(s, conn)
    }

    /// A connection this server dialled to `peer`: TLS as the client side.
    pub fn connect(&self, s: TcpStream, peer: IpAddr, timeout: Duration) -> io::Result<TcpStream> {
        let cfg = self.client.lock().unwrap().clone();
        let conn =
            ClientConnection::new(cfg, ServerName::IpAddress(peer.into())).map_err(tls_io)?;
        let mut conn = Connection::Client(conn);
        let s = handshake(s, &mut conn, timeout)?;
        tunnel(s, conn)
    }
}

fn tls_io(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}"))
}

/// Is the certificate valid for this address (an IP SAN, as ZooKeeper checks a peer
/// without reverse lookups)?
fn valid_for(leaf: &CertificateDer<'_>, peer: IpAddr) -> io::Result<()> {
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("TLS: peer certificate: {e}"),
        )
    })?;
    cert.verify_is_valid_for_subject_name(&ServerName::IpAddress(peer.into()))
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("TLS: the peer's certificate is not valid for {peer}: {e}"),
            )
        })
}

fn handshake(mut s: TcpStream, conn: &mut Connection, timeout: Duration) -> io::Result<TcpStream> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut s) {
            // The alert saying why, if the peer still listens.
            let _ = conn.write_tls(&mut s);
            return Err(e);
        }
    }
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok(s)
}

/// A connected loopback pair, checked to be ours (no other local process slipped in).
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let a = TcpStream::connect(l.local_addr()?)?;
    loop {
        let (b, from) = l.accept()?;
        if from == a.local_addr()? {
            let _ = a.set_nodelay(true);
            let _ = b.set_nodelay(true);
            return Ok((a, b));
        }
    }
}

/// Pumps between the TLS session on `s` and a loopback pair; returns the plaintext end.
///
/// Three threads: network → plaintext, plaintext → network, and the one writer of the
/// socket. Records are encrypted under the session's lock and queued to the writer in
/// the same breath, so they leave in order; no thread blocks on a socket while holding
/// the lock (two members sending each other much at once cannot deadlock). The queue is
/// unbounded, as the learner links' own backlog is.
fn tunnel(s: TcpStream, conn: Connection) -> io::Result<TcpStream> {
    let (outer, inner) = loopback_pair()?;
    let net_read = s.try_clone()?;
    let inner_read = inner.try_clone()?;
    let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
    let session = Arc::new(Mutex::new(conn));
    let mut net_w = s;
    std::thread::Builder::new()
        .name("quorum-tls-net".into())
        .spawn(move || {
            while let Ok(bytes) = rx.recv() {
                if net_w.write_all(&bytes).is_err() {
                    break;
                }
            }
            let _ = net_w.shutdown(Shutdown::Both);
        })?;
    /// Encrypted bytes waiting in the session, queued for the writer.
    fn queue_out(conn: &mut Connection, tx: &crossbeam_channel::Sender<Vec<u8>>) -> bool {
        let mut out = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut out).is_err() {
                return false;
            }
        }
        out.is_empty() || tx.send(out).is_ok()
    }
    // Set once the local side has closed: a peer that has gone silent is then given up
    // on at the next read timeout, so a dead peer leaks no threads or descriptors.
    let local_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    net_read.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (up, up_tx, done_in) = (session.clone(), tx.clone(), local_done.clone());
    let mut inner_w = inner;
    std::thread::Builder::new()
        .name("quorum-tls-in".into())
        .spawn(move || {
            let mut net = net_read;
            let mut buf = vec![0u8; 64 * 1024];
            let mut plain = Vec::new();
            let mut end = false;
            // The handshake's last read may have brought the peer's first records too:
            // they are in the session already, and go on before the socket is read.
            let mut n = 0;
            while !end {
                {
                    let mut conn = up.lock().unwrap();
                    loop {
                        let mut chunk = [0u8; 16 * 1024];
                        match conn.reader().read(&mut chunk) {
                            Ok(0) => {
                                end = true;
                                break;
                            }
                            Ok(k) => plain.extend_from_slice(&chunk[..k]),
                            Err(_) => break,
                        }
                    }
                    let mut rd = &buf[..n];
                    'records: while !rd.is_empty() {
                        if conn.read_tls(&mut rd).is_err() || conn.process_new_packets().is_err() {
                            end = true;
                            break;
                        }
                        loop {
                            let mut chunk = [0u8; 16 * 1024];
                            match conn.reader().read(&mut chunk) {
                                Ok(0) => {
                                    // close_notify: what came before it still goes.
                                    end = true;
                                    break 'records;
                                }
                                Ok(k) => plain.extend_from_slice(&chunk[..k]),
                                Err(_) => break,
                            }
                        }
                    }
                    if !queue_out(&mut conn, &up_tx) {
                        end = true;
                    }
                }
                if inner_w.write_all(&plain).is_err() {
                    break;
                }
                plain.clear();
                if end {
                    break;
                }
                n = loop {
                    match net.read(&mut buf) {
                        Ok(0) => break 0,
                        Ok(n) => break n,
                        // A read timeout: the peer may be gone without a word; once the
                        // local side has closed there is no one to wait for.
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            if done_in.load(std::sync::atomic::Ordering::Acquire) {
                                break 0;
                            }
                        }
                        Err(_) => break 0,
                    }
                };
                if n == 0 {
                    break;
                }
            }
            // End of the peer's stream (or a failure): the local side reads its end; what
            // it still sends goes on (a half-close, as over plain TCP).
            let _ = inner_w.shutdown(Shutdown::Write);
        })?;
    std::thread::Builder::new()
        .name("quorum-tls-out".into())
        .spawn(move || {
            let mut r = inner_read;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut conn = session.lock().unwrap();
                if conn.writer().write_all(&buf[..n]).is_err() || !queue_out(&mut conn, &tx) {
                    break;
                }
            }
            // The local side is done sending: close_notify says so to the peer, which may
            // still send; the writer shuts the socket once both pumps are done.
            let mut conn = session.lock().unwrap();
            conn.send_close_notify();
            queue_out(&mut conn, &tx);
            local_done.store(true, std::sync::atomic::Ordering::Release);
        })?;
    Ok(outer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tls::{ClientAuth, Protocol, Store};

    /// Key and trust stores (PEM) for 127.0.0.1, signed by a fresh CA.
    fn keys(dir: &std::path::Path) -> TlsKeys {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ks.pem"), leaf.pem() + &key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ts.pem"), ca_cert.pem()).unwrap();
        let store = |f: &str| Store {
            location: dir.join(f),
            password: Default::default(),
            kind: None,
        };
        TlsKeys {
            prefix: "ssl.quorum.",
            key_store: Some(store("ks.pem")),
            trust_store: Some(store("ts.pem")),
            client_auth: ClientAuth::Need,
            protocols: vec![Protocol::Tls13, Protocol::Tls12],
            cipher_suites: vec![],
            hostname_verification: true,
            handshake_detection_timeout_ms: 5000,
        }
    }

    /// (dialled end, accepted end) through `t`, or the accepting side's error.
    fn pair(t: &Arc<QuorumTls>, tls_dial: bool) -> io::Result<(TcpStream, TcpStream)> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t2 = t.clone();
        let dial = std::thread::spawn(move || {
            let s = TcpStream::connect(addr).unwrap();
            if tls_dial {
                t2.connect(s, addr.ip(), Duration::from_secs(5))
            } else {
                Ok(s)
            }
        });
        let (s, from) = l.accept().unwrap();
        let accepted = t.accept(s, from.ip(), Duration::from_secs(5));
        let dialled = dial.join().unwrap();
        Ok((dialled?, accepted?))
    }

    /// Both ends send 8 MiB at once through the tunnels: everything arrives, in order
    /// (no deadlock between the pumps of two busy members).
    #[test]
    fn tunnels_carry_bulk_both_ways_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let t = QuorumTls::new(keys(dir.path()), false).unwrap();
        let (a, b) = pair(&t, true).unwrap();
        let data: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let send = |mut s: TcpStream, d: Vec<u8>| {
            std::thread::spawn(move || {
                s.write_all(&d).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
            })
        };
        let recv = |mut s: TcpStream| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                s.read_to_end(&mut got).unwrap();
                got
            })
        };
        let (sa, sb) = (
            send(a.try_clone().unwrap(), data.clone()),
            send(b.try_clone().unwrap(), data.clone()),
        );
        let (ra, rb) = (recv(a), recv(b));
        sa.join().unwrap();
        sb.join().unwrap();
        assert!(ra.join().unwrap() == data && rb.join().unwrap() == data);
    }

    /// The dialler speaks first and then waits (FOLLOWERINFO, the election's hello): its
    /// first bytes may come in with the end of the handshake, and must be handed on
    /// though nothing follows them.
    #[test]
    fn a_first_message_that_came_with_the_handshake_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let t = QuorumTls::new(keys(dir.path()), false).unwrap();
        for i in 0..30 {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let t2 = t.clone();
            // The dialler writes the moment its own handshake is done, while the
            // accepting side may still be finishing its own.
            let dial = std::thread::spawn(move || {
                let s = TcpStream::connect(addr).unwrap();
                let mut a = t2.connect(s, addr.ip(), Duration::from_secs(5)).unwrap();
                a.write_all(b"hello").unwrap();
                a
            });
            let (s, from) = l.accept().unwrap();
            let mut b = t.accept(s, from.ip(), Duration::from_secs(5)).unwrap();
            let mut a = dial.join().unwrap();
            b.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut got = [0u8; 5];
            b.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("round {i}: the first message never came: {e}"));
            b.write_all(b"back!").unwrap();
            a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            a.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"back!");
        }
    }

    /// Without portUnification a plain connection is refused; with it, it passes as it is.
    #[test]
    fn port_unification_lets_plain_connections_through() {
        let dir = tempfile::tempdir().unwrap();
        let strict = QuorumTls::new(keys(dir.path()), false).unwrap();
        let unified = QuorumTls::new(keys(dir.path()), true).unwrap();
        let plain = |t: &Arc<QuorumTls>| {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            c.write_all(b"\x00\x00\x00\x08hello...").unwrap();
            let (s, from) = l.accept().unwrap();
            let r = t.accept(s, from.ip(), Duration::from_secs(2));
            r.map(|mut s| {
                let mut b = [0u8; 12];
                s.read_exact(&mut b).unwrap();
                b.to_vec()
            })
        };
        assert!(plain(&strict).is_err());
        assert_eq!(plain(&unified).unwrap(), b"\x00\x00\x00\x08hello...");
        // And TLS still works on the unified port.
        let (mut a, mut b) = pair(&unified, true).unwrap();
        a.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        b.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ping");
    }
}
