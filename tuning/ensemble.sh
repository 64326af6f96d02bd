#!/usr/bin/env bash
# tuning/ensemble.sh — Paddock's ensemble figures (issue #4), on this machine:
#   1. writes: a 3-node ensemble (tickTime 500, fsync on, 127.0.0.1) against a standalone
#      server, same loadgen run (32 sessions x 16 in flight on one server, 100% setData,
#      100-byte values, 1000 keys; 2 s warm-up + 10 s);
#   2. reads: 3 nodes against 3 nodes + 2 observers, one loadgen per member (12 sessions x
#      16 in flight each, 100% getData). On a 2-core machine every server and every
#      loadgen share the same two cores: more members add no CPU here;
#   3. failover: kill -9 of the leader to the first write answered after it (kazoo through
#      the followers, tickTime 500, initLimit 10, syncLimit 5), 5 rounds each for Paddock
#      and, when the Debian zookeeper package is installed, Apache ZooKeeper 3.8 with the
#      same settings.
# Writes the machine, the commands and the results to tuning/runs/<date>-<host>/ensemble.txt.
# Needs a release build (cargo build --release -p paddock -p loadgen) and kazoo.
set -euo pipefail
cd "$(dirname "$0")/.."
. tuning/lib.sh
R=$OUT/ensemble.txt
WORK=$PWD/target/ensemble-bench; rm -rf "$WORK"; mkdir -p "$WORK"
trap 'stop_all; rm -rf "$WORK"' EXIT
say() { echo "$*" | tee -a "$R"; }
four() { timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$0; printf %s "$1" >&3; cat <&3' "$1" "$2" 2>/dev/null || true; }
BASE=24900 # client ports BASE+i, quorum BASE+10+i, election BASE+20+i

# start KIND N OBSERVERS: an ensemble of N voters (+ observers) of paddock or zookeeper.
start() {
  local kind=$1 n=$2 obs=$3 total=$(( $2 + $3 )) i servers=()
  for i in $(seq 1 "$total"); do
    local t=""; [ "$i" -gt "$n" ] && t=":observer"
    servers+=("server.$i=127.0.0.1:$((BASE + 10 + i)):$((BASE + 20 + i))$t")
  done
  for i in $(seq "$total" -1 1); do
    local d=$WORK/$kind$i; rm -rf "$d"; mkdir -p "$d/data"; echo "$i" > "$d/data/myid"
    { echo "tickTime=500"; echo "initLimit=10"; echo "syncLimit=5"; echo "dataDir=$d/data"
      echo "clientPort=$((BASE + i))"; echo "clientPortAddress=127.0.0.1"; echo "maxClientCnxns=0"
      echo "4lw.commands.whitelist=*"; echo "admin.enableServer=false"
      [ "$total" -gt 1 ] && printf '%s\n' "${servers[@]}"; [ "$i" -gt "$n" ] && echo "peerType=observer"
    } > "$d/zoo.cfg"
    spawn "$kind" "$d"
    [ "$i" = "$total" ] && sleep 1
  done
  local t
  for i in $(seq 1 "$total"); do
    for t in $(seq 300); do
      four $((BASE + i)) srvr | grep -q '^Mode: ' && break; sleep 0.2
    done
  done
}
mode_of() { four $((BASE + $1)) srvr | awk -F': ' '/^Mode/ {print $2}'; }
leader_of() { local i; for i in $(seq 1 "$1"); do [ "$(mode_of "$i")" = leader ] && { echo "$i"; return; }; done; }
lg() { "$LG" run --server "127.0.0.1:$1" --sessions "$2" --inflight 16 --read-pct "$3" --value-bytes 100 --keys 1000 --warmup 2 --duration 10 --prefix "/lg$1" "${@:4}"; }
summary() { grep -E 'ops/s|p99' "$1" | tr '\n' ' '; echo; }

{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# paddock $(git rev-parse --short HEAD); data under $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}')); fsync on"
  echo "# tuning/ensemble.sh"; } > "$R"

say "## 1. writes: 32 sessions x 16 in flight on one server, 100% setData of 100 B"
start paddock 1 0
lg $((BASE + 1)) 32 0 > "$WORK/w-standalone.txt" 2>&1
say "standalone:        $(summary "$WORK/w-standalone.txt")"
stop_all
start paddock 3 0
L=$(leader_of 3); F=$(( L == 1 ? 2 : 1 ))
lg $((BASE + L)) 32 0 > "$WORK/w-leader.txt" 2>&1
say "3 nodes, at the leader ($L):   $(summary "$WORK/w-leader.txt")"
lg $((BASE + F)) 32 0 > "$WORK/w-follower.txt" 2>&1
say "3 nodes, at a follower ($F): $(summary "$WORK/w-follower.txt")"
stop_all

say "## 2. reads: one loadgen per member, 12 sessions x 16 in flight each, 100% getData"
for shape in "3 0" "3 2"; do
  set -- $shape; start paddock "$1" "$2"; total=$(( $1 + $2 )); pids=()
  for i in $(seq 1 "$total"); do lg $((BASE + i)) 12 100 > "$WORK/r-$1-$2-$i.txt" 2>&1 & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p"; done
  sum=$(cat "$WORK"/r-$1-$2-*.txt | awk '/ops\/s/ { for (k = 1; k <= NF; k++) if ($(k+1) == "ops/s") s += $k } END { printf "%.0f", s }')
  say "$1 voters + $2 observers: $sum reads/s in total ($(for i in $(seq 1 "$total"); do grep -m1 -o '[0-9.]* ops/s' "$WORK/r-$1-$2-$i.txt" | tr '\n' ' '; done))"
  stop_all
done

say "## 3. failover: kill -9 of the leader to the first write answered (kazoo via the followers)"
for kind in paddock zookeeper; do
  [ "$kind" = zookeeper ] && [ ! -x "$ZKBIN/zkServer.sh" ] && { say "zookeeper: not installed, skipped"; continue; }
  times=()
  for round in 1 2 3 4 5; do
    start "$kind" 3 0
    L=$(leader_of 3); hosts=""
    for i in 1 2 3; do [ "$i" != "$L" ] && hosts="$hosts${hosts:+,}127.0.0.1:$((BASE + i))"; done
    t=$(timeout 90 python3 tuning/failover.py "$hosts" "${PGIDS[$((3 - L))]}" 2>/dev/null | grep -o '[0-9]* ms' || echo "failed")
    times+=("$t")
    stop_all
  done
  say "$kind: ${times[*]}"
done
say "done: $(date -u)"
