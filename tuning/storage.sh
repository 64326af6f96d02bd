#!/usr/bin/env bash
# tuning/storage.sh  — Paddock's storage figures (issue #3), standalone, on this machine:
#   1. snapshots of 1M znodes under a write load: the writer's pause to fork, the child's
#      time and the file's size (from the server's log), and the extra memory copy-on-write
#      costs while the child runs (Pss of server + child, sampled every 10 ms, minus the
#      server's Pss just before);
#   2. recovery of a 1M-znode snapshot plus 1M logged txns (kill -9, restart; the server
#      logs how long recovery took);
#   3. group commit: fsyncs/s against writes/s with 1, 16 and 256 concurrent writers
#      (sessions with one write in flight each; `mntr` counts fsyncs and txns).
# Writes the machine, the commands and the results to tuning/runs/<date>-<host>/storage.txt.
# Data on the disk under target/ (not /tmp), fsync on, 1M keys of 100-byte values.
# Needs a release build: cargo build --release -p paddock -p loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
PADDOCK=$PWD/target/release/paddock; LG=$PWD/target/release/loadgen
[ -x "$PADDOCK" ] && [ -x "$LG" ] || { echo "build first: cargo build --release -p paddock -p loadgen" >&2; exit 2; }
KEYS=${KEYS:-1000000}
OUT=tuning/runs/$(date -u +%Y-%m-%d)-$(hostname); mkdir -p "$OUT"; R=$OUT/storage.txt
WORK=$PWD/target/storage-bench; rm -rf "$WORK"; mkdir -p "$WORK/data"
PORT=24791; PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
cfg() { printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nsnapCount=%s\n' "$WORK/data" $PORT "$1" > "$WORK/zoo.cfg"; }
start() { # snapCount
  cfg "$1"; [ -f "$WORK/log" ] && cat "$WORK/log" >> "$WORK/log.all"; : > "$WORK/log"
  setsid "$PADDOCK" start-foreground "$WORK/zoo.cfg" > "$WORK/log" 2>&1 < /dev/null & PID=$!
  for _ in $(seq 600); do grep -q "serving on" "$WORK/log" 2>/dev/null && return 0; sleep 0.1; done
  echo "paddock did not start" >&2; tail "$WORK/log" >&2; exit 1
}
kill9() { kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }
mntr() { timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0; printf mntr >&3; cat <&3' $PORT | awk -v k="$1" '$1==k {print $2}'; }
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
say() { echo "$*" | tee -a "$R"; }
{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# paddock $(git rev-parse --short HEAD); data in $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
  echo "# tuning/storage.sh (KEYS=$KEYS)"; } > "$R"

say "## 1. snapshots of $KEYS znodes under a write load (snapCount=100000)"
start 100000
"$LG" run --server 127.0.0.1:$PORT --keys "$KEYS" --read-pct 0 --sessions 32 --inflight 16 --duration 1 --warmup 0 > "$WORK/populate.txt" 2>&1
say "populated: $(grep -m1 -i 'created\|keys' "$WORK/populate.txt" || true)"
say "server RSS with $KEYS znodes: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
SKIP=$(wc -l < "$WORK/log")   # log lines of the populating phase
: > "$WORK/cow.txt"
(
  while kill -0 "$PID" 2>/dev/null; do
    base=$(pss "$PID"); kids=$(cat /proc/"$PID"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true)
    if [ -n "$kids" ]; then
      sum=$base; for k in $kids; do sum=$((sum + $(pss "$k"))); done
      echo "child $sum" >> "$WORK/cow.txt"
    else
      echo "alone $base" >> "$WORK/cow.txt"
    fi
    sleep 0.01
  done
) & SAMPLER=$!
"$LG" run --server 127.0.0.1:$PORT --keys "$KEYS" --read-pct 0 --sessions 32 --inflight 16 --duration 20 --warmup 0 > "$WORK/load1.txt" 2>&1
kill "$SAMPLER" 2>/dev/null || true
tail -n +$((SKIP + 1)) "$WORK/log" | grep -E "paused|written:" | sed -E 's/^.*INFO \[[^]]*\] [a-z:_]* - //' | tee -a "$R"
say "throughput during the snapshots: $(grep -m1 -E 'ops/s|throughput' "$WORK/load1.txt" || true)"
# Summary over the snapshots taken under the load (the tree had all its znodes by then).
tail -n +$((SKIP + 1)) "$WORK/log" | grep "paused" | grep -o "paused [0-9]* us" | awk '{print $2}' | sort -n |
  awk '{a[NR]=$1} END {printf "fork pause under load: %d snapshots, min %.1f ms, median %.1f ms, max %.1f ms\n", NR, a[1]/1000, a[int((NR+1)/2)]/1000, a[NR]/1000}' | tee -a "$R"
tail -n +$((SKIP + 1)) "$WORK/log" | grep "written:" | grep -o "in [0-9]* ms" | awk '{print $2}' | sort -n |
  awk '{a[NR]=$1} END {printf "snapshot child (serialise, fsync, rename): min %d ms, median %d ms, max %d ms\n", a[1], a[int((NR+1)/2)], a[NR]}' | tee -a "$R"
python3 - "$WORK/cow.txt" <<'EOF' | tee -a "$R"
import sys
rows = [l.split() for l in open(sys.argv[1])]
extra, last_alone = [], None
for kind, kib in rows:
    kib = int(kib)
    if kind == "alone":
        last_alone = kib
    elif last_alone is not None:
        extra.append(kib - last_alone)
if extra:
    print(f"copy-on-write while a snapshot child ran: max {max(extra)/1024:.1f} MiB above the "
          f"server's Pss before the fork ({last_alone/1024:.0f} MiB); {len(extra)} samples")
else:
    print("no sample caught a snapshot child")
EOF

say ""
say "## 2. recovery: a $KEYS-znode snapshot plus $KEYS logged txns"
kill9
start 100000000   # no snapshot while the txns are logged
grep -q "written:" "$WORK/log" || sleep 5   # the start-up snapshot of the replayed tail
# setData on 1000 of the keys (loadgen first re-creates its keys: 1000 NodeExists txns);
# TXN_SECONDS is chosen to log about 1M txns on this machine.
"$LG" run --server 127.0.0.1:$PORT --keys 1000 --read-pct 0 --sessions 32 --inflight 16 --duration "${TXN_SECONDS:-5}" --warmup 0 > "$WORK/load2.txt" 2>&1
say "txns logged since the last snapshot: $(( $(mntr zk_paddock_txns) ))"
kill9
start 100000000
grep -E "loaded|recovered in" "$WORK/log" | sed -E 's/^.*INFO \[[^]]*\] [a-z:_]* - //' | tee -a "$R"
kill9

say ""
say "## 3. group commit: concurrent writers (1 write in flight each), 100-byte setData, fsync on"
rm -rf "$WORK/data"; mkdir -p "$WORK/data"
start 100000
for n in 1 16 256; do
  f0=$(mntr zk_paddock_group_commits); t0=$(mntr zk_paddock_txns); s0=$(date +%s.%N)
  "$LG" run --server 127.0.0.1:$PORT --keys 1000 --read-pct 0 --sessions $n --inflight 1 --duration 5 --warmup 0 > "$WORK/gc$n.txt" 2>&1
  f1=$(mntr zk_paddock_group_commits); t1=$(mntr zk_paddock_txns); s1=$(date +%s.%N)
  python3 -c "
f, t, s = $f1 - $f0, $t1 - $t0, $s1 - $s0
print(f'{$n:>4} writers: {t/s:9.0f} writes/s, {f/s:7.0f} fsyncs/s, {t/max(f,1):6.1f} writes per fsync')" | tee -a "$R"
done
kill9
echo "results: $R"
