//! TLS for the client port (and, with `ssl.quorum.*`, between servers): key and trust
//! stores in the formats ZooKeeper reads (PEM, PKCS12, JKS), rustls configurations built
//! from them, the x509 identity of a verified client, and reloading when the files change.
//!
//! Holds: a store that cannot be read stops start-up with its file named (never its
//! password); a store that changes while serving is read again and, if it is good, used for
//! the connections accepted after it; if it is bad, the one in use stays and the error is
//! logged once per change.

mod dn;
pub mod jks;

pub use dn::subject_dn;

/// The first byte of a TLS handshake record (ContentType handshake): how a unified port
/// tells TLS from ZooKeeper's protocol, whose first byte is a length's (0) or a
/// four-letter word's.
pub const TLS_HANDSHAKE: u8 = 0x16;

use crate::config::tls::{ClientAuth, Protocol, Store, StoreType, TlsKeys};
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {why}", .path.display())]
    Store { path: PathBuf, why: String },
    #[error("{0}")]
    Setup(String),
}

fn store_err(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::Store {
        path: path.to_owned(),
        why: why.to_string(),
    }
}

/// What a key store holds: a certificate chain (leaf first) and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn kind_of(store: &Store, data: &[u8]) -> StoreType {
    store
        .kind
        .or_else(|| StoreType::from_file_name(&store.location))
        .unwrap_or(if jks::is_jks(data) {
            StoreType::Jks
        } else if data.trim_ascii_start().starts_with(b"-----BEGIN") {
            StoreType::Pem
        } else {
            StoreType::Pkcs12
        })
}

/// Reads a key store: the first private key and its chain.
pub fn load_identity(store: &Store) -> Result<Identity, TlsError> {
    let path = &store.location;
    let data = std::fs::read(path).map_err(|e| store_err(path, e))?;
    let password = store.password.expose();
    match kind_of(store, &data) {
        StoreType::Pem => {
            let mut chain = Vec::new();
            let mut key = None;
            for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(&data) {
                let (kind, der) = item.map_err(|e| store_err(path, format!("bad PEM: {e}")))?;
                match kind {
                    SectionKind::Certificate => chain.push(CertificateDer::from(der)),
                    SectionKind::PrivateKey
                    | SectionKind::RsaPrivateKey
                    | SectionKind::EcPrivateKey
                        if key.is_none() =>
                    {
                        key = PrivateKeyDer::from_pem(kind, der);
                    }
                    _ => {}
                }
            }
            let key = key.ok_or_else(|| {
                let encrypted = String::from_utf8_lossy(&data).contains("ENCRYPTED PRIVATE KEY");
                store_err(
                    path,
                    if encrypted {
                        "an encrypted PEM private key is not supported yet; use PKCS12 or JKS, or an unencrypted key"
                    } else {
                        "no private key in the PEM file"
                    },
                )
            })?;
            if chain.is_empty() {
                return Err(store_err(path, "no certificate in the PEM file"));
            }
            Ok(Identity { chain, key })
        }
        StoreType::Pkcs12 => {
            let ks = p12_keystore::KeyStore::from_pkcs12(
                &data,
                password,
                p12_keystore::Pkcs12ImportPolicy::Relaxed,
            )
            .map_err(|e| store_err(path, format!("cannot read as PKCS12: {e}")))?;
            let (_, chain) = ks
                .private_key_chain()
                .ok_or_else(|| store_err(path, "no private key entry in the PKCS12 store"))?;
            if chain.certs().is_empty() {
                return Err(store_err(path, "the private key has no certificate"));
            }
            Ok(Identity {
                chain: chain
                    .certs()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect(),
                key: PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()).into(),
            })
        }
        StoreType::Jks => {
            let entries = jks::read(&data, password).map_err(|e| store_err(path, e))?;
            entries
                .into_iter()
                .find_map(|e| match e {
                    jks::Entry::Key { pkcs8, chain, .. } if !chain.is_empty() => Some(Identity {
                        chain: chain.into_iter().map(CertificateDer::from).collect(),
                        key: PrivatePkcs8KeyDer::from(pkcs8).into(),
                    }),
                    _ => None,
                })
                .ok_or_else(|| store_err(path, "no private key entry in the JKS store"))
        }
    }
}

