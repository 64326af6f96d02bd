#!/usr/bin/env bash
# tuning/ab.sh NAME A_BIN B_BIN [SECONDS] [ROUNDS] [READS] [SHAPE] — two Paddock builds side
# by side, measured with `loadgen compare` (alternating A B A B). SHAPE `ensemble` (the
# default): each a 3-node ensemble (A on 127.0.0.1-3, B on 127.0.0.4-6; tickTime 500),
# sessions spread over the members, server CPU summed over them. SHAPE `standalone`: one
# server each on 127.0.0.1 and .4, the idle one stopped (--pause-idle). For a change's
# before/after: build each, copy the binaries aside, run this. Workload: 32 sessions x 16
# in flight, 1000 keys of 100-byte values, fsync on, SECONDS (default 5) after 2 s of
# warm-up, ROUNDS (default 3) rounds, READS (default 0,50) read %. Appends to
# tuning/runs/<date>-<host>/ab-NAME.txt. Loopback only. AB_EXTRA: lines added to every
# zoo.cfg (e.g. AB_EXTRA=paddock.syncDelayUs=1000 for a disk that takes 1 ms to flush).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,11p "$0" >&2; exit 2; }
NAME=$1 A_BIN=$(realpath "$2") B_BIN=$(realpath "$3") DUR=${4:-5} ROUNDS=${5:-3} READS=${6:-0,50}
SHAPE=${7:-ensemble}
case $SHAPE in ensemble) N=3 ;; standalone) N=1 ;; *) echo "SHAPE: ensemble or standalone" >&2; exit 2 ;; esac
. tuning/lib.sh
R=$OUT/ab-$NAME.txt
WORK=$PWD/target/ab-work; rm -rf "$WORK"; mkdir -p "$WORK"
trap 'stop_all; rm -rf "$WORK"' EXIT
serving() { python3 -c "import socket,sys;s=socket.create_connection(('$1',$2),timeout=1);s.sendall(b'srvr');sys.exit(0 if b'Mode:' in s.recv(999) else 1)" 2>/dev/null; }
wait_serving() { local t; for t in $(seq 300); do serving "$1" "$2" && return 0; sleep 0.2; done; echo "no server on $1:$2" >&2; tail "$WORK"/*/log >&2; exit 1; }
say() { echo "$*" | tee -a "$R"; }
{ echo "# $(date -u)  $(hostname)  $(nproc) cores  $(uname -r)"; grep -m1 'model name' /proc/cpuinfo
  echo "# ${AB_EXTRA:+AB_EXTRA=$AB_EXTRA }tuning/ab.sh $*"
  echo "# A = $A_BIN ($(sha256sum "$A_BIN" | cut -c1-12)), B = $B_BIN ($(sha256sum "$B_BIN" | cut -c1-12))"
  echo "# $SHAPE, 32 sessions x 16 in flight, 1000 keys, 100-byte values, fsync on"; } >> "$R"
# ensemble SIDE BIN FIRST_HOST: N members on 127.0.0.FIRST_HOST.. (highest id first).
ensemble() {
  local side=$1 bin=$2 h0=$3 i lines=()
  if [ "$N" -gt 1 ]; then
    for i in $(seq 1 "$N"); do lines+=("server.$i=127.0.0.$((h0 + i - 1)):24791:24792"); done
  fi
  for i in $(seq "$N" -1 1); do
    local d=$WORK/$side$i; mkdir -p "$d/data"; echo "$i" > "$d/data/myid"
    { echo "tickTime=$([ "$N" -gt 1 ] && echo 500 || echo 2000)"; echo "initLimit=10"; echo "syncLimit=5"
      echo "dataDir=$d/data"; echo "clientPort=24781"; echo "clientPortAddress=127.0.0.$((h0 + i - 1))"
      echo "maxClientCnxns=0"; echo "admin.enableServer=false"; echo "4lw.commands.whitelist=*"
      if [ "$N" -gt 1 ]; then printf '%s\n' "${lines[@]}"; fi
      if [ -n "${AB_EXTRA:-}" ]; then echo "$AB_EXTRA"; fi; } > "$d/zoo.cfg"
    PADDOCK=$bin spawn paddock "$d"
  done
}
ensemble a "$A_BIN" 1; ensemble b "$B_BIN" 4
for i in $(seq 1 "$N"); do wait_serving 127.0.0.$i 24781; wait_serving 127.0.0.$((i + 3)) 24781; done
pids() { for i in $(seq 1 "$N"); do pgrep -f "start-foreground $WORK/$1$i/zoo.cfg" | head -1; done | paste -sd,; }
addrs() { for i in $(seq 1 "$N"); do echo "127.0.0.$(($1 + i - 1)):24781"; done | paste -sd,; }
A=$(addrs 1); B=$(addrs 4)
RUN=(--duration "$DUR" --warmup 2 --rounds "$ROUNDS" --reads "$READS" --a-name A --b-name B)
if [ "$N" = 1 ]; then RUN+=(--pause-idle yes); fi
say "\$ loadgen compare --a $A --a-pid $(pids a) --b $B --b-pid $(pids b) ${RUN[*]}"
"$LG" compare --a "$A" --a-pid "$(pids a)" --b "$B" --b-pid "$(pids b)" "${RUN[@]}" 2>&1 | tee -a "$R"
say "done: $(date -u)"
