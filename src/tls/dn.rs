//! A certificate subject as ZooKeeper's X509AuthenticationProvider names a client: Java's
//! `X500Principal.getName()`, the RFC 2253 form. RDNs last-first, multi-valued ones joined
//! by `+`; RFC 2253's keywords (CN, C, L, ST, O, OU, STREET, DC, UID) by name, any other
//! attribute (emailAddress among them) as its OID and `#` with the value's DER in hex;
//! `,=+<>#;"\` escaped with a backslash, as are a leading or trailing space.

use x509_parser::prelude::*;

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape(s: &str, out: &mut String) {
    let n = s.chars().count();
    for (i, c) in s.chars().enumerate() {
        if ",=+<>#;\"\\".contains(c) || (c == ' ' && (i == 0 || i + 1 == n)) {
            out.push('\\');
            out.push(c);
        } else if (c as u32) < 0x20 || c as u32 == 0x7f {
            out.push_str(&format!("\\{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
}

/// The DER of an attribute value (its header rebuilt from tag and length).
fn der_hex(v: &x509_parser::asn1_rs::Any<'_>, out: &mut String) {
    let data = v.data;
    let tag = v.tag().0;
    let class = v.class() as u8;
    let first = (class << 6) | if v.header.is_constructed() { 0x20 } else { 0 };
    let mut der = Vec::with_capacity(data.len() + 6);
    if tag < 31 {
        der.push(first | tag as u8);
    } else {
        der.push(first | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            der.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
        }
    }
    let len = data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        der.push(0x80 | (8 - skip) as u8);
        der.extend_from_slice(&bytes[skip..]);
    }
    der.extend_from_slice(data);
    for b in der {
        out.push_str(&format!("{b:02x}"));
    }
}

/// The subject of a DER certificate in ZooKeeper's x509 id form; `None` if it does not
/// parse.
pub fn subject_dn(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let rdns: Vec<_> = cert.subject().iter_rdn().collect();
    let mut out = String::new();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, ava) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = ava.attr_type().to_id_string();
            match (keyword(&oid), ava.as_str()) {
                (Some(k), Ok(s)) => {
                    out.push_str(k);
                    out.push('=');
                    escape(s, &mut out);
                }
                (Some(k), Err(_))
                    if matches!(ava.attr_value().tag(), x509_parser::asn1_rs::Tag::BmpString) =>
                {
                    out.push_str(k);
                    out.push('=');
                    let units: Vec<u16> = ava
                        .attr_value()
                        .data
                        .chunks(2)
                        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                        .collect();
                    escape(&String::from_utf16_lossy(&units), &mut out);
                }
                _ => {
                    out.push_str(keyword(&oid).unwrap_or(&oid));
                    out.push_str("=#");
                    der_hex(ava.attr_value(), &mut out);
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        p.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn java_rfc2253_form() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::OrganizationalUnitName, "ops");
        dn.push(rcgen::DnType::CommonName, "client one");
        assert_eq!(
            subject_dn(&cert_with(dn)).unwrap(),
            "CN=client one,OU=ops,O=Acme\\, Inc.,C=US"
        );
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, " a+b=c ");
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("x@y.z".try_into().unwrap()),
        );
        assert_eq!(
            subject_dn(&cert_with(dn)).unwrap(),
            "1.2.840.113549.1.9.1=#16057840792e7a,CN=\\ a\\+b\\=c\\ "
        );
    }
}