/// Reads a trust store: every certificate in it.
pub fn load_roots(store: &Store) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = &store.location;
    let data = std::fs::read(path).map_err(|e| store_err(path, e))?;
    let certs: Vec<CertificateDer<'static>> = match kind_of(store, &data) {
        StoreType::Pem => CertificateDer::pem_slice_iter(&data)
            .collect::<Result<_, _>>()
            .map_err(|e| store_err(path, format!("bad PEM: {e}")))?,
        StoreType::Pkcs12 => {
            let ks = p12_keystore::KeyStore::from_pkcs12(
                &data,
                store.password.expose(),
                p12_keystore::Pkcs12ImportPolicy::Relaxed,
            )
            .map_err(|e| store_err(path, format!("cannot read as PKCS12: {e}")))?;
            ks.entries()
                .flat_map(|(_, e)| match e {
                    p12_keystore::KeyStoreEntry::Certificate(c) => vec![c.as_der().to_vec()],
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(k) => {
                        k.certs().iter().map(|c| c.as_der().to_vec()).collect()
                    }
                    _ => vec![],
                })
                .map(CertificateDer::from)
                .collect()
        }
        StoreType::Jks => jks::read(&data, store.password.expose())
            .map_err(|e| store_err(path, e))?
            .into_iter()
            .flat_map(|e| match e {
                jks::Entry::Trusted { cert, .. } => vec![cert],
                jks::Entry::Key { chain, .. } => chain,
            })
            .map(CertificateDer::from)
            .collect(),
    };
    if certs.is_empty() {
        return Err(store_err(path, "no certificate in the trust store"));
    }
    Ok(certs)
}

/// The crypto provider with the configured cipher suites (Java's names are IANA's).
pub fn provider(keys: &TlsKeys) -> Result<Arc<rustls::crypto::CryptoProvider>, TlsError> {
    #[allow(deprecated)] // ring offers no post-quantum key exchange; Java 17 has none either
    let mut p = rustls::crypto::ring::default_provider();
    if !keys.cipher_suites.is_empty() {
        let all = p.cipher_suites.clone();
        let mut chosen = Vec::new();
        for name in &keys.cipher_suites {
            // Java names TLS 1.3 suites as IANA does (TLS_AES_128_GCM_SHA256); rustls
            // spells them TLS13_...
            let iana = |s: &rustls::SupportedCipherSuite| {
                let n = format!("{:?}", s.suite());
                match n.strip_prefix("TLS13_") {
                    Some(rest) => format!("TLS_{rest}"),
                    None => n,
                }
            };
            match all.iter().find(|s| iana(s) == *name) {
                Some(s) => chosen.push(*s),
                None => log::warn!(
                    "{}ciphersuites: {name} is not offered (unknown to rustls)",
                    keys.prefix
                ),
            }
        }
        if chosen.is_empty() {
            return Err(TlsError::Setup(format!(
                "{}ciphersuites names no cipher suite this server has",
                keys.prefix
            )));
        }
        p.cipher_suites = chosen;
    }
    Ok(Arc::new(p))
}

