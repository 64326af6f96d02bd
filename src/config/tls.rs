//! TLS settings as ZooKeeper's X509Util reads them: `ssl.*` for the client port,
//! `ssl.quorum.*` for the quorum and election ports (each also with a `zookeeper.` prefix,
//! as ZooKeeper turns unknown zoo.cfg keys into `zookeeper.*` system properties).
//!
//! Holds: no password reaches a message, a log line or `Debug` output (`Secret`).

use super::{bad, boolean, ConfigError, RawConfig};
use std::path::PathBuf;

pub use crate::types::Secret;

/// Is this key's value a secret (not to be logged or shown)?
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("superdigest")
}

/// The value as it may be shown for `key`.
pub fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) {
        "****"
    } else {
        value
    }
}

/// The file types ZooKeeper's KeyStoreFileType names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Pem,
    Pkcs12,
    Jks,
}

impl StoreType {
    fn parse(key: &str, v: &str) -> Result<StoreType, ConfigError> {
        match v.to_ascii_uppercase().as_str() {
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "JKS" => Ok(StoreType::Jks),
            "BCFKS" => Err(bad(key, v, "not supported (BouncyCastle FIPS keystores)")),
            _ => Err(bad(key, v, "expected PEM, PKCS12 or JKS")),
        }
    }

    /// From the file's extension, as ZooKeeper's KeyStoreFileType.fromFilename.
    pub fn from_file_name(path: &std::path::Path) -> Option<StoreType> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "pem" => Some(StoreType::Pem),
            "p12" | "pfx" => Some(StoreType::Pkcs12),
            "jks" => Some(StoreType::Jks),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub location: PathBuf,
    pub password: Secret,
    /// `None`: from the file name, else from the content.
    pub kind: Option<StoreType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Want,
    Need,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tls12,
    Tls13,
}

impl Protocol {
    fn parse(key: &str, v: &str) -> Result<Option<Protocol>, ConfigError> {
        match v.trim() {
            "TLSv1.2" => Ok(Some(Protocol::Tls12)),
            "TLSv1.3" => Ok(Some(Protocol::Tls13)),
            // What Java still names and rustls never speaks.
            "TLSv1" | "TLSv1.1" | "SSLv3" => {
                log::warn!("{key}: {v} is not offered (insecure); TLSv1.2 and TLSv1.3 are");
                Ok(None)
            }
            "TLS" => Ok(Some(Protocol::Tls13)),
            _ => Err(bad(key, v, "expected TLSv1.2 or TLSv1.3")),
        }
    }
}

/// One side's TLS settings (client port or quorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsKeys {
    /// The prefix read, for messages: `ssl.` or `ssl.quorum.`.
    pub prefix: &'static str,
    pub key_store: Option<Store>,
    pub trust_store: Option<Store>,
    pub client_auth: ClientAuth,
    /// Protocol versions offered.
    pub protocols: Vec<Protocol>,
    /// Java (IANA) cipher suite names; empty: the provider's defaults.
    pub cipher_suites: Vec<String>,
    pub hostname_verification: bool,
    pub handshake_detection_timeout_ms: u64,
}

