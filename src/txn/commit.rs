//! Commit: one committed txn applied to the published tree and the indexes beside it
//! (ephemerals, containers, TTLs, the ACL cache, data size, digest). The one way a txn
//! reaches the tree: the writer after a quorum (or the disk) has it, a learner on the
//! leader's COMMIT, and start-up recovery replaying the log, all call `apply`.
//!
//! Holds: a txn's changes are held and published in one window of the tree (`publish`),
//! after its watch events are queued (ARCHITECTURE.md invariant 5); the indexes move
//! with the changes, through the same `Store` calls the tree's changes make.

use super::prep::Change;
use super::{apply_with_results, Store, Trigger, Txn, TxnHeader};
use crate::proto::ops::{ttl_of_owner, CONTAINER_OWNER};
use crate::tree::{AclRef, DataTree, FastMap, NodeRef, PathRef};
use crate::types::SessionId;
use std::collections::{BTreeSet, HashMap};

/// Indexes the writer keeps beside the tree.
#[derive(Default)]
pub struct Indexes {
    pub ephemerals: HashMap<SessionId, BTreeSet<String>>,
    pub containers: BTreeSet<String>,
    pub ttls: BTreeSet<String>,
    pub ephemeral_count: u64,
    /// One shared copy of each distinct ACL list (ZooKeeper's ACL cache).
    pub acls: FastMap<Vec<crate::proto::records::Acl>, AclRef>,
    /// Paths plus data of every node, as `zk_approximate_data_size` reports it.
    pub data_bytes: i64,
    /// ZooKeeper's tree digest of the published tree (tree/digest.rs).
    pub digest: i64,
}

/// What applying one committed txn did, held back from readers until `publish`.
pub struct Applied {
    /// The txn's node versions, in order, for one publish window.
    pub held: Vec<(PathRef, Option<NodeRef>)>,
    /// The watches it triggers.
    pub triggers: Vec<Trigger>,
    /// For a multi, each op's node as that op left it (its reply's Stats).
    pub results: Vec<Option<NodeRef>>,
    pub sessions_created: Vec<(SessionId, i32)>,
    pub sessions_closed: Vec<SessionId>,
}

/// How a committed txn comes to `apply`.
pub enum Source<'t> {
    /// Applied here and now: a learner's COMMIT, a txn replayed at start-up.
    Txn(&'t Txn),
    /// Prepped on this server (the leader, standalone): the changes, triggers and
    /// results prep recorded, published as they are (no second apply).
    Prepped {
        changes: Vec<Change>,
        triggers: Vec<Trigger>,
        results: Vec<Option<NodeRef>>,
    },
}

/// Applies one committed txn to `tree` (held, not yet visible) and `idx`.
pub fn apply(
    tree: &DataTree,
    idx: &mut Indexes,
    extended_types: bool,
    hdr: &TxnHeader,
    source: Source,
) -> Applied {
    let mut store = Committed::new(tree, idx, extended_types);
    let (triggers, results) = match source {
        Source::Txn(txn) => {
            let mut triggers = Vec::new();
            // A txn that does not fit (a create over an existing node, replayed over a
            // fuzzy snapshot) changes nothing else.
            let results = apply_with_results(&mut store, hdr, txn, &mut triggers);
            (triggers, results)
        }
        Source::Prepped {
            changes,
            triggers,
            results,
        } => {
            for c in changes {
                match c {
                    Change::Put(path, n) => store.put(&path, n),
                    Change::PutNew(key, n) => store.put_new(key, n),
                    Change::Remove(path) => store.remove(&path),
                    Change::Owner(path, owner, created) => {
                        store.owner_changed(&path, owner, created)
                    }
                    Change::SessionCreated(s, t) => store.session_created(s, t),
                    Change::SessionClosed(s) => store.session_closed(s),
                }
            }
            (triggers, results)
        }
    };
    Applied {
        held: std::mem::take(&mut store.held),
        triggers,
        results,
        sessions_created: std::mem::take(&mut store.sessions_created),
        sessions_closed: std::mem::take(&mut store.sessions_closed),
    }
}

/// Makes `held` visible, all at once (one publish window of the tree), and runs `also`
/// in the same window: what it stores (the applied zxid) becomes visible together with
/// the changes.
pub fn publish(tree: &DataTree, held: Vec<(PathRef, Option<NodeRef>)>, also: impl FnOnce()) {
    use crate::mutation::{self, Mutation};
    if mutation::active(Mutation::PartialPublish) {
        for (p, n) in held {
            tree.publish(|| match n {
                Some(n) => tree.put_path(p, n),
                None => tree.remove(&p),
            });
            mutation::published(tree);
        }
        tree.publish(also);
    } else {
        tree.publish(|| {
            for (p, n) in held {
                match n {
                    Some(n) => tree.put_path(p, n),
                    None => tree.remove(&p),
                }
            }
            also();
        });
    }
    mutation::published(tree);
}