pub fn versions(keys: &TlsKeys) -> Vec<&'static rustls::SupportedProtocolVersion> {
    keys.protocols
        .iter()
        .map(|p| match p {
            Protocol::Tls12 => &rustls::version::TLS12,
            Protocol::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

/// The server side of `keys`: its certificate, and client certificates checked against
/// the trust store as `clientAuth` says.
pub fn server_config(keys: &TlsKeys) -> Result<Arc<ServerConfig>, TlsError> {
    let ks = keys.key_store.as_ref().ok_or_else(|| {
        TlsError::Setup(format!(
            "{}keyStore.location is required for TLS",
            keys.prefix
        ))
    })?;
    let id = load_identity(ks)?;
    let provider = provider(keys)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(keys))
        .map_err(|e| TlsError::Setup(format!("{}protocol: {e}", keys.prefix)))?;
    let verifier = match keys.client_auth {
        ClientAuth::None => WebPkiClientVerifier::no_client_auth(),
        auth => {
            let ts = keys.trust_store.as_ref().ok_or_else(|| {
                TlsError::Setup(format!(
                    "{}trustStore.location is required to verify client certificates ({}clientAuth is {})",
                    keys.prefix,
                    keys.prefix,
                    if auth == ClientAuth::Want { "want" } else { "need" }
                ))
            })?;
            let mut roots = RootCertStore::empty();
            for c in load_roots(ts)? {
                roots.add(c).map_err(|e| {
                    store_err(&ts.location, format!("a certificate is unusable: {e}"))
                })?;
            }
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let b = if auth == ClientAuth::Want {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| TlsError::Setup(format!("{}trustStore: {e}", keys.prefix)))?
        }
    };
    let cfg = builder
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain, id.key)
        .map_err(|e| {
            store_err(
                &ks.location,
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    Ok(Arc::new(cfg))
}

/// The client port's TLS configuration, read again when its stores change.
pub struct Reloading {
    keys: TlsKeys,
    current: Mutex<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
}

pub fn stamps(keys: &TlsKeys) -> Vec<Option<SystemTime>> {
    [&keys.key_store, &keys.trust_store]
        .into_iter()
        .flatten()
        .map(|s| {
            std::fs::metadata(&s.location)
                .and_then(|m| m.modified())
                .ok()
        })
        .collect()
}

impl Reloading {
    pub fn new(keys: TlsKeys) -> Result<Arc<Reloading>, TlsError> {
        let cfg = server_config(&keys)?;
        let st = stamps(&keys);
        Ok(Arc::new(Reloading {
            keys,
            current: Mutex::new((cfg, st)),
        }))
    }

    /// The configuration for a connection accepted now.
    pub fn get(&self) -> Arc<ServerConfig> {
        self.current.lock().unwrap().0.clone()
    }

    /// Reads the stores again if a file changed: true when the new ones are in use.
    pub fn check(&self) -> bool {
        let now = stamps(&self.keys);
        {
            let cur = self.current.lock().unwrap();
            if cur.1 == now {
                return false;
            }
        }
        let result = server_config(&self.keys);
        let mut cur = self.current.lock().unwrap();
        cur.1 = now;
        match result {
            Ok(cfg) => {
                cur.0 = cfg;
                log::info!(
                    "{}: key or trust store changed; new TLS connections use it",
                    self.keys.prefix
                );
                true
            }
            Err(e) => {
                log::error!(
                    "{}: key or trust store changed but cannot be used ({e}); keeping the previous one",
                    self.keys.prefix
                );
                false
            }
        }
    }

    /// Checks the files every `every` on a thread of its own.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let me = Arc::downgrade(self);
        let _ = std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                match me.upgrade() {
                    Some(r) => {
                        r.check();
                    }
                    None => return,
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_cipher_suite_names_choose_rustls_suites() {
        let mut keys = crate::config::tls::TlsKeys::from_raw(&Default::default(), "ssl.").unwrap();
        keys.cipher_suites = vec![
            "TLS_AES_128_GCM_SHA256".into(),
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into(),
            "TLS_NO_SUCH_SUITE".into(),
        ];
        let p = provider(&keys).unwrap();
        assert_eq!(p.cipher_suites.len(), 2);
        keys.cipher_suites = vec!["TLS_NO_SUCH_SUITE".into()];
        assert!(provider(&keys).is_err());
    }
}
