//! Client protocol records: Stat, ACL, the handshake, and every request body.
//!
//! Request = RequestHeader{xid, type} · body(type); Reply = ReplyHeader{xid, zxid, err} · body.
//! Holds: `Request::decode` accepts exactly what ZooKeeper's server accepts for each opcode
//! and reports anything else as a `DecodeError`, which the server answers as ZooKeeper
//! does: MarshallingError (-5) for the request, the connection kept (net/), an error txn
//! for a write. Nulls are told apart where ZooKeeper dereferences them (`read_string_nn`).

use super::jute::{DecodeError, DecodeResult, Reader, Writer};
use super::ops::{op, ZkError};

/// Stat as a client sees it (68 bytes on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub const WIRE_BYTES: usize = 68;
    pub fn write(&self, w: &mut Writer) {
        w.i64(self.czxid)
            .i64(self.mzxid)
            .i64(self.ctime)
            .i64(self.mtime);
        w.i32(self.version).i32(self.cversion).i32(self.aversion);
        w.i64(self.ephemeral_owner)
            .i32(self.data_length)
            .i32(self.num_children)
            .i64(self.pzxid);
    }
    pub fn read(r: &mut Reader) -> DecodeResult<Stat> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

impl Id {
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }
    pub fn write(&self, w: &mut Writer) {
        w.string(&self.scheme).string(&self.id);
    }
    pub fn read(r: &mut Reader) -> DecodeResult<Id> {
        Ok(Id {
            scheme: r.read_string()?.to_owned(),
            id: r.read_string()?.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    pub fn write(&self, w: &mut Writer) {
        w.i32(self.perms);
        self.id.write(w);
    }
    pub fn read(r: &mut Reader) -> DecodeResult<Acl> {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id::read(r)?,
        })
    }
}

pub fn write_acls(w: &mut Writer, acls: &[Acl]) {
    w.i32(acls.len() as i32);
    for a in acls {
        a.write(w);
    }
}

/// An ACL list; null, or a count below -1, reads as empty (then INVALIDACL), as ZooKeeper
/// reads it.
pub fn read_acls(r: &mut Reader) -> DecodeResult<Vec<Acl>> {
    let n = r.read_count_opt(12)?.unwrap_or(0);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Acl::read(r)?);
    }
    Ok(v)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// `None` when the client is old and omitted the byte; the reply then omits it too.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn decode(buf: &[u8]) -> DecodeResult<ConnectRequest> {
        let mut r = Reader::new(buf);
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let timeout_ms = r.read_i32()?;
        let session_id = r.read_i64()?;
        let passwd = r.read_buffer()?.to_vec();
        let read_only = if r.remaining() > 0 {
            Some(r.read_bool()?)
        } else {
            None
        };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout_ms,
            session_id,
            passwd,
            read_only,
        })
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::frame();
        w.i32(self.protocol_version)
            .i64(self.last_zxid_seen)
            .i32(self.timeout_ms)
            .i64(self.session_id);
        w.buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.finish_frame()
    }
}

pub fn encode_connect_response(
    timeout_ms: i32,
    session_id: i64,
    passwd: &[u8],
    read_only: Option<bool>,
) -> Vec<u8> {
    let mut w = Writer::frame();
    w.i32(0).i32(timeout_ms).i64(session_id).buffer(passwd);
    if let Some(ro) = read_only {
        w.bool(ro);
    }
    w.finish_frame()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    /// `None` = null data, as `create /x` without data sends it.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Only for createTTL; -1 otherwise.
    pub ttl: i64,
}

/// One op of a multi (14) or multiRead (22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create {
        op: i32,
        req: CreateRequest,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    GetData {
        path: String,
    },
    GetChildren {
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// create (1), create2 (15), createContainer (19), createTTL (21).
    Create {
        op: i32,
        req: CreateRequest,
    },
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
    },
    GetChildren2 {
        path: String,
        watch: bool,
    },
    Sync {
        path: String,
    },
    Ping,
    Check {
        path: String,
        version: i32,
    },
    Multi {
        ops: Vec<MultiOp>,
    },
    MultiRead {
        ops: Vec<MultiOp>,
    },
    Reconfig,
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    Auth {
        scheme: String,
        /// `None`: null (a digest of it fails, as ZooKeeper's `new String(null)` does).
        auth: Option<Vec<u8>>,
    },
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        recursive: Vec<String>,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
    Sasl {
        token: Option<Vec<u8>>,
    },
    /// A request ZooKeeper answers with `err` from its bytes alone (a malformed body:
    /// MarshallingError); a `write` one becomes an error txn, as ZooKeeper's prep makes
    /// one, the others are answered in the session's order.
    Refused {
        write: bool,
        err: ZkError,
    },
}

