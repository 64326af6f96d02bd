//! Prep: a request and the tree (with every earlier, not yet applied txn of the batch) in,
//! a txn or a client error out. The checks and their order are ZooKeeper's
//! PrepRequestProcessor's, so clients see the same error codes for the same mistakes.
//!
//! Holds: prep never changes the published tree; it stages its txn in an `Overlay` so the
//! next request of the batch sees it (sequence numbers, versions, existence).

use super::{apply, Store, Trigger, Txn};
use crate::acl;
use crate::proto::ops::{op, perm, CreateMode, ZkError, CONTAINER_OWNER, TTL_MAX_MS};
use crate::proto::records::{CreateRequest, Id, MultiOp, Request};
use crate::tree::path::validate_path;
use crate::tree::FastMap;
use crate::tree::{split_path, DataTree};
use crate::tree::{AclRef, NodeRef, PathRef};

/// Read-only view of the published tree as a `Store`.
pub struct TreeView<'a>(pub &'a DataTree);

impl Store for TreeView<'_> {
    fn get(&self, path: &str) -> Option<NodeRef> {
        self.0.get(path)
    }
    fn put(&mut self, _: &str, _: NodeRef) {
        unreachable!("TreeView is read-only")
    }
    fn remove(&mut self, _: &str) {
        unreachable!("TreeView is read-only")
    }
}

/// Staged changes over a base store.
pub struct Overlay<'a, B: Store> {
    base: &'a B,
    changes: FastMap<String, Option<NodeRef>>,
}

impl<'a, B: Store> Overlay<'a, B> {
    pub fn new(base: &'a B) -> Self {
        Overlay {
            base,
            changes: FastMap::default(),
        }
    }
    pub fn changes_mut(&mut self) -> &mut FastMap<String, Option<NodeRef>> {
        &mut self.changes
    }
}

impl<B: Store> Store for Overlay<'_, B> {
    fn get(&self, path: &str) -> Option<NodeRef> {
        match self.changes.get(path) {
            Some(n) => n.clone(),
            None => self.base.get(path),
        }
    }
    fn put(&mut self, path: &str, node: NodeRef) {
        self.changes.insert(path.to_owned(), Some(node));
    }
    fn remove(&mut self, path: &str) {
        self.changes.insert(path.to_owned(), None);
    }
}

pub struct PrepCtx<'a> {
    pub session: i64,
    pub ids: &'a [Id],
    pub extended_types: bool,
}

fn node(store: &impl Store, path: &str) -> Result<NodeRef, ZkError> {
    store.get(path).ok_or(ZkError::NoNode)
}

fn check_version(current: i32, expected: i32) -> Result<i32, ZkError> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    Ok(if current == i32::MAX { 1 } else { current + 1 })
}

fn valid(path: &str) -> Result<(), ZkError> {
    validate_path(path).map_err(|_| ZkError::BadArguments)
}

fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

fn parent_of(path: &str) -> Result<&str, ZkError> {
    if path.contains('\0') {
        return Err(ZkError::BadArguments);
    }
    if path == "/" {
        // A sequential create of "/" names a child of the root.
        return Ok("/");
    }
    split_path(path)
        .map(|(p, _)| p)
        .ok_or(ZkError::BadArguments)
}

fn prep_create(
    ctx: &PrepCtx,
    store: &impl Store,
    opcode: i32,
    req: &CreateRequest,
) -> Result<Txn, ZkError> {
    let mode = CreateMode::from_flags(req.flags).ok_or(ZkError::BadArguments)?;
    if mode.ttl && !ctx.extended_types {
        return Err(ZkError::Unimplemented);
    }
    if mode.ttl {
        if req.ttl <= 0 || req.ttl > TTL_MAX_MS {
            return Err(ZkError::BadArguments);
        }
    } else if req.ttl >= 0 {
        return Err(ZkError::BadArguments);
    }
    if (opcode == op::CREATE_TTL) != mode.ttl {
        return Err(ZkError::BadArguments);
    }
    let parent_path = parent_of(&req.path)?;
    let acl = acl::fixup(&req.acl, ctx.ids)?;
    let parent = node(store, parent_path)?;
    acl::check(&parent.acl, perm::CREATE, ctx.ids)?;
    let mut path = req.path.clone();
    if mode.sequential {
        path.push_str(&format!("{:010}", parent.cversion));
    }
    valid(&path)?;
    if store.get(&path).is_some() {
        return Err(ZkError::NodeExists);
    }
    let owner = parent.ephemeral_owner;
    if owner != 0
        && owner != CONTAINER_OWNER
        && crate::proto::ops::ttl_of_owner(owner, ctx.extended_types).is_none()
    {
        return Err(ZkError::NoChildrenForEphemerals);
    }
    let parent_cversion = parent.cversion + 1;
    let data = req.data.clone();
    Ok(match opcode {
        op::CREATE_CONTAINER => Txn::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        },
        op::CREATE_TTL => Txn::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl: req.ttl,
        },
        _ => Txn::Create {
            op: opcode,
            path,
            data,
            acl,
            ephemeral: mode.ephemeral,
            parent_cversion,
        },
    })
}

