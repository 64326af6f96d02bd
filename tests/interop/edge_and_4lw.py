#!/usr/bin/env python3
"""edge_and_4lw.py PORT — raw edge requests and four-letter words against ONE server.

Speaks the ZooKeeper client protocol over a plain socket (stdlib only) to 127.0.0.1:PORT,
runs a fixed scenario of malformed and unusual requests, and prints a normalised
transcript. run.sh runs it against Apache ZooKeeper and against Paddock and diffs the two
transcripts, as it does for zkcli.sh.

Every case runs on a fresh session unless it says otherwise. After a case's requests a
ping (xid -2, opcode 11) tells whether the server kept the connection: "open" (the ping
is answered), "closed" (EOF/reset) or "no ping reply" (neither, within the time limit).
An open session is then closed with closeSession. Each reply is printed as

    err=<code> <NAME> zxid=<-1|0|cur|neg>  [decoded body]

where the reply header's zxid is only classified: -1, 0, or "cur" for any positive value
(the server's current zxid, or the request's own for a write). Only what is noted below
is decoded; any other reply body is shown as hex when short (<= 16 bytes) or by its length.
Watch notifications (xid -1) that arrive before a reply are printed on their own lines
("event type=.. state=.. path=..") ahead of it.

Nothing that legitimately differs between two ZooKeeper servers is printed: no session
ids, absolute zxids, times, ports, host names, versions or global counts (node count,
connections, sessions, mntr totals). The four-letter word outputs are reduced to their
layout, and entries that come out of Java hash tables are sorted (see section 16).

All nodes live under /edge_* (removed before and after the scenario), so other checks on
the same server do not disturb it and it can run twice on the same server.

Exit status: 0 when the scenario ran to the end (whatever the server answered), 2 when
the server could not be reached.
"""
import re
import socket
import struct
import sys
import time

if len(sys.argv) != 2:
    sys.exit("usage: edge_and_4lw.py PORT")
HOST = "127.0.0.1"
PORT = int(sys.argv[1])
TIMEOUT = 3.0  # seconds to wait for any one reply
SESSION_TIMEOUT_MS = 10000

# Every node the scenario may create (children before parents), for the clean-ups.
EDGE_NODES = ["/edge_m/c", "/edge_m", "/edge_pw/c", "/edge_pw", "/edge_c1", "/edge_net",
              "/edge_v6", "/edge_ip33", "/edge_acl", "/edge_gone", "/edge_w1", "/edge_w2",
              "/edge_x", "/edge_nope", "/edge_nonexist"]

# ---------------------------------------------------------------------------- encoding
# Jute, big-endian: int, long, bool (one byte), buffer/string = int length + bytes with
# length -1 meaning null, vector = int count + items with count -1 meaning null.


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def bol(v):
    return b"\x01" if v else b"\x00"


def buf(x):
    """A buffer or string; None is the null buffer (length -1)."""
    if x is None:
        return i32(-1)
    if isinstance(x, str):
        x = x.encode()
    return i32(len(x)) + x


def acl_vec(acls):
    """ACL vector from (perms, scheme, id) tuples."""
    return i32(len(acls)) + b"".join(i32(p) + buf(s) + buf(i) for p, s, i in acls)


OPEN_ACL = acl_vec([(31, "world", "anyone")])


def create_body(path, data=b"", acl=OPEN_ACL, flags=0):
    """CreateRequest: path, data, acl vector (already encoded), flags."""
    return buf(path) + buf(data) + acl + i32(flags)


def multi_body(ops):
    """MultiOperationRecord: (MultiHeader type, done=false, err=-1, body)*, then the end
    header (-1, true, -1)."""
    return (b"".join(i32(t) + bol(False) + i32(-1) + b for t, b in ops)
            + i32(-1) + bol(True) + i32(-1))


def frame(payload):
    return i32(len(payload)) + payload


OP = dict(create=1, delete=2, exists=3, getData=4, setData=5, getACL=6, setACL=7,
          getChildren=8, ping=11, getChildren2=12, multi=14, create2=15,
          checkWatches=17, removeWatches=18, createContainer=19, deleteContainer=20,
          multiRead=22, auth=100, setWatches=101, sasl=102, getAllChildrenNumber=104,
          setWatches2=105, addWatch=106, whoAmI=107, closeSession=-11)
