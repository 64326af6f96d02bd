//! Txns: what a write does to the tree, in Apache ZooKeeper's txn record formats.
//!
//! Record = TxnHeader{long clientId, int cxid, long zxid, long time, int type} · Body(type)
//! Body(-10) = int timeOut;  Body(-11) = vector<ustring> paths2Delete
//! Body(1|15) = path · buffer data · vector<ACL> · boolean ephemeral · int parentCVersion
//! Body(19) = path · data · acl · int parentCVersion;  Body(21) = … · int parentCVersion · long ttl
//! Body(2|20) = path;  Body(5) = path · data · int version;  Body(7) = path · acl · int version
//! Body(13) = path · int version;  Body(14) = vector<{int type, buffer body}>;  Body(-1) = int err
//!
//! Holds: `apply` is deterministic: the same txns from the same tree give the same tree,
//! whether during recovery, in prep's overlay, or on the published tree.
//! Not here: validation and permission checks (prep.rs); logging (log/).

pub mod commit;
pub mod prep;

use crate::proto::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::ops::{event, op, ttl_owner, CONTAINER_OWNER};
use crate::proto::records::{read_acls, write_acls, Acl};
use crate::tree::{split_path, DataTree, Node};
use crate::tree::{AclRef, NodeRef, PathRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxnHeader {
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
    pub op: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout: i32,
    },
    CloseSession {
        paths: Vec<String>,
    },
    /// op 1 (create) or 15 (create2).
    Create {
        op: i32,
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral: bool,
        parent_cversion: i32,
    },
    CreateContainer {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
    },
    CreateTtl {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl: i64,
    },
    /// op 2 (delete) or 20 (deleteContainer).
    Delete {
        op: i32,
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Txn>),
    Error {
        err: i32,
    },
}

impl Txn {
    pub fn op(&self) -> i32 {
        match self {
            Txn::CreateSession { .. } => op::CREATE_SESSION,
            Txn::CloseSession { .. } => op::CLOSE_SESSION,
            Txn::Create { op, .. } => *op,
            Txn::CreateContainer { .. } => op::CREATE_CONTAINER,
            Txn::CreateTtl { .. } => op::CREATE_TTL,
            Txn::Delete { op, .. } => *op,
            Txn::SetData { .. } => op::SET_DATA,
            Txn::SetAcl { .. } => op::SET_ACL,
            Txn::Check { .. } => op::CHECK,
            Txn::Multi(_) => op::MULTI,
            Txn::Error { .. } => op::ERROR,
        }
    }

    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Txn::CreateSession { timeout } => {
                w.i32(*timeout);
            }
            Txn::CloseSession { paths } => {
                w.strings(paths);
            }
            Txn::Create {
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
                ..
            } => {
                w.string(path).opt_buffer(data);
                write_acls(w, acl);
                w.bool(*ephemeral).i32(*parent_cversion);
            }
            Txn::CreateContainer {
                path,
                data,
                acl,
                parent_cversion,
            } => {
                w.string(path).opt_buffer(data);
                write_acls(w, acl);
                w.i32(*parent_cversion);
            }
            Txn::CreateTtl {
                path,
                data,
                acl,
                parent_cversion,
                ttl,
            } => {
                w.string(path).opt_buffer(data);
                write_acls(w, acl);
                w.i32(*parent_cversion).i64(*ttl);
            }
            Txn::Delete { path, .. } => {
                w.string(path);
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                w.string(path).opt_buffer(data).i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                w.string(path);
                write_acls(w, acl);
                w.i32(*version);
            }
            Txn::Check { path, version } => {
                w.string(path).i32(*version);
            }
            Txn::Multi(txns) => {
                w.i32(txns.len() as i32);
                for t in txns {
                    w.i32(t.op());
                    let mut sub = Writer::new();
                    t.write_body(&mut sub);
                    w.buffer(&sub.buf);
                }
            }
            Txn::Error { err } => {
                w.i32(*err);
            }
        }
    }

    pub fn read_body(op: i32, r: &mut Reader) -> DecodeResult<Txn> {
        Ok(match op {
            op::CREATE_SESSION => Txn::CreateSession {
                timeout: r.read_i32()?,
            },
            op::CLOSE_SESSION => Txn::CloseSession {
                paths: if r.remaining() > 0 {
                    r.read_strings()?
                } else {
                    vec![]
                },
            },
            op::CREATE | op::CREATE2 => {
                let path = r.read_string()?.to_owned();
                let data = r.read_buffer_opt()?.map(<[u8]>::to_vec);
                let acl = read_acls(r)?;
                let ephemeral = r.read_bool()?;
                let parent_cversion = if r.remaining() >= 4 {
                    r.read_i32()?
                } else {
                    -1
                };
                Txn::Create {
                    op,
                    path,
                    data,
                    acl,
                    ephemeral,
                    parent_cversion,
                }
            }
            op::CREATE_CONTAINER => Txn::CreateContainer {
                path: r.read_string()?.to_owned(),
                data: r.read_buffer_opt()?.map(<[u8]>::to_vec),
                acl: read_acls(r)?,
                parent_cversion: r.read_i32()?,
            },
            op::CREATE_TTL => Txn::CreateTtl {
                path: r.read_string()?.to_owned(),
                data: r.read_buffer_opt()?.map(<[u8]>::to_vec),
                acl: read_acls(r)?,
                parent_cversion: r.read_i32()?,
                ttl: r.read_i64()?,
            },
            op::DELETE | op::DELETE_CONTAINER => Txn::Delete {
                op,
                path: r.read_string()?.to_owned(),
            },
            op::SET_DATA | op::RECONFIG => Txn::SetData {
                path: r.read_string()?.to_owned(),
                data: r.read_buffer_opt()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            op::SET_ACL => Txn::SetAcl {
                path: r.read_string()?.to_owned(),
                acl: read_acls(r)?,
                version: r.read_i32()?,
            },
            op::CHECK => Txn::Check {
                path: r.read_string()?.to_owned(),
                version: r.read_i32()?,
            },
            op::MULTI => {
                let n = r.read_count(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = r.read_i32()?;
                    let body = r.read_buffer()?;
                    v.push(Txn::read_body(t, &mut Reader::new(body))?);
                }
                Txn::Multi(v)
            }
            op::ERROR => Txn::Error { err: r.read_i32()? },
            _ => return Err(DecodeError::Invalid("unknown txn type")),
        })
    }
}

