//! `paddock dump-log FILE` and `paddock dump-snapshot FILE`: a txn log segment or a
//! snapshot in readable form (like ZooKeeper's TxnLogToolkit and SnapshotFormatter), one
//! line per record, or one JSON object per line with `--json` (serde_json).

use super::{map_file, parse, NodeRecord};
use crate::log::{scan_segment, Tail};
use crate::proto::ops::op;
use crate::proto::records::Acl;
use crate::txn::{decode_record_digest, Txn, TxnHeader};
use base64::Engine;
use serde_json::{json, Value};
use std::io::{self, Write};
use std::path::Path;

fn data_json(d: &Option<impl AsRef<[u8]>>) -> Value {
    match d {
        None => Value::Null,
        Some(d) => Value::String(base64::engine::general_purpose::STANDARD.encode(d.as_ref())),
    }
}

fn data_text(d: &Option<impl AsRef<[u8]>>) -> String {
    match d {
        None => "null".into(),
        Some(d) => format!("{:?}", String::from_utf8_lossy(d.as_ref())),
    }
}

fn acls_json(acl: &[Acl]) -> Value {
    acl.iter()
        .map(|a| json!({"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id}))
        .collect()
}

fn acls_text(acl: &[Acl]) -> String {
    let v: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
        .collect();
    format!("[{}]", v.join(","))
}

fn txn_json(t: &Txn) -> Value {
    let op = op::name(t.op());
    match t {
        Txn::CreateSession { timeout } => json!({"type": op, "timeout": timeout}),
        Txn::CloseSession { paths } => json!({"type": op, "paths": paths}),
        Txn::Create {
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
            ..
        } => json!({
            "type": op, "path": path, "data": data_json(data), "acl": acls_json(acl),
            "ephemeral": ephemeral, "parentCVersion": parent_cversion,
        }),
        Txn::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => json!({
            "type": op, "path": path, "data": data_json(data), "acl": acls_json(acl),
            "parentCVersion": parent_cversion,
        }),
        Txn::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl,
        } => json!({
            "type": op, "path": path, "data": data_json(data), "acl": acls_json(acl),
            "parentCVersion": parent_cversion, "ttl": ttl,
        }),
        Txn::Delete { path, .. } => json!({"type": op, "path": path}),
        Txn::SetData {
            path,
            data,
            version,
        } => json!({"type": op, "path": path, "data": data_json(data), "version": version}),
        Txn::SetAcl { path, acl, version } => {
            json!({"type": op, "path": path, "acl": acls_json(acl), "version": version})
        }
        Txn::Check { path, version } => json!({"type": op, "path": path, "version": version}),
        Txn::Multi(txns) => {
            json!({"type": op, "txns": txns.iter().map(txn_json).collect::<Vec<_>>()})
        }
        Txn::Error { err } => json!({"type": op, "err": err}),
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

fn record_json(h: &TxnHeader, t: &Txn, digest: Option<i64>) -> Value {
    json!({
        "zxid": format!("0x{:x}", h.zxid),
        "session": format!("0x{:x}", h.client_id),
        "cxid": h.cxid,
        "time": h.time,
        "txn": txn_json(t),
        "digest": digest,
    })
}

/// Prints every record of a txn log segment; returns the number printed.
pub fn dump_log(path: &Path, json: bool, out: &mut impl Write) -> io::Result<u64> {
    let bytes = std::fs::read(path)?;
    let mut n = 0u64;
    let mut failed = None;
    let (end, tail) = scan_segment(&bytes, |off, payload| {
        let line = match decode_record_digest(payload) {
            Ok((h, t, d)) if json => record_json(&h, &t, d).to_string(),
            Ok((h, t, d)) => format!(
                "zxid 0x{:x} session 0x{:x} cxid {} time {} {}{}",
                h.zxid,
                h.client_id,
                h.cxid,
                h.time,
                txn_text(&t),
                d.map_or(String::new(), |d| format!(" digest {d}"))
            ),
            Err(e) if json => json!({"offset": off, "error": e.to_string()}).to_string(),
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
        let summary = json!({"end": end, "tail": format!("{tail:?}"), "records": n});
        writeln!(out, "{summary}")?;
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
            json!({
                "path": rec.path,
                "data": data_json(&rec.data),
                "aclRef": rec.acl_ref,
                "czxid": format!("0x{:x}", st.czxid),
                "mzxid": format!("0x{:x}", st.mzxid),
                "pzxid": format!("0x{:x}", st.pzxid),
                "ctime": st.ctime,
                "mtime": st.mtime,
                "version": st.version,
                "cversion": st.cversion,
                "aversion": st.aversion,
                "ephemeralOwner": format!("0x{:x}", st.ephemeral_owner),
            })
            .to_string()
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
        let end = json!({
            "nodes": summary.nodes,
            "digestZxid": format!("0x{dz:x}"),
            "digest": d,
            "checksums": "ok",
        });
        writeln!(out, "{end}")?;
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
        let sessions: Vec<Value> = s
            .sessions
            .iter()
            .map(|(id, t)| json!({"id": format!("0x{id:x}"), "timeout": t}))
            .collect();
        let acls: Vec<Value> = s
            .acls
            .iter()
            .map(|(r, a)| json!({"ref": r, "acl": acls_json(a)}))
            .collect();
        writeln!(out, "{}", json!({"sessions": sessions, "acls": acls}))
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