OPNAME = {v: k for k, v in OP.items()}

ERR = {0: "OK", -1: "SYSTEMERROR", -2: "RUNTIMEINCONSISTENCY", -3: "DATAINCONSISTENCY",
       -4: "CONNECTIONLOSS", -5: "MARSHALLINGERROR", -6: "UNIMPLEMENTED",
       -7: "OPERATIONTIMEOUT", -8: "BADARGUMENTS", -100: "APIERROR", -101: "NONODE",
       -102: "NOAUTH", -103: "BADVERSION", -108: "NOCHILDRENFOREPHEMERALS",
       -110: "NODEEXISTS", -111: "NOTEMPTY", -112: "SESSIONEXPIRED", -114: "INVALIDACL",
       -115: "AUTHFAILED", -118: "SESSIONMOVED", -121: "NOWATCHER", -125: "QUOTAEXCEEDED"}


def errname(e):
    return "%d %s" % (e, ERR.get(e, "?"))


def zxid_class(z):
    """The reply header zxid, classified: -1, 0, or cur(rent) for any positive value."""
    if z in (-1, 0):
        return str(z)
    return "cur" if z > 0 else "neg"


# ---------------------------------------------------------------------------- decoding
class Reader:
    def __init__(self, b):
        self.b, self.o = b, 0

    def left(self):
        return len(self.b) - self.o

    def _take(self, n):
        if n < 0 or self.left() < n:
            raise ValueError("short body")
        v = self.b[self.o:self.o + n]
        self.o += n
        return v

    def i32(self):
        return struct.unpack(">i", self._take(4))[0]

    def i64(self):
        return struct.unpack(">q", self._take(8))[0]

    def bool(self):
        return self._take(1)[0]

    def buf(self):
        n = self.i32()
        return None if n == -1 else self._take(n)

    def str(self):
        v = self.buf()
        return None if v is None else v.decode("utf-8", "replace")

    def vec(self, item):
        n = self.i32()
        return None if n == -1 else [item() for _ in range(n)]

    def rest(self):
        return self._take(self.left())


STAT_FIELDS = ("czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion",
               "ephemeralOwner", "dataLength", "numChildren", "pzxid")


def read_stat(r):
    v = [r.i64(), r.i64(), r.i64(), r.i64(), r.i32(), r.i32(), r.i32(), r.i64(), r.i32(),
         r.i32(), r.i64()]
    return dict(zip(STAT_FIELDS, v))


def short_body(b):
    """An undecoded body: hex when short, else its length."""
    if not b:
        return ""
    return "body=%s" % b.hex() if len(b) <= 16 else "body=<%d bytes>" % len(b)


def data_kind(d):
    return "null" if d is None else ("empty" if d == b"" else "data=%r" % d)


# ---------------------------------------------------------------------------- connection
class Closed(Exception):
    pass


class Reply:
    def __init__(self, xid, zxid, err, body):
        self.xid, self.zxid, self.err, self.body = xid, zxid, err, body

    def head(self):
        return "err=%s zxid=%s" % (errname(self.err), zxid_class(self.zxid))


