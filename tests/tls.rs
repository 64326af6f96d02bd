//! Issue 16: TLS on the client port, as ZooKeeper's keys configure it. Certificates are
//! made here (rcgen), key stores written as PEM, as PKCS12 and, by the JDK's own keytool,
//! as JKS; a rustls client speaks the ZooKeeper protocol to the real server over TLS.

use crate::harness::{connect_request, create_body_acl, frame, jute_string, start_failing, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-Store-pw";

/// A certificate and its key (DER).
pub struct Cert {
    pub der: Vec<u8>,
    pub key: Vec<u8>,
}

impl Cert {
    pub fn pem(&self) -> String {
        let c = pem_block("CERTIFICATE", &self.der);
        let k = pem_block("PRIVATE KEY", &self.key);
        format!("{c}{k}")
    }
}

fn pem_block(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    pub cert: Cert,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        let der = cert.der().to_vec();
        let key_der = key.serialize_der();
        Ca {
            cert: Cert { der, key: key_der },
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `names` (DNS names or IPs), subject CN=`cn`,O=Paddock; `expired`: its
    /// validity ended yesterday.
    pub fn leaf(&self, cn: &str, names: &[&str], expired: bool) -> Cert {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "Paddock");
        p.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Cert {
            der: cert.der().to_vec(),
            key: key.serialize_der(),
        }
    }
}

/// Writes `cert` (with `ca` after it in the chain) as a key store of `kind` ("pem",
/// "p12" or "jks"), and `ca` as a trust store of the same kind. (key store, trust store).
pub fn write_stores(
    dir: &Path,
    name: &str,
    kind: &str,
    cert: &Cert,
    ca: &Cert,
) -> (PathBuf, PathBuf) {
    let ks = dir.join(format!("{name}.{kind}"));
    let ts = dir.join(format!("{name}-trust.{kind}"));
    match kind {
        "pem" => {
            std::fs::write(&ks, cert.pem()).unwrap();
            std::fs::write(&ts, pem_block("CERTIFICATE", &ca.der)).unwrap();
        }
        "p12" | "jks" => {
            let p12 = |path: &Path, with_key: bool| {
                let mut store = p12_keystore::KeyStore::new();
                let ca_cert = p12_keystore::Certificate::from_der(&ca.der).unwrap();
                if with_key {
                    let chain = p12_keystore::PrivateKeyChain::new(
                        vec![1u8, 2, 3, 4],
                        p12_keystore::PrivateKey::from_der(&cert.key).unwrap(),
                        vec![
                            p12_keystore::Certificate::from_der(&cert.der).unwrap(),
                            ca_cert,
                        ],
                    );
                    store.add_entry("key", p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
                } else {
                    store.add_entry("ca", p12_keystore::KeyStoreEntry::Certificate(ca_cert));
                }
                std::fs::write(path, store.writer(PASSWORD).write().unwrap()).unwrap();
            };
            if kind == "p12" {
                p12(&ks, true);
                p12(&ts, false);
            } else {
                // The JDK's keytool converts: a JKS as Java writes it.
                let (ks_p12, ts_p12) = (
                    dir.join(format!("{name}.tmp.p12")),
                    dir.join(format!("{name}-trust.tmp.p12")),
                );
                p12(&ks_p12, true);
                p12(&ts_p12, false);
                for (from, to) in [(&ks_p12, &ks), (&ts_p12, &ts)] {
                    let out = std::process::Command::new("keytool")
                        .args([
                            "-importkeystore",
                            "-noprompt",
                            "-srcstoretype",
                            "PKCS12",
                            "-deststoretype",
                            "JKS",
                        ])
                        .args(["-srcstorepass", PASSWORD, "-deststorepass", PASSWORD])
                        .arg("-srckeystore")
                        .arg(from)
                        .arg("-destkeystore")
                        .arg(to)
                        .output()
                        .expect("keytool (Java 17) runs");
                    assert!(
                        out.status.success(),
                        "keytool: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        _ => unreachable!(),
    }
    (ks, ts)
}

/// A port free now (secureClientPort=0 means "none", as in ZooKeeper).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The secure port a server logged ("... and TLS on ADDR").
pub fn secure_port(s: &Server) -> u16 {
    // The line is kept just after the harness sees it: wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !s.logged("and TLS on ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = s.log_text();
    let rest = log
        .split("and TLS on ")
        .nth(1)
        .expect("a secure port in the log");
    rest.split(' ')
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A ZooKeeper session over TLS.
pub struct TlsRaw {
    pub s: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    pub session: i64,
}

pub fn client_config(ca: &Cert, client: Option<&Cert>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der.clone())).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match client {
        Some(c) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(c.der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone())),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

impl TlsRaw {
    /// Handshake (TLS, then ZooKeeper's); Err says which failed.
    pub fn connect(port: u16, cfg: Arc<rustls::ClientConfig>) -> Result<TlsRaw, String> {
        let sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(cfg, name).unwrap();
        let mut s = rustls::StreamOwned::new(conn, sock);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| format!("TLS: {e}"))?;
        }
        s.write_all(&frame(&connect_request(0, &[], 4000)))
            .map_err(|e| format!("write: {e}"))?;
        let mut t = TlsRaw { s, session: 0 };
        // With TLS 1.3 a refused client certificate shows on the first read.
        let resp = t.read_frame().map_err(|e| format!("session: {e}"))?;
        t.session = i64::from_be_bytes(resp[8..16].try_into().unwrap());
        Ok(t)
    }

    fn read_frame(&mut self) -> Result<Vec<u8>, String> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).map_err(|e| e.to_string())?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).map_err(|e| e.to_string())?;
        Ok(body)
    }

    /// (err, body) of one request's reply.
    pub fn call(&mut self, xid: i32, op: i32, body: &[u8]) -> (i32, Vec<u8>) {
        let mut b = xid.to_be_bytes().to_vec();
        b.extend_from_slice(&op.to_be_bytes());
        b.extend_from_slice(body);
        self.s.write_all(&frame(&b)).unwrap();
        let f = self.read_frame().unwrap();
        assert_eq!(i32::from_be_bytes(f[0..4].try_into().unwrap()), xid);
        (
            i32::from_be_bytes(f[12..16].try_into().unwrap()),
            f[16..].to_vec(),
        )
    }

    /// whoAmI: (scheme, id) pairs.
    pub fn who_am_i(&mut self, xid: i32) -> Vec<(String, String)> {
        let (err, body) = self.call(xid, 107, &[]);
        assert_eq!(err, 0);
        let mut out = Vec::new();
        let n = i32::from_be_bytes(body[0..4].try_into().unwrap());
        let mut at = 4;
        let mut s = || {
            let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap()) as usize;
            let v = String::from_utf8_lossy(&body[at + 4..at + 4 + len]).into_owned();
            at += 4 + len;
            v
        };
        for _ in 0..n {
            let scheme = s();
            let id = s();
            out.push((scheme, id));
        }
        out
    }
}

