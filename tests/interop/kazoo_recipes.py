#!/usr/bin/env python3
"""kazoo_recipes.py PORT — exercise kazoo's recipes against a ZooKeeper-compatible
server on 127.0.0.1:PORT, with assertions.

Each recipe runs in its own thread with an overall time limit; every wait inside is
bounded as well. One line per recipe ("PASS name: ..." / "FAIL name: ..."), then a last
line "N passed, M failed". Exit status 0 only if nothing failed. All nodes live under a
root path unique to this run, removed at the end.
"""
import os
import sys
import threading
import time
import traceback
import uuid

from kazoo.client import KazooClient
from kazoo.exceptions import LockTimeout
from kazoo.protocol.states import EventType

if len(sys.argv) != 2:
    sys.exit("usage: kazoo_recipes.py PORT")
HOSTS = "127.0.0.1:%d" % int(sys.argv[1])
ROOT = "/paddock-interop-%d-%s" % (os.getpid(), uuid.uuid4().hex[:10])
RECIPE_TIMEOUT = float(os.environ.get("KAZOO_RECIPE_TIMEOUT", "60"))
WAIT = 15.0  # bound for any single "this should happen soon" wait
BLOCK_CHECK = 1.0  # how long something must stay blocked to count as "blocks"

clients = []
clients_lock = threading.Lock()


def client():
    c = KazooClient(hosts=HOSTS, timeout=10.0, connection_retry={"max_tries": 3, "delay": 0.2})
    c.start(timeout=15)
    with clients_lock:
        clients.append(c)
    return c


