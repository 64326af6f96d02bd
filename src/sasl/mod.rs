//! SASL on the client port (opcode 102), as ZooKeeper's server runs it: the mechanism
//! its JAAS `Server` section implies (DIGEST-MD5 for a DigestLoginModule), the `sasl` id
//! of the authenticated user (mapped as ZooKeeper's SaslServerCallbackHandler maps
//! Kerberos names), and `super` for `zookeeper.superUser`.

pub mod digest_md5;

use crate::types::Secret;
use std::collections::BTreeMap;

/// The server's SASL settings: the JAAS section's users and ZooKeeper's keys around them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaslServerConfig {
    /// `user_NAME="password"` options of the section's DigestLoginModule.
    pub users: BTreeMap<String, Secret>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of user `super`.
    pub super_password: Option<Secret>,
    /// `zookeeper.superUser` (and `zookeeper.superUser.*`): sasl ids that are super.
    pub super_users: Vec<String>,
    /// `zookeeper.kerberos.removeHostFromPrincipal` / `removeRealmFromPrincipal`.
    pub remove_host: bool,
    pub remove_realm: bool,
}

impl SaslServerConfig {
    /// A DIGEST-MD5 user's password (the super password for `super` when set).
    pub fn password(&self, user: &str) -> Option<String> {
        if user == "super" {
            if let Some(p) = &self.super_password {
                return Some(p.expose().to_owned());
            }
        }
        self.users.get(user).map(|s| s.expose().to_owned())
    }

    /// The `sasl` id of an authenticated user, as ZooKeeper's AuthorizeCallback builds
    /// it: `name[/host][@realm]`, host and realm dropped when the settings say so.
    pub fn authorized_id(&self, authcid: &str) -> String {
        let (rest, realm) = match authcid.split_once('@') {
            Some((r, realm)) => (r, Some(realm)),
            None => (authcid, None),
        };
        let (name, host) = match rest.split_once('/') {
            Some((n, h)) => (n, Some(h)),
            None => (rest, None),
        };
        let mut id = name.to_owned();
        if let Some(h) = host.filter(|_| !self.remove_host) {
            id.push('/');
            id.push_str(h);
        }
        if let Some(r) = realm.filter(|_| !self.remove_realm) {
            id.push('@');
            id.push_str(r);
        }
        id
    }

    pub fn is_super(&self, id: &str) -> bool {
        self.super_users.iter().any(|s| s == id)
    }
}

/// A fresh nonce for a DIGEST-MD5 challenge: 24 bytes from the system's secure random
/// source, base64; `None` if it fails (then no challenge is made: a predictable nonce
/// would let a captured response be replayed).
pub fn nonce() -> Option<String> {
    use base64::Engine;
    #[allow(deprecated)] // the same provider the TLS side uses
    let provider = rustls::crypto::ring::default_provider();
    let mut b = [0u8; 24];
    provider.secure_random.fill(&mut b).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_as_zookeepers_callback_handler_maps_them() {
        let mut c = SaslServerConfig::default();
        assert_eq!(c.authorized_id("bob"), "bob");
        assert_eq!(c.authorized_id("bob@EXAMPLE.COM"), "bob@EXAMPLE.COM");
        assert_eq!(c.authorized_id("zk/h1@EXAMPLE.COM"), "zk/h1@EXAMPLE.COM");
        c.remove_host = true;
        assert_eq!(c.authorized_id("zk/h1@EXAMPLE.COM"), "zk@EXAMPLE.COM");
        c.remove_realm = true;
        assert_eq!(c.authorized_id("zk/h1@EXAMPLE.COM"), "zk");
        c.users.insert("super".into(), Secret::new("a"));
        assert_eq!(c.password("super").as_deref(), Some("a"));
        c.super_password = Some(Secret::new("b"));
        assert_eq!(c.password("super").as_deref(), Some("b"));
        assert_eq!(c.password("nobody"), None);
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