impl TxnHeader {
    pub fn write(&self, w: &mut Writer) {
        w.i64(self.client_id)
            .i32(self.cxid)
            .i64(self.zxid)
            .i64(self.time)
            .i32(self.op);
    }
    pub fn read(r: &mut Reader) -> DecodeResult<TxnHeader> {
        Ok(TxnHeader {
            client_id: r.read_i64()?,
            cxid: r.read_i32()?,
            zxid: r.read_i64()?,
            time: r.read_i64()?,
            op: r.read_i32()?,
        })
    }
}

/// The bytes of one log record's payload: header + body (no digest).
pub fn encode_record(hdr: &TxnHeader, txn: &Txn, w: &mut Writer) {
    hdr.write(w);
    txn.write_body(w);
}

pub fn decode_record(bytes: &[u8]) -> DecodeResult<(TxnHeader, Txn)> {
    decode_record_digest(bytes).map(|(h, t, _)| (h, t))
}

/// As `decode_record`, plus the tree digest after the txn when the record carries a
/// TxnDigest {int version, long digest} (ZooKeeper 3.6+ and Paddock write one).
pub fn decode_record_digest(bytes: &[u8]) -> DecodeResult<(TxnHeader, Txn, Option<i64>)> {
    let mut r = Reader::new(bytes);
    let hdr = TxnHeader::read(&mut r)?;
    let txn = Txn::read_body(hdr.op, &mut r)?;
    let digest = if r.remaining() >= 12 {
        let version = r.read_i32()?;
        let d = r.read_i64()?;
        (version == crate::tree::digest::DIGEST_VERSION).then_some(d)
    } else {
        None
    };
    Ok((hdr, txn, digest))
}

