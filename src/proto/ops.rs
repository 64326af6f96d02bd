//! Numbers of the client protocol: opcodes, error codes, watch event types and states,
//! create flags and permissions. All identical in ZooKeeper 3.8 and 3.9.

pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;

    /// Opcodes whose requests ZooKeeper's PrepRequestProcessor turns into txns: a
    /// malformed one becomes an error txn (it takes a zxid), as any refused write does.
    pub fn is_write(op: i32) -> bool {
        matches!(
            op,
            CREATE
                | CREATE2
                | CREATE_TTL
                | CREATE_CONTAINER
                | DELETE
                | DELETE_CONTAINER
                | SET_DATA
                | SET_ACL
                | MULTI
        )
    }

    /// What `cons` prints as a connection's last operation (`lop=`), as ZooKeeper's
    /// FinalRequestProcessor names it; "NA" before any.
    pub fn cons_name(op: i32) -> &'static str {
        match op {
            PING => "PING",
            CREATE_SESSION => "SESS",
            MULTI => "MULT",
            MULTI_READ => "MLTR",
            CREATE | CREATE2 | CREATE_TTL | CREATE_CONTAINER => "CREA",
            DELETE | DELETE_CONTAINER => "DELE",
            SET_DATA => "SETD",
            RECONFIG => "RECO",
            SET_ACL => "SETA",
            CLOSE_SESSION => "CLOS",
            SYNC => "SYNC",
            CHECK => "CHEC",
            EXISTS => "EXIS",
            GET_DATA => "GETD",
            SET_WATCHES => "SETW",
            SET_WATCHES2 => "STW2",
            ADD_WATCH => "ADDW",
            GET_ACL => "GETA",
            GET_CHILDREN | GET_CHILDREN2 => "GETC",
            GET_ALL_CHILDREN_NUMBER => "GETACN",
            CHECK_WATCHES => "CHKW",
            REMOVE_WATCHES => "REMW",
            WHO_AM_I => "HOMI",
            GET_EPHEMERALS => "GETE",
            _ => "NA",
        }
    }

    /// Short name used by `cons` (`lop=`), as ZooKeeper's `Request.op2String` prints it.
    pub fn name(op: i32) -> &'static str {
        match op {
            NOTIFICATION => "notification",
            CREATE => "create",
            CREATE2 => "create2",
            CREATE_TTL => "createTtl",
            CREATE_CONTAINER => "createContainer",
            DELETE => "delete",
            DELETE_CONTAINER => "deleteContainer",
            EXISTS => "exists",
            GET_DATA => "getData",
            SET_DATA => "setData",
            GET_ACL => "getACL",
            SET_ACL => "setACL",
            GET_CHILDREN => "getChildren",
            GET_CHILDREN2 => "getChildren2",
            SYNC => "sync",
            PING => "ping",
            CHECK => "check",
            MULTI => "multi",
            MULTI_READ => "multiRead",
            RECONFIG => "reconfig",
            CHECK_WATCHES => "checkWatches",
            REMOVE_WATCHES => "removeWatches",
            AUTH => "auth",
            SET_WATCHES => "setWatches",
            SET_WATCHES2 => "setWatches2",
            SASL => "sasl",
            GET_EPHEMERALS => "getEphemerals",
            GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
            ADD_WATCH => "addWatch",
            WHO_AM_I => "whoAmI",
            CREATE_SESSION => "createSession",
            CLOSE_SESSION => "closeSession",
            ERROR => "error",
            _ => "unknown",
        }
    }
}

/// Special xids.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// Client-visible error codes (KeeperException.Code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ZkError {
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    MarshallingError = -5,
    Unimplemented = -6,
    BadArguments = -8,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    ThrottledOp = -127,
}

impl ZkError {
    pub fn code(self) -> i32 {
        self as i32
    }
    pub fn from_code(code: i32) -> Option<ZkError> {
        use ZkError::*;
        Some(match code {
            -1 => SystemError,
            -2 => RuntimeInconsistency,
            -3 => DataInconsistency,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -8 => BadArguments,
            -13 => NewConfigNoQuorum,
            -14 => ReconfigInProgress,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -118 => SessionMoved,
            -119 => NotReadOnly,
            -120 => EphemeralOnLocalSession,
            -121 => NoWatcher,
            -123 => ReconfigDisabled,
            -124 => SessionClosedRequireSaslAuth,
            -125 => QuotaExceeded,
            -127 => ThrottledOp,
            _ => return None,
        })
    }
}

pub mod event {
    pub const NONE: i32 = -1;
    pub const NODE_CREATED: i32 = 1;
    pub const NODE_DELETED: i32 = 2;
    pub const NODE_DATA_CHANGED: i32 = 3;
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
}

pub mod state {
    pub const SYNC_CONNECTED: i32 = 3;
}

/// WatcherType of checkWatches/removeWatches (3.9 adds 4 and 5).
pub mod watcher_type {
    pub const CHILDREN: i32 = 1;
    pub const DATA: i32 = 2;
    pub const ANY: i32 = 3;
    pub const PERSISTENT: i32 = 4;
    pub const PERSISTENT_RECURSIVE: i32 = 5;
}

pub mod perm {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

/// What a create flag asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateMode {
    pub ephemeral: bool,
    pub sequential: bool,
    pub container: bool,
    pub ttl: bool,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        let m = |e, s, c, t| CreateMode {
            ephemeral: e,
            sequential: s,
            container: c,
            ttl: t,
        };
        Some(match flags {
            0 => m(false, false, false, false),
            1 => m(true, false, false, false),
            2 => m(false, true, false, false),
            3 => m(true, true, false, false),
            4 => m(false, false, true, false),
            5 => m(false, false, false, true),
            6 => m(false, true, false, true),
            _ => return None,
        })
    }
}

/// ephemeralOwner of a container node.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// ephemeralOwner high byte of a TTL node; the low 40 bits hold the TTL in ms.
pub const TTL_OWNER_MASK: i64 = 0xFF00_0000_0000_0000u64 as i64;
pub const TTL_MAX_MS: i64 = (1 << 40) - 1;

pub fn ttl_owner(ttl_ms: i64) -> i64 {
    TTL_OWNER_MASK | ttl_ms
}
/// The TTL of a node whose owner encodes one (only when extended types are on).
/// The session an ephemeral belongs to: `None` for a persistent node, a container or a
/// TTL node (whose `ephemeralOwner` carries a mark, not a session).
pub fn ephemeral_session(owner: i64, extended: bool) -> Option<i64> {
    (owner != 0 && owner != CONTAINER_OWNER && ttl_of_owner(owner, extended).is_none())
        .then_some(owner)
}

pub fn ttl_of_owner(owner: i64, extended: bool) -> Option<i64> {
    if extended && owner != CONTAINER_OWNER && (owner & TTL_OWNER_MASK) == TTL_OWNER_MASK {
        // Feature bits 40..56 must be 0 for TTL.
        if (owner >> 40) & 0xFFFF == 0 {
            return Some(owner & TTL_MAX_MS);
        }
    }
    None
}
