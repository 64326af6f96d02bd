//! ACL schemes and checks: world, auth, digest, ip, and the super user.
//!
//! Holds: `check` grants a permission when any entry with that bit matches one of the
//! session's ids (or is world:anyone), or the session holds a `super` id, or the node's
//! list is empty. Not here: which permission an operation needs (txn/prep.rs, net/).

use crate::proto::ops::perm;
use crate::proto::records::{Acl, Id};
use crate::proto::ZkError;
use base64::Engine;
use sha1::{Digest, Sha1};

pub fn world_anyone() -> Id {
    Id::new("world", "anyone")
}

pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perm::ALL,
        id: world_anyone(),
    }]
}

/// How many parts Java's `s.split(sep)` gives, which ZooKeeper's digest provider counts
/// to validate an id: trailing empty parts are dropped ("alice:" is one part, "a:b:"
/// two), and an empty string is one part.
pub fn java_split_len(s: &str, sep: char) -> usize {
    if s.is_empty() {
        return 1;
    }
    let parts: Vec<&str> = s.split(sep).collect();
    parts.len() - parts.iter().rev().take_while(|p| p.is_empty()).count()
}

/// `user:password` → `user:BASE64(SHA1("user:password"))`.
pub fn digest(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{}:{}",
        user,
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Java's `Integer.parseInt` of ASCII text: an optional sign, then digits, in i32.
fn java_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok()
}

/// An address as ZooKeeper 3.8's IPAuthenticationProvider reads one: IPv4 only (IPv6
/// is a TODO there, so an IPv6 ACL is invalid and an IPv6 client matches none), four
/// dot-separated parts, each a Java int in 0..=255 ("010" is 10).
fn java_v4(addr: &str) -> Option<u32> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut v = 0u32;
    for p in parts {
        let b = java_int(p).filter(|b| (0..=255).contains(b))?;
        v = (v << 8) | b as u32;
    }
    Some(v)
}

/// An ip ACL id, `addr` or `addr/bits`: the network and its mask.
fn ip_acl(id: &str) -> Option<(u32, u32)> {
    let (net, bits) = match id.split_once('/') {
        Some((n, b)) => (n, java_int(b).filter(|b| (0..=32).contains(b))? as u32),
        None => (id, 32),
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some((java_v4(net)? & mask, mask))
}

fn ip_matches(acl_id: &str, addr: &str) -> bool {
    match (ip_acl(acl_id), java_v4(addr)) {
        (Some((net, mask)), Some(a)) => a & mask == net,
        _ => false,
    }
}

fn id_matches(entry: &Id, held: &Id) -> bool {
    if entry.scheme != held.scheme {
        return false;
    }
    match entry.scheme.as_str() {
        "ip" => ip_matches(&entry.id, &held.id),
        _ => entry.id == held.id,
    }
}

pub fn is_super(ids: &[Id]) -> bool {
    ids.iter().any(|i| i.scheme == "super")
}

/// Does a session holding `ids` have permission `want` on a node with `acl`?
pub fn check(acl: &[Acl], want: i32, ids: &[Id]) -> Result<(), ZkError> {
    if acl.is_empty() || is_super(ids) {
        return Ok(());
    }
    for a in acl {
        if a.perms & want == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        if ids.iter().any(|held| id_matches(&a.id, held)) {
            return Ok(());
        }
    }
    Err(ZkError::NoAuth)
}

fn valid_ip(id: &str) -> bool {
    ip_acl(id).is_some()
}

/// The authentication schemes registered beyond ZooKeeper's two built-in ones (digest,
/// ip): their ids are valid in ACLs, and `auth` ACLs take them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schemes {
    /// `x509`: registered when a port takes TLS, as ZooKeeper's configureSSLAuth does.
    pub x509: bool,
    /// `sasl`: registered by `authProvider.N=...SASLAuthenticationProvider`.
    pub sasl: bool,
}

impl Schemes {
    fn authenticated(&self, scheme: &str) -> bool {
        match scheme {
            "digest" => true,
            "x509" => self.x509,
            "sasl" => self.sasl,
            _ => false,
        }
    }
}

/// An x509 ACL id: a DN Java's X500Principal would parse (every RDN `type=value`).
fn valid_dn(id: &str) -> bool {
    !id.is_empty()
        && id.split(',').all(|rdn| {
            rdn.split_once('=')
                .is_some_and(|(t, _)| !t.trim().is_empty())
        })
}