class Session:
    """A raw client connection with its session. Watch events and replies to other xids
    that arrive while waiting for a reply are kept in self.stray, in order."""

    def __init__(self, port=PORT):
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rbuf = b""
        self.closed = False
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd,
        # readOnly.
        self._send(frame(i32(0) + i64(0) + i32(SESSION_TIMEOUT_MS) + i64(0)
                         + buf(b"\0" * 16) + bol(False)))
        f = self._read_frame(TIMEOUT)
        if f is None:
            raise RuntimeError("no ConnectResponse")
        r = Reader(f)
        r.i32()  # protocolVersion
        r.i32()  # negotiated timeout
        self.sid = r.i64() & 0xFFFFFFFFFFFFFFFF
        self.stray = []

    # -- transport
    def _send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = True
            raise Closed(str(e))

    def _read_frame(self, timeout):
        """One frame's payload; None on timeout; raises Closed on EOF/reset."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.rbuf) >= 4:
                n = struct.unpack(">i", self.rbuf[:4])[0]
                if len(self.rbuf) >= 4 + n:
                    f, self.rbuf = self.rbuf[4:4 + n], self.rbuf[4 + n:]
                    return f
            rem = deadline - time.monotonic()
            if rem <= 0:
                return None
            self.sock.settimeout(rem)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError as e:
                self.closed = True
                raise Closed(str(e))
            if not d:
                self.closed = True
                raise Closed("EOF")
            self.rbuf += d

    # -- requests
    def send_raw(self, payload):
        """Send one frame holding exactly `payload` (request header included)."""
        self._send(frame(payload))

    def wait_reply(self, xid):
        """The reply to xid, or None ("no reply": timeout or the connection closed).
        Frames for other xids (watch events) go to self.stray."""
        try:
            while True:
                f = self._read_frame(TIMEOUT)
                if f is None:
                    return None
                if len(f) < 16:
                    self.stray.append("short frame %s" % f.hex())
                    continue
                x, z, e = struct.unpack(">iqi", f[:16])
                if x == xid:
                    return Reply(x, z, e, f[16:])
                self.stray.append(describe_stray(x, z, e, f[16:]))
        except Closed:
            return None

    def call(self, xid, op, body=b""):
        try:
            self.send_raw(i32(xid) + i32(op) + body)
        except Closed:
            return None
        return self.wait_reply(xid)

    def take_stray(self):
        s, self.stray = self.stray, []
        return s

    def liveness(self):
        """Ping (xid -2): open / closed / no ping reply. Stray frames are kept."""
        if self.closed:
            return "closed"
        r = self.call(-2, OP["ping"])
        if r is not None:
            return "open"
        return "closed" if self.closed else "no ping reply"

    def close(self):
        """closeSession when the connection is still up, then drop the socket."""
        if not self.closed:
            try:
                self.call(0x7FFF, OP["closeSession"])
            except Exception:  # noqa: BLE001 - best effort
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


def describe_stray(xid, zxid, err, body):
    if xid == -1:  # WatcherEvent: type, state, path
        try:
            r = Reader(body)
            return "event type=%d state=%d path=%s" % (r.i32(), r.i32(), r.str())
        except ValueError:
            pass
    return "unexpected frame xid=%d err=%s zxid=%s %s" % (xid, errname(err), zxid_class(zxid),
                                                          short_body(body))


# ---------------------------------------------------------------------------- output
def out(line):
    print(line, flush=True)


def fmt(reply, decode=None):
    """A reply: "no reply", or its head plus the decoded (or short) body."""
    if reply is None:
        return "no reply"
    s = reply.head()
    extra = ""
    if reply.err == 0 and decode is not None:
        r = Reader(reply.body)
        try:
            extra = decode(r)
            if r.left():
                extra += " +trailing %s" % r.rest().hex()
        except ValueError as e:
            extra = "undecodable (%s) %s" % (e, short_body(reply.body))
    else:
        extra = short_body(reply.body)
    return s + (" " + extra if extra else "")


def print_stray(name, sess):
    for s in sess.take_stray():
        out("%s   %s" % (name, s))


def single(name, op, body=b"", xid=1, decode=None, raw=None):
    """One request on a fresh session: `name: <reply>; <liveness>`. `raw` replaces the
    whole frame payload (header included)."""
    try:
        s = Session()
    except Exception as e:  # noqa: BLE001
        out("%s: connect failed (%s)" % (name, type(e).__name__))
        return
    try:
        if raw is not None:
            try:
                s.send_raw(raw)
                r = s.wait_reply(xid)
            except Closed:
                r = None
        else:
            r = s.call(xid, op, body)
        print_stray(name, s)
        state = s.liveness()
        print_stray(name, s)
        out("%s: %s; %s" % (name, fmt(r, decode), state))
    finally:
        s.close()


class Case:
    """Several requests on one fresh session: a line per request, a last line with the
    liveness of the connection."""

    def __init__(self, name):
        self.name = name
        self.s = Session()

    def req(self, label, xid, op, body=b"", decode=None):
        r = self.s.call(xid, op, body)
        print_stray(self.name, self.s)
        out("%s %s: %s" % (self.name, label, fmt(r, decode)))
        return r

    def finish(self):
        state = self.s.liveness()
        print_stray(self.name, self.s)
        out("%s connection: %s" % (self.name, state))
        self.s.close()


def admin(steps):
    """Silent set-up / clean-up on its own session: [(op, body)], replies ignored."""
    try:
        s = Session()
    except Exception:  # noqa: BLE001
        return
    try:
        for i, (op, body) in enumerate(steps):
            s.call(100 + i, op, body)
    finally:
        s.close()


def delete_nodes(paths):
    admin([(OP["delete"], buf(p) + i32(-1)) for p in paths])


# ---------------------------------------------------------------------------- cases
def case_null_paths():
    out("## 1. truncated body, null paths on reads")
    # getData header, then a path whose length says 10 but only 3 bytes follow.
    single("1a getData truncated body", None, raw=i32(1) + i32(OP["getData"]) + i32(10) + b"/ab")
    for n in ("getData", "exists", "getChildren", "getChildren2"):
        single("1b %s path=null watch=0" % n, OP[n], buf(None) + bol(False))
    single("1c getACL path=null", OP["getACL"], buf(None))
    single("1d getAllChildrenNumber path=null", OP["getAllChildrenNumber"], buf(None))


def case_null_writes():
    out("## 2. null paths on writes")
    single("2a create path=null", OP["create"], create_body(None))
    single("2b delete path=null version=-1", OP["delete"], buf(None) + i32(-1))
    single("2c setData path=null", OP["setData"], buf(None) + buf(b"x") + i32(-1))


def case_watch_types():
    out("## 3. checkWatches/removeWatches with unknown watcher types")
    for op in ("checkWatches", "removeWatches"):
        for wt in (0, 7):
            single("3 %s / type=%d" % (op, wt), OP[op], buf("/") + i32(wt))


def case_addwatch_modes():
    out("## 4. addWatch with unknown modes")
    for m in (5, -1):
        single("4 addWatch / mode=%d" % m, OP["addWatch"], buf("/") + i32(m))


def case_setwatches():
    out("## 5. setWatches/setWatches2 with null lists")
    single("5a setWatches null x3", OP["setWatches"], i64(0) + i32(-1) * 3, xid=-8)
    single("5b setWatches2 null x5", OP["setWatches2"], i64(0) + i32(-1) * 5, xid=-8)


def case_acl_counts():
    out("## 6. ACL vector count -2")
    single("6a create /edge_acl acl-count=-2", OP["create"],
           create_body("/edge_acl", acl=i32(-2)), decode=lambda r: "path=%s" % r.str())
    single("6b setACL / acl-count=-2 version=-1", OP["setACL"], buf("/") + i32(-2) + i32(-1))


def case_ip_acls():
    out("## 7. ip ACLs")
    path = lambda r: "path=%s" % r.str()  # noqa: E731
    single("7a create /edge_v6 ip:::1", OP["create"],
           create_body("/edge_v6", acl=acl_vec([(31, "ip", "::1")])), decode=path)
    single("7b create /edge_ip33 ip:127.0.0.1/33", OP["create"],
           create_body("/edge_ip33", acl=acl_vec([(31, "ip", "127.0.0.1/33")])), decode=path)
    c = Case("7c")
    c.req("create /edge_net ip:10.0.0.0/8", 1, OP["create"],
          create_body("/edge_net", acl=acl_vec([(31, "ip", "10.0.0.0/8")])), decode=path)
    c.req("delete /edge_net", 2, OP["delete"], buf("/edge_net") + i32(-1))
    c.finish()


def case_auth_null():
    out("## 8. auth digest with a null auth buffer")
    # AuthPacket: type, scheme, auth.
    single("8 auth digest auth=null", OP["auth"], i32(0) + buf("digest") + buf(None), xid=-4)


def case_delete_container():
    out("## 9. deleteContainer from a client")
    c = Case("9")
    c.req("createContainer /edge_c1", 1, OP["createContainer"],
          create_body("/edge_c1", flags=4),
          decode=lambda r: "path=%s version=%d" % (r.str(), read_stat(r)["version"]))
    c.req("deleteContainer /edge_c1", 2, OP["deleteContainer"], buf("/edge_c1"))
    c.req("exists /edge_c1", 3, OP["exists"], buf("/edge_c1") + bol(False),
          decode=lambda r: (read_stat(r), "exists")[1])
    c.req("delete /edge_c1", 4, OP["delete"], buf("/edge_c1") + i32(-1))
    c.finish()


def case_sasl():
    out("## 10. sasl without SASL configured")
    # Undecoded on purpose: the body (a SetSASLResponse token) is printed as hex.
    single("10 sasl 4-byte token", OP["sasl"], buf(b"\x01\x02\x03\x04"))


def case_unknown_op():
    out("## 11. unknown opcode")
    single("11 opcode 999", 999)


def stat_rel(st, hdr):
    """version, dataLength, numChildren, and czxid/mzxid relative to the reply header's
    zxid (=hdr, <hdr, >hdr)."""
    def rel(z):
        return "=hdr" if z == hdr else ("<hdr" if z < hdr else ">hdr")
    return "version=%d dataLength=%d numChildren=%d czxid%s mzxid%s" % (
        st["version"], st["dataLength"], st["numChildren"], rel(st["czxid"]), rel(st["mzxid"]))


def multi_results(r, hdr, decoders):
    """MultiResponse: (MultiHeader type, done, err, result)* until done."""
    res = []
    while True:
        t, done, err = r.i32(), r.bool(), r.i32()
        if done:
            res.append("end(type=%d err=%d)" % (t, err))
            return res
        if t == -1:
            res.append("error hdr-err=%d err=%s" % (err, errname(r.i32())))
        elif t in decoders:
            res.append("%s err=%d %s" % (OPNAME.get(t, t), err, decoders[t](r, hdr)))
        else:
            res.append("type=%d err=%d ?" % (t, err))
            return res  # unknown layout: stop here


def case_multi():
    out("## 12. multi and multiRead")
    s = Session()
    m = "/edge_m"
    ops = [(OP["create"], create_body(m, b"a")),
           (OP["setData"], buf(m) + buf(b"bb") + i32(-1)),
           (OP["setData"], buf(m) + buf(b"ccc") + i32(-1)),
           (OP["create"], create_body(m + "/c")),
           # A plain create: ZooKeeper 3.8.0 (the Debian package this suite runs)
           # answers a create2 inside a multi like a create, without its Stat; 3.8.2+
           # (and Paddock, which follows the newest 3.8.x) adds the Stat
           # (tests/multi.rs checks that one).
           (OP["create"], create_body("/edge_gone", b"xy")),
           (OP["delete"], buf("/edge_gone") + i32(-1))]
    write_dec = {
        OP["create"]: lambda r, h: "path=%s" % r.str(),
        OP["setData"]: lambda r, h: stat_rel(read_stat(r), h),
        OP["create2"]: lambda r, h: "path=%s %s" % (r.str(), stat_rel(read_stat(r), h)),
        OP["delete"]: lambda r, h: "",
    }
    r = s.call(1, OP["multi"], multi_body(ops))
    print_stray("12", s)
    if r is None or r.err != 0:
        out("12 multi: %s" % fmt(r))
    else:
        out("12 multi: %s" % r.head())
        try:
            for i, line in enumerate(multi_results(Reader(r.body), r.zxid, write_dec)):
                out("12   result %d: %s" % (i + 1, line.rstrip()))
        except ValueError as e:
            out("12   undecodable (%s) %s" % (e, short_body(r.body)))
    read_ops = [(OP["getData"], buf(m) + bol(False)),
                (OP["getChildren"], buf(m) + bol(False)),
                (OP["getData"], buf("/edge_nonexist") + bol(False))]
    read_dec = {
        OP["getData"]: lambda r, h: "%s version=%d" % (data_kind(r.buf()), read_stat(r)["version"]),
        OP["getChildren"]: lambda r, h: "children=%s" % r.vec(r.str),
    }
    r = s.call(2, OP["multiRead"], multi_body(read_ops))
    print_stray("12", s)
    if r is None or r.err != 0:
        out("12 multiRead: %s" % fmt(r))
    else:
        out("12 multiRead: %s" % r.head())
        try:
            for i, line in enumerate(multi_results(Reader(r.body), r.zxid, read_dec)):
                out("12   result %d: %s" % (i + 1, line))
        except ValueError as e:
            out("12   undecodable (%s) %s" % (e, short_body(r.body)))
    out("12 connection: %s" % s.liveness())
    s.close()
    delete_nodes(["/edge_m/c", "/edge_m", "/edge_gone"])


def case_persistent_watch():
    out("## 13. a persistent watch: checkWatches/removeWatches on its two halves")
    pw = "/edge_pw"
    c = Case("13")
    c.req("create %s" % pw, 1, OP["create"], create_body(pw), decode=lambda r: "path=%s" % r.str())
    c.req("addWatch %s mode=0" % pw, 2, OP["addWatch"], buf(pw) + i32(0))
    for t in (1, 2, 3):
        c.req("checkWatches type=%d" % t, 10 + t, OP["checkWatches"], buf(pw) + i32(t))
    c.req("removeWatches type=2", 20, OP["removeWatches"], buf(pw) + i32(2))
    # Events triggered by a request reach its session before the reply: they are
    # printed on "event" lines above the request's own line.
    c.req("setData %s" % pw, 21, OP["setData"], buf(pw) + buf(b"x") + i32(-1),
          decode=lambda r: "version=%d" % read_stat(r)["version"])
    c.req("create %s/c" % pw, 22, OP["create"], create_body(pw + "/c"),
          decode=lambda r: "path=%s" % r.str())
    c.req("removeWatches type=2 again", 23, OP["removeWatches"], buf(pw) + i32(2))
    c.req("removeWatches type=1", 24, OP["removeWatches"], buf(pw) + i32(1))
    c.req("checkWatches type=3", 25, OP["checkWatches"], buf(pw) + i32(3))
    c.req("addWatch %s mode=1" % pw, 26, OP["addWatch"], buf(pw) + i32(1))
    c.req("checkWatches type=1", 27, OP["checkWatches"], buf(pw) + i32(1))
    c.finish()
    delete_nodes([pw + "/c", pw])


def case_whoami():
    out("## 14. whoAmI after addauth digest")
    who = lambda r: "ids=%s" % r.vec(lambda: (r.str(), r.str()))  # noqa: E731
    for cred in ("alice:secret", "alice:pw"):
        c = Case("14")
        c.req("auth digest %s" % cred, -4, OP["auth"], i32(0) + buf("digest") + buf(cred))
        c.req("whoAmI", 2, OP["whoAmI"], decode=who)  # in the order received, not sorted
        c.finish()


def case_paths():
    out("## 15. odd paths, /zookeeper data")
    single("15a delete /edge_x/", OP["delete"], buf("/edge_x/") + i32(-1))
    # The root's children differ between servers (other checks): the error code only.
    single("15b getChildren \"\"", OP["getChildren"], buf("") + bol(False),
           decode=lambda r: (r.rest(), "")[1])
    for p in ("/zookeeper", "/zookeeper/quota"):
        single("15c getData %s" % p, OP["getData"], buf(p) + bol(False),
               decode=lambda r: (data_kind(r.buf()), r.rest())[0])


# ---------------------------------------------------------------------------- 4lw
def four_letter(word, timeout=5.0):
    """The server's whole answer to a four-letter word (it closes the connection)."""
    c = socket.create_connection((HOST, PORT), timeout=timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        c.sendall(word.encode())
        while time.monotonic() < deadline:
            c.settimeout(max(0.1, deadline - time.monotonic()))
            d = c.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        data += b"<timeout: not closed>"
    except OSError:
        data += b"<reset>"
    finally:
        c.close()
    return data.decode("utf-8", "replace")


def digits_to_n(s):
    return re.sub(r"\d+", "N", s)


def norm_wchc(text, ids):
    """wchc: session blocks ("0x<sid>" then "\t<path>" lines). Only S1's and S2's blocks
    with their /edge_ paths. ZooKeeper keys its table by connection object (identity
    hash) and keeps each connection's paths in a HashSet, so both orders are Java hash
    order: blocks are printed S1 then S2 and paths sorted."""
    blocks, cur = {}, None
    for line in text.split("\n"):
        if line.startswith("\t"):
            if cur is not None and line[1:].startswith("/edge_"):
                blocks[cur].append(line[1:])
        else:
            cur = ids.get(line.strip())
            if cur is not None:
                blocks.setdefault(cur, [])
    res = []
    for label in sorted(blocks):
        res.append("wchc %s: %s" % (label, " ".join(sorted(blocks[label]))))
    return res


def norm_wchp(text, ids):
    """wchp: path blocks ("<path>" then "\t0x<sid>" lines). Only /edge_ paths and S1/S2.
    The path table is a Java HashMap (its order depends on the table's size, i.e. the
    server's history) and each path's watchers a HashSet by identity: both sorted."""
    blocks, cur = {}, None
    for line in text.split("\n"):
        if line.startswith("\t"):
            label = ids.get(line.strip())
            if label is not None:
                blocks.setdefault(cur or "(other path)", []).append(label)
        elif line:
            cur = line if line.startswith("/edge_") else None
            if cur:
                blocks.setdefault(cur, [])
    return ["wchp %s: %s" % (p, " ".join(sorted(blocks[p]))) for p in sorted(blocks)]


def ends_blank(text):
    """Whether the output ends with a blank line (ZooKeeper's WatchCommand println())."""
    return text == "\n" or text.endswith("\n\n")


def norm_cons(text, ids):
    """cons: S1's and S2's lines, sid -> S1/S2, lzxid -> -1 or N, other numbers -> N
    (lop= kept)."""
    res = []
    for label, sid in sorted((l, s) for s, l in ids.items()):
        lines = [ln for ln in text.split("\n") if "sid=%s" % sid in ln]
        if not lines:
            res.append("cons %s: (no line)" % label)
        for ln in lines:
            ln = ln.replace("sid=%s" % sid, "sid=\x01")  # put back after the numbers
            ln = re.sub(r"lzxid=0xffffffffffffffff\b", "lzxid=\x02", ln)
            ln = re.sub(r"lzxid=0x[0-9a-f]+", "lzxid=N", ln)
            ln = re.sub(r"0x[0-9a-fA-F]+|\d+",
                        lambda m: "0xN" if m[0].startswith("0x") else "N", ln)
            ln = ln.replace("\x01", label).replace("\x02", "-1")
            res.append("cons %s: %s" % (label, ln.strip()))
    return res


def norm_dump(text, s1):
    lines = text.split("\n")
    res = ["dump line 1: %s" % (lines[0] if lines else "")]
    res.append("dump line 2 shape: %s" % (digits_to_n(lines[1]) if len(lines) > 1 else ""))
    res.append("dump mentions S1: %s" % ("yes" if s1 in text else "no"))
    for header in ("ephemeral nodes dump:", "Connections dump:"):
        if header in lines:
            i = lines.index(header)
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            res.append("dump %s next line shape: %s" % (header, digits_to_n(nxt)))
        else:
            res.append("dump %s (missing)" % header)
    return res


def norm_envi(text):
    lines = text.split("\n")
    keys = [ln.split("=", 1)[0] for ln in lines[1:] if "=" in ln]
    return ["envi line 1: %s" % lines[0], "envi keys: %s" % " ".join(keys)]


def norm_srvr(text):
    keys = [ln.split(":", 1)[0] for ln in text.split("\n") if ":" in ln]
    res = ["srvr keys: %s" % " | ".join(keys)]
    lat = [ln for ln in text.split("\n") if ln.startswith("Latency min/avg/max:")]
    if lat:
        parts = lat[0].split(":", 1)[1].strip().split("/")
        avg = parts[1] if len(parts) == 3 else ""
        ok = re.fullmatch(r"\d+(\.\d{1,4})?", avg) is not None
        res.append("srvr latency avg has at most 4 decimals: %s"
                   % ("yes" if ok else "no (%s)" % digits_to_n(avg)))
    else:
        res.append("srvr latency: (no Latency line)")
    return res


def case_four_letter_words():
    out("## 16. four-letter words with two known sessions")
    admin([(OP["create"], create_body("/edge_w1"))])
    s1, s2 = Session(), Session()
    ids = {"0x%x" % s1.sid: "S1", "0x%x" % s2.sid: "S2"}
    for label, xid, op, body in [
            ("getData /edge_w1 watch=1", 1, OP["getData"], buf("/edge_w1") + bol(True)),
            ("exists /edge_nope watch=1", 2, OP["exists"], buf("/edge_nope") + bol(True)),
            ("getChildren /edge_w1 watch=1", 3, OP["getChildren"], buf("/edge_w1") + bol(True))]:
        r = s1.call(xid, op, body)
        out("16 S1 %s: %s" % (label, "no reply" if r is None else r.head()))
    for label, xid, op, body in [
            ("create /edge_w2", 1, OP["create"], create_body("/edge_w2")),
            ("addWatch /edge_w2 mode=0", 2, OP["addWatch"], buf("/edge_w2") + i32(0))]:
        r = s2.call(xid, op, body)
        out("16 S2 %s: %s" % (label, "no reply" if r is None else r.head()))
    print_stray("16 S1", s1)
    print_stray("16 S2", s2)

    wchc, wchp = four_letter("wchc"), four_letter("wchp")
    for line in norm_wchc(wchc, ids):
        out("16 " + line)
    out("16 wchc ends with a blank line: %s" % ends_blank(wchc))
    for line in norm_wchp(wchp, ids):
        out("16 " + line)
    out("16 wchp ends with a blank line: %s" % ends_blank(wchp))
    for line in norm_cons(four_letter("cons"), ids):
        out("16 " + line)
    for line in norm_dump(four_letter("dump"), "0x%x" % s1.sid):
        out("16 " + line)
    for line in norm_envi(four_letter("envi")):
        out("16 " + line)
    for line in norm_srvr(four_letter("srvr")):
        out("16 " + line)

    # Close both sessions; with no other watches left the watch dumps are just "\n".
    for label, s in (("S1", s1), ("S2", s2)):
        r = s.call(0x7FFF, OP["closeSession"])
        out("16 %s closeSession: %s" % (label, "no reply" if r is None else r.head()))
        s.sock.close()
        s.closed = True
    time.sleep(1.0)
    for w in ("wchc", "wchp"):
        text = four_letter(w)
        if text.strip() == "":
            out("16 %s after close: %r" % (w, text))
        else:  # other checks' watches remain: the tail only
            out("16 %s after close: (other watches) ends with \\n: %s" % (w, text.endswith("\n")))
    delete_nodes(["/edge_w1", "/edge_w2"])


def main():
    # A server that has just started may answer ruok before it serves sessions.
    deadline = time.monotonic() + 20
    while True:
        try:
            Session().close()
            break
        except Exception as e:  # noqa: BLE001
            if time.monotonic() > deadline:
                print("edge_and_4lw.py: cannot open a session on %s:%d: %s" % (HOST, PORT, e),
                      file=sys.stderr)
                sys.exit(2)
            time.sleep(0.5)
    delete_nodes(EDGE_NODES)  # left over from an earlier run on this server
    out("# raw edge requests and four-letter words (normalised)")
    for case in (case_null_paths, case_null_writes, case_watch_types, case_addwatch_modes,
                 case_setwatches, case_acl_counts, case_ip_acls, case_auth_null,
                 case_delete_container, case_sasl, case_unknown_op, case_multi,
                 case_persistent_watch, case_whoami, case_paths, case_four_letter_words):
        try:
            case()
        except Exception as e:  # noqa: BLE001 - report, go on with the next case
            out("%s: aborted (%s: %s)" % (case.__name__, type(e).__name__, e))
    delete_nodes(EDGE_NODES)
    out("# end")


if __name__ == "__main__":
    main()
