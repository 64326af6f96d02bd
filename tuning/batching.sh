#!/usr/bin/env bash
# tuning/batching.sh [SECONDS] — does the writer batch? Standalone Paddock, fsync on,
# 100-byte setData from 1, 16, 64 and 256 concurrent writers (sessions with one write in
# flight each), first as the disk is, then with every fsync made 1 ms slower
# (paddock.syncDelayUs=1000, a benchmark-only setting that sleeps after each sync, like a
# disk that takes 1 ms to flush). A batching writer keeps fsyncs/s near the disk's rate
# while writes/s grow with the writers, and at 256 writers loses little to the slow disk.
# Writes the machine, the commands and the table to tuning/runs/<date>-<host>/batching.txt.
# Needs a release build: cargo build --release -p paddock -p loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
PADDOCK=$PWD/target/release/paddock; LG=$PWD/target/release/loadgen
[ -x "$PADDOCK" ] && [ -x "$LG" ] || { echo "build first: cargo build --release -p paddock -p loadgen" >&2; exit 2; }
OUT=tuning/runs/$(date -u +%Y-%m-%d)-$(hostname); mkdir -p "$OUT"; R=$OUT/batching.txt
WORK=$PWD/target/batching-bench; rm -rf "$WORK"; mkdir -p "$WORK"
PORT=24795; PID=
trap '[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
start() { # syncDelayUs
  rm -rf "$WORK/data"; mkdir -p "$WORK/data"
  printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n4lw.commands.whitelist=*\npaddock.syncDelayUs=%s\n' \
    "$WORK/data" $PORT "$1" > "$WORK/zoo.cfg"
  setsid "$PADDOCK" start-foreground "$WORK/zoo.cfg" > "$WORK/log" 2>&1 < /dev/null & PID=$!
  for _ in $(seq 300); do grep -q "serving on" "$WORK/log" 2>/dev/null && return 0; sleep 0.1; done
  echo "paddock did not start" >&2; tail "$WORK/log" >&2; exit 1
}
stop() { kill -9 "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=; }
mntr() { timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0; printf mntr >&3; cat <&3' $PORT | awk -v k="$1" '$1==k {print $2}'; }
say() { echo "$*" | tee -a "$R"; }
{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# paddock $(git rev-parse --short HEAD); data in $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
  echo "# tuning/batching.sh $DUR: standalone, fsync on, 1000 keys, 100-byte setData, 1 write in flight per session"; } > "$R"

declare -A WPS
for delay in 0 1000; do
  say ""
  say "## paddock.syncDelayUs=$delay"
  start "$delay"
  "$LG" run --server 127.0.0.1:$PORT --read-pct 0 --sessions 16 --inflight 1 --duration 1 --warmup 0 > /dev/null 2>&1 || true
  for n in 1 16 64 256; do
    f0=$(mntr zk_paddock_group_commits); t0=$(mntr zk_paddock_txns)
    "$LG" run --server 127.0.0.1:$PORT --read-pct 0 --sessions $n --inflight 1 --duration "$DUR" --warmup 1 \
      --server-pid "$PID" --json "$WORK/r.json" > "$WORK/run$delay-$n.txt" 2>&1
    f1=$(mntr zk_paddock_group_commits); t1=$(mntr zk_paddock_txns)
    line=$(python3 -c "
import json
r = json.load(open('$WORK/r.json'))
s = r['measured_s'] + r['warmup_s']   # the counters span the warm-up and setup too: fsyncs/s is approximate
f, t = $f1 - $f0, $t1 - $t0
print(f\"{$n:>4} writers: {r['ops_per_s']:9.0f} writes/s  p99 {r['latency_us']['all']['p99']:8.0f} µs  \"
      f\"{f / s:7.0f} fsyncs/s  {t / max(f, 1):6.1f} writes per fsync  \"
      f\"server {r['server_cpu_us_per_op']:.1f} µs/write, client {r['client_cpu_us_per_op']:.2f} µs/write\")")
    say "$line"
    WPS[$delay-$n]=$(python3 -c "import json; print(json.load(open('$WORK/r.json'))['ops_per_s'])")
  done
  stop
done
say ""
say "$(python3 -c "
a, b = ${WPS[0-256]}, ${WPS[1000-256]}
print(f'256 writers: {a:.0f} writes/s as the disk is, {b:.0f} with 1 ms added to every fsync: '
      f'the slow disk costs a factor of {a / b:.2f} (target: within 2)')")"
echo "results: $R"