fn create_body(r: &mut Reader, ttl: bool) -> DecodeResult<CreateRequest> {
    Ok(CreateRequest {
        path: r.read_string_nn("path")?.to_owned(),
        data: r.read_buffer_opt()?.map(<[u8]>::to_vec),
        acl: read_acls(r)?,
        flags: r.read_i32()?,
        ttl: if ttl { r.read_i64()? } else { -1 },
    })
}

fn path_watch(r: &mut Reader) -> DecodeResult<(String, bool)> {
    Ok((r.read_string_nn("path")?.to_owned(), r.read_bool()?))
}

/// setWatches' path lists: ZooKeeper walks each, so a null list (or path) is malformed.
fn watch_paths(r: &mut Reader) -> DecodeResult<Vec<String>> {
    let n = r
        .read_count_opt(4)?
        .ok_or(DecodeError::Null("watch list"))?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(r.read_string_nn("watch path")?.to_owned());
    }
    Ok(v)
}

fn multi_ops(r: &mut Reader, read: bool) -> DecodeResult<Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let t = r.read_i32()?;
        let done = r.read_bool()?;
        let _err = r.read_i32()?;
        if done {
            break;
        }
        let op = match (t, read) {
            (op::CREATE | op::CREATE2 | op::CREATE_CONTAINER, false) => MultiOp::Create {
                op: t,
                req: create_body(r, false)?,
            },
            (op::CREATE_TTL, false) => MultiOp::Create {
                op: t,
                req: create_body(r, true)?,
            },
            (op::DELETE, false) => MultiOp::Delete {
                path: r.read_string()?.to_owned(),
                version: r.read_i32()?,
            },
            (op::SET_DATA, false) => MultiOp::SetData {
                path: r.read_string()?.to_owned(),
                data: r.read_buffer_opt()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            (op::CHECK, false) => MultiOp::Check {
                path: r.read_string()?.to_owned(),
                version: r.read_i32()?,
            },
            (op::GET_DATA, true) => MultiOp::GetData {
                path: path_watch(r)?.0,
            },
            (op::GET_CHILDREN, true) => MultiOp::GetChildren {
                path: path_watch(r)?.0,
            },
            _ => return Err(DecodeError::Invalid("op not allowed in this multi")),
        };
        ops.push(op);
    }
    Ok(ops)
}

