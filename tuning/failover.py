#!/usr/bin/env python3
"""failover.py HOSTS PGID — time from kill -9 of an ensemble's leader to the first write
answered after it.

Connects kazoo to HOSTS (the followers), writes sequential nodes back to back, kills the
process group PGID (the leader) after 2 s of writes, and prints
"first write after the kill: N ms" (the time from the kill to the first create answered
after it; kazoo retries every 20 ms). Bounded: gives up after 60 s.
"""
import os
import signal
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError, NoNodeError
from kazoo.retry import KazooRetry

hosts, pgid = sys.argv[1], int(sys.argv[2])
zk = KazooClient(hosts=hosts, timeout=10.0,
                 connection_retry=KazooRetry(max_tries=-1, delay=0.02, max_delay=0.05))
zk.start(timeout=30)
zk.ensure_path("/failover")
started = time.time()
killed = None
while True:
    try:
        zk.create("/failover/w-", b"", sequence=True)
        if killed is not None:
            print("first write after the kill: %.0f ms" % ((time.time() - killed) * 1000))
            break
    except (ConnectionLoss, SessionExpiredError, NoNodeError):
        time.sleep(0.02)
    if killed is None and time.time() - started > 2:
        os.killpg(pgid, signal.SIGKILL)
        killed = time.time()
    if time.time() - started > 60:
        sys.exit("no write within 60 s")
zk.stop()