/// The tree of a fresh server: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
pub fn initial_tree() -> DataTree {
    let tree = DataTree::default();
    let open: AclRef = crate::tree::AclList::shared(&crate::acl::open_acl());
    let mut root = Node::empty(open.clone());
    root.add_child("/zookeeper".into());
    let mut zk = Node::empty(open.clone());
    zk.add_child("/zookeeper/quota".into());
    zk.add_child("/zookeeper/config".into());
    let mut config = Node::empty(crate::tree::AclList::shared(&[Acl {
        perms: crate::proto::ops::perm::READ,
        id: crate::acl::world_anyone(),
    }]));
    config.aversion = -1;
    // Empty data, not null, as ZooKeeper's DataTree makes them (`new byte[0]`): the
    // digest is the same either way.
    let empty: Option<&[u8]> = Some(&[]);
    tree.put("/".into(), NodeRef::new("/", root, empty));
    tree.put("/zookeeper".into(), NodeRef::new("/zookeeper", zk, empty));
    tree.put(
        "/zookeeper/quota".into(),
        NodeRef::new("/zookeeper/quota", Node::empty(open), empty),
    );
    tree.put(
        "/zookeeper/config".into(),
        NodeRef::new("/zookeeper/config", config, empty),
    );
    tree
}

/// Where apply reads and writes nodes: the published tree, or prep's overlay.
pub trait Store {
    fn get(&self, path: &str) -> Option<NodeRef>;
    fn put(&mut self, path: &str, node: NodeRef);
    /// Adds a new node under a key the caller already allocated (and shares with the
    /// parent's children set).
    fn put_new(&mut self, key: PathRef, node: NodeRef) {
        self.put(&key, node)
    }
    fn remove(&mut self, path: &str);
    /// A node with this ephemeral owner came (true) or went (false). Indexes listen here.
    fn owner_changed(&mut self, _path: &str, _owner: i64, _created: bool) {}
    fn session_created(&mut self, _session: i64, _timeout_ms: i32) {}
    /// The shared copy of an ACL list (nodes with equal ACLs share one allocation).
    fn intern_acl(&mut self, acl: &[Acl]) -> AclRef {
        crate::tree::AclList::shared(acl)
    }
    fn session_closed(&mut self, _session: i64) {}
}

/// A watch trigger: event type, path, and the ACL of the node it is about (a watcher
/// without READ on it is not told, as in ZooKeeper 3.8.4+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub event: i32,
    pub path: String,
    pub acl: AclRef,
}

#[allow(clippy::too_many_arguments)] // the fields of a create txn, spelled out
fn create_node(
    store: &mut impl Store,
    hdr: &TxnHeader,
    path: &str,
    data: &Option<Vec<u8>>,
    acl: &[Acl],
    owner: i64,
    parent_cversion: i32,
    out: &mut Vec<Trigger>,
) -> Result<(), i32> {
    let (parent_path, _) = split_path(path).ok_or(-8)?;
    let parent_ref = store.get(parent_path).ok_or(-101)?;
    let mut parent = parent_ref.fields();
    if store.get(path).is_some() {
        // Replaying over a fuzzy snapshot (see `fix_parent_counters`).
        return Err(-110);
    }
    let cv = if parent_cversion == -1 {
        parent.cversion + 1
    } else {
        parent_cversion
    };
    if cv > parent.cversion {
        parent.cversion = cv;
        parent.pzxid = hdr.zxid;
    }
    let node = Node {
        czxid: hdr.zxid,
        mzxid: hdr.zxid,
        pzxid: hdr.zxid,
        ctime: hdr.time,
        mtime: hdr.time,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        digest: 0,
        acl: store.intern_acl(acl),
        children: None,
    };
    let key: PathRef = PathRef::from(path);
    parent.add_child(key.clone());
    let (acl, parent_acl) = (node.acl.clone(), parent.acl.clone());
    store.put_new(key, NodeRef::new(path, node, data.as_deref()));
    store.put(
        parent_path,
        NodeRef::new(parent_path, parent, parent_ref.data()),
    );
    if owner != 0 {
        store.owner_changed(path, owner, true);
    }
    out.push(Trigger {
        event: event::NODE_CREATED,
        path: path.to_owned(),
        acl,
    });
    out.push(Trigger {
        event: event::NODE_CHILDREN_CHANGED,
        path: parent_path.to_owned(),
        acl: parent_acl,
    });
    Ok(())
}