fn prep_delete(
    ctx: &PrepCtx,
    store: &impl Store,
    path: &str,
    version: i32,
) -> Result<Txn, ZkError> {
    // ZooKeeper's order (PrepRequestProcessor): the parent is what precedes the last
    // slash, with no other check of the path; then the parent's DELETE permission, and
    // only then the node. "/a/" is NONODE (its parent is /a, its name empty).
    let last_slash = match path.rfind('/') {
        Some(i) if !path.contains('\0') && !is_special(path) => i,
        _ => return Err(ZkError::BadArguments),
    };
    let parent_path = if last_slash == 0 {
        "/"
    } else {
        &path[..last_slash]
    };
    let parent = node(store, parent_path)?;
    acl::check(&parent.acl, perm::DELETE, ctx.ids)?;
    let n = node(store, path)?;
    check_version(n.version, version)?;
    if n.num_children() > 0 {
        return Err(ZkError::NotEmpty);
    }
    Ok(Txn::Delete {
        op: op::DELETE,
        path: path.to_owned(),
    })
}

fn prep_set_data(
    ctx: &PrepCtx,
    store: &impl Store,
    path: &str,
    data: &Option<Vec<u8>>,
    version: i32,
) -> Result<Txn, ZkError> {
    valid(path)?;
    let n = node(store, path)?;
    acl::check(&n.acl, perm::WRITE, ctx.ids)?;
    let version = check_version(n.version, version)?;
    Ok(Txn::SetData {
        path: path.to_owned(),
        data: data.clone(),
        version,
    })
}

fn prep_check(ctx: &PrepCtx, store: &impl Store, path: &str, version: i32) -> Result<Txn, ZkError> {
    valid(path)?;
    let n = node(store, path)?;
    acl::check(&n.acl, perm::READ, ctx.ids)?;
    check_version(n.version, version)?;
    Ok(Txn::Check {
        path: path.to_owned(),
        version,
    })
}

/// A deleteContainer issued by the reaper: only containers and TTL nodes, only when empty.
pub fn prep_delete_container(
    store: &impl Store,
    path: &str,
    extended_types: bool,
) -> Result<Txn, ZkError> {
    let n = node(store, path)?;
    if n.num_children() > 0 {
        return Err(ZkError::NotEmpty);
    }
    let owner = n.ephemeral_owner;
    if owner != CONTAINER_OWNER && crate::proto::ops::ttl_of_owner(owner, extended_types).is_none()
    {
        return Err(ZkError::BadVersion);
    }
    Ok(Txn::Delete {
        op: op::DELETE_CONTAINER,
        path: path.to_owned(),
    })
}

fn prep_op(ctx: &PrepCtx, store: &impl Store, req: &Request) -> Result<Txn, ZkError> {
    match req {
        Request::Create { op, req } => prep_create(ctx, store, *op, req),
        Request::Delete { path, version } => prep_delete(ctx, store, path, *version),
        Request::SetData {
            path,
            data,
            version,
        } => prep_set_data(ctx, store, path, data, *version),
        Request::SetAcl {
            path,
            acl: list,
            version,
        } => {
            valid(path)?;
            let list = acl::fixup(list, ctx.ids)?;
            let n = node(store, path)?;
            acl::check(&n.acl, perm::ADMIN, ctx.ids)?;
            let version = check_version(n.aversion, *version)?;
            Ok(Txn::SetAcl {
                path: path.clone(),
                acl: list,
                version,
            })
        }
        Request::Check { path, version } => prep_check(ctx, store, path, *version),
        Request::Refused { err, .. } => Err(*err),
        _ => Err(ZkError::Unimplemented),
    }
}

fn multi_op_request(op: &MultiOp) -> Request {
    match op {
        MultiOp::Create { op, req } => Request::Create {
            op: *op,
            req: req.clone(),
        },
        MultiOp::Delete { path, version } => Request::Delete {
            path: path.clone(),
            version: *version,
        },
        MultiOp::SetData {
            path,
            data,
            version,
        } => Request::SetData {
            path: path.clone(),
            data: data.clone(),
            version: *version,
        },
        MultiOp::Check { path, version } => Request::Check {
            path: path.clone(),
            version: *version,
        },
        MultiOp::GetData { .. } | MultiOp::GetChildren { .. } => {
            unreachable!("multiRead ops are decoded separately")
        }
    }
}

