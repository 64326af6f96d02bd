//! Read operations, run on a reactor (or on the writer when they set a watch).
//!
//! Ordering rules, restated where reads run (STYLE.md 9):
//! - A session's requests are answered in order: a read waits behind the session's writes
//!   that are still with the writer (net/reactor.rs keeps that queue).
//! - A read sees one whole version of each node it reads (tree/).
//! - A read that sets a watch runs on the writer, so the watch is registered atomically
//!   with the read; a watch event reaches the client before any response showing the new
//!   data because the writer queues events before it publishes a change, and a reactor
//!   drains its inbox after running a read and before queueing the response.

use crate::acl;
use crate::config::Config;
use crate::proto::ops::{op, perm, ZkError};
use crate::proto::records::{write_acls, Id, MultiOp, Request};
use crate::proto::Writer;
use crate::tree::{join_path, DataTree, Node};

fn readable(n: &Node, ids: &[Id]) -> Result<(), ZkError> {
    acl::check(&n.acl, perm::READ, ids)
}

fn get_data(
    tree: &DataTree,
    cfg: &Config,
    ids: &[Id],
    path: &str,
    w: &mut Writer,
) -> Result<(), ZkError> {
    tree.with(path, |n| {
        let n = n.ok_or(ZkError::NoNode)?;
        readable(n, ids)?;
        w.opt_buffer(&n.data());
        n.stat(cfg.extended_types).write(w);
        Ok(())
    })
}

fn get_children(
    tree: &DataTree,
    cfg: &Config,
    ids: &[Id],
    path: &str,
    with_stat: bool,
    w: &mut Writer,
) -> Result<(), ZkError> {
    tree.with(path, |n| {
        let n = n.ok_or(ZkError::NoNode)?;
        readable(n, ids)?;
        w.i32(n.num_children() as i32);
        for c in n.children_iter() {
            w.string(c);
        }
        if with_stat {
            n.stat(cfg.extended_types).write(w);
        }
        Ok(())
    })
}

fn count_descendants(tree: &DataTree, path: &str) -> i64 {
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(p) = stack.pop() {
        if let Some(n) = tree.get(&p) {
            for c in n.children_iter() {
                total += 1;
                stack.push(join_path(&p, c));
            }
        }
    }
    total
}

/// Runs a read and writes its response body into `w`. The caller has written the reply
/// header; on error it keeps only the header.
pub fn execute(
    tree: &DataTree,
    cfg: &Config,
    ids: &[Id],
    req: &Request,
    w: &mut Writer,
) -> Result<(), ZkError> {
    match req {
        Request::GetData { path, .. } => get_data(tree, cfg, ids, path, w),
        Request::Exists { path, .. } => {
            if path.contains('\0') {
                return Err(ZkError::BadArguments);
            }
            tree.with(path, |n| {
                let n = n.ok_or(ZkError::NoNode)?;
                readable(n, ids)?;
                n.stat(cfg.extended_types).write(w);
                Ok(())
            })
        }
        Request::GetChildren { path, .. } => get_children(tree, cfg, ids, path, false, w),
        Request::GetChildren2 { path, .. } => get_children(tree, cfg, ids, path, true, w),
        Request::GetAcl { path } => tree.with(path, |n| {
            let n = n.ok_or(ZkError::NoNode)?;
            acl::check(&n.acl, perm::READ | perm::ADMIN, ids)?;
            if acl::check(&n.acl, perm::ADMIN, ids).is_ok() {
                write_acls(w, &n.acl);
            } else {
                write_acls(w, &acl::redact(&n.acl));
            }
            n.stat(cfg.extended_types).write(w);
            Ok(())
        }),
        Request::GetAllChildrenNumber { path } => {
            tree.with(path, |n| {
                let n = n.ok_or(ZkError::NoNode)?;
                readable(n, ids)
            })?;
            w.i32(count_descendants(tree, path) as i32);
            Ok(())
        }
        Request::MultiRead { ops } => {
            for o in ops {
                let (t, path) = match o {
                    MultiOp::GetData { path } => (op::GET_DATA, path),
                    MultiOp::GetChildren { path } => (op::GET_CHILDREN, path),
                    _ => return Err(ZkError::MarshallingError),
                };
                let mark = w.buf.len();
                w.i32(t).bool(false).i32(0);
                let r = if t == op::GET_DATA {
                    get_data(tree, cfg, ids, path, w)
                } else {
                    get_children(tree, cfg, ids, path, false, w)
                };
                if let Err(e) = r {
                    w.buf.truncate(mark);
                    w.i32(op::ERROR).bool(false).i32(e.code()).i32(e.code());
                }
            }
            w.i32(-1).bool(true).i32(-1);
            Ok(())
        }
        Request::WhoAmI => {
            w.i32(ids.len() as i32);
            for id in ids {
                w.string(&id.scheme).string(&acl::user_name(id));
            }
            Ok(())
        }
        _ => Err(ZkError::Unimplemented),
    }
}

/// Builds a whole reply frame for a read.
pub fn reply(
    tree: &DataTree,
    cfg: &Config,
    ids: &[Id],
    xid: i32,
    zxid: i64,
    req: &Request,
) -> (Vec<u8>, i32) {
    let mut w = Writer::frame();
    w.i32(xid).i64(zxid).i32(0);
    let err = match execute(tree, cfg, ids, req, &mut w) {
        Ok(()) => 0,
        Err(e) => {
            w.buf.truncate(4 + 16);
            w.buf[16..20].copy_from_slice(&e.code().to_be_bytes());
            e.code()
        }
    };
    (w.finish_frame(), err)
}