fn fix_parent_counters(store: &mut impl Store, hdr: &TxnHeader, path: &str, parent_cversion: i32) {
    let Some((parent_path, _)) = split_path(path) else {
        return;
    };
    let Some(p) = store.get(parent_path) else {
        return;
    };
    let cv = if parent_cversion == -1 {
        p.cversion + 1
    } else {
        parent_cversion
    };
    if cv > p.cversion {
        let mut f = p.fields();
        f.cversion = cv;
        f.pzxid = hdr.zxid;
        store.put(parent_path, NodeRef::new(parent_path, f, p.data()));
    }
}

fn delete_node(
    store: &mut impl Store,
    hdr: &TxnHeader,
    path: &str,
    out: &mut Vec<Trigger>,
) -> Result<(), i32> {
    let (parent_path, _) = split_path(path).ok_or(-8)?;
    let node = store.get(path).ok_or(-101)?;
    let mut parent_acl = node.acl.clone();
    if let Some(parent_ref) = store.get(parent_path) {
        let mut parent = parent_ref.fields();
        parent.remove_child(path);
        parent.pzxid = hdr.zxid;
        parent_acl = parent.acl.clone();
        store.put(
            parent_path,
            NodeRef::new(parent_path, parent, parent_ref.data()),
        );
    }
    store.remove(path);
    if node.ephemeral_owner != 0 {
        store.owner_changed(path, node.ephemeral_owner, false);
    }
    out.push(Trigger {
        event: event::NODE_DELETED,
        path: path.to_owned(),
        acl: node.acl.clone(),
    });
    out.push(Trigger {
        event: event::NODE_CHILDREN_CHANGED,
        path: parent_path.to_owned(),
        acl: parent_acl,
    });
    Ok(())
}

/// Applies one txn. `Err(code)` only when the txn does not fit the tree (replay of a
/// txn the tree already has, or a corrupt log); prep never produces such a txn.
pub fn apply(
    store: &mut impl Store,
    hdr: &TxnHeader,
    txn: &Txn,
    out: &mut Vec<Trigger>,
) -> Result<(), i32> {
    match txn {
        Txn::CreateSession { timeout } => {
            store.session_created(hdr.client_id, *timeout);
            Ok(())
        }
        Txn::CloseSession { paths } => {
            for p in paths {
                let _ = delete_node(store, hdr, p, out);
            }
            store.session_closed(hdr.client_id);
            Ok(())
        }
        Txn::Create {
            op: create_op,
            path,
            data,
            acl,
            ephemeral,
            parent_cversion,
        } => {
            let owner = if *ephemeral { hdr.client_id } else { 0 };
            let r = create_node(store, hdr, path, data, acl, owner, *parent_cversion, out);
            if r == Err(-110) && *create_op == op::CREATE {
                // Replay over a fuzzy snapshot (ZooKeeper's): the node is there already,
                // but the parent's cversion and pzxid still move, as ZooKeeper's
                // DataTree.processTxn does for a plain create (not create2).
                fix_parent_counters(store, hdr, path, *parent_cversion);
            }
            r
        }
        Txn::CreateContainer {
            path,
            data,
            acl,
            parent_cversion,
        } => create_node(
            store,
            hdr,
            path,
            data,
            acl,
            CONTAINER_OWNER,
            *parent_cversion,
            out,
        ),
        Txn::CreateTtl {
            path,
            data,
            acl,
            parent_cversion,
            ttl,
        } => create_node(
            store,
            hdr,
            path,
            data,
            acl,
            ttl_owner(*ttl),
            *parent_cversion,
            out,
        ),
        Txn::Delete { path, .. } => delete_node(store, hdr, path, out),
        Txn::SetData {
            path,
            data,
            version,
        } => {
            let mut node = store.get(path).ok_or(-101)?.fields();
            node.version = *version;
            node.mzxid = hdr.zxid;
            node.mtime = hdr.time;
            let acl = node.acl.clone();
            store.put(path, NodeRef::new(path, node, data.as_deref()));
            out.push(Trigger {
                event: event::NODE_DATA_CHANGED,
                path: path.clone(),
                acl,
            });
            Ok(())
        }
        Txn::SetAcl { path, acl, version } => {
            let old = store.get(path).ok_or(-101)?;
            let mut node = old.fields();
            node.acl = store.intern_acl(acl);
            node.aversion = *version;
            store.put(path, NodeRef::new(path, node, old.data()));
            Ok(())
        }
        Txn::Check { .. } | Txn::Error { .. } => Ok(()),
        Txn::Multi(txns) => {
            if txns
                .iter()
                .any(|t| matches!(t, Txn::Error { err } if *err != 0))
            {
                return Ok(());
            }
            for t in txns {
                apply(store, hdr, t, out)?;
            }
            Ok(())
        }
    }
}

