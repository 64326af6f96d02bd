#!/usr/bin/env bash
# tests/interop/run.sh [PADDOCK_BINARY]   (default: target/release/paddock)
#
# CI entry for the interop suite. Starts Apache ZooKeeper 3.8 (Debian package) and Paddock
# side by side on loopback, then
#   1. runs zkcli.sh (Apache's zkCli.sh, fixed scenario, normalised output) against both
#      and diffs the two transcripts;
#   2. runs kazoo_recipes.py against Paddock, and against ZooKeeper to prove the test
#      itself passes on the real thing;
#   3. checks that zkServer.sh status reads both;
#   4. runs edge_and_4lw.py (raw malformed/edge requests and four-letter words, normalised
#      output) against both and diffs the two transcripts;
#   5. starts each server on a data directory the other wrote (datadir.py) and compares
#      every node;
#   6. probes a real 3-node ZooKeeper ensemble's election ports and its leader's quorum
#      port with Paddock's codecs;
#   7. runs a 3-node Paddock ensemble under zkServer.sh status, the zkCli scenario (through
#      a follower) and kazoo (across a kill -9 of the leader);
#   8. runs security.sh: zkCli (Netty, TLS) and kazoo (use_ssl) over TLS against both
#      servers, transcripts compared.
# Exits non-zero if anything fails. Builds nothing: pass the Paddock binary.
#
# Environment: INTEROP_PORT_BASE (first port tried, default 22281; ports stay in
# 22181-22999), INTEROP_KEEP=1 keeps the work directory (logs, transcripts) on success.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PADDOCK=${1:-$REPO/target/release/paddock}
ZKBIN=/usr/share/zookeeper/bin
PORT_BASE=${INTEROP_PORT_BASE:-22281}

# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"

# ---- prerequisites ------------------------------------------------------------------
if [ ! -x "$ZKBIN/zkCli.sh" ]; then
  log "installing zookeeper (Debian package)"
  SUDO=(); [ "$(id -u)" = 0 ] || SUDO=(sudo)
  timeout 900 "${SUDO[@]}" apt-get update || die "apt-get update failed"
  timeout 900 "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y zookeeper \
    || die "apt-get install zookeeper failed"
fi
[ -x "$ZKBIN/zkServer.sh" ] && [ -x "$ZKBIN/zkCli.sh" ] || die "no $ZKBIN/zkServer.sh / zkCli.sh"
if ! python3 -c 'import kazoo' 2>/dev/null; then
  log "installing kazoo"
  timeout 600 python3 -m pip install kazoo || die "pip install kazoo failed"
fi
[ -x "$PADDOCK" ] || die "Paddock binary not found or not executable: $PADDOCK"
PADDOCK=$(cd "$(dirname "$PADDOCK")" && pwd)/$(basename "$PADDOCK")