/// A four-letter word over TLS: the server's whole answer.
fn tls_four(port: u16, cfg: Arc<rustls::ClientConfig>, word: &str) -> String {
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let conn =
        rustls::ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    s.write_all(word.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get_data(path: &str) -> Vec<u8> {
    let mut b = jute_string(path);
    b.push(0);
    b
}

fn tls_server(dir: &Path, ks: &Path, ts: &Path, extra: &str) -> Server {
    let _ = dir;
    Server::start(&format!(
        "secureClientPort={}\nssl.keyStore.location={}\nssl.keyStore.password={PASSWORD}\n\
         ssl.trustStore.location={}\nssl.trustStore.password={PASSWORD}\n{extra}",
        free_port(),
        ks.display(),
        ts.display()
    ))
}

/// Every key store type ZooKeeper reads; a verified client is `x509:<its DN>`, which
/// `x509:` ACLs and whoAmI see; another client of the same CA is not it.
#[test]
fn tls_port_serves_each_store_type_with_x509_identities() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Paddock Test CA");
    let server = ca.leaf("server", &["localhost", "127.0.0.1"], false);
    let alice = ca.leaf("alice", &["alice.example"], false);
    let bob = ca.leaf("bob", &["bob.example"], false);
    for kind in ["pem", "p12", "jks"] {
        let (ks, ts) = write_stores(dir.path(), kind, kind, &server, &ca.cert);
        let s = tls_server(dir.path(), &ks, &ts, "");
        let port = secure_port(&s);
        let mut a = TlsRaw::connect(port, client_config(&ca.cert, Some(&alice)))
            .unwrap_or_else(|e| panic!("{kind}: {e}\n{}", s.log_text()));
        assert!(a.session != 0);
        let ids = a.who_am_i(1);
        assert!(
            ids.contains(&("x509".into(), "CN=alice,O=Paddock".into())),
            "{kind}: {ids:?}"
        );
        let (err, _) = a.call(
            2,
            1,
            &create_body_acl("/alice", b"hers", "x509", "CN=alice,O=Paddock", 0),
        );
        assert_eq!(err, 0, "{kind}: create");
        let (err, data) = a.call(3, 4, &get_data("/alice"));
        assert_eq!(err, 0);
        assert_eq!(&data[4..8], b"hers");
        let mut b = TlsRaw::connect(port, client_config(&ca.cert, Some(&bob))).unwrap();
        let (err, _) = b.call(1, 4, &get_data("/alice"));
        assert_eq!(err, -102, "{kind}: bob is not alice (NoAuth)");
        // The plain port still serves plain clients, with no x509 id.
        let mut p = crate::harness::Raw::connect(&s);
        p.send(1, 4, &get_data("/alice"));
        assert_eq!(p.reply().unwrap().2, -102);
        assert!(
            !s.log_text().contains(PASSWORD),
            "a password was logged: {}",
            s.log_text()
        );
        // Four-letter words answer over TLS too; conf shows the TLS settings, no secret.
        assert_eq!(
            tls_four(port, client_config(&ca.cert, Some(&alice)), "ruok"),
            "imok"
        );
        let conf = tls_four(port, client_config(&ca.cert, Some(&alice)), "conf");
        assert!(conf.contains(&format!("secureClientPort={port}")), "{conf}");
        assert!(conf.contains("ssl.keyStore.location="), "{conf}");
        assert!(
            !conf.contains(PASSWORD) && !conf.contains("password"),
            "{conf}"
        );
    }
}

/// A handshake that cannot succeed is refused and logged; the server, its other sessions
/// and its next TLS clients are unaffected.
#[test]
fn tls_refusals_leave_the_server_and_other_sessions_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Paddock Test CA");
    let other_ca = Ca::new("Someone Else's CA");
    let server = ca.leaf("server", &["localhost", "127.0.0.1"], false);
    let good = ca.leaf("good", &["good.example"], false);
    let (ks, ts) = write_stores(dir.path(), "srv", "pem", &server, &ca.cert);
    let s = tls_server(dir.path(), &ks, &ts, "");
    let port = secure_port(&s);
    let mut keep = TlsRaw::connect(port, client_config(&ca.cert, Some(&good))).unwrap();
    let mut plain = crate::harness::Raw::connect(&s);

    let refused = [
        (
            "no client certificate (clientAuth=need)",
            client_config(&ca.cert, None),
        ),
        (
            "a certificate from an untrusted CA",
            client_config(
                &ca.cert,
                Some(&other_ca.leaf("mallory", &["m.example"], false)),
            ),
        ),
        (
            "an expired certificate",
            client_config(&ca.cert, Some(&ca.leaf("old", &["old.example"], true))),
        ),
    ];
    for (what, cfg) in refused {
        for _ in 0..3 {
            let r = TlsRaw::connect(port, cfg.clone());
            assert!(r.is_err(), "{what}: accepted");
        }
    }
    // A client that does not trust the server's CA gives up itself.
    assert!(TlsRaw::connect(port, client_config(&other_ca.cert, Some(&good))).is_err());

    // Plaintext on the TLS port: closed without an answer.
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(&frame(&connect_request(0, &[], 4000)))
        .unwrap();
    let mut buf = [0u8; 64];
    // A TLS alert (0x15) or the close; a timeout would mean the server just waits.
    let n = match sock.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
        Err(e) => panic!("plaintext on the TLS port: not refused: {e}"),
    };
    assert!(
        n == 0 || buf[0] == 0x15,
        "plaintext got an answer: {:?}",
        &buf[..n]
    );

    // A TLS hello on the plain port (no unification): closed, and the log says why.
    let hello = {
        let conn = rustls::ClientConnection::new(
            client_config(&ca.cert, Some(&good)),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut c = conn;
        let mut out = Vec::new();
        c.write_tls(&mut out).unwrap();
        out
    };
    let mut sock = TcpStream::connect(s.addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.write_all(&hello).unwrap();
    match sock.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        r => panic!("a TLS hello on the plain port: not closed: {r:?}"),
    }
    // A truncated handshake (half a hello, then gone), and one that stalls.
    for cut in [5, hello.len() / 2] {
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.write_all(&hello[..cut]).unwrap();
        drop(sock);
    }
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stalled.write_all(&hello[..hello.len() / 2]).unwrap();

    // Everyone else carries on.
    let (err, _) = keep.call(10, 1, &crate::harness::create_body("/still", b"", 0));
    assert_eq!(err, 0);
    plain.send(11, 3, &{
        let mut b = jute_string("/still");
        b.push(0);
        b
    });
    assert_eq!(plain.reply().unwrap().2, 0);
    let mut again = TlsRaw::connect(port, client_config(&ca.cert, Some(&good))).unwrap();
    assert_eq!(again.call(1, 4, &get_data("/still")).0, 0);
    let log = s.log_text();
    for why in [
        "TLS handshake failed",
        "a TLS hello on the plain client port",
    ] {
        assert!(log.contains(why), "no {why:?} in the log:\n{log}");
    }
    assert!(!log.contains(PASSWORD), "a password was logged:\n{log}");
}

