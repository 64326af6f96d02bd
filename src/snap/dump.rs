//! `paddock dump-log FILE` and `paddock dump-snapshot FILE`: a txn log segment or a
//! snapshot in readable form (like ZooKeeper's TxnLogToolkit and SnapshotFormatter), one
//! line per record, or one JSON object per line with `--json`.

use super::{map_file, parse, NodeRecord};
use crate::log::{scan_segment, Tail};
use crate::proto::ops::op;
use crate::proto::records::Acl;
use crate::txn::{decode_record_digest, Txn, TxnHeader};
use base64::Engine;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

/// A JSON string literal.
fn js(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn data_json(d: &Option<impl AsRef<[u8]>>) -> String {
    match d {
        None => "null".into(),
        Some(d) => js(&base64::engine::general_purpose::STANDARD.encode(d.as_ref())),
    }
}

fn data_text(d: &Option<impl AsRef<[u8]>>) -> String {
    match d {
        None => "null".into(),
        Some(d) => format!("{:?}", String::from_utf8_lossy(d.as_ref())),
    }
}

fn acls_json(acl: &[Acl]) -> String {
    let v: Vec<String> = acl
        .iter()
        .map(|a| {
            format!(
                "{{\"perms\":{},\"scheme\":{},\"id\":{}}}",
                a.perms,
                js(&a.id.scheme),
                js(&a.id.id)
            )
        })
        .collect();
    format!("[{}]", v.join(","))
}

fn acls_text(acl: &[Acl]) -> String {
    let v: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
        .collect();
    format!("[{}]", v.join(","))
}

fn txn_json(t: &Txn) -> String {
    let op = js(op::name(t.op()));
    match t {
        Txn::CreateSession { timeout } => format!("{{\"type\":{op},\"timeout\":{timeout}}}"),
        Txn::CloseSession { paths } => {
            let p: Vec<String> = paths.iter().map(|p| js(p)).collect();
            format!("{{\"type\":{op},\"paths\":[{}]}}", p.join(","))
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
            ..
        } => format!(
            "{{\"type\":{op},\"path\":{},\"data\":{},\"acl\":{},\"ephemeral\":{ephemeral},\"parentCVersion\":{parent_cversion}}}",
            js(path),
            data_json(data),
            acls_json(acl)
        ),
        Txn::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => format!(
            "{{\"type\":{op},\"path\":{},\"data\":{},\"acl\":{},\"parentCVersion\":{parent_cversion}}}",
            js(path),
            data_json(data),
            acls_json(acl)
        ),
        Txn::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl,
        } => format!(
            "{{\"type\":{op},\"path\":{},\"data\":{},\"acl\":{},\"parentCVersion\":{parent_cversion},\"ttl\":{ttl}}}",
            js(path),
            data_json(data),
            acls_json(acl)
        ),
        Txn::Delete { path, .. } => format!("{{\"type\":{op},\"path\":{}}}", js(path)),
        Txn::SetData {
            path,
            data,
            version,
        } => format!(
            "{{\"type\":{op},\"path\":{},\"data\":{},\"version\":{version}}}",
            js(path),
            data_json(data)
        ),
        Txn::SetAcl { path, acl, version } => format!(
            "{{\"type\":{op},\"path\":{},\"acl\":{},\"version\":{version}}}",
            js(path),
            acls_json(acl)
        ),
        Txn::Check { path, version } => format!(
            "{{\"type\":{op},\"path\":{},\"version\":{version}}}",
            js(path)
        ),
        Txn::Multi(txns) => {
            let v: Vec<String> = txns.iter().map(txn_json).collect();
            format!("{{\"type\":{op},\"txns\":[{}]}}", v.join(","))
        }
        Txn::Error { err } => format!("{{\"type\":{op},\"err\":{err}}}"),
    }
}

fn txn_text(t: &Txn) -> String {
    let op = op::name(t.op());
    match t {
        Txn::CreateSession { timeout } => format!("{op} timeout={timeout}"),
        Txn::CloseSession { paths } => format!("{op} ephemerals={paths:?}"),
        Txn::Create {
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
            ..
        } => format!(
            "{op} {path} data={} acl={} ephemeral={ephemeral} parentCVersion={parent_cversion}",
            data_text(data),
            acls_text(acl)
        ),
        Txn::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => format!(
            "{op} {path} data={} acl={} parentCVersion={parent_cversion}",
            data_text(data),
            acls_text(acl)
        ),
        Txn::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl,
        } => format!(
            "{op} {path} data={} acl={} parentCVersion={parent_cversion} ttl={ttl}",
            data_text(data),
            acls_text(acl)
        ),
        Txn::Delete { path, .. } => format!("{op} {path}"),
        Txn::SetData {
            path,
            data,
            version,
        } => format!("{op} {path} data={} version={version}", data_text(data)),
        Txn::SetAcl { path, acl, version } => {
            format!("{op} {path} acl={} version={version}", acls_text(acl))
        }
        Txn::Check { path, version } => format!("{op} {path} version={version}"),
        Txn::Multi(txns) => {
            let v: Vec<String> = txns.iter().map(txn_text).collect();
            format!("{op} [{}]", v.join("; "))
        }
        Txn::Error { err } => format!("{op} {err}"),
    }
}

fn header_json(h: &TxnHeader) -> String {
    format!(
        "\"zxid\":\"0x{:x}\",\"session\":\"0x{:x}\",\"cxid\":{},\"time\":{}",
        h.zxid, h.client_id, h.cxid, h.time
    )
}