/// The node a create made, or a setData or setACL wrote, as the store holds it now.
fn result_node(store: &impl Store, txn: &Txn) -> Option<NodeRef> {
    match txn {
        Txn::Create { path, .. }
        | Txn::CreateContainer { path, .. }
        | Txn::CreateTtl { path, .. }
        | Txn::SetData { path, .. }
        | Txn::SetAcl { path, .. } => store.get(path),
        _ => None,
    }
}

/// Applies `txn` as `apply` does, and returns what its reply reports, so that the reply
/// never reads the tree again: for a create, setData or setACL its node as the txn left
/// it (one entry); for a multi that succeeds each op's node as that op left it (`None`
/// for ops without a Stat), as ZooKeeper's multi reply carries each op's own Stat, not
/// the node as the whole multi (a later setData or delete of it) left it. Empty for the
/// other txns.
pub fn apply_with_results(
    store: &mut impl Store,
    hdr: &TxnHeader,
    txn: &Txn,
    out: &mut Vec<Trigger>,
) -> Vec<Option<NodeRef>> {
    let Txn::Multi(txns) = txn else {
        return match apply(store, hdr, txn, out) {
            Ok(()) => result_node(store, txn).map(Some).into_iter().collect(),
            Err(_) => Vec::new(),
        };
    };
    if txns
        .iter()
        .any(|t| matches!(t, Txn::Error { err } if *err != 0))
    {
        return Vec::new();
    }
    let mut results = Vec::with_capacity(txns.len());
    for t in txns {
        if apply(store, hdr, t, out).is_err() {
            break; // as `apply` stops
        }
        results.push(match t {
            Txn::SetAcl { .. } => None, // not in a multi
            _ => result_node(store, t),
        });
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::prep::{Overlay, TreeView};

    fn hdr(zxid: i64, client_id: i64) -> TxnHeader {
        TxnHeader {
            client_id,
            cxid: 1,
            zxid,
            time: zxid * 10,
            op: 0,
        }
    }

    fn create(path: &str, ephemeral: bool) -> Txn {
        Txn::Create {
            op: op::CREATE2,
            path: path.into(),
            data: Some(b"d".to_vec()),
            acl: crate::acl::open_acl(),
            ephemeral,
            parent_cversion: -1,
        }
    }

    fn events(t: &[Trigger]) -> Vec<(i32, &str)> {
        t.iter().map(|t| (t.event, t.path.as_str())).collect()
    }

    /// As ZooKeeper's DataTreeTest: what applying each txn does to the node, its parent,
    /// and which watches it triggers.
    #[test]
    fn apply_moves_nodes_parents_and_triggers_as_zookeepers_data_tree() {
        let tree = initial_tree();
        let base = TreeView(&tree);
        let mut s = Overlay::new(&base);
        let mut out = Vec::new();
        apply(&mut s, &hdr(5, 9), &create("/a", false), &mut out).unwrap();
        let (a, root) = (s.get("/a").unwrap(), s.get("/").unwrap());
        assert_eq!((a.czxid, a.mzxid, a.pzxid, a.ctime), (5, 5, 5, 50));
        assert_eq!((root.cversion, root.pzxid, root.num_children()), (1, 5, 2));
        assert_eq!(
            events(&out),
            vec![
                (event::NODE_CREATED, "/a"),
                (event::NODE_CHILDREN_CHANGED, "/")
            ]
        );
        out.clear();
        let set = Txn::SetData {
            path: "/a".into(),
            data: None,
            version: 1,
        };
        apply(&mut s, &hdr(6, 9), &set, &mut out).unwrap();
        let a = s.get("/a").unwrap();
        assert_eq!((a.version, a.mzxid, a.mtime, a.data()), (1, 6, 60, None));
        assert_eq!(events(&out), vec![(event::NODE_DATA_CHANGED, "/a")]);
        // An ephemeral goes with its session's close, its parent's counters moving.
        out.clear();
        apply(&mut s, &hdr(7, 9), &create("/a/e", true), &mut out).unwrap();
        assert_eq!(s.get("/a/e").unwrap().ephemeral_owner, 9);
        out.clear();
        let close = Txn::CloseSession {
            paths: vec!["/a/e".into()],
        };
        apply(&mut s, &hdr(8, 9), &close, &mut out).unwrap();
        assert!(s.get("/a/e").is_none());
        // A delete moves pzxid only; cversion counts creates, and a client sees
        // 2 * cversion - children (creates + deletes), as ZooKeeper's DataNode.copyStat.
        let a = s.get("/a").unwrap();
        assert_eq!((a.cversion, a.pzxid, a.num_children()), (1, 8, 0));
        assert_eq!(a.stat(false).cversion, 2);
        assert_eq!(
            events(&out),
            vec![
                (event::NODE_DELETED, "/a/e"),
                (event::NODE_CHILDREN_CHANGED, "/a")
            ]
        );
        // A failed multi changes nothing; error txns neither.
        let failed = Txn::Multi(vec![Txn::Error { err: 0 }, Txn::Error { err: -101 }]);
        apply(&mut s, &hdr(9, 9), &failed, &mut out).unwrap();
        assert_eq!(s.get("/a").unwrap().mzxid, 6);
    }

    /// A multi's reply carries each op's own node (`apply_with_results`).
    #[test]
    fn each_multi_op_keeps_the_node_it_left() {
        let tree = initial_tree();
        let base = TreeView(&tree);
        let mut s = Overlay::new(&base);
        let set = |data: &[u8], version| Txn::SetData {
            path: "/m".into(),
            data: Some(data.to_vec()),
            version,
        };
        let multi = Txn::Multi(vec![
            create("/m", false),
            set(b"bb", 1),
            create("/m/c", false),
            set(b"ccc", 2),
            Txn::Delete {
                op: op::DELETE,
                path: "/m/c".into(),
            },
        ]);
        let r = apply_with_results(&mut s, &hdr(11, 1), &multi, &mut Vec::new());
        let stat = |i: usize| r[i].as_ref().map(|n| n.stat(false));
        assert_eq!(stat(0).unwrap().data_length, 1);
        assert_eq!(
            (stat(1).unwrap().version, stat(1).unwrap().num_children),
            (1, 0)
        );
        assert_eq!(stat(2).unwrap().czxid, 11);
        assert_eq!(
            (stat(3).unwrap().version, stat(3).unwrap().num_children),
            (2, 1)
        );
        assert!(r[4].is_none());
        assert_eq!(s.get("/m").unwrap().num_children(), 0);
        // A single op's result is its node; a delete has none.
        let r = apply_with_results(&mut s, &hdr(12, 1), &set(b"x", 3), &mut Vec::new());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].as_ref().unwrap().stat(false).version, 3);
        let del = Txn::Delete {
            op: op::DELETE,
            path: "/m".into(),
        };
        assert!(apply_with_results(&mut s, &hdr(13, 1), &del, &mut Vec::new()).is_empty());
    }
    #[test]
    fn record_round_trip() {
        let hdr = TxnHeader {
            client_id: 5,
            cxid: 7,
            zxid: 9,
            time: 11,
            op: op::MULTI,
        };
        let txn = Txn::Multi(vec![
            Txn::Create {
                op: 1,
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                acl: crate::acl::open_acl(),
                ephemeral: true,
                parent_cversion: 3,
            },
            Txn::SetData {
                path: "/a".into(),
                data: None,
                version: 1,
            },
            Txn::Error { err: -2 },
        ]);
        let mut w = Writer::new();
        encode_record(&hdr, &txn, &mut w);
        assert_eq!(decode_record(&w.buf).unwrap(), (hdr, txn));
    }
}