/// `client.portUnification=true`: the plain port takes TLS too, told by the first byte;
/// with `ssl.clientAuth=want` a client without a certificate is served, with no x509 id.
#[test]
fn unified_port_serves_plain_and_tls_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Paddock Test CA");
    let server = ca.leaf("server", &["localhost", "127.0.0.1"], false);
    let carol = ca.leaf("carol", &["carol.example"], false);
    let (ks, ts) = write_stores(dir.path(), "srv", "p12", &server, &ca.cert);
    let s = Server::start(&format!(
        "4lw.commands.whitelist=ruok\nclient.portUnification=true\nssl.clientAuth=want\nssl.keyStore.location={}\n\
         ssl.keyStore.password={PASSWORD}\nssl.trustStore.location={}\nssl.trustStore.password={PASSWORD}\n",
        ks.display(),
        ts.display()
    ));
    // A first byte of 0x16 that is no TLS this server speaks (an SSLv3/TLS 1.0 hello as
    // scanners send, a bare record header): refused, and the port serves on.
    for junk in [
        &b"\x16\x03\x01\x00\x04\x01\x00\x00\x00"[..],
        &b"\x16\x03\x00\x00\x05\x01\x00\x00\x01\x00"[..],
        &b"\x16\xff\xff\xff\xff"[..],
    ] {
        let mut sock = TcpStream::connect(s.addr()).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock.write_all(junk).unwrap();
        let mut buf = [0u8; 64];
        // Closed (perhaps after an alert), not left hanging.
        let mut closed = false;
        for _ in 0..4 {
            match sock.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    closed = true;
                    break;
                }
                Err(e) => panic!("{junk:?}: not closed: {e}"),
            }
        }
        assert!(closed, "{junk:?}: not closed");
    }
    let mut anon = TlsRaw::connect(s.port, client_config(&ca.cert, None)).unwrap();
    assert!(!anon.who_am_i(1).iter().any(|(scheme, _)| scheme == "x509"));
    let mut c = TlsRaw::connect(s.port, client_config(&ca.cert, Some(&carol))).unwrap();
    assert!(c
        .who_am_i(1)
        .contains(&("x509".into(), "CN=carol,O=Paddock".into())));
    let mut p = crate::harness::Raw::connect(&s);
    p.send(1, 11, &[]); // ping
    assert_eq!(p.reply().unwrap().0, -2);
    assert!(crate::harness::four(&s, "ruok").contains("imok"));
    // 4lw.commands.whitelist holds over TLS as over plain TCP.
    assert_eq!(
        tls_four(s.port, client_config(&ca.cert, None), "ruok"),
        "imok"
    );
    let refused = tls_four(s.port, client_config(&ca.cert, None), "conf");
    assert!(refused.contains("not in the whitelist"), "{refused}");
    assert_eq!(refused, crate::harness::four(&s, "conf"));
}

