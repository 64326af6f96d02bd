#!/usr/bin/env bash
# tuning/ab.sh NAME A_BIN B_BIN [SECONDS] [ROUNDS] [READS] — two Paddock builds side by side,
# each as a 3-node ensemble (A on 127.0.0.1-3, B on 127.0.0.4-6; tickTime 500, fsync on),
# measured with `loadgen compare` (alternating A B A B, sessions spread over the members,
# server CPU summed over them). For a change's before/after: build each, copy the binaries
# aside, run this. Workload: 32 sessions x 16 in flight, 1000 keys of 100-byte values,
# SECONDS (default 5) after 2 s of warm-up, ROUNDS (default 3) rounds, READS (default
# 0,50) read %. Writes tuning/runs/<date>-<host>/ab-NAME.txt. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,8p "$0" >&2; exit 2; }
NAME=$1 A_BIN=$(realpath "$2") B_BIN=$(realpath "$3") DUR=${4:-5} ROUNDS=${5:-3} READS=${6:-0,50}
. tuning/lib.sh
R=$OUT/ab-$NAME.txt
WORK=$PWD/target/ab-work; rm -rf "$WORK"; mkdir -p "$WORK"
trap 'stop_all; rm -rf "$WORK"' EXIT
serving() { python3 -c "import socket,sys;s=socket.create_connection(('$1',$2),timeout=1);s.sendall(b'srvr');sys.exit(0 if b'Mode:' in s.recv(999) else 1)" 2>/dev/null; }
wait_serving() { local t; for t in $(seq 300); do serving "$1" "$2" && return 0; sleep 0.2; done; echo "no server on $1:$2" >&2; tail "$WORK"/*/log >&2; exit 1; }
say() { echo "$*" | tee -a "$R"; }
{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# tuning/ab.sh $*"
  echo "# A = $A_BIN ($(sha256sum "$A_BIN" | cut -c1-12)), B = $B_BIN ($(sha256sum "$B_BIN" | cut -c1-12))"
  echo "# 3-node ensembles, 32 sessions x 16 in flight over the members, 1000 keys, 100-byte values, fsync on"; } > "$R"
# ensemble SIDE BIN FIRST_HOST: three members on 127.0.0.FIRST_HOST.. (highest id first).
ensemble() {
  local side=$1 bin=$2 h0=$3 i lines=()
  for i in 1 2 3; do lines+=("server.$i=127.0.0.$((h0 + i - 1)):24791:24792"); done
  for i in 3 2 1; do
    local d=$WORK/$side$i; mkdir -p "$d/data"; echo "$i" > "$d/data/myid"
    { echo "tickTime=500"; echo "initLimit=10"; echo "syncLimit=5"; echo "dataDir=$d/data"
      echo "clientPort=24781"; echo "clientPortAddress=127.0.0.$((h0 + i - 1))"; echo "maxClientCnxns=0"
      echo "admin.enableServer=false"; echo "4lw.commands.whitelist=*"; printf '%s\n' "${lines[@]}"; } > "$d/zoo.cfg"
    PADDOCK=$bin spawn paddock "$d"
  done
}
ensemble a "$A_BIN" 1; ensemble b "$B_BIN" 4
for i in 1 2 3 4 5 6; do wait_serving 127.0.0.$i 24781; done
pids() { for i in 1 2 3; do pgrep -f "start-foreground $WORK/$1$i/zoo.cfg" | head -1; done | paste -sd,; }
A=127.0.0.1:24781,127.0.0.2:24781,127.0.0.3:24781; B=127.0.0.4:24781,127.0.0.5:24781,127.0.0.6:24781
RUN=(--duration "$DUR" --warmup 2 --rounds "$ROUNDS" --reads "$READS" --a-name A --b-name B)
say "\$ loadgen compare --a $A --a-pid $(pids a) --b $B --b-pid $(pids b) ${RUN[*]}"
"$LG" compare --a "$A" --a-pid "$(pids a)" --b "$B" --b-pid "$(pids b)" "${RUN[@]}" 2>&1 | tee -a "$R"
say "done: $(date -u)"
