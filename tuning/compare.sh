#!/usr/bin/env bash
# tuning/compare.sh [SECONDS]  — Paddock against Apache ZooKeeper 3.8, standalone, side by side
# on this machine with loadgen, alternating the two servers for each read mix. Writes the
# machine, the commands, loadgen's full output and a CSV to tuning/runs/<date>-<host>/.
#
# Workload: 32 sessions x 16 in flight, 1000 keys of 100-byte values, fsync on, read % of
# 100, 90, 50, 0; SECONDS (default 5) measured after 2 s of warm-up. Loopback only.
# Needs the Debian `zookeeper` package (installed here if missing) and a release build:
#   cargo build --release -p paddock -p loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
ZKBIN=/usr/share/zookeeper/bin
if [ ! -x "$ZKBIN/zkServer.sh" ]; then apt-get update && apt-get install -y zookeeper; fi
PADDOCK=$PWD/target/release/paddock; LG=$PWD/target/release/loadgen
[ -x "$PADDOCK" ] && [ -x "$LG" ] || { echo "build first: cargo build --release -p paddock -p loadgen" >&2; exit 2; }
OUT=tuning/runs/$(date -u +%Y-%m-%d)-$(hostname)
mkdir -p "$OUT"; WORK=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
P_PD=24781; P_ZK=24782
cfg() { printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n' "$1" "$2"; }
mkdir -p "$WORK/pd/data" "$WORK/zk/data"
cfg "$WORK/pd/data" $P_PD > "$WORK/pd/zoo.cfg"; cfg "$WORK/zk/data" $P_ZK > "$WORK/zk/zoo.cfg"
setsid "$PADDOCK" start-foreground "$WORK/pd/zoo.cfg" > "$WORK/pd/log" 2>&1 < /dev/null & PID_PD=$!; PIDS+=($PID_PD)
JMXDISABLE=true ZOO_LOG_DIR="$WORK/zk" setsid "$ZKBIN/zkServer.sh" start-foreground "$WORK/zk/zoo.cfg" > "$WORK/zk/log" 2>&1 < /dev/null & PIDS+=($!)
serving() { python3 -c "import socket;s=socket.create_connection(('127.0.0.1',$1),timeout=1);s.sendall(b'srvr');assert b'Mode:' in s.recv(999)" 2>/dev/null; }
for _ in $(seq 300); do serving $P_PD && serving $P_ZK && break; sleep 0.2; done
serving $P_PD && serving $P_ZK || { echo "a server did not start" >&2; tail "$WORK"/*/log >&2; exit 1; }
PID_ZK=$(pgrep -f "zookeeper.*$WORK/zk/zoo.cfg" | while read -r p; do [ "$(cat /proc/$p/comm)" = java ] && echo "$p"; done | head -1)
{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# paddock $(git rev-parse --short HEAD), pid $PID_PD; zookeeper java pid $PID_ZK"
  echo "# tuning/compare.sh $DUR"; } > "$OUT/machine.txt"
# Warm both (JIT, page cache); not recorded.
"$LG" run --server 127.0.0.1:$P_ZK --duration 5 --warmup 1 > /dev/null 2>&1 || true
"$LG" run --server 127.0.0.1:$P_PD --duration 3 --warmup 1 > /dev/null 2>&1 || true
: > "$OUT/log.txt"
for rp in 100 90 50 0; do
  for s in paddock zookeeper; do
    if [ $s = paddock ]; then port=$P_PD; pid=$PID_PD; else port=$P_ZK; pid=$PID_ZK; fi
    cmd=(run --server 127.0.0.1:$port --read-pct $rp --duration "$DUR" --warmup 2 --server-pid "$pid" --csv "$OUT/results-$s.csv")
    echo "\$ loadgen ${cmd[*]}   # $s" | tee -a "$OUT/log.txt"
    "$LG" "${cmd[@]}" 2>&1 | tee -a "$OUT/log.txt" | grep -E 'throughput|server CPU|latency µs'
  done
done
echo "results in $OUT"