/// A sasl ACL id, as ZooKeeper's KerberosName parses one: without '@' any name (even
/// empty); with one, `name[/host]@realm` with no further '/' or '@'.
fn valid_kerberos_name(id: &str) -> bool {
    let Some((principal, realm)) = id.split_once('@') else {
        return true;
    };
    if realm.contains(['@', '/']) {
        return false;
    }
    match principal.split_once('/') {
        Some((_, host)) => !host.contains('/'),
        None => true,
    }
}

/// ZooKeeper's fixupACL: dedupe, expand `auth`, check every id's scheme and form.
pub fn fixup(acl: &[Acl], ids: &[Id], schemes: Schemes) -> Result<Vec<Acl>, ZkError> {
    if acl.is_empty() {
        return Err(ZkError::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::with_capacity(acl.len());
    let push = |a: Acl, out: &mut Vec<Acl>| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        match a.id.scheme.as_str() {
            "world" if a.id.id == "anyone" => push(a.clone(), &mut out),
            "auth" => {
                let mut any = false;
                for held in ids.iter().filter(|i| schemes.authenticated(&i.scheme)) {
                    any = true;
                    push(
                        Acl {
                            perms: a.perms,
                            id: held.clone(),
                        },
                        &mut out,
                    );
                }
                if !any {
                    return Err(ZkError::InvalidAcl);
                }
            }
            "digest" if java_split_len(&a.id.id, ':') == 2 => push(a.clone(), &mut out),
            "ip" if valid_ip(&a.id.id) => push(a.clone(), &mut out),
            "x509" if schemes.x509 && valid_dn(&a.id.id) => push(a.clone(), &mut out),
            "sasl" if schemes.sasl && valid_kerberos_name(&a.id.id) => push(a.clone(), &mut out),
            _ => return Err(ZkError::InvalidAcl),
        }
    }
    Ok(out)
}

/// getACL for a session without ADMIN: digest hashes are redacted to `user:x`.
pub fn redact(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                Acl {
                    perms: a.perms,
                    id: Id::new("digest", &format!("{user}:x")),
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

/// The user name whoAmI reports for an id.
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_owned(),
        _ => id.id.clone(),
    }
}

/// Java's `String.hashCode`: over UTF-16 code units, wrapping.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(u as i32))
}

