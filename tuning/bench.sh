#!/usr/bin/env bash
# tuning/bench.sh [SECONDS] — Paddock against Apache ZooKeeper 3.8 on this machine, side by
# side, with `loadgen compare` (A = Paddock, B = ZooKeeper, alternating A B A B for each
# read % of 100, 90, 50, 0; 3 rounds; ratios A/B):
#   1. standalone: one server each (tickTime 2000), server CPU per op from /proc;
#   2. standalone, the other workloads: churn, seq, children, multi, sessions, watch;
#   3. 10,000 idle sessions held open on each server: resident memory per session;
#   4. 3-node ensembles on 127.0.0.x (tickTime 500, initLimit 10, syncLimit 5), sessions
#      spread over the members (--servers); server CPU summed over the three members.
# Each comparison also writes an HTML page (charts of every run) next to bench.txt.
# Standalone, the idle server is stopped (SIGSTOP) while the other runs (--pause-idle), so
# neither is charged with the other's background work; ensembles keep running (a stopped
# member would miss heartbeats), so there the idle side's background CPU shows on each
# run's "other processes" figure.
# Workload: 32 sessions x 16 in flight, 1000 keys of 100-byte values, fsync on, SECONDS
# (default 5) measured after 2 s of warm-up. Loopback only. Writes the machine, the
# commands and loadgen's output to tuning/runs/<date>-<host>/bench.txt.
# Needs the Debian `zookeeper` package (installed here if missing) and a release build:
#   cargo build --release -p paddock -p loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-5}
. tuning/lib.sh
need_zookeeper
R=$OUT/bench.txt
WORK=$PWD/target/bench-work; rm -rf "$WORK"; mkdir -p "$WORK"
trap 'stop_all; rm -rf "$WORK"' EXIT
serving() { python3 -c "import socket,sys;s=socket.create_connection(('$1',$2),timeout=1);s.sendall(b'srvr');sys.exit(0 if b'Mode:' in s.recv(999) else 1)" 2>/dev/null; }
# member KIND DIR HOST PORT [server lines...]: one server, started in its own process group.
member() {
  local kind=$1 d=$2 host=$3 port=$4; shift 4
  mkdir -p "$d/data"
  { echo "tickTime=$([ $# -gt 0 ] && echo 500 || echo 2000)"; echo "initLimit=10"; echo "syncLimit=5"
    echo "dataDir=$d/data"; echo "clientPort=$port"; echo "clientPortAddress=$host"; echo "maxClientCnxns=0"
    echo "admin.enableServer=false"; echo "4lw.commands.whitelist=*"; local l; for l in "$@"; do echo "$l"; done
  } > "$d/zoo.cfg"
  spawn "$kind" "$d"
}
wait_serving() { local t; for t in $(seq 300); do serving "$1" "$2" && return 0; sleep 0.2; done; echo "no server on $1:$2" >&2; tail "$WORK"/*/log >&2; exit 1; }
say() { echo "$*" | tee -a "$R"; }
{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# paddock $(git rev-parse --short HEAD); Apache ZooKeeper $(dpkg-query -W -f '${Version}' zookeeper 2>/dev/null || echo '?')"
  echo "# tuning/bench.sh $DUR: 32 sessions x 16 in flight, 1000 keys, 100-byte values, fsync on"; } > "$R"
RUN=(--duration "$DUR" --warmup 2 --rounds 3 --reads 100,90,50,0 --a-name paddock --b-name zookeeper)

say "## 1. standalone"
member paddock "$WORK/pd" 127.0.0.1 24781; PID_PD=${PGIDS[-1]}
member zookeeper "$WORK/zk" 127.0.0.1 24782
wait_serving 127.0.0.1 24781; wait_serving 127.0.0.1 24782
PID_ZK=$(java_pid "$WORK/zk")
# Warm both (JIT, page cache); not recorded.
"$LG" run --server 127.0.0.1:24782 --duration 5 --warmup 1 > /dev/null 2>&1 || true
"$LG" run --server 127.0.0.1:24781 --duration 3 --warmup 1 > /dev/null 2>&1 || true
say "\$ loadgen compare --a 127.0.0.1:24781 --a-pid $PID_PD --b 127.0.0.1:24782 --b-pid $PID_ZK ${RUN[*]} --pause-idle yes"
"$LG" compare --a 127.0.0.1:24781 --a-pid "$PID_PD" --b 127.0.0.1:24782 --b-pid "$PID_ZK" "${RUN[@]}" --pause-idle yes \
  --report "$OUT/bench-standalone.html" 2>&1 | tee -a "$R"

say "## 2. standalone, other workloads (--children 1000, --multi-ops 4; sessions and watch: 32 sessions)"
for w in churn seq children multi sessions watch; do
  say "\$ loadgen compare --workload $w --a 127.0.0.1:24781 --a-pid $PID_PD --b 127.0.0.1:24782 --b-pid $PID_ZK --duration $DUR --warmup 2 --rounds 2 --a-name paddock --b-name zookeeper --prefix /bench-$w --pause-idle yes"
  "$LG" compare --workload "$w" --a 127.0.0.1:24781 --a-pid "$PID_PD" --b 127.0.0.1:24782 --b-pid "$PID_ZK" \
    --duration "$DUR" --warmup 2 --rounds 2 --a-name paddock --b-name zookeeper \
    --prefix "/bench-$w" --pause-idle yes --report "$OUT/bench-$w.html" 2>&1 | tee -a "$R"
done

say "## 3. 10,000 idle sessions on each server (resident memory per session)"
for side in "paddock 24781 $PID_PD" "zookeeper 24782 $PID_ZK"; do
  set -- $side
  say "\$ loadgen sessions --server 127.0.0.1:$2 --count 10000 --hold 10 --server-pid $3   # $1"
  "$LG" sessions --server "127.0.0.1:$2" --count 10000 --hold 10 --server-pid "$3" 2>&1 | tee -a "$R" || say "($1: failed)"
done
stop_all

say "## 4. 3-node ensembles (Paddock on 127.0.0.1-3, ZooKeeper on 127.0.0.4-6)"
pd_lines=(); zk_lines=()
for i in 1 2 3; do
  pd_lines+=("server.$i=127.0.0.$i:24791:24792")
  zk_lines+=("server.$i=127.0.0.$((i + 3)):24791:24792")
done
for i in 3 2 1; do
  mkdir -p "$WORK/pd$i/data" "$WORK/zk$i/data"; echo $i > "$WORK/pd$i/data/myid"; echo $i > "$WORK/zk$i/data/myid"
  member paddock "$WORK/pd$i" 127.0.0.$i 24781 "${pd_lines[@]}"
  member zookeeper "$WORK/zk$i" 127.0.0.$((i + 3)) 24781 "${zk_lines[@]}"
done
for i in 1 2 3 4 5 6; do wait_serving 127.0.0.$i 24781; done
A=127.0.0.1:24781,127.0.0.2:24781,127.0.0.3:24781; B=127.0.0.4:24781,127.0.0.5:24781,127.0.0.6:24781
PIDS_PD=$(for i in 1 2 3; do pgrep -f "paddock start-foreground $WORK/pd$i/zoo.cfg" | head -1; done | paste -sd,)
PIDS_ZK=$(for i in 1 2 3; do java_pid "$WORK/zk$i"; done | paste -sd,)
"$LG" run --servers "$B" --duration 5 --warmup 1 > /dev/null 2>&1 || true
say "\$ loadgen compare --a $A --a-pid $PIDS_PD --b $B --b-pid $PIDS_ZK ${RUN[*]}"
"$LG" compare --a "$A" --a-pid "$PIDS_PD" --b "$B" --b-pid "$PIDS_ZK" "${RUN[@]}" \
  --report "$OUT/bench-ensemble.html" 2>&1 | tee -a "$R"
say "done: $(date -u)"
