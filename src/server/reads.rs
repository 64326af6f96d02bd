//! Read operations, run on a reactor (or on the writer when they set a watch).
//!
//! Ordering rules, restated where reads run (STYLE.md 9):
//! - A session's requests are answered in order: a read waits behind the session's writes
//!   that are still with the writer (net/reactor.rs keeps that queue).
//! - A read sees one whole version of each node it reads (tree/), and a reactor's read
//!   sees whole txns: it runs inside one consistent view of the tree (`reply_consistent`,
//!   tree/'s publish windows), so no read shows part of a multi, a child without its
//!   parent's cversion/pzxid, or some of a closed session's ephemerals gone; a session's
//!   later reads never see an older view; the header zxid is that view's applied zxid.
//! - A read that sets a watch runs on the writer, so the watch is registered atomically
//!   with the read; a watch event reaches the client before any response showing the new
//!   data because the writer queues events before it publishes a change, and a reactor
//!   drains its inbox after running a read and before queueing the response.

use crate::acl;
use crate::config::Config;
use crate::proto::ops::{op, perm, ZkError};
use crate::proto::records::{write_acls, Id, MultiOp, Request};
use crate::proto::Writer;
use crate::tree::{join_path, DataTree, Node, NodeRef};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering::Acquire};

/// Where a read finds its nodes: the live tree, or nodes pinned from one consistent view.
pub trait Lookup {
    fn with<R>(&self, path: &str, f: impl FnOnce(Option<&NodeRef>) -> R) -> R;
    /// getAllChildrenNumber's count of the nodes below `path`.
    fn descendants(&self, path: &str) -> i64;
}

/// The tree's key for a read's path: "" is the root, as in ZooKeeper's DataTree (kazoo
/// sends "" for a client's root).
fn key(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

impl Lookup for DataTree {
    fn with<R>(&self, path: &str, f: impl FnOnce(Option<&NodeRef>) -> R) -> R {
        DataTree::with(self, key(path), f)
    }
    fn descendants(&self, path: &str) -> i64 {
        count_descendants(self, path)
    }
}

/// The nodes one read needs, taken (reference-counted) inside one consistent view, so
/// that encoding them (a 1 MB getData, a long multiRead) happens outside it.
struct Pinned<'r> {
    nodes: Vec<(&'r str, Option<NodeRef>)>,
    descendants: i64,
    /// `execute` looks the nodes up in the order `gather` took them: this is the next.
    next: Cell<usize>,
}

impl Lookup for Pinned<'_> {
    fn with<R>(&self, path: &str, f: impl FnOnce(Option<&NodeRef>) -> R) -> R {
        let i = self.next.get();
        let at = match self.nodes.get(i) {
            Some((p, _)) if *p == path => i,
            _ => match self.nodes.iter().position(|(p, _)| *p == path) {
                Some(j) => j,
                None => unreachable!("{path} was not pinned"),
            },
        };
        self.next.set(at + 1);
        f(self.nodes[at].1.as_ref())
    }
    fn descendants(&self, _: &str) -> i64 {
        self.descendants
    }
}

/// Takes what `execute` will look up for `req`, from `tree` as it stands.
fn gather<'r>(tree: &DataTree, req: &'r Request) -> Pinned<'r> {
    let mut nodes = Vec::new();
    let mut descendants = 0;
    match req {
        Request::GetData { path, .. }
        | Request::Exists { path, .. }
        | Request::GetChildren { path, .. }
        | Request::GetChildren2 { path, .. }
        | Request::GetAcl { path } => nodes.push((path.as_str(), tree.get(key(path)))),
        Request::GetAllChildrenNumber { path } => {
            nodes.push((path.as_str(), tree.get(key(path))));
            descendants = count_descendants(tree, path);
        }
        Request::MultiRead { ops } => {
            for o in ops {
                if let MultiOp::GetData { path } | MultiOp::GetChildren { path } = o {
                    nodes.push((path.as_str(), tree.get(key(path))));
                }
            }
        }
        _ => {}
    }
    Pinned {
        nodes,
        descendants,
        next: Cell::new(0),
    }
}

fn readable(n: &Node, ids: &[Id]) -> Result<(), ZkError> {
    acl::check(&n.acl, perm::READ, ids)
}

