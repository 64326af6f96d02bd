# tuning/lib.sh — sourced by bench.sh and ensemble.sh (from the repository root): the
# release binaries, the run directory, and servers started in process groups of their own.

PADDOCK=$PWD/target/release/paddock; LG=$PWD/target/release/loadgen
ZKBIN=/usr/share/zookeeper/bin
[ -x "$PADDOCK" ] && [ -x "$LG" ] || { echo "build first: cargo build --release -p paddock -p loadgen" >&2; exit 2; }
OUT=tuning/runs/$(date -u +%Y-%m-%d)-$(hostname); mkdir -p "$OUT"
PGIDS=()

# Installs Apache ZooKeeper from Debian's packages if it is not there.
need_zookeeper() {
  if [ ! -x "$ZKBIN/zkServer.sh" ]; then apt-get update && apt-get install -y zookeeper; fi
}

# spawn KIND DIR: paddock or zookeeper on DIR/zoo.cfg, logging to DIR/log, in a process
# group of its own (its pid in PGIDS), so stop_all ends it and everything it started.
spawn() {
  local kind=$1 d=$2
  if [ "$kind" = paddock ]; then
    ( cd "$d" && exec setsid "$PADDOCK" start-foreground "$d/zoo.cfg" ) > "$d/log" 2>&1 < /dev/null &
  else
    JMXDISABLE=true ZOO_LOG_DIR="$d" setsid "$ZKBIN/zkServer.sh" start-foreground "$d/zoo.cfg" > "$d/log" 2>&1 < /dev/null &
  fi
  PGIDS+=($!)
}

# Ends every server spawn started.
stop_all() {
  local p
  for p in "${PGIDS[@]}"; do kill -9 -- "-$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PGIDS=(); sleep 0.5
}

# java_pid DIR: the JVM of the ZooKeeper started on DIR/zoo.cfg.
java_pid() { pgrep -f "zookeeper.*$1/zoo.cfg" | while read -r p; do [ "$(cat /proc/$p/comm)" = java ] && echo "$p"; done | head -1; }