def stop(c):
    try:
        c.stop()
        c.close()
    except Exception:
        pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def wait_until(pred, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def spawn(fn, *args):
    """Run fn in a daemon thread; returns (thread, result dict with 'value'/'error')."""
    box = {}

    def body():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # reported by the caller
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, box


def joined(t, box, what, timeout=WAIT):
    t.join(timeout)
    check(not t.is_alive(), what + " did not finish within %.0fs" % timeout)
    if "error" in box:
        raise AssertionError("%s raised %r" % (what, box["error"]))
    return box.get("value")


# ---------------------------------------------------------------------------------------

def t_lock():
    path = ROOT + "/lock"
    c1, c2 = client(), client()
    l1, l2 = c1.Lock(path, "c1"), c2.Lock(path, "c2")
    check(l1.acquire(timeout=WAIT), "c1 could not take the free lock")
    # a bounded attempt by the other client times out while the lock is held
    try:
        c2.Lock(path, "c2-try").acquire(timeout=0.5)
        raise AssertionError("second client acquired a held lock")
    except LockTimeout:
        pass
    order = []
    got2 = threading.Event()

    def second():
        ok = l2.acquire(timeout=WAIT)
        order.append("c2 acquired")
        got2.set()
        return ok

    t, box = spawn(second)
    wait_until(lambda: len(l1.contenders()) == 2, "both contenders to be queued")
    check(l1.contenders() == ["c1", "c2"], "contenders %r" % l1.contenders())
    check(not got2.wait(BLOCK_CHECK), "second client got the lock while the first held it")
    order.append("c1 releasing")
    l1.release()
    check(joined(t, box, "second acquire") is True, "second acquire returned False")
    check(order == ["c1 releasing", "c2 acquired"], "order %r" % order)
    l2.release()

    # mutual exclusion: 2 clients x 2 threads x 5 rounds of read-modify-write under the lock
    c1.ensure_path(path + "-counter")
    c1.set(path + "-counter", b"0")
    inside = []
    overlap = []

    def worker(c, name):
        lk = c.Lock(path + "-mx", name)
        for _ in range(5):
            check(lk.acquire(timeout=WAIT), name + " could not acquire")
            try:
                if inside:
                    overlap.append((name, list(inside)))
                inside.append(name)
                v = int(c.get(path + "-counter")[0])
                time.sleep(0.01)
                c.set(path + "-counter", str(v + 1).encode())
                inside.remove(name)
            finally:
                lk.release()

    ws = [spawn(worker, c, "%s-t%d" % (cn, i)) for cn, c in (("c1", c1), ("c2", c2)) for i in range(2)]
    for t, box in ws:
        joined(t, box, "lock worker", timeout=RECIPE_TIMEOUT / 2)
    check(not overlap, "two holders at once: %r" % overlap[:3])
    final = int(c1.get(path + "-counter")[0])
    check(final == 20, "counter %d, expected 20" % final)
    return "second client blocked until release, contenders in order, 20/20 exclusive increments"


def t_election():
    path = ROOT + "/election"
    c1, c2 = client(), client()
    e = {"c1": c1.Election(path, "c1"), "c2": c2.Election(path, "c2")}
    leaders = []
    release = {"c1": threading.Event(), "c2": threading.Event()}

    def lead(name):
        leaders.append(name)
        release[name].wait(RECIPE_TIMEOUT)

    def run(name):
        try:
            e[name].run(lead, name)
        except Exception:
            pass  # the stopped leader's lock release fails with a closed connection

    spawn(run, "c1")
    wait_until(lambda: leaders == ["c1"], "c1 to lead an empty election")
    spawn(run, "c2")
    wait_until(lambda: len(e["c1"].contenders()) == 2, "both candidates to be queued")
    check(e["c2"].contenders() == ["c1", "c2"], "contenders %r" % e["c2"].contenders())
    time.sleep(BLOCK_CHECK)
    check(leaders == ["c1"], "leaders %r with both candidates" % leaders)
    stop(c1)  # the leader's session ends; its ephemeral node goes
    wait_until(lambda: leaders == ["c1", "c2"], "c2 to take over")
    check(e["c2"].contenders() == ["c2"], "contenders after takeover %r" % e["c2"].contenders())
    release["c1"].set()
    release["c2"].set()
    return "exactly one leader (c1), c2 took over when c1's client stopped"


def t_counter():
    path = ROOT + "/counter"
    c1, c2 = client(), client()

    def bump(c, n):
        ctr = c.Counter(path, default=0)
        for _ in range(n):
            ctr += 1

    ws = [spawn(bump, c1, 25), spawn(bump, c1, 25), spawn(bump, c2, 25), spawn(bump, c2, 25)]
    for t, box in ws:
        joined(t, box, "counter worker", timeout=RECIPE_TIMEOUT / 2)
    check(c1.Counter(path).value == 100, "counter %r, expected 100" % c1.Counter(path).value)
    ctr = c2.Counter(path)
    ctr -= 7
    check((ctr.pre_value, ctr.post_value) == (100, 93), "pre/post %r" % ((ctr.pre_value, ctr.post_value),))
    check(c1.Counter(path).value == 93, "counter after -7 is %r" % c1.Counter(path).value)
    fc = c1.Counter(ROOT + "/fcounter", default=0.5)
    fc += 1.25
    check(c2.Counter(ROOT + "/fcounter", default=0.5).value == 1.75, "float counter")
    return "4 threads on 2 clients: 100 increments summed, decrement and float counter ok"


def t_barrier():
    path = ROOT + "/barrier"
    c1, c2 = client(), client()
    b1 = c1.Barrier(path)
    b1.create()
    check(c2.Barrier(path).wait(timeout=0.5) is False, "wait(timeout) on a set barrier returned True")
    t, box = spawn(c2.Barrier(path).wait, WAIT)
    t.join(BLOCK_CHECK)
    check(t.is_alive(), "wait returned while the barrier was up")
    b1.remove()
    check(joined(t, box, "barrier wait") is True, "wait returned False after removal")
    check(c2.Barrier(path).wait(timeout=0.5) is True, "wait on a removed barrier")
    return "wait blocked until the barrier was removed"


def t_double_barrier():
    path = ROOT + "/dbarrier"
    c1, c2 = client(), client()
    d1, d2 = c1.DoubleBarrier(path, 2), c2.DoubleBarrier(path, 2)
    t1, box1 = spawn(d1.enter)
    t1.join(BLOCK_CHECK)
    check(t1.is_alive(), "enter returned with 1 of 2 participants")
    t2, box2 = spawn(d2.enter)
    joined(t1, box1, "first enter")
    joined(t2, box2, "second enter")
    check(d1.participating and d2.participating, "not participating after enter")
    t1, box1 = spawn(d1.leave)
    t1.join(BLOCK_CHECK)
    check(t1.is_alive(), "leave returned while the other participant was still in")
    t2, box2 = spawn(d2.leave)
    joined(t1, box1, "first leave")
    joined(t2, box2, "second leave")
    check(c1.get_children(path) == [], "participants left behind: %r" % c1.get_children(path))
    return "enter waited for 2 participants, leave waited for both"


def t_queue():
    path = ROOT + "/queue"
    c1, c2 = client(), client()
    q1, q2 = c1.Queue(path), c2.Queue(path)
    items = [("item-%02d" % i).encode() for i in range(12)]
    for it in items:
        q1.put(it)
    check(len(q2) == 12, "len %d" % len(q2))
    got = [q2.get() for _ in range(12)]
    check(got == items, "FIFO order broken: %r" % got)
    check(q2.get() is None, "get on an empty queue")
    q1.put(b"low", priority=200)
    q1.put(b"high", priority=10)
    q1.put(b"mid", priority=100)
    got = [q2.get() for _ in range(3)]
    check(got == [b"high", b"mid", b"low"], "priority order %r" % got)
    lq1, lq2 = c1.LockingQueue(path + "-locking"), c2.LockingQueue(path + "-locking")
    lq1.put_all([b"a", b"b"])
    check(lq2.get(timeout=WAIT) == b"a", "locking queue head")
    check(lq2.consume(), "consume")
    check(lq1.get(timeout=WAIT) == b"b" and lq1.consume(), "locking queue second item")
    check(lq2.get(timeout=0.5) is None, "get on an empty locking queue")
    return "12 items FIFO across clients, priorities honoured, locking queue ok"


def t_semaphore():
    path = ROOT + "/semaphore"
    cs = [client() for _ in range(3)]
    sems = [c.Semaphore(path, "s%d" % i, max_leases=2) for i, c in enumerate(cs)]
    check(sems[0].acquire(timeout=WAIT) and sems[1].acquire(timeout=WAIT), "two leases")
    t, box = spawn(sems[2].acquire, True, WAIT)
    t.join(BLOCK_CHECK)
    check(t.is_alive(), "third lease granted with max_leases=2")
    check(sorted(sems[2].lease_holders()) == ["s0", "s1"], "holders %r" % sems[2].lease_holders())
    sems[0].release()
    check(joined(t, box, "third acquire") is True, "third acquire failed")
    check(sorted(sems[1].lease_holders()) == ["s1", "s2"], "holders %r" % sems[1].lease_holders())
    sems[1].release()
    sems[2].release()
    return "third holder blocked until a lease was released"


def t_rwlock():
    path = ROOT + "/rwlock"
    c1, c2, c3 = client(), client(), client()
    r1, r2, w = c1.ReadLock(path, "r1"), c2.ReadLock(path, "r2"), c3.WriteLock(path, "w")
    check(r1.acquire(timeout=WAIT) and r2.acquire(timeout=WAIT), "two readers at once")
    t, box = spawn(w.acquire, True, WAIT)
    t.join(BLOCK_CHECK)
    check(t.is_alive(), "writer got in with readers holding")
    r1.release()
    t.join(0.5)
    check(t.is_alive(), "writer got in with one reader holding")
    r2.release()
    check(joined(t, box, "writer acquire") is True, "writer acquire failed")
    r3 = c1.ReadLock(path, "r3")
    try:
        ok = r3.acquire(timeout=0.5)
        check(not ok, "reader got in while the writer held")
    except LockTimeout:
        pass
    w.release()
    check(r3.acquire(timeout=WAIT), "reader after the writer released")
    r3.release()
    return "readers shared, writer excluded until both released, reader waited for writer"


def t_data_watch():
    path = ROOT + "/dwatch"
    c1, c2 = client(), client()
    seen = []

    def cb(data, stat, event):
        seen.append((data, stat.version if stat else None, event.type if event else None))

    c2.DataWatch(path, cb)
    wait_until(lambda: len(seen) == 1, "the initial DataWatch call")
    expected = [(None, None, None)]
    steps = [
        (lambda: c1.create(path, b"v0"), (b"v0", 0, EventType.CREATED)),
        (lambda: c1.set(path, b"v1"), (b"v1", 1, EventType.CHANGED)),
        (lambda: c1.set(path, b""), (b"", 2, EventType.CHANGED)),
        (lambda: c1.set(path, b"v3"), (b"v3", 3, EventType.CHANGED)),
        (lambda: c1.delete(path), (None, None, EventType.DELETED)),
        (lambda: c1.create(path, b"again"), (b"again", 0, EventType.CREATED)),
    ]
    for action, exp in steps:
        action()
        expected.append(exp)
        wait_until(lambda: len(seen) >= len(expected), "DataWatch to see %r" % (exp,))
        check(seen == expected, "DataWatch saw %r, expected %r" % (seen, expected))
    time.sleep(0.3)
    check(seen == expected, "extra DataWatch calls: %r" % seen[len(expected):])
    return "%d callbacks in order (create, 3 changes, delete, re-create)" % len(seen)


def t_children_watch():
    path = ROOT + "/cwatch"
    c1, c2, c3 = client(), client(), client()
    c1.ensure_path(path)
    seen = []
    c2.ChildrenWatch(path, lambda children: seen.append(sorted(children)))
    wait_until(lambda: len(seen) == 1, "the initial ChildrenWatch call")
    expected = [[]]
    steps = [
        (lambda: c1.create(path + "/a"), ["a"]),
        (lambda: c1.create(path + "/b"), ["a", "b"]),
        (lambda: c1.create(path + "/c"), ["a", "b", "c"]),
        (lambda: c1.set(path + "/a", b"data changes do not fire child watches") and None, None),
        (lambda: c1.delete(path + "/b"), ["a", "c"]),
        (lambda: c3.create(path + "/eph", ephemeral=True), ["a", "c", "eph"]),
        (lambda: stop(c3), ["a", "c"]),  # session close deletes the ephemeral
    ]
    for action, exp in steps:
        action()
        if exp is None:
            time.sleep(0.3)
        else:
            expected.append(exp)
            wait_until(lambda: len(seen) >= len(expected), "ChildrenWatch to see %r" % (exp,))
        check(seen == expected, "ChildrenWatch saw %r, expected %r" % (seen, expected))
    time.sleep(0.3)
    check(seen == expected, "extra ChildrenWatch calls: %r" % seen[len(expected):])
    return "%d callbacks in order (3 creates, delete, ephemeral create, session close)" % len(seen)


RECIPES = [
    ("lock", t_lock),
    ("election", t_election),
    ("counter", t_counter),
    ("barrier", t_barrier),
    ("double_barrier", t_double_barrier),
    ("queue", t_queue),
    ("semaphore", t_semaphore),
    ("rwlock", t_rwlock),
    ("data_watch", t_data_watch),
    ("children_watch", t_children_watch),
]


def main():
    passed = failed = 0
    try:
        admin = client()
        admin.create(ROOT)
    except Exception as e:
        print("FAIL setup: cannot connect to %s or create %s: %r" % (HOSTS, ROOT, e))
        print("0 passed, %d failed" % len(RECIPES))
        sys.stdout.flush()
        os._exit(1)
    for name, fn in RECIPES:
        started = time.monotonic()
        t, box = spawn(fn)
        t.join(RECIPE_TIMEOUT)
        took = time.monotonic() - started
        if t.is_alive():
            failed += 1
            print("FAIL %s: did not finish within %.0fs" % (name, RECIPE_TIMEOUT))
        elif "error" in box:
            failed += 1
            err = box["error"]
            msg = str(err) if isinstance(err, AssertionError) else repr(err)
            print("FAIL %s: %s (%.1fs)" % (name, msg, took))
            if not isinstance(err, AssertionError):
                traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
        else:
            passed += 1
            print("PASS %s: %s (%.1fs)" % (name, box.get("value", ""), took))
        sys.stdout.flush()
        with clients_lock:
            done = [c for c in clients if c is not admin]
            clients[:] = [admin]
        for c in done:
            stop(c)
    try:
        admin.delete(ROOT, recursive=True)
    except Exception as e:
        print("note: cleanup of %s failed: %r" % (ROOT, e), file=sys.stderr)
    stop(admin)
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    # daemon threads of a timed-out recipe must not keep the process alive
    os._exit(1 if failed else 0)


if __name__ == "__main__":
    main()