# ---- work area, cleanup ---------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/paddock-interop.XXXXXX")
PIDS=()
FAILED=0
stop_servers() {
  local pid i
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null; fi
    wait "$pid" 2>/dev/null
  done
  PIDS=()
}
on_exit() {
  local rc=$?
  stop_servers
  if [ "$rc" != 0 ] || [ "${INTEROP_KEEP:-}" = 1 ]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- start both servers -----------------------------------------------------------------
P_ZK=$(pick_port $(( PORT_BASE - 1 ))) || die "no free port for ZooKeeper"
P_PD=$(pick_port "$P_ZK") || die "no free port for Paddock"

# Apache ZooKeeper: own config; the admin HTTP server (port 8080) is switched off. It reads
# znode.container.* only as JVM system properties, so the same settings go there too.
mkdir -p "$WORK/zk"
write_cfg "$WORK/zk/zoo.cfg" "$WORK/zk/data" "$P_ZK" "admin.enableServer=false"
log "starting Apache ZooKeeper on 127.0.0.1:$P_ZK"
JMXDISABLE=true ZOO_LOG_DIR="$WORK/zk" \
  SERVER_JVMFLAGS="-Dznode.container.checkIntervalMs=1000 -Dzookeeper.extendedTypesEnabled=true" \
  setsid "$ZKBIN/zkServer.sh" start-foreground "$WORK/zk/zoo.cfg" > "$WORK/zk/server.log" 2>&1 < /dev/null &
PID_ZK=$!
PIDS+=("$PID_ZK")

mkdir -p "$WORK/paddock"
write_cfg "$WORK/paddock/zoo.cfg" "$WORK/paddock/data" "$P_PD"
log "starting Paddock ($PADDOCK) on 127.0.0.1:$P_PD"
( cd "$WORK/paddock" && exec setsid "$PADDOCK" start-foreground "$WORK/paddock/zoo.cfg" ) \
  > "$WORK/paddock/server.log" 2>&1 < /dev/null &
PID_PD=$!
PIDS+=("$PID_PD")

wait_imok "ZooKeeper" "$P_ZK" "$PID_ZK" "$WORK/zk/server.log" || exit 1
wait_imok "Paddock" "$P_PD" "$PID_PD" "$WORK/paddock/server.log" || exit 1

fail() { log "FAIL: $*"; FAILED=1; }

# ---- 1. zkCli transcript diff -------------------------------------------------------------
log "zkCli scenario against both servers"
timeout 300 "$HERE/zkcli.sh" "$P_ZK" > "$WORK/zkcli.zookeeper.txt" 2> "$WORK/zkcli.zookeeper.err" &
J1=$!
timeout 300 "$HERE/zkcli.sh" "$P_PD" > "$WORK/zkcli.paddock.txt" 2> "$WORK/zkcli.paddock.err" &
J2=$!
wait "$J1"; RC1=$?
wait "$J2"; RC2=$?
if [ "$RC1" != 0 ]; then
  fail "zkcli.sh against ZooKeeper exited $RC1 (the scenario itself is broken?)"
  tail -n 20 "$WORK/zkcli.zookeeper.txt" "$WORK/zkcli.zookeeper.err" >&2
fi
[ "$RC2" = 0 ] || fail "zkcli.sh against Paddock exited $RC2"
if diff -u --label zookeeper --label paddock "$WORK/zkcli.zookeeper.txt" "$WORK/zkcli.paddock.txt" > "$WORK/zkcli.diff"; then
  log "PASS zkCli transcripts identical ($(wc -l < "$WORK/zkcli.zookeeper.txt") lines)"
else
  fail "zkCli transcripts differ (- zookeeper, + paddock):"
  cat "$WORK/zkcli.diff"
fi

# ---- 2. kazoo recipes -----------------------------------------------------------------------
run_kazoo() { # name port
  log "kazoo recipes against $1"
  timeout 900 python3 "$HERE/kazoo_recipes.py" "$2" 2> "$WORK/kazoo.$1.err" | tee "$WORK/kazoo.$1.txt" | sed "s/^/  [$1] /"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" != 0 ]; then
    fail "kazoo recipes against $1 exited $rc"
    tail -n 40 "$WORK/kazoo.$1.err" >&2
  fi
}
run_kazoo zookeeper "$P_ZK"
run_kazoo paddock "$P_PD"

# ---- 3. zkServer.sh status: monitoring that reads `srvr` -------------------------------------
status_of() { # name cfg
  ZOO_LOG_DIR="$WORK" timeout 60 "$ZKBIN/zkServer.sh" status "$2" 2>&1 | grep '^Mode:' || true
}
S_ZK=$(status_of zookeeper "$WORK/zk/zoo.cfg")
S_PD=$(status_of paddock "$WORK/paddock/zoo.cfg")
if [ -n "$S_PD" ] && [ "$S_PD" = "$S_ZK" ]; then
  log "PASS zkServer.sh status: both say '$S_PD'"
else
  fail "zkServer.sh status: ZooKeeper '$S_ZK', Paddock '$S_PD'"
fi
# ... and `paddock status`, Paddock's own, reads both the same way.
P_ZK_MODE=$(timeout 30 "$PADDOCK" status "$WORK/zk/zoo.cfg" 2>&1 | grep '^Mode:' || true)
P_PD_MODE=$(timeout 30 "$PADDOCK" status "$WORK/paddock/zoo.cfg" 2>&1 | grep '^Mode:' || true)
if [ -n "$P_PD_MODE" ] && [ "$P_PD_MODE" = "$S_ZK" ] && [ "$P_ZK_MODE" = "$S_ZK" ]; then
  log "PASS paddock status: both say '$P_PD_MODE'"
else
  fail "paddock status: ZooKeeper '$P_ZK_MODE', Paddock '$P_PD_MODE' (zkServer.sh says '$S_ZK')"
fi

# ---- 4. raw edge requests and four-letter words -------------------------------------------
# edge_and_4lw.py speaks the client protocol over a raw socket: malformed and unusual
# requests (null paths, truncated bodies, unknown watch types/modes/opcodes, odd ACLs, auth,
# sasl, deleteContainer, multi/multiRead results, a persistent watch's two halves, whoAmI)
# and the layout of wchc/wchp/cons/dump/envi/srvr for two known sessions. Its transcript
# is normalised (no session ids, zxids, times, ports or global counts), so it runs after
# the checks above on the same servers, one server at a time, and the two must be equal.
edge_run() { # name port
  timeout 120 python3 "$HERE/edge_and_4lw.py" "$2" > "$WORK/edge.$1.txt" 2> "$WORK/edge.$1.err"
}
log "raw edge requests and four-letter words against both servers"
edge_run zookeeper "$P_ZK"; RC1=$?
edge_run paddock "$P_PD"; RC2=$?
if [ "$RC1" != 0 ]; then
  fail "edge_and_4lw.py against ZooKeeper exited $RC1 (the scenario itself is broken?)"
  tail -n 20 "$WORK/edge.zookeeper.txt" "$WORK/edge.zookeeper.err" >&2
fi
[ "$RC2" = 0 ] || { fail "edge_and_4lw.py against Paddock exited $RC2"; tail -n 20 "$WORK/edge.paddock.err" >&2; }
if diff -u --label zookeeper --label paddock "$WORK/edge.zookeeper.txt" "$WORK/edge.paddock.txt" > "$WORK/edge.diff"; then
  log "PASS edge requests and four-letter words identical ($(wc -l < "$WORK/edge.zookeeper.txt") lines)"
else
  fail "edge requests / four-letter words differ (- zookeeper, + paddock):"
  cat "$WORK/edge.diff"
fi

# ---- 5. data directories: each server starts on what the other wrote -----------------------
# Write a tree (snapshots and a log tail, ephemerals of a session left open), kill -9 the
# writer, start the other server on a copy of its data directory, compare every node's
# data, Stat and ACL.
start_one() { # kind dir port -> pid on stdout
  local kind=$1 dir=$2 port=$3
  write_cfg "$dir/zoo.cfg" "$dir/data" "$port" "admin.enableServer=false" "snapCount=50"
  if [ "$kind" = zookeeper ]; then
    JMXDISABLE=true ZOO_LOG_DIR="$dir" \
      SERVER_JVMFLAGS="-Dznode.container.checkIntervalMs=1000 -Dzookeeper.extendedTypesEnabled=true" \
      setsid "$ZKBIN/zkServer.sh" start-foreground "$dir/zoo.cfg" > "$dir/server.log" 2>&1 < /dev/null &
  else
    ( cd "$dir" && exec setsid "$PADDOCK" start-foreground "$dir/zoo.cfg" ) > "$dir/server.log" 2>&1 < /dev/null &
  fi
  echo $!
}
group_running() { # pgid: does a process of the group still run? (a zombie holds no port)
  local g=$1 f st rest
  for f in /proc/[0-9]*/stat; do
    { IFS= read -r st < "$f"; } 2>/dev/null || continue
    rest=${st##*) }          # after "pid (comm) ": state ppid pgrp ...
    set -- $rest
    [ "${3:-}" = "$g" ] && [ "$1" != Z ] && [ "$1" != X ] && return 0
  done
  return 1
}
kill9_group() { # pid (a setsid leader): the whole group, as a crash would
  # The pid comes from start_one's $(...) subshell: not our child, so `wait` returns at
  # once. Poll (up to 10 s) until nothing of the group runs, so that the next server
  # started on its port finds the port free.
  local i
  kill -KILL -- "-$1" 2>/dev/null; wait "$1" 2>/dev/null
  for i in $(seq 1 100); do
    group_running "$1" || return 0
    sleep 0.1
  done
  log "process group $1 still runs 10 s after kill -9"
}
datadir_roundtrip() { # from to
  local from=$1 to=$2 a="$WORK/dd-$1-to-$2" port pid
  mkdir -p "$a/src" "$a/dst"
  port=$(pick_port "$P_PD") || { fail "no free port"; return; }
  pid=$(start_one "$from" "$a/src" "$port")
  if ! wait_imok "$from (writer)" "$port" "$pid" "$a/src/server.log"; then
    fail "$from did not start"; kill9_group "$pid"; return
  fi
  if ! timeout 300 python3 "$HERE/datadir.py" write "$port" "$a/before.json"; then
    fail "writing the tree on $from failed"; kill9_group "$pid"; return
  fi
  kill9_group "$pid"
  cp -a "$a/src/data" "$a/dst/data"
  rm -f "$a/dst/data/version-2/.paddock.lock"
  log "$from wrote: $(ls "$a/dst/data/version-2" | tr '\n' ' ')"
  pid=$(start_one "$to" "$a/dst" "$port")
  if ! wait_imok "$to (reader)" "$port" "$pid" "$a/dst/server.log"; then
    fail "$to did not start on the data directory $from wrote"; kill9_group "$pid"; return
  fi
  if timeout 300 python3 "$HERE/datadir.py" dump "$port" "$a/after.json" \
     && python3 "$HERE/datadir.py" compare "$a/before.json" "$a/after.json" > "$a/compare.txt"; then
    log "PASS $to serves the tree $from wrote: $(cat "$a/compare.txt")"
    # The tree digests (ZooKeeper's, in every log record and snapshot) agree too.
    if [ "$to" = zookeeper ]; then
      local mm; mm=$(four_letter "$port" mntr | awk '$1 == "zk_digest_mismatches_count" {print $2}')
      if [ "$mm" = 0 ]; then log "PASS zookeeper found no digest mismatch in paddock's logs and snapshots"
      else fail "zookeeper counts digest mismatches: '${mm}'"; fi
    else
      local line; line=$(grep -o 'digests checked, [0-9]* mismatched' "$a/dst/server.log")
      case "$line" in
        *", 0 mismatched") log "PASS paddock checked zookeeper's digests: ${line}" ;;
        *) fail "paddock's digest check of zookeeper's data: '${line}'" ;;
      esac
    fi
  else
    fail "$to on $from's data directory:"; cat "$a/compare.txt" >&2; tail -n 30 "$a/dst/server.log" >&2
  fi
  kill9_group "$pid"
}
datadir_roundtrip paddock zookeeper
datadir_roundtrip zookeeper paddock