/// The published tree as apply's store: writes are held back until `publish`, so that the
/// txn's watch events can be queued first.
pub struct Committed<'a> {
    pub tree: &'a DataTree,
    pub idx: &'a mut Indexes,
    pub extended_types: bool,
    held: Vec<(PathRef, Option<NodeRef>)>,
    sessions_created: Vec<(SessionId, i32)>,
    sessions_closed: Vec<SessionId>,
    /// Where each path's latest change is in `held`, once a txn has made more than a few
    /// (a closeSession deletes every ephemeral of the session: scanning `held` for each
    /// would be quadratic). Built by `hold`; `held` replaced from outside is not indexed.
    held_at: FastMap<PathRef, usize>,
}

/// `held` is indexed from this many changes on.
const HELD_INDEX_FROM: usize = 16;

impl<'a> Committed<'a> {
    pub fn new(tree: &'a DataTree, idx: &'a mut Indexes, extended_types: bool) -> Self {
        Committed {
            tree,
            idx,
            extended_types,
            held: Vec::new(),
            sessions_created: Vec::new(),
            sessions_closed: Vec::new(),
            held_at: FastMap::default(),
        }
    }

    fn hold(&mut self, key: PathRef, node: Option<NodeRef>) {
        self.held.push((key, node));
        let n = self.held.len();
        if n == HELD_INDEX_FROM {
            for (i, (k, _)) in self.held.iter().enumerate() {
                self.held_at.insert(k.clone(), i);
            }
        } else if n > HELD_INDEX_FROM {
            self.held_at.insert(self.held[n - 1].0.clone(), n - 1);
        }
    }
    /// Makes the held changes visible, all at once (one publish window of the tree).
    pub fn publish(&mut self) {
        self.publish_with(|| {});
    }

    /// As `publish`, and runs `also` in the same window: what it stores (the applied
    /// zxid) becomes visible together with the changes.
    pub fn publish_with(&mut self, also: impl FnOnce()) {
        self.held_at.clear();
        publish(self.tree, std::mem::take(&mut self.held), also);
    }
}