impl TlsKeys {
    /// Reads the keys under `prefix` (`ssl.` or `ssl.quorum.`); keys of the other prefix
    /// are not this one's.
    pub fn from_raw(raw: &RawConfig, prefix: &'static str) -> Result<TlsKeys, ConfigError> {
        let mut t = TlsKeys {
            prefix,
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            protocols: vec![Protocol::Tls12],
            cipher_suites: Vec::new(),
            hostname_verification: true,
            handshake_detection_timeout_ms: 5000,
        };
        let (mut ks, mut ks_pw, mut ks_type) = (None, Secret::default(), None);
        let (mut ts, mut ts_pw, mut ts_type) = (None, Secret::default(), None);
        let mut protocol = None;
        let mut enabled = None;
        for (k, v) in &raw.entries {
            let key = k.strip_prefix("zookeeper.").unwrap_or(k);
            let Some(name) = key.strip_prefix(prefix) else {
                continue;
            };
            if prefix == "ssl." && name.starts_with("quorum.") {
                continue;
            }
            let v = v.trim();
            match name {
                "keyStore.location" => ks = Some(PathBuf::from(v)),
                "keyStore.password" => ks_pw = Secret::new(v),
                "keyStore.type" => ks_type = Some(StoreType::parse(k, v)?),
                "trustStore.location" => ts = Some(PathBuf::from(v)),
                "trustStore.password" => ts_pw = Secret::new(v),
                "trustStore.type" => ts_type = Some(StoreType::parse(k, v)?),
                "clientAuth" => {
                    t.client_auth = match v.to_ascii_lowercase().as_str() {
                        "none" => ClientAuth::None,
                        "want" => ClientAuth::Want,
                        "need" | "" => ClientAuth::Need,
                        _ => return Err(bad(k, v, "expected none, want or need")),
                    }
                }
                "protocol" => protocol = Protocol::parse(k, v)?,
                "enabledProtocols" => {
                    let mut ps = Vec::new();
                    for p in v.split(',').filter(|p| !p.trim().is_empty()) {
                        if let Some(p) = Protocol::parse(k, p)? {
                            if !ps.contains(&p) {
                                ps.push(p);
                            }
                        }
                    }
                    if ps.is_empty() {
                        return Err(bad(k, v, "offers neither TLSv1.2 nor TLSv1.3"));
                    }
                    enabled = Some(ps);
                }
                "ciphersuites" => {
                    t.cipher_suites = v
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                }
                "hostnameVerification" => t.hostname_verification = boolean(k, v)?,
                "handshakeDetectionTimeoutMillis" => {
                    t.handshake_detection_timeout_ms = super::num(k, v)?;
                    if t.handshake_detection_timeout_ms == 0 {
                        return Err(bad(k, v, "must be > 0"));
                    }
                }
                "crl" | "ocsp" => {
                    if boolean(k, v)? {
                        return Err(bad(
                            k,
                            v,
                            "not supported yet (certificate revocation checks)",
                        ));
                    }
                }
                "context.supplier.class" | "sslProvider" | "authProvider" => {
                    // Java classes and providers: nothing a Rust server can load.
                    log::warn!("{k}={v}: ignored (a Java class or provider)");
                }
                "quorum" => {}
                _ => {
                    return Err(bad(k, shown(k, v), "unknown TLS setting"));
                }
            }
        }
        // As ZooKeeper 3.8's SSLContextAndOptions: enabledProtocols, else ssl.protocol
        // alone, which is TLSv1.2 unless set.
        t.protocols = match (enabled, protocol) {
            (Some(ps), _) => ps,
            (None, Some(p)) => vec![p],
            (None, None) => vec![Protocol::Tls12],
        };
        t.key_store = ks.map(|location| Store {
            location,
            password: ks_pw,
            kind: ks_type,
        });
        t.trust_store = ts.map(|location| Store {
            location,
            password: ts_pw,
            kind: ts_type,
        });
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str, prefix: &'static str) -> Result<TlsKeys, ConfigError> {
        TlsKeys::from_raw(&RawConfig::parse(text).unwrap(), prefix)
    }

    #[test]
    fn reads_zookeepers_keys_with_and_without_prefix() {
        let t = keys(
            "ssl.keyStore.location=/k.jks\nzookeeper.ssl.keyStore.password=pw1\n\
             ssl.trustStore.location=/t.p12\nssl.trustStore.type=PKCS12\n\
             ssl.clientAuth=want\nssl.enabledProtocols=TLSv1.2\n\
             ssl.quorum.keyStore.location=/q.pem\n",
            "ssl.",
        )
        .unwrap();
        let ks = t.key_store.as_ref().unwrap();
        assert_eq!(ks.location, PathBuf::from("/k.jks"));
        assert_eq!(ks.password.expose(), "pw1");
        assert_eq!(
            t.trust_store.as_ref().unwrap().kind,
            Some(StoreType::Pkcs12)
        );
        assert_eq!(t.client_auth, ClientAuth::Want);
        assert_eq!(t.protocols, vec![Protocol::Tls12]);
        let q = keys("ssl.quorum.keyStore.location=/q.pem\n", "ssl.quorum.").unwrap();
        assert_eq!(q.key_store.unwrap().location, PathBuf::from("/q.pem"));
        assert_eq!(q.client_auth, ClientAuth::Need);
    }

    #[test]
    fn a_password_never_appears_in_an_error_or_debug_output() {
        let t = keys("ssl.keyStore.password=hunter2\n", "ssl.").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
        let e = keys("ssl.keyStore.passwordd=hunter2\n", "ssl.").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("unknown TLS setting"), "{e}");
        let e = keys("ssl.clientAuth=sometimes\n", "ssl.").unwrap_err();
        assert!(e.to_string().contains("none, want or need"), "{e}");
        assert!(keys("ssl.enabledProtocols=TLSv1.1\n", "ssl.").is_err());
        assert!(keys("ssl.crl=true\n", "ssl.").is_err());
    }
}