/// Preps `req` and stages the resulting txn in `store`. A rejected request becomes an
/// error txn (ZooKeeper logs those too, so zxids match its numbering). With the txn, a
/// multi's per-op nodes for its reply (`apply_with_results`).
pub fn prep_and_stage<S: Store>(
    ctx: &PrepCtx,
    store: &mut S,
    hdr: &super::TxnHeader,
    req: &Request,
    triggers: &mut Vec<Trigger>,
) -> (Txn, Vec<Option<NodeRef>>) {
    let txn = match req {
        Request::Multi { ops } => {
            let mut layer = Overlay::new(&*store);
            let mut txns = Vec::with_capacity(ops.len());
            let mut failed: Option<(usize, ZkError)> = None;
            let mut scratch: Vec<Trigger> = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                match prep_op(ctx, &layer, &multi_op_request(op)) {
                    Ok(t) => {
                        let _ = apply(&mut layer, hdr, &t, &mut scratch);
                        txns.push(t);
                    }
                    Err(e) => {
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            drop(layer);
            match failed {
                // Applied again below, to `store`, so that what it records is complete.
                None => Txn::Multi(txns),
                Some((at, e)) => Txn::Multi(
                    (0..ops.len())
                        .map(|i| Txn::Error {
                            err: match i.cmp(&at) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => e.code(),
                                std::cmp::Ordering::Greater => ZkError::RuntimeInconsistency.code(),
                            },
                        })
                        .collect(),
                ),
            }
        }
        _ => match prep_op(ctx, store, req) {
            Ok(t) => t,
            Err(e) => Txn::Error { err: e.code() },
        },
    };
    let results = super::apply_with_results(store, hdr, &txn, triggers);
    (txn, results)
}

/// One change apply made to a store, recorded at prep time so that the commit can publish
/// the very same node versions without applying the txn a second time.
#[derive(Debug, Clone)]
pub enum Change {
    Put(String, NodeRef),
    PutNew(PathRef, NodeRef),
    Remove(String),
    Owner(String, i64, bool),
    SessionCreated(i64, i32),
    SessionClosed(i64),
}

/// A store that passes everything to `inner` and records it; ACL lists are interned in
/// `acls` so the recorded nodes are the ones to publish.
pub struct Recorder<'a, S: Store> {
    pub inner: &'a mut S,
    pub acls: &'a mut FastMap<Vec<crate::proto::records::Acl>, AclRef>,
    pub changes: Vec<Change>,
    /// How much the recorded changes move the tree digest (tree/digest.rs).
    pub digest_delta: i64,
}

impl<S: Store> Recorder<'_, S> {
    fn moved(&mut self, path: &str, new: Option<&NodeRef>) {
        let old = self.inner.get(path).map_or(0, |o| o.digest as i64);
        let new = new.map_or(0, |n| n.digest as i64);
        self.digest_delta = self.digest_delta.wrapping_add(new).wrapping_sub(old);
    }
}

impl<S: Store> Store for Recorder<'_, S> {
    fn get(&self, path: &str) -> Option<NodeRef> {
        self.inner.get(path)
    }
    fn put(&mut self, path: &str, node: NodeRef) {
        self.moved(path, Some(&node));
        self.inner.put(path, node.clone());
        self.changes.push(Change::Put(path.to_owned(), node));
    }
    fn put_new(&mut self, key: PathRef, node: NodeRef) {
        self.moved(&key, Some(&node));
        self.inner.put_new(key.clone(), node.clone());
        self.changes.push(Change::PutNew(key, node));
    }
    fn remove(&mut self, path: &str) {
        self.moved(path, None);
        self.inner.remove(path);
        self.changes.push(Change::Remove(path.to_owned()));
    }
    fn owner_changed(&mut self, path: &str, owner: i64, created: bool) {
        self.changes
            .push(Change::Owner(path.to_owned(), owner, created));
    }
    fn session_created(&mut self, session: i64, timeout_ms: i32) {
        self.changes
            .push(Change::SessionCreated(session, timeout_ms));
    }
    fn session_closed(&mut self, session: i64) {
        self.changes.push(Change::SessionClosed(session));
    }
    fn intern_acl(&mut self, acl: &[crate::proto::records::Acl]) -> AclRef {
        intern_acl(self.acls, acl)
    }
}

/// The shared copy of an ACL list.
pub fn intern_acl(
    cache: &mut FastMap<Vec<crate::proto::records::Acl>, AclRef>,
    acl: &[crate::proto::records::Acl],
) -> AclRef {
    if let Some(a) = cache.get(acl) {
        return a.clone();
    }
    let a = crate::tree::AclList::shared(acl);
    cache.insert(acl.to_vec(), a.clone());
    a
}
