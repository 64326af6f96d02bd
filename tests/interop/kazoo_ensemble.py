#!/usr/bin/env python3
"""kazoo_ensemble.py HOSTS write FROM TO | HOSTS check COUNT — kazoo against an ensemble.

write: connects to the ensemble (HOSTS: "h:p,h:p,..."), creates /kz/FROM .. /kz/TO-1,
retrying a create whose connection was lost (NodeExists on a retry means an earlier
attempt landed), and prints "wrote N".
check: connects to HOSTS (one member), syncs, and exits non-zero unless /kz holds
exactly /kz/0 .. /kz/COUNT-1 with their data.
Every wait is bounded.
"""
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError, SessionExpiredError
from kazoo.retry import KazooRetry

hosts, what = sys.argv[1], sys.argv[2]
zk = KazooClient(hosts=hosts, timeout=10.0,
                 connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0))
zk.start(timeout=30)
if what == "write":
    lo, hi = int(sys.argv[3]), int(sys.argv[4])
    zk.ensure_path("/kz")
    for i in range(lo, hi):
        deadline = time.time() + 30
        retried = False
        while True:
            try:
                zk.create("/kz/%d" % i, b"v%d" % i)
                break
            except NodeExistsError:
                if retried:
                    break
                raise
            except (ConnectionLoss, SessionExpiredError):
                if time.time() > deadline:
                    raise
                retried = True
                time.sleep(0.1)
    print("wrote %d" % (hi - lo))
elif what == "check":
    count = int(sys.argv[3])
    zk.sync("/kz")
    kids = sorted(zk.get_children("/kz"), key=int)
    want = [str(i) for i in range(count)]
    if kids != want:
        missing = sorted(set(want) - set(kids), key=int)
        extra = sorted(set(kids) - set(want))
        sys.exit("%s: /kz differs: missing %s, extra %s" % (hosts, missing[:10], extra[:10]))
    for i in (0, count // 2, count - 1):
        data, _ = zk.get("/kz/%d" % i)
        if data != b"v%d" % i:
            sys.exit("%s: /kz/%d holds %r" % (hosts, i, data))
    print("%s holds /kz/0..%d" % (hosts, count - 1))
zk.stop()
zk.close()
