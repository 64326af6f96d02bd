//! A reader of Java KeyStore files (`JKS`, magic `0xFEEDFEED`), the format `keytool`
//! wrote by default before Java 9 and that most ZooKeeper deployments still have.
//!
//! The format (as the JDK's `sun.security.provider.JavaKeyStore` writes it):
//! - `u32` magic, `u32` version (1 or 2), `u32` entry count;
//! - each entry: `u32` tag (1: private key, 2: trusted certificate), the alias (a
//!   Java modified-UTF-8 string: `u16` length, bytes), a `u64` date;
//!   - a private key: `u32` length and the protected key (a DER EncryptedPrivateKeyInfo),
//!     then `u32` chain length and the chain's certificates;
//!   - a certificate (in either): in version 2 its type (a string, "X.509"), then `u32`
//!     length and DER bytes;
//! - 20 bytes of SHA-1 over the password (as UTF-16BE), the words "Mighty Aphrodite" and
//!   everything before the digest: the store's integrity check.
//!
//! A private key is protected by the JDK's own scheme (OID 1.3.6.1.4.1.42.2.17.1.1): the
//! data is a 20-byte salt, the key XORed with a SHA-1 keystream (block i is
//! SHA-1(password, block i-1), block 0 the salt), and SHA-1(password, key) to check it.

use sha1::{Digest, Sha1};

const MAGIC: u32 = 0xFEED_FEED;
const KEY_PROTECTOR_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JksError {
    #[error("not a JKS keystore (magic {0:#x})")]
    NotJks(u32),
    #[error("unsupported JKS version {0}")]
    Version(u32),
    #[error("truncated keystore")]
    Truncated,
    #[error("keystore was tampered with, or the password is incorrect")]
    Integrity,
    #[error("the key of entry {0:?} cannot be recovered: wrong password")]
    KeyPassword(String),
    #[error("entry {0:?}: {1}")]
    Entry(String, &'static str),
    #[error("unknown entry tag {0}")]
    Tag(u32),
}

/// One entry of a keystore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A private key (PKCS#8 DER) and its certificate chain (DER, leaf first).
    Key {
        alias: String,
        pkcs8: Vec<u8>,
        chain: Vec<Vec<u8>>,
    },
    /// A trusted certificate (DER).
    Trusted { alias: String, cert: Vec<u8> },
}