# ---- 6. the election port: Paddock's codec against a real ZooKeeper ensemble ----------------
# Three ZooKeeper servers on 127.0.0.1 elect a leader; `paddock election-probe` connects to
# each election port as a server in nobody's list, says LOOKING, and decodes the vote it
# gets back. Each answer must name the leader `srvr` names, with the right state.
ensemble_probe() {
  local base="$WORK/zk3" q e c i pids=() servers=() leader="" ok=1
  c=$(pick_port "$P_PD") || { fail "no free port"; return; }
  local cports=() eports=() qports=()
  for i in 1 2 3; do
    local cp qp ep
    cp=$(pick_port "$c") && c=$cp; qp=$(pick_port "$c") && c=$qp; ep=$(pick_port "$c") && c=$ep
    cports+=("$cp"); eports+=("$ep"); qports+=("$qp"); servers+=("server.$i=127.0.0.1:$qp:$ep")
  done
  for i in 1 2 3; do
    mkdir -p "$base/s$i/data"; echo "$i" > "$base/s$i/data/myid"
    write_cfg "$base/s$i/zoo.cfg" "$base/s$i/data" "${cports[$((i-1))]}" \
      "admin.enableServer=false" "initLimit=10" "syncLimit=5" "${servers[@]}"
    sed -i 's/^tickTime=2000$/tickTime=500/' "$base/s$i/zoo.cfg"
    JMXDISABLE=true ZOO_LOG_DIR="$base/s$i" setsid "$ZKBIN/zkServer.sh" start-foreground "$base/s$i/zoo.cfg" \
      > "$base/s$i/server.log" 2>&1 < /dev/null &
    pids+=($!)
  done
  local modes=()
  for i in 1 2 3; do
    local m="" t
    for t in $(seq 1 150); do
      m=$(four_letter "${cports[$((i-1))]}" srvr | awk -F': ' '/^Mode/ {print $2}')
      [ -n "$m" ] && break; sleep 0.2
    done
    modes+=("$m"); [ "$m" = leader ] && leader=$i
  done
  if [ -z "$leader" ]; then
    fail "the ZooKeeper ensemble elected no leader (modes: ${modes[*]})"
  else
    for i in 1 2 3; do
      local out want
      out=$(timeout 30 "$PADDOCK" election-probe "127.0.0.1:${eports[$((i-1))]}" 2>&1)
      if [ "$i" = "$leader" ]; then want="state Leading, leader $leader,"; else want="state Following, leader $leader,"; fi
      case "$out" in
        *"$want"*"server.3=127.0.0.1:"*) ;;
        *) ok=0; fail "election-probe of server $i: '$out' (expected '$want' and the server list)" ;;
      esac
    done
    [ "$ok" = 1 ] && log "PASS election port: paddock's codec reads ZooKeeper's votes (leader $leader) and ZooKeeper answers paddock's"
    # The learner protocol: OBSERVERINFO to the leader's quorum port, LEADERINFO back.
    local li
    li=$(timeout 30 "$PADDOCK" learner-probe "127.0.0.1:${qports[$((leader-1))]}" 2>&1)
    case "$li" in
      "LEADERINFO: epoch "*"protocol version 0x10000"*) log "PASS quorum port: ZooKeeper's leader answers paddock's OBSERVERINFO with $li" ;;
      *) fail "learner-probe of the leader: '$li'" ;;
    esac
  fi
  for i in "${pids[@]}"; do kill -KILL -- "-$i" 2>/dev/null; wait "$i" 2>/dev/null; done
}
ensemble_probe

