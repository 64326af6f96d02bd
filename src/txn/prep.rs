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
    pub schemes: crate::acl::Schemes,
}

fn node(store: &impl Store, path: &str) -> Result<NodeRef, ZkError> {
    store.get(path).ok_or(ZkError::NoNode)
}

fn check_version(current: i32, expected: i32) -> Result<i32, ZkError> {
    if expected != -1 && expected != current {
        return Err(ZkError::BadVersion);
    }
    // ZooKeeper's checkAndIncVersion: `currentVersion + 1` on a Java int (it wraps).
    Ok(current.wrapping_add(1))
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
    let acl = acl::fixup(&req.acl, ctx.ids, ctx.schemes)?;
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
    if crate::proto::ops::ephemeral_session(parent.ephemeral_owner, ctx.extended_types).is_some() {
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
            let list = acl::fixup(list, ctx.ids, ctx.schemes)?;
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

/// In the style of ZooKeeper's PrepRequestProcessorTest: requests prepped in sequence on
/// one overlay (as one batch of the writer), each checked for the txn or the error
/// ZooKeeper's prep gives, and for what later requests of the batch see.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Acl;
    use crate::txn::{initial_tree, TxnHeader};

    const ALICE: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="; // alice:secret

    fn open() -> Vec<Acl> {
        acl::open_acl()
    }

    fn digest_only(perms: i32) -> Vec<Acl> {
        vec![Acl {
            perms,
            id: Id::new("digest", ALICE),
        }]
    }

    fn create(path: &str, flags: i32, acl: Vec<Acl>) -> Request {
        Request::Create {
            op: op::CREATE,
            req: CreateRequest {
                path: path.into(),
                data: Some(b"d".to_vec()),
                acl,
                flags,
                ttl: -1,
            },
        }
    }

    /// One batch: prep each request on the same overlay, as the writer does.
    struct Batch<'t> {
        base: TreeView<'t>,
        staged: FastMap<String, Option<NodeRef>>,
        zxid: i64,
    }

    impl<'t> Batch<'t> {
        fn new(tree: &'t DataTree) -> Self {
            Batch {
                base: TreeView(tree),
                staged: FastMap::default(),
                zxid: 100,
            }
        }
        fn prep_as(&mut self, session: i64, ids: &[Id], req: &Request) -> Txn {
            let mut ov = Overlay::new(&self.base);
            std::mem::swap(ov.changes_mut(), &mut self.staged);
            self.zxid += 1;
            let hdr = TxnHeader {
                client_id: session,
                cxid: 1,
                zxid: self.zxid,
                time: 1,
                op: 0,
            };
            let ctx = PrepCtx {
                session,
                ids,
                extended_types: true,
                schemes: Default::default(),
            };
            let (txn, _) = prep_and_stage(&ctx, &mut ov, &hdr, req, &mut Vec::new());
            std::mem::swap(ov.changes_mut(), &mut self.staged);
            txn
        }
        fn prep(&mut self, req: &Request) -> Txn {
            self.prep_as(7, &[Id::new("ip", "127.0.0.1")], req)
        }
        fn err(&mut self, req: &Request) -> i32 {
            match self.prep(req) {
                Txn::Error { err } => err,
                other => panic!("expected an error, prepped {other:?}"),
            }
        }
        fn node(&self, path: &str) -> Option<NodeRef> {
            match self.staged.get(path) {
                Some(n) => n.clone(),
                None => self.base.get(path),
            }
        }
    }

    #[test]
    fn sequential_names_come_from_the_parent_cversion_and_later_requests_see_earlier_ones() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        assert!(matches!(
            b.prep(&create("/p", 0, open())),
            Txn::Create { .. }
        ));
        for want in ["/p/s-0000000000", "/p/s-0000000001"] {
            match b.prep(&create("/p/s-", 2, open())) {
                Txn::Create {
                    path,
                    parent_cversion,
                    ..
                } => {
                    assert_eq!(path, want);
                    assert_eq!(parent_cversion, b.node("/p").unwrap().cversion);
                }
                other => panic!("{other:?}"),
            }
        }
        // The batch's staged nodes count: a second /p exists already.
        assert_eq!(b.err(&create("/p", 0, open())), ZkError::NodeExists.code());
        assert_eq!(b.err(&create("/none/x", 0, open())), ZkError::NoNode.code());
    }

    #[test]
    fn create_checks_in_zookeepers_order() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        let bad_args = ZkError::BadArguments.code();
        // Flags, then TTL, then the path, then the ACL, then the parent.
        assert_eq!(b.err(&create("/x", 99, open())), bad_args);
        // The parent is what precedes the last slash, checked before the whole path.
        assert_eq!(b.err(&create("/x/", 0, open())), ZkError::NoNode.code());
        b.prep(&create("/q", 0, open()));
        assert_eq!(b.err(&create("/q/", 0, open())), bad_args);
        // "/": its parent is the root itself, which exists; so does "/".
        assert_eq!(b.err(&create("/", 0, open())), ZkError::NodeExists.code());
        assert_eq!(
            b.err(&create("/none/x", 0, vec![])),
            ZkError::InvalidAcl.code(),
            "the ACL is checked before the parent"
        );
        assert_eq!(
            b.err(&create(
                "/x",
                0,
                vec![Acl {
                    perms: 31,
                    id: Id::new("auth", "")
                }]
            )),
            ZkError::InvalidAcl.code(),
            "auth: needs a digest identity"
        );
        // A TTL on a create opcode, or none on createTTL.
        let mut ttl = create("/t", 5, open()); // persistent with TTL
        assert_eq!(b.err(&ttl), bad_args, "TTL mode with ttl -1");
        if let Request::Create { op: o, req } = &mut ttl {
            *o = op::CREATE_TTL;
            req.ttl = 1000;
        }
        assert!(matches!(b.prep(&ttl), Txn::CreateTtl { ttl: 1000, .. }));
        // No children under an ephemeral, but under a container or TTL node.
        assert!(matches!(
            b.prep(&create("/e", 1, open())),
            Txn::Create {
                ephemeral: true,
                ..
            }
        ));
        assert_eq!(
            b.err(&create("/e/c", 0, open())),
            ZkError::NoChildrenForEphemerals.code()
        );
        assert!(matches!(
            b.prep(&create("/t/c", 0, open())),
            Txn::Create { .. }
        ));
    }

    #[test]
    fn acls_are_checked_against_the_session_ids() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        let alice = [Id::new("ip", "127.0.0.1"), Id::new("digest", ALICE)];
        assert!(matches!(
            b.prep_as(1, &alice, &create("/a", 0, digest_only(perm::ALL))),
            Txn::Create { .. }
        ));
        // Others: no CREATE under /a, no WRITE on it; delete checks the parent's DELETE
        // before the node exists (NOAUTH, not NONODE).
        let no_auth = ZkError::NoAuth.code();
        assert_eq!(b.err(&create("/a/b", 0, open())), no_auth);
        let set = Request::SetData {
            path: "/a".into(),
            data: None,
            version: -1,
        };
        assert_eq!(b.err(&set), no_auth);
        let del = Request::Delete {
            path: "/a/missing".into(),
            version: -1,
        };
        assert_eq!(b.err(&del), no_auth);
        // auth: takes the session's digest identities.
        let auth = vec![Acl {
            perms: perm::READ,
            id: Id::new("auth", ""),
        }];
        match b.prep_as(1, &alice, &create("/mine", 0, auth)) {
            Txn::Create { acl, .. } => assert_eq!(acl, digest_only(perm::READ)),
            other => panic!("{other:?}"),
        }
        // The owner may; and a super user may anything.
        assert!(matches!(b.prep_as(1, &alice, &set), Txn::SetData { .. }));
        let root = [Id::new("super", "")];
        assert!(matches!(
            b.prep_as(
                2,
                &root,
                &Request::Delete {
                    path: "/mine".into(),
                    version: -1
                }
            ),
            Txn::Delete { .. }
        ));
    }

    #[test]
    fn delete_follows_zookeepers_order_and_paths() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        b.prep(&create("/d", 0, open()));
        b.prep(&create("/d/c", 0, open()));
        let del = |path: &str, version| Request::Delete {
            path: path.into(),
            version,
        };
        assert_eq!(
            b.err(&del("/d/", -1)),
            ZkError::NoNode.code(),
            "trailing slash"
        );
        assert_eq!(b.err(&del("/d", -1)), ZkError::NotEmpty.code());
        assert_eq!(b.err(&del("/d/c", 3)), ZkError::BadVersion.code());
        for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            assert_eq!(b.err(&del(special, -1)), ZkError::BadArguments.code());
        }
        assert!(matches!(b.prep(&del("/d/c", 0)), Txn::Delete { .. }));
        // The batch sees the delete: /d is empty now.
        assert!(matches!(b.prep(&del("/d", -1)), Txn::Delete { .. }));
        assert!(b.node("/d").is_none());
    }

    #[test]
    fn versions_are_checked_and_increase_as_zookeepers_do() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        b.prep(&create("/v", 0, open()));
        let set = |version| Request::SetData {
            path: "/v".into(),
            data: Some(b"x".to_vec()),
            version,
        };
        assert!(matches!(b.prep(&set(0)), Txn::SetData { version: 1, .. }));
        assert_eq!(b.err(&set(0)), ZkError::BadVersion.code());
        assert!(matches!(b.prep(&set(-1)), Txn::SetData { version: 2, .. }));
        // checkAndIncVersion is `current + 1` on a Java int: past i32::MAX it wraps.
        assert_eq!(check_version(i32::MAX, -1), Ok(i32::MIN));
        let acl = Request::SetAcl {
            path: "/v".into(),
            acl: open(),
            version: 5,
        };
        assert_eq!(
            b.err(&acl),
            ZkError::BadVersion.code(),
            "setACL checks aversion"
        );
    }

    #[test]
    fn a_multi_stops_at_its_first_failure_and_reports_each_op() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        let multi = Request::Multi {
            ops: vec![
                MultiOp::Create {
                    op: op::CREATE,
                    req: CreateRequest {
                        path: "/m".into(),
                        data: None,
                        acl: open(),
                        flags: 0,
                        ttl: -1,
                    },
                },
                MultiOp::Check {
                    path: "/m".into(),
                    version: 0,
                },
                MultiOp::Delete {
                    path: "/missing".into(),
                    version: -1,
                },
                MultiOp::SetData {
                    path: "/m".into(),
                    data: None,
                    version: -1,
                },
            ],
        };
        match b.prep(&multi) {
            Txn::Multi(txns) => {
                let errs: Vec<i32> = txns
                    .iter()
                    .map(|t| match t {
                        Txn::Error { err } => *err,
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(
                    errs,
                    vec![
                        0,
                        0,
                        ZkError::NoNode.code(),
                        ZkError::RuntimeInconsistency.code()
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            b.node("/m").is_none(),
            "nothing of a failed multi is staged"
        );
        // Without the failing op it goes through, the check seeing the create.
        let Request::Multi { mut ops } = multi else {
            unreachable!()
        };
        ops.remove(2);
        match b.prep(&Request::Multi { ops }) {
            Txn::Multi(txns) => assert!(matches!(
                txns.as_slice(),
                [
                    Txn::Create { .. },
                    Txn::Check { .. },
                    Txn::SetData { version: 1, .. }
                ]
            )),
            other => panic!("{other:?}"),
        }
        assert_eq!(b.node("/m").unwrap().version, 1);
    }

    #[test]
    fn refused_requests_become_error_txns() {
        let tree = initial_tree();
        let mut b = Batch::new(&tree);
        let refused = Request::Refused {
            write: true,
            err: ZkError::MarshallingError,
        };
        assert_eq!(b.err(&refused), ZkError::MarshallingError.code());
    }
}