/// Prints every record of a txn log segment; returns the number printed.
pub fn dump_log(path: &Path, json: bool, out: &mut impl Write) -> io::Result<u64> {
    let bytes = std::fs::read(path)?;
    let mut n = 0u64;
    let mut failed = None;
    let (end, tail) = scan_segment(&bytes, |off, payload| {
        let line = match decode_record_digest(payload) {
            Ok((h, t, d)) if json => format!(
                "{{{},\"txn\":{},\"digest\":{}}}",
                header_json(&h),
                txn_json(&t),
                d.map_or("null".to_string(), |d| d.to_string())
            ),
            Ok((h, t, d)) => format!(
                "zxid 0x{:x} session 0x{:x} cxid {} time {} {}{}",
                h.zxid,
                h.client_id,
                h.cxid,
                h.time,
                txn_text(&t),
                d.map_or(String::new(), |d| format!(" digest {d}"))
            ),
            Err(e) if json => format!("{{\"offset\":{off},\"error\":{}}}", js(&e.to_string())),
            Err(e) => format!("record at byte {off}: cannot decode: {e}"),
        };
        n += 1;
        if let Err(e) = writeln!(out, "{line}") {
            failed = Some(e);
            return false;
        }
        true
    })
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if let Some(e) = failed {
        return Err(e);
    }
    let rest = bytes.len() as u64 - end;
    if json {
        writeln!(
            out,
            "{{\"end\":{end},\"tail\":{},\"records\":{n}}}",
            js(&format!("{tail:?}"))
        )?;
    } else if tail == Tail::Clean {
        writeln!(
            out,
            "EOF: {n} records, ends at byte {end} ({rest} bytes of padding)"
        )?;
    } else {
        writeln!(
            out,
            "EOF: {n} records, then a {tail:?} record at byte {end} ({rest} bytes not read)"
        )?;
    }
    Ok(n)
}

/// Prints a snapshot's sessions, ACLs and nodes; returns the number of nodes.
pub fn dump_snapshot(path: &Path, json: bool, out: &mut impl Write) -> io::Result<u64> {
    let map = map_file(path)?;
    let mut failed: Option<io::Error> = None;
    let mut header_done = false;
    let summary = parse(&map, |s, rec: NodeRecord<'_>| {
        if failed.is_some() {
            return Ok(());
        }
        let mut r = Ok(());
        if !header_done {
            header_done = true;
            r = header(s, json, out);
        }
        let st = rec.stat;
        let line = if json {
            format!(
                "{{\"path\":{},\"data\":{},\"aclRef\":{},\"czxid\":\"0x{:x}\",\"mzxid\":\"0x{:x}\",\"pzxid\":\"0x{:x}\",\"ctime\":{},\"mtime\":{},\"version\":{},\"cversion\":{},\"aversion\":{},\"ephemeralOwner\":\"0x{:x}\"}}",
                js(rec.path), data_json(&rec.data), rec.acl_ref, st.czxid, st.mzxid, st.pzxid,
                st.ctime, st.mtime, st.version, st.cversion, st.aversion, st.ephemeral_owner
            )
        } else {
            format!(
                "{} data={} aclRef={} czxid=0x{:x} mzxid=0x{:x} pzxid=0x{:x} ctime={} mtime={} version={} cversion={} aversion={} ephemeralOwner=0x{:x}",
                rec.path, data_text(&rec.data), rec.acl_ref, st.czxid, st.mzxid, st.pzxid,
                st.ctime, st.mtime, st.version, st.cversion, st.aversion, st.ephemeral_owner
            )
        };
        if let Err(e) = r.and_then(|_| writeln!(out, "{line}")) {
            failed = Some(e);
        }
        Ok(())
    })
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    if let Some(e) = failed {
        return Err(e);
    }
    if !header_done {
        header(&summary, json, out)?;
    }
    let (dz, d) = summary.digest.unwrap_or((0, 0));
    if json {
        writeln!(
            out,
            "{{\"nodes\":{},\"digestZxid\":\"0x{dz:x}\",\"digest\":{d},\"checksums\":\"ok\"}}",
            summary.nodes
        )?;
    } else {
        writeln!(
            out,
            "{} nodes; digest zxid 0x{dz:x} value {d}; checksums ok",
            summary.nodes
        )?;
    }
    Ok(summary.nodes)
}

fn header(s: &super::Summary, json: bool, out: &mut impl Write) -> io::Result<()> {
    if json {
        let sess: Vec<String> = s
            .sessions
            .iter()
            .map(|(id, t)| format!("{{\"id\":\"0x{id:x}\",\"timeout\":{t}}}"))
            .collect();
        let acls: Vec<String> = s
            .acls
            .iter()
            .map(|(r, a)| format!("{{\"ref\":{r},\"acl\":{}}}", acls_json(a)))
            .collect();
        writeln!(
            out,
            "{{\"sessions\":[{}],\"acls\":[{}]}}",
            sess.join(","),
            acls.join(",")
        )
    } else {
        writeln!(out, "{} sessions", s.sessions.len())?;
        for (id, t) in &s.sessions {
            writeln!(out, "  session 0x{id:x} timeout {t} ms")?;
        }
        writeln!(out, "{} ACL lists", s.acls.len())?;
        for (r, a) in &s.acls {
            writeln!(out, "  {r}: {}", acls_text(a))?;
        }
        Ok(())
    }
}