/// Is this a JKS file (by its magic)?
pub fn is_jks(data: &[u8]) -> bool {
    data.len() >= 4 && u32::from_be_bytes(data[..4].try_into().unwrap()) == MAGIC
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], JksError> {
        let end = self.pos.checked_add(n).ok_or(JksError::Truncated)?;
        let s = self.data.get(self.pos..end).ok_or(JksError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, JksError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn utf(&mut self) -> Result<String, JksError> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize;
        // Modified UTF-8 differs from UTF-8 only for NUL and supplementary characters,
        // which aliases and type names do not have; anything else reads lossily.
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn cert(&mut self, version: u32) -> Result<Vec<u8>, JksError> {
        if version == 2 {
            let _kind = self.utf()?;
        }
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

fn password_bytes(password: &str) -> Vec<u8> {
    password
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect()
}

/// Reads a JKS keystore, checking its integrity with `password` and recovering its
/// private keys with the same password (as ZooKeeper's key manager does).
pub fn read(data: &[u8], password: &str) -> Result<Vec<Entry>, JksError> {
    let mut c = Cursor { data, pos: 0 };
    let magic = c.u32()?;
    if magic != MAGIC {
        return Err(JksError::NotJks(magic));
    }
    let version = c.u32()?;
    if version != 1 && version != 2 {
        return Err(JksError::Version(version));
    }
    let count = c.u32()?;
    let pw = password_bytes(password);
    // Keys are recovered after the integrity check, so a wrong password says so.
    let mut entries: Vec<(Entry, Option<&[u8]>)> = Vec::new();
    for _ in 0..count {
        let tag = c.u32()?;
        let alias = c.utf()?;
        let _date = c.take(8)?;
        match tag {
            1 => {
                let n = c.u32()? as usize;
                let protected = c.take(n)?;
                let chain_len = c.u32()?;
                let mut chain = Vec::new();
                for _ in 0..chain_len {
                    chain.push(c.cert(version)?);
                }
                let key = Entry::Key {
                    pkcs8: Vec::new(),
                    alias,
                    chain,
                };
                entries.push((key, Some(protected)));
            }
            2 => {
                let cert = c.cert(version)?;
                entries.push((Entry::Trusted { alias, cert }, None));
            }
            t => return Err(JksError::Tag(t)),
        }
    }
    let body_end = c.pos;
    let digest = c.take(20)?;
    let mut h = Sha1::new();
    h.update(&pw);
    h.update(b"Mighty Aphrodite");
    h.update(&data[..body_end]);
    if h.finalize().as_slice() != digest {
        return Err(JksError::Integrity);
    }
    entries
        .into_iter()
        .map(|(mut e, protected)| {
            if let (Entry::Key { alias, pkcs8, .. }, Some(p)) = (&mut e, protected) {
                *pkcs8 = recover_key(alias, p, &pw)?;
            }
            Ok(e)
        })
        .collect()
}

/// A DER element: (tag, contents, rest).
fn der(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&len0, mut rest) = rest.split_first()?;
    let len = if len0 < 0x80 {
        len0 as usize
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Undoes the JDK's KeyProtector: EncryptedPrivateKeyInfo { { OID, NULL }, OCTET STRING }.
fn recover_key(alias: &str, protected: &[u8], pw: &[u8]) -> Result<Vec<u8>, JksError> {
    let bad = |why| JksError::Entry(alias.to_owned(), why);
    let (0x30, info, _) = der(protected).ok_or(bad("malformed protected key"))? else {
        return Err(bad("malformed protected key"));
    };
    let (0x30, alg, rest) = der(info).ok_or(bad("malformed protected key"))? else {
        return Err(bad("malformed protected key"));
    };
    let (0x06, oid, _) = der(alg).ok_or(bad("malformed key algorithm"))? else {
        return Err(bad("malformed key algorithm"));
    };
    if oid != KEY_PROTECTOR_OID {
        return Err(bad(
            "key protected by an algorithm other than the JDK's JKS scheme",
        ));
    }
    let (0x04, enc, _) = der(rest).ok_or(bad("malformed encrypted key"))? else {
        return Err(bad("malformed encrypted key"));
    };
    if enc.len() < 40 {
        return Err(bad("encrypted key too short"));
    }
    let (salt, rest) = enc.split_at(20);
    let (cipher, check) = rest.split_at(rest.len() - 20);
    let mut key = Vec::with_capacity(cipher.len());
    let mut block: [u8; 20] = salt.try_into().unwrap();
    for chunk in cipher.chunks(20) {
        let mut h = Sha1::new();
        h.update(pw);
        h.update(block);
        block = h.finalize().into();
        key.extend(chunk.iter().zip(block.iter()).map(|(a, b)| a ^ b));
    }
    let mut h = Sha1::new();
    h.update(pw);
    h.update(&key);
    if h.finalize().as_slice() != check {
        return Err(JksError::KeyPassword(alias.to_owned()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a JKS the way the JDK does (the inverse of `read`), for tests of the
    /// reader's checks; keytool-made stores are read in the interop and TLS tests.
    fn write(entries: &[Entry], password: &str) -> Vec<u8> {
        let pw = password_bytes(password);
        let mut out = Vec::new();
        out.extend(MAGIC.to_be_bytes());
        out.extend(2u32.to_be_bytes());
        out.extend((entries.len() as u32).to_be_bytes());
        let utf = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u16).to_be_bytes());
            out.extend(s.as_bytes());
        };
        let cert = |out: &mut Vec<u8>, c: &[u8]| {
            utf(out, "X.509");
            out.extend((c.len() as u32).to_be_bytes());
            out.extend(c);
        };
        for e in entries {
            match e {
                Entry::Key {
                    alias,
                    pkcs8,
                    chain,
                } => {
                    out.extend(1u32.to_be_bytes());
                    utf(&mut out, alias);
                    out.extend(0u64.to_be_bytes());
                    let salt = [7u8; 20];
                    let mut enc = salt.to_vec();
                    let mut block = salt;
                    for chunk in pkcs8.chunks(20) {
                        let mut h = Sha1::new();
                        h.update(&pw);
                        h.update(block);
                        block = h.finalize().into();
                        enc.extend(chunk.iter().zip(block.iter()).map(|(a, b)| a ^ b));
                    }
                    let mut h = Sha1::new();
                    h.update(&pw);
                    h.update(pkcs8);
                    enc.extend(h.finalize());
                    let mut alg = vec![0x06, KEY_PROTECTOR_OID.len() as u8];
                    alg.extend(KEY_PROTECTOR_OID);
                    alg.extend([0x05, 0x00]);
                    let mut info = vec![0x30, alg.len() as u8];
                    info.extend(alg);
                    info.extend([0x04, 0x82]);
                    info.extend((enc.len() as u16).to_be_bytes());
                    info.extend(enc);
                    let mut seq = vec![0x30, 0x82];
                    seq.extend((info.len() as u16).to_be_bytes());
                    seq.extend(info);
                    out.extend((seq.len() as u32).to_be_bytes());
                    out.extend(seq);
                    out.extend((chain.len() as u32).to_be_bytes());
                    for c in chain {
                        cert(&mut out, c);
                    }
                }
                Entry::Trusted { alias, cert: c } => {
                    out.extend(2u32.to_be_bytes());
                    utf(&mut out, alias);
                    out.extend(0u64.to_be_bytes());
                    cert(&mut out, c);
                }
            }
        }
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(b"Mighty Aphrodite");
        h.update(&out);
        out.extend(h.finalize());
        out
    }

    fn sample() -> Vec<Entry> {
        vec![
            Entry::Key {
                alias: "server".into(),
                pkcs8: (0..=200u8).collect(),
                chain: vec![vec![1, 2, 3], vec![4, 5]],
            },
            Entry::Trusted {
                alias: "ca".into(),
                cert: vec![9; 300],
            },
        ]
    }

    #[test]
    fn reads_what_the_jdk_scheme_writes() {
        let data = write(&sample(), "s3cret-pässword");
        assert!(is_jks(&data));
        assert_eq!(read(&data, "s3cret-pässword").unwrap(), sample());
    }

    #[test]
    fn a_wrong_password_or_a_flipped_byte_is_refused() {
        let data = write(&sample(), "right");
        assert_eq!(read(&data, "wrong"), Err(JksError::Integrity));
        for i in [12, 40, data.len() / 2, data.len() - 1] {
            let mut bad = data.clone();
            bad[i] ^= 1;
            assert!(
                read(&bad, "right").is_err(),
                "flipped byte {i} went unnoticed"
            );
        }
        for n in [0, 3, 11, data.len() - 21, data.len() - 1] {
            assert!(read(&data[..n], "right").is_err(), "truncated at {n}");
        }
    }
}