fn get_data(
    tree: &impl Lookup,
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
    tree: &impl Lookup,
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

/// About how many bytes the reply to `req` will take, from `tree` as it stands
/// (`body_len`: the request's own size; a write's reply is about that or less). A
/// connection reserves this much of its outbound budget while the request is with the
/// writer, so that replies it cannot yet see are counted before they exist. Not exact:
/// a node may change before the writer answers (the writer's hard limit covers that).
/// Counts no further than `cap`: past the budget, the size no longer matters.
pub fn reply_estimate(tree: &DataTree, req: &Request, body_len: usize, cap: usize) -> usize {
    /// A reply header and a Stat, about.
    const FIXED: usize = 96;
    let node = |path: &str, children: bool| -> usize {
        tree.with(key(path), |n| match n {
            None => 0,
            Some(n) if children => {
                let mut sum = 4;
                for name in n.children_iter() {
                    sum += 4 + name.len();
                    if sum >= cap {
                        break;
                    }
                }
                sum
            }
            Some(n) => 4 + n.data_len(),
        })
    };
    let size = match req {
        Request::GetData { path, .. } => node(path, false),
        Request::GetChildren { path, .. } | Request::GetChildren2 { path, .. } => node(path, true),
        Request::MultiRead { ops } => {
            let mut sum = 0;
            for o in ops {
                sum += FIXED
                    + match o {
                        MultiOp::GetData { path } => node(path, false),
                        MultiOp::GetChildren { path } => node(path, true),
                        _ => 0,
                    };
                if sum >= cap {
                    break;
                }
            }
            sum
        }
        _ => body_len,
    };
    FIXED + size.min(cap)
}

fn count_descendants(tree: &DataTree, path: &str) -> i64 {
    let mut total = 0;
    let mut stack = vec![key(path).to_owned()];
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
    tree: &impl Lookup,
    cfg: &Config,
    ids: &[Id],
    req: &Request,
    w: &mut Writer,
) -> Result<(), ZkError> {
    match req {
        Request::Refused { err, .. } => Err(*err),
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
            w.i32(tree.descendants(path) as i32);
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
            for id in acl::java_set_order(ids) {
                w.string(&id.scheme).string(&acl::user_name(id));
            }
            Ok(())
        }
        _ => Err(ZkError::Unimplemented),
    }
}

/// Builds a whole reply frame for a read.
pub fn reply(
    tree: &impl Lookup,
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

/// What a reactor's read came to (`reply_consistent`).
pub enum Consistent {
    /// The reply frame, and the applied zxid of the view it was read in (its header's).
    Answered { frame: Vec<u8>, zxid: i64 },
    /// No consistent view within `BUSY_AFTER` (a long read under a stream of txns): the
    /// writer, where every view is consistent, is to answer it.
    Busy,
    /// The server stopped serving: the view may hold txns a quorum never committed
    /// (a leader's or learner's fast-forward as it leaves its role). Not to be answered.
    NotServing,
}

/// A reactor's read: the whole reply frame from one consistent view of the tree (no txn
/// partly in it), with that view's applied zxid (`applied`, which the writer moves in the
/// same publish window) in the header. `serving` is asked inside the view: a server that
/// left its role (and may have applied uncommitted txns since) answers nothing.
///
/// First it encodes straight from the tree, taking no reference; if a publish overlapped,
/// it pins the nodes in a short window and encodes from them after. It waits for the
/// writer at most while one txn publishes, and gives up (`Busy`) after `BUSY_AFTER`; the
/// writer never waits for it.
#[allow(clippy::too_many_arguments)]
pub fn reply_consistent(
    tree: &DataTree,
    applied: &AtomicI64,
    serving: impl Fn() -> bool,
    cfg: &Config,
    ids: &[Id],
    xid: i32,
    req: &Request,
) -> Consistent {
    if let Some(begun) = tree.read_begin() {
        if !serving() {
            return Consistent::NotServing;
        }
        let zxid = applied.load(Acquire);
        let (frame, _) = reply(tree, cfg, ids, xid, zxid, req);
        if tree.read_valid(begun) {
            return Consistent::Answered { frame, zxid };
        }
    }
    let started = std::time::Instant::now();
    let mut tries = 0u32;
    loop {
        if let Some(begun) = tree.read_begin() {
            if !serving() {
                return Consistent::NotServing;
            }
            let zxid = applied.load(Acquire);
            let pinned = gather(tree, req);
            if tree.read_valid(begun) {
                let (frame, _) = reply(&pinned, cfg, ids, xid, zxid, req);
                return Consistent::Answered { frame, zxid };
            }
        }
        tries += 1;
        if started.elapsed() >= BUSY_AFTER {
            return Consistent::Busy;
        }
        back_off(tries);
    }
}

/// How long a reactor tries for a consistent view before handing the read to the writer:
/// its other connections wait meanwhile.
const BUSY_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// Between tries of a consistent read: spin while the writer's publish is short, then
/// give up the core, for a writer that was preempted mid-publish.
fn back_off(tries: u32) {
    if tries < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}