/// A key store replaced while serving is used for the connections after it; a broken
/// one is logged and the previous stays in use.
#[test]
fn key_store_rotation_takes_effect_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Paddock Test CA");
    let first = ca.leaf("first", &["localhost"], false);
    let (ks, ts) = write_stores(dir.path(), "srv", "pem", &first, &ca.cert);
    let s = Server::start(&format!(
        "secureClientPort={}\nssl.clientAuth=none\nssl.keyStore.location={}\nssl.trustStore.location={}\n",
        free_port(),
        ks.display(),
        ts.display()
    ));
    let port = secure_port(&s);
    let served_cn = || -> String {
        let t = TlsRaw::connect(port, client_config(&ca.cert, None)).unwrap();
        let leaf = t.s.conn.peer_certificates().unwrap()[0].to_vec();
        paddock::tls::subject_dn(&leaf).unwrap()
    };
    assert_eq!(served_cn(), "CN=first,O=Paddock");
    let mut old = TlsRaw::connect(port, client_config(&ca.cert, None)).unwrap();
    let second = ca.leaf("second", &["localhost"], false);
    let tmp = dir.path().join("srv.pem.new");
    std::fs::write(&tmp, second.pem()).unwrap();
    std::fs::rename(&tmp, &ks).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cn() != "CN=second,O=Paddock" {
        assert!(Instant::now() < deadline, "not reloaded:\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Broken: logged, and the second certificate stays.
    std::fs::write(&ks, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.logged("cannot be used") {
        assert!(
            Instant::now() < deadline,
            "no error logged:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(served_cn(), "CN=second,O=Paddock");
    assert_eq!(
        old.call(-2, 11, &[]).0,
        0,
        "the connection from before still works"
    );
}

/// A key store that cannot be read stops start-up naming the file, never the password.
#[test]
fn a_bad_key_store_stops_start_up_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Paddock Test CA");
    let server = ca.leaf("server", &["localhost"], false);
    let (ks, _) = write_stores(dir.path(), "srv", "jks", &server, &ca.cert);
    let data = dir.path().join("data");
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=200\ndataDir={}\nclientPort=0\nclientPortAddress=127.0.0.1\npaddock.pinCores=false\n\
             secureClientPort={}\nssl.clientAuth=none\nssl.keyStore.location={}\nssl.keyStore.password=wrong-{PASSWORD}\n",
            data.display(),
            free_port(),
            ks.display()
        ),
    )
    .unwrap();
    let (code, err) = start_failing(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&ks.display().to_string()), "{err}");
    assert!(err.contains("password is incorrect"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

/// The listening TCP sockets a process holds (its fds' socket inodes in state LISTEN).
fn listening_sockets(pid: u32) -> usize {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 9 && f[3] == "0A" && inodes.contains(f[9])
        })
        .count()
}

/// As ZooKeeper: with secureClientPort and no clientPort there is no plain port at all.
#[test]
fn secure_port_alone_opens_no_plain_port() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Paddock Test CA");
    let server = ca.leaf("server", &["localhost", "127.0.0.1"], false);
    let (ks, _) = write_stores(dir.path(), "srv", "pem", &server, &ca.cert);
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=200\ndataDir={}\nsecureClientPort={}\nsecureClientPortAddress=127.0.0.1\n\
             ssl.clientAuth=none\nssl.keyStore.location={}\npaddock.pinCores=false\npreAllocSize=1024\n",
            dir.path().join("data").display(),
            free_port(),
            ks.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("start-foreground")
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("serving TLS only on ").nth(1) {
                let port: u16 = rest
                    .split(' ')
                    .next()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let _ = tx.send(port);
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(20));
    let result = std::panic::catch_unwind(|| {
        let port = port.expect("serving TLS only");
        let mut t = TlsRaw::connect(port, client_config(&ca.cert, None)).unwrap();
        assert_eq!(t.call(-2, 11, &[]).0, 0);
        assert_eq!(
            listening_sockets(child.id()),
            1,
            "only the secure port listens"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    result.unwrap();
}