# ---- 7. a Paddock ensemble serves Apache ZooKeeper's clients ---------------------------------
# Three Paddock servers on 127.0.0.1 (tickTime 500). zkServer.sh status sees one leader and
# two followers; the zkCli scenario run against a follower gives the same transcript as
# against ZooKeeper; kazoo writes through the ensemble while its leader is killed -9, and
# every surviving member holds every node afterwards.
paddock_ensemble() {
  local base="$WORK/pd3" c i pids=() servers=() leader="" follower="" cports=()
  c=$(pick_port "$P_PD") || { fail "no free port"; return; }
  c=$(( c + 20 ))
  for i in 1 2 3; do
    local cp qp ep
    cp=$(pick_port "$c") && c=$cp; qp=$(pick_port "$c") && c=$qp; ep=$(pick_port "$c") && c=$ep
    cports+=("$cp"); servers+=("server.$i=127.0.0.1:$qp:$ep")
  done
  for i in 3 2 1; do
    mkdir -p "$base/s$i/data"; echo "$i" > "$base/s$i/data/myid"
    write_cfg "$base/s$i/zoo.cfg" "$base/s$i/data" "${cports[$((i-1))]}" \
      "initLimit=10" "syncLimit=5" "preAllocSize=4096" "${servers[@]}"
    sed -i 's/^tickTime=2000$/tickTime=500/' "$base/s$i/zoo.cfg"
    ( cd "$base/s$i" && exec setsid "$PADDOCK" start-foreground "$base/s$i/zoo.cfg" ) \
      > "$base/s$i/server.log" 2>&1 < /dev/null &
    pids[$i]=$!
  done
  local modes=() t m
  for i in 1 2 3; do
    m=""
    for t in $(seq 1 150); do
      m=$(ZOO_LOG_DIR="$base" timeout 30 "$ZKBIN/zkServer.sh" status "$base/s$i/zoo.cfg" 2>&1 | awk -F': ' '/^Mode/ {print $2}')
      [ -n "$m" ] && break; sleep 0.2
    done
    modes+=("$m")
    [ "$m" = leader ] && leader=$i
    [ "$m" = follower ] && follower=$i
  done
  if [ -z "$leader" ] || [ -z "$follower" ] || [ "$(printf '%s\n' "${modes[@]}" | sort | tr '\n' ' ')" != "follower follower leader " ]; then
    fail "zkServer.sh status of the Paddock ensemble: ${modes[*]}"
    for i in 1 2 3; do tail -n 20 "$base/s$i/server.log" >&2; done
  else
    log "PASS zkServer.sh status reads the Paddock ensemble: leader $leader, modes ${modes[*]}"
    if timeout 300 "$HERE/zkcli.sh" "${cports[$((follower-1))]}" > "$WORK/zkcli.follower.txt" 2> "$WORK/zkcli.follower.err" \
       && diff -u --label zookeeper --label paddock-follower "$WORK/zkcli.zookeeper.txt" "$WORK/zkcli.follower.txt" > "$WORK/zkcli.follower.diff"; then
      log "PASS zkCli scenario through Paddock follower $follower: transcript identical to ZooKeeper's"
    else
      fail "zkCli scenario through Paddock follower $follower differs (- zookeeper, + follower):"
      cat "$WORK/zkcli.follower.diff" "$WORK/zkcli.follower.err" >&2
    fi
    local hosts="127.0.0.1:${cports[0]},127.0.0.1:${cports[1]},127.0.0.1:${cports[2]}" out
    out=$(timeout 120 python3 "$HERE/kazoo_ensemble.py" "$hosts" write 0 200 2>&1) || fail "kazoo writes to the ensemble: $out"
    # kill -9 the leader while kazoo writes.
    timeout 120 python3 "$HERE/kazoo_ensemble.py" "$hosts" write 200 600 > "$WORK/kazoo.ens.txt" 2>&1 &
    local writer=$!
    sleep 1
    kill -KILL -- "-${pids[$leader]}" 2>/dev/null
    if wait "$writer"; then
      log "PASS kazoo kept writing through a kill -9 of Paddock leader $leader ($(cat "$WORK/kazoo.ens.txt"))"
      local ok=1
      for i in 1 2 3; do
        [ "$i" = "$leader" ] && continue
        out=$(timeout 60 python3 "$HERE/kazoo_ensemble.py" "127.0.0.1:${cports[$((i-1))]}" check 600 2>&1) || { ok=0; fail "$out"; }
      done
      [ "$ok" = 1 ] && log "PASS both surviving members hold all 600 nodes kazoo wrote"
    else
      fail "kazoo writes across the leader kill: $(cat "$WORK/kazoo.ens.txt")"
      for i in 1 2 3; do tail -n 20 "$base/s$i/server.log" >&2; done
    fi
  fi
  for i in 1 2 3; do kill -KILL -- "-${pids[$i]}" 2>/dev/null; wait "${pids[$i]}" 2>/dev/null; done
}
paddock_ensemble

# ---- 8. security: TLS (and SASL) with ZooKeeper's own clients ---------------------------------
# security.sh starts its own pair of servers with the same TLS lines; see its header.
if timeout 900 bash "$HERE/security.sh" "$PADDOCK"; then
  log "security interop passed"
else
  fail "security interop (security.sh) failed"
fi

# ---- servers still alive? ---------------------------------------------------------------------
kill -0 "$PID_ZK" 2>/dev/null || fail "ZooKeeper died during the run"
kill -0 "$PID_PD" 2>/dev/null || { fail "Paddock died during the run; log:"; tail -n 50 "$WORK/paddock/server.log" >&2; }

if [ "$FAILED" = 0 ]; then
  log "all interop checks passed"
  exit 0
fi
log "interop checks FAILED"
exit 1