impl Store for Committed<'_> {
    fn get(&self, path: &str) -> Option<NodeRef> {
        if self.held_at.is_empty() {
            if let Some((_, n)) = self.held.iter().rev().find(|(p, _)| &**p == path) {
                return n.clone();
            }
        } else if let Some(&i) = self.held_at.get(path) {
            return self.held[i].1.clone();
        }
        self.tree.get(path)
    }
    fn put(&mut self, path: &str, node: NodeRef) {
        let (old, old_digest) = self.get(path).map_or((0, 0), |o| {
            ((path.len() + o.data_len()) as i64, o.digest as i64)
        });
        self.idx.data_bytes += (path.len() + node.data_len()) as i64 - old;
        self.idx.digest = self
            .idx
            .digest
            .wrapping_add(node.digest as i64)
            .wrapping_sub(old_digest);
        self.hold(PathRef::from(path), Some(node));
    }
    fn put_new(&mut self, key: PathRef, node: NodeRef) {
        self.idx.data_bytes += (key.len() + node.data_len()) as i64;
        self.idx.digest = self.idx.digest.wrapping_add(node.digest as i64);
        self.hold(key, Some(node));
    }
    fn remove(&mut self, path: &str) {
        let (old, old_digest) = self.get(path).map_or((0, 0), |o| {
            ((path.len() + o.data_len()) as i64, o.digest as i64)
        });
        self.idx.data_bytes -= old;
        self.idx.digest = self.idx.digest.wrapping_sub(old_digest);
        self.hold(PathRef::from(path), None);
    }
    fn owner_changed(&mut self, path: &str, owner: i64, created: bool) {
        let set = if owner == CONTAINER_OWNER {
            &mut self.idx.containers
        } else if ttl_of_owner(owner, self.extended_types).is_some() {
            &mut self.idx.ttls
        } else {
            let e = self.idx.ephemerals.entry(owner).or_default();
            if created {
                self.idx.ephemeral_count += u64::from(e.insert(path.to_owned()));
            } else {
                self.idx.ephemeral_count -= u64::from(e.remove(path));
                if e.is_empty() {
                    self.idx.ephemerals.remove(&owner);
                }
            }
            return;
        };
        if created {
            set.insert(path.to_owned());
        } else {
            set.remove(path);
        }
    }
    fn intern_acl(&mut self, acl: &[crate::proto::records::Acl]) -> AclRef {
        super::prep::intern_acl(&mut self.idx.acls, acl)
    }
    fn session_created(&mut self, session: i64, timeout_ms: i32) {
        self.sessions_created.push((session, timeout_ms));
    }
    fn session_closed(&mut self, session: i64) {
        self.sessions_closed.push(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ops::{op, ZkError};
    use crate::proto::records::{CreateRequest, Id, MultiOp, Request};
    use crate::txn::prep::{prep_and_stage, Overlay, PrepCtx, Recorder, TreeView};
    use crate::txn::{initial_tree, TxnHeader};

    fn create(path: &str, flags: i32) -> CreateRequest {
        CreateRequest {
            path: path.into(),
            data: Some(path.as_bytes().to_vec()),
            acl: crate::acl::open_acl(),
            flags,
            ttl: -1,
        }
    }

    fn tree_of(t: &DataTree) -> Vec<(String, crate::proto::records::Stat, Option<Vec<u8>>)> {
        let mut v = Vec::new();
        t.walk(|p, n| v.push((p.to_owned(), n.stat(true), n.data().map(<[u8]>::to_vec))));
        v
    }

    /// The one apply, both ways in: what the leader publishes from prep's recorded
    /// changes (`Source::Prepped`) and what a learner or recovery makes of the same txn
    /// (`Source::Txn`) are the same tree, the same indexes and the same results.
    #[test]
    fn prepped_and_replayed_txns_commit_alike() {
        let (leader, learner) = (initial_tree(), initial_tree());
        let (mut li, mut ri) = (Indexes::default(), Indexes::default());
        let mut staged_acls = FastMap::default();
        let ids = [Id::new("ip", "127.0.0.1")];
        let reqs = [
            Request::Create {
                op: op::CREATE,
                req: create("/a", 0),
            },
            Request::Create {
                op: op::CREATE,
                req: create("/a/e-", 3),
            },
            Request::Create {
                op: op::CREATE_CONTAINER,
                req: create("/c", 4),
            },
            Request::Multi {
                ops: vec![
                    MultiOp::Create {
                        op: op::CREATE2,
                        req: create("/c/x", 0),
                    },
                    MultiOp::SetData {
                        path: "/a".into(),
                        data: Some(b"new".to_vec()),
                        version: -1,
                    },
                    MultiOp::SetData {
                        path: "/a".into(),
                        data: None,
                        version: -1,
                    },
                ],
            },
            Request::Delete {
                path: "/c/x".into(),
                version: -1,
            },
            Request::Refused {
                write: true,
                err: ZkError::MarshallingError,
            },
        ];
        for (i, req) in reqs.iter().enumerate() {
            let hdr = TxnHeader {
                client_id: 42,
                cxid: i as i32,
                zxid: 10 + i as i64,
                time: 1000 + i as i64,
                op: 0,
            };
            let base = TreeView(&leader);
            let mut ov = Overlay::new(&base);
            let mut rec = Recorder {
                inner: &mut ov,
                acls: &mut staged_acls,
                changes: Vec::new(),
                digest_delta: 0,
            };
            let ctx = PrepCtx {
                session: 42,
                ids: &ids,
                extended_types: true,
                schemes: Default::default(),
            };
            let mut triggers = Vec::new();
            let (txn, results) = prep_and_stage(&ctx, &mut rec, &hdr, req, &mut triggers);
            let changes = std::mem::take(&mut rec.changes);
            let prepped = Source::Prepped {
                changes,
                triggers,
                results,
            };
            let a = apply(&leader, &mut li, true, &hdr, prepped);
            let b = apply(&learner, &mut ri, true, &hdr, Source::Txn(&txn));
            let stats = |r: &[Option<NodeRef>]| -> Vec<_> {
                r.iter().map(|n| n.as_ref().map(|n| n.stat(true))).collect()
            };
            assert_eq!(stats(&a.results), stats(&b.results), "request {i}");
            let ev =
                |t: &[Trigger]| -> Vec<_> { t.iter().map(|t| (t.event, t.path.clone())).collect() };
            assert_eq!(ev(&a.triggers), ev(&b.triggers), "request {i}");
            publish(&leader, a.held, || {});
            publish(&learner, b.held, || {});
        }
        assert_eq!(tree_of(&leader), tree_of(&learner));
        assert_eq!(li.ephemerals, ri.ephemerals);
        assert_eq!(li.containers, ri.containers);
        assert_eq!((li.digest, li.data_bytes), (ri.digest, ri.data_bytes));
        assert_eq!(li.ephemerals.get(&42).map(|e| e.len()), Some(1));
        assert!(li.containers.contains("/c"));
    }
}