impl Request {
    /// Decodes the body of opcode `op`. `Err(Invalid("unknown opcode"))` for opcodes the
    /// server does not know; other errors mean a malformed record.
    pub fn decode(op: i32, body: &[u8]) -> DecodeResult<Request> {
        let mut r = Reader::new(body);
        let r = &mut r;
        Ok(match op {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => Request::Create {
                op,
                req: create_body(r, false)?,
            },
            op::CREATE_TTL => Request::Create {
                op,
                req: create_body(r, true)?,
            },
            op::DELETE => Request::Delete {
                path: r.read_string_nn("path")?.to_owned(),
                version: r.read_i32()?,
            },
            op::EXISTS => {
                let (path, watch) = path_watch(r)?;
                Request::Exists { path, watch }
            }
            op::GET_DATA => {
                let (path, watch) = path_watch(r)?;
                Request::GetData { path, watch }
            }
            op::SET_DATA => Request::SetData {
                path: r.read_string()?.to_owned(),
                data: r.read_buffer_opt()?.map(<[u8]>::to_vec),
                version: r.read_i32()?,
            },
            op::GET_ACL => Request::GetAcl {
                path: r.read_string_nn("path")?.to_owned(),
            },
            op::SET_ACL => Request::SetAcl {
                path: r.read_string()?.to_owned(),
                acl: read_acls(r)?,
                version: r.read_i32()?,
            },
            op::GET_CHILDREN => {
                let (path, watch) = path_watch(r)?;
                Request::GetChildren { path, watch }
            }
            op::GET_CHILDREN2 => {
                let (path, watch) = path_watch(r)?;
                Request::GetChildren2 { path, watch }
            }
            op::SYNC => Request::Sync {
                path: r.read_string()?.to_owned(),
            },
            op::PING => Request::Ping,
            op::CHECK => Request::Check {
                path: r.read_string()?.to_owned(),
                version: r.read_i32()?,
            },
            op::MULTI => Request::Multi {
                ops: multi_ops(r, false)?,
            },
            op::MULTI_READ => Request::MultiRead {
                ops: multi_ops(r, true)?,
            },
            op::RECONFIG => Request::Reconfig,
            op::CHECK_WATCHES => Request::CheckWatches {
                path: r.read_string()?.to_owned(),
                kind: r.read_i32()?,
            },
            op::REMOVE_WATCHES => Request::RemoveWatches {
                path: r.read_string()?.to_owned(),
                kind: r.read_i32()?,
            },
            op::AUTH => {
                let _type = r.read_i32()?;
                Request::Auth {
                    scheme: r.read_string()?.to_owned(),
                    auth: r.read_buffer_opt()?.map(<[u8]>::to_vec),
                }
            }
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let relative_zxid = r.read_i64()?;
                let data = watch_paths(r)?;
                let exist = watch_paths(r)?;
                let child = watch_paths(r)?;
                let (persistent, recursive) = if op == op::SET_WATCHES2 {
                    (watch_paths(r)?, watch_paths(r)?)
                } else {
                    (vec![], vec![])
                };
                Request::SetWatches {
                    relative_zxid,
                    data,
                    exist,
                    child,
                    persistent,
                    recursive,
                }
            }
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.read_string()?.to_owned(),
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: r.read_string_nn("path")?.to_owned(),
            },
            op::ADD_WATCH => Request::AddWatch {
                path: r.read_string()?.to_owned(),
                mode: r.read_i32()?,
            },
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            // GetSASLRequest: the client's token.
            op::SASL => Request::Sasl {
                token: r.read_buffer_opt()?.map(<[u8]>::to_vec),
            },
            // ZooKeeper takes the whole request (header too) for the path, which then
            // never validates: BADARGUMENTS, as an error txn. Only the server deletes
            // containers.
            op::DELETE_CONTAINER => Request::Refused {
                write: true,
                err: ZkError::BadArguments,
            },
            _ => return Err(DecodeError::Invalid("unknown opcode")),
        })
    }

    /// A read that sets no watch: any thread can answer it from the published tree.
    pub fn is_plain_read(&self) -> bool {
        match self {
            Request::GetData { watch, .. }
            | Request::Exists { watch, .. }
            | Request::GetChildren { watch, .. }
            | Request::GetChildren2 { watch, .. } => !watch,
            Request::GetAcl { .. }
            | Request::GetAllChildrenNumber { .. }
            | Request::MultiRead { .. }
            | Request::WhoAmI
            | Request::Refused { write: false, .. } => true,
            _ => false,
        }
    }

    /// Changes the tree: goes through the txn log.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Create { .. }
                | Request::Delete { .. }
                | Request::SetData { .. }
                | Request::SetAcl { .. }
                | Request::Multi { .. }
                | Request::CloseSession
                | Request::Refused { write: true, .. }
        )
    }
}

/// Reply header + body, framed.
pub fn reply_frame(xid: i32, zxid: i64, err: i32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::frame();
    w.i32(xid).i64(zxid).i32(err);
    if err == 0 {
        body(&mut w);
    }
    w.finish_frame()
}

pub fn notification_frame(event_type: i32, path: &str) -> Vec<u8> {
    let mut w = Writer::frame();
    w.i32(super::ops::xid::NOTIFICATION).i64(-1).i32(0);
    w.i32(event_type)
        .i32(super::ops::state::SYNC_CONNECTED)
        .string(path);
    w.finish_frame()
}
