#!/usr/bin/env python3
"""Data directory compatibility between Paddock and Apache ZooKeeper, through kazoo.

  datadir.py write PORT OUT   write a varied tree on the server at PORT, then dump it to OUT
                              and leave without closing the session (its ephemerals stay)
  datadir.py dump PORT OUT    dump every node (data, Stat, ACL) of the server at PORT to OUT
  datadir.py compare A B      exit 1 with the differences if the dumps differ

run.sh writes with one server, kills it, starts the other on a copy of the data directory,
dumps, and compares.
"""
import base64
import json
import os
import sys

from collections import namedtuple

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Create2, long_struct
from kazoo.security import make_digest_acl, OPEN_ACL_UNSAFE


class CreateContainer(namedtuple("CreateContainer", "path data acl flags")):
    """createContainer (opcode 19): kazoo has no call for it; same body as create2."""
    type = 19
    serialize = Create2.serialize
    deserialize = Create2.deserialize


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    """createTTL (opcode 21): create2's body plus a long ttl."""
    type = 21

    def serialize(self):
        return Create2.serialize(self) + long_struct.pack(self.ttl)

    deserialize = Create2.deserialize


def raw(zk, request):
    result = zk.handler.async_result()
    zk._call(request, result)
    return result.get()

OWNER = ("owner", "pw")


def client(port):
    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30)
    zk.start(timeout=30)
    zk.add_auth("digest", f"{OWNER[0]}:{OWNER[1]}")
    return zk


def write(zk):
    zk.create("/app", b"")
    for i in range(400):
        p = f"/app/n{i:04d}"
        zk.create(p, f"value {i}".encode())
        if i % 3 == 0:
            zk.create(f"{p}/child", b"c")
        if i % 5 == 0:
            zk.set(p, f"set {i}".encode())
        if i % 7 == 0:
            if i % 3 == 0:
                zk.delete(f"{p}/child")
            zk.delete(p)
    for _ in range(5):
        zk.create("/app/seq-", b"s", sequence=True)
    zk.create("/empty", b"")
    zk.create("/null", None)
    zk.create("/binary", bytes(range(256)))
    owner_acl = make_digest_acl(OWNER[0], OWNER[1], all=True)
    zk.create("/private", b"secret", acl=[owner_acl])
    zk.create("/mixed", b"m", acl=[owner_acl] + list(OPEN_ACL_UNSAFE))
    zk.set_acls("/mixed", [owner_acl])
    raw(zk, CreateContainer("/container", b"", OPEN_ACL_UNSAFE, 4))
    zk.create("/container/keep", b"k")
    raw(zk, CreateTTL("/ttl", b"t", OPEN_ACL_UNSAFE, 5, 3_600_000))
    zk.create("/eph", b"held", ephemeral=True)
    zk.create("/eph-seq-", b"held", ephemeral=True, sequence=True)
    tx = zk.transaction()
    tx.create("/multi-a", b"a")
    tx.create("/multi-b", b"b")
    tx.set_data("/app/n0001", b"from multi")
    tx.commit()
    for i in range(100):
        zk.set("/app/n0002", f"churn {i}".encode())


def dump(zk):
    out = {}
    todo = ["/"]
    while todo:
        p = todo.pop()
        data, st = zk.get(p)
        acl = zk.get_acls(p)[0]
        out[p] = {
            "data": None if data is None else base64.b64encode(data).decode(),
            "stat": [st.czxid, st.mzxid, st.ctime, st.mtime, st.version, st.cversion,
                     st.aversion, st.ephemeralOwner, st.dataLength, st.numChildren, st.pzxid],
            "acl": sorted([a.perms, a.id.scheme, a.id.id] for a in acl),
        }
        for c in zk.get_children(p):
            todo.append(("" if p == "/" else p) + "/" + c)
    return out


def main():
    cmd = sys.argv[1]
    if cmd in ("write", "dump"):
        port, path = sys.argv[2], sys.argv[3]
        zk = client(port)
        if cmd == "write":
            write(zk)
        tree = dump(zk)
        with open(path, "w") as f:
            json.dump(tree, f, sort_keys=True, indent=0)
        print(f"{cmd}: {len(tree)} nodes from port {port}")
        if cmd == "write":
            # Leave without closeSession: the session and its ephemerals outlive us.
            sys.stdout.flush()
            os._exit(0)
        zk.stop()
    elif cmd == "compare":
        a, b = (json.load(open(p)) for p in sys.argv[2:4])
        bad = []
        for p in sorted(set(a) | set(b)):
            if a.get(p) != b.get(p):
                bad.append(f"{p}:\n  before {a.get(p)}\n  after  {b.get(p)}")
        if bad:
            print(f"{len(bad)} of {len(a)} nodes differ:")
            print("\n".join(bad[:20]))
            sys.exit(1)
        eph = sum(1 for v in a.values() if v["stat"][7] != 0)
        print(f"identical: {len(a)} nodes (data, Stat and ACL), {eph} ephemeral")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