/// The order in which ZooKeeper lists a connection's auth ids (whoAmI): they are a set
/// backed by a `ConcurrentHashMap`, iterated by hash bucket (the jute `Id.hashCode` of
/// scheme and id, spread as the map does), and in insertion order within a bucket. The
/// table has 16 buckets until 12 ids, then doubles.
pub fn java_set_order(ids: &[Id]) -> Vec<&Id> {
    let mut buckets = 16usize;
    while ids.len() >= buckets - buckets / 4 {
        buckets *= 2;
    }
    let bucket = |id: &Id| {
        let h = 17i32
            .wrapping_mul(37)
            .wrapping_add(java_string_hash(&id.scheme))
            .wrapping_mul(37)
            .wrapping_add(java_string_hash(&id.id));
        let spread = (h ^ ((h as u32) >> 16) as i32) & 0x7fff_ffff;
        spread as usize & (buckets - 1)
    };
    let mut out: Vec<&Id> = ids.iter().collect();
    out.sort_by_key(|id| bucket(id)); // stable: insertion order within a bucket
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_acls_as_zookeeper_3_8_reads_them() {
        for ok in [
            "10.0.0.0/8",
            "127.0.0.1",
            "010.1.2.3",
            "1.2.3.4/0",
            "1.2.3.4/+8",
        ] {
            assert!(valid_ip(ok), "{ok}");
        }
        for bad in [
            "::1",
            "fe80::1/64",
            "1.2.3",
            "127.0.0.1/33",
            "1.2.3.4/",
            "1.2.3.256",
            "",
        ] {
            assert!(!valid_ip(bad), "{bad}");
        }
        assert!(ip_matches("10.0.0.0/8", "10.9.8.7"));
        assert!(!ip_matches("10.0.0.0/8", "11.0.0.1"));
        assert!(ip_matches("0.0.0.0/0", "1.2.3.4"));
        assert!(!ip_matches("::1", "::1"), "3.8 matches no IPv6 client");
    }

    #[test]
    fn java_hashes() {
        // Values Java gives.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("ip"), 3367);
        assert_eq!(java_string_hash("digest"), -1331913276);
        assert_eq!(java_string_hash("hello world"), 1794106052);
    }

    #[test]
    fn ids_in_zookeepers_order() {
        // Each printed by Java from ZooKeeper's own Id in its authInfo set, after adding
        // them in the order given.
        let cases: [(&[(&str, &str)], &str); 5] = [
            (
                &[
                    ("ip", "127.0.0.1"),
                    ("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
                ],
                "digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E= ip:127.0.0.1",
            ),
            (
                &[
                    ("ip", "127.0.0.1"),
                    ("digest", "alice:V55/p2T0OpjQ+low3NVAH4aLvm0="),
                ],
                "ip:127.0.0.1 digest:alice:V55/p2T0OpjQ+low3NVAH4aLvm0=",
            ),
            (
                &[("ip", "127.0.0.1"), ("digest", "alice:abc=")],
                "digest:alice:abc= ip:127.0.0.1",
            ),
            (
                &[
                    ("ip", "127.0.0.1"),
                    ("digest", "bob:x"),
                    ("digest", "carol:y"),
                    ("super", ""),
                ],
                "digest:carol:y super: ip:127.0.0.1 digest:bob:x",
            ),
            (
                &[
                    ("ip", "10.1.2.3"),
                    ("digest", "u1:h"),
                    ("digest", "u2:h"),
                    ("digest", "u3:h"),
                    ("digest", "u4:h"),
                ],
                "digest:u3:h digest:u2:h digest:u4:h ip:10.1.2.3 digest:u1:h",
            ),
        ];
        for (ids, want) in cases {
            let ids: Vec<Id> = ids.iter().map(|(s, i)| Id::new(s, i)).collect();
            let got: Vec<String> = java_set_order(&ids)
                .iter()
                .map(|id| format!("{}:{}", id.scheme, id.id))
                .collect();
            assert_eq!(got.join(" "), want);
        }
    }
    #[test]
    fn digest_ids_split_as_java_does() {
        assert_eq!(java_split_len("alice:", ':'), 1);
        assert_eq!(java_split_len("a:b:", ':'), 2);
        assert_eq!(java_split_len("a::b", ':'), 3);
        assert_eq!(java_split_len(":b", ':'), 2);
        assert_eq!(java_split_len(":", ':'), 0);
        assert_eq!(java_split_len("", ':'), 1);
    }

    #[test]
    fn digest_matches_zookeeper() {
        assert_eq!(digest("alice:secret"), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    }
    #[test]
    fn checks() {
        let acl = vec![Acl {
            perms: perm::READ,
            id: Id::new("ip", "127.0.0.0/8"),
        }];
        assert!(check(&acl, perm::READ, &[Id::new("ip", "127.0.0.1")]).is_ok());
        assert!(check(&acl, perm::WRITE, &[Id::new("ip", "127.0.0.1")]).is_err());
        assert!(check(&acl, perm::READ, &[Id::new("ip", "10.0.0.1")]).is_err());
        assert!(check(&acl, perm::WRITE, &[Id::new("super", "")]).is_ok());
        assert!(fixup(&[], &[], Schemes::default()).is_err());
        assert!(fixup(
            &[Acl {
                perms: 31,
                id: Id::new("auth", "")
            }],
            &[],
            Schemes::default()
        )
        .is_err());
        assert_eq!(
            fixup(
                &[Acl {
                    perms: 31,
                    id: Id::new("auth", "")
                }],
                &[Id::new("digest", "a:b")],
                Schemes::default()
            )
            .unwrap()[0]
                .id,
            Id::new("digest", "a:b")
        );
        assert!(fixup(
            &[Acl {
                perms: 31,
                id: Id::new("world", "x")
            }],
            &[],
            Schemes::default()
        )
        .is_err());
        // x509 ids: valid only where x509 is registered; `auth` takes them then, never
        // an ip id.
        let x509 = |id: &str| Acl {
            perms: 31,
            id: Id::new("x509", id),
        };
        let on = Schemes {
            x509: true,
            sasl: false,
        };
        assert!(fixup(&[x509("CN=a,O=b")], &[], Schemes::default()).is_err());
        assert!(fixup(&[x509("CN=a,O=b")], &[], on).is_ok());
        assert!(fixup(&[x509("not a dn")], &[], on).is_err());
        let held = [Id::new("ip", "127.0.0.1"), Id::new("x509", "CN=a")];
        let auth = [Acl {
            perms: 31,
            id: Id::new("auth", ""),
        }];
        assert_eq!(fixup(&auth, &held, on).unwrap(), vec![x509("CN=a")]);
        assert!(fixup(&auth, &held, Schemes::default()).is_err());
        for (id, ok) in [
            ("", true),
            ("bob", true),
            ("a/b@C", true),
            ("a@b@c", false),
            ("a/b/c@d", false),
            ("a@b/c", false),
        ] {
            assert_eq!(valid_kerberos_name(id), ok, "{id}");
        }
    }
}
