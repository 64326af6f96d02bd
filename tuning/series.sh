#!/usr/bin/env bash
# tuning/series.sh BIN "READS..." [CFG_LINE] — does a server slow down as it runs? One
# standalone server (BIN: a paddock binary) on a fresh data directory takes loadgen runs
# one after another (a read % each, e.g. "0 0 0 0 0" or bench.sh's order "100 90 50 0"):
# 32 sessions x 16 in flight, 100-byte values, fsync on, 5 s after 2 s of warm-up. After
# each run it prints the server's resident memory, its snapshot forks (count, mean and
# longest pause) and the machine's page cache. CFG_LINE is added to zoo.cfg (e.g.
# snapCount=2000000). Between runs, PURGE=1 deletes all but the newest 11 files of the
# data directory; DROP=1 drops the machine's page cache (needs root). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,9p "$0" >&2; exit 2; }
BIN=$(realpath "$1") ORDER=$2 EXTRA=${3:-}
. tuning/lib.sh
D=$PWD/target/series-work; rm -rf "$D"; mkdir -p "$D/data"
trap 'stop_all; rm -rf "$D"' EXIT
{ echo tickTime=2000; echo "dataDir=$D/data"; echo clientPort=24781; echo clientPortAddress=127.0.0.1
  echo maxClientCnxns=0; echo admin.enableServer=false; echo '4lw.commands.whitelist=*'
  if [ -n "$EXTRA" ]; then echo "$EXTRA"; fi; } > "$D/zoo.cfg"
PADDOCK=$BIN spawn paddock "$D"
P=${PGIDS[0]}
for _ in $(seq 100); do grep -q "serving" "$D/log" 2>/dev/null && break; sleep 0.1; done
echo "# $(date -u) tuning/series.sh $BIN ($(sha256sum "$BIN" | cut -c1-12)) '$ORDER' ${EXTRA}"
for r in $ORDER; do
  "$LG" run --server 127.0.0.1:24781 --read-pct "$r" --duration 5 --warmup 2 --server-pid "$P" \
    --progress off 2>&1 | grep -E "throughput|latency"
  echo "after $r% reads: $(grep -E 'VmRSS|RssAnon' /proc/$P/status | tr -s ' \n' ' ')" \
    "page cache $(free -m | awk 'NR==2{print $6}') MB"
  grep -o 'paused [0-9]* us' "$D/log" | awk '{s+=$2; n++; if ($2>m) m=$2}
    END {if (n) printf "snapshot forks so far %d, pause mean %.0f us, max %d us\n", n, s/n, m}'
  if [ -n "${PURGE:-}" ]; then (cd "$D/data/version-2" && ls -t | tail -n +12 | xargs -r rm -f); fi
  if [ -n "${DROP:-}" ]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
done
