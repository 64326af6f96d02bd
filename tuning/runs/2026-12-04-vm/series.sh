#!/bin/bash
# usage: run.sh BIN ORDER(e.g. "100 90 50 0") [extra cfg]
BIN=$1; ORDER=$2; EXTRA=${3:-}
D=/tmp/exp/d; [ -z "$KEEP" ] && rm -rf $D; mkdir -p $D/data
{ echo tickTime=2000; echo dataDir=$D/data; echo clientPort=24781; echo clientPortAddress=127.0.0.1
  echo maxClientCnxns=0; echo admin.enableServer=false; echo '4lw.commands.whitelist=*'; [ -n "$EXTRA" ] && echo "$EXTRA"; } > $D/zoo.cfg
( cd $D && exec setsid $BIN start-foreground $D/zoo.cfg ) > $D/log 2>&1 < /dev/null &
P=$!
sleep 1
LG=/work/main/target/release/loadgen
for r in $ORDER; do
  $LG run --server 127.0.0.1:24781 --read-pct $r --duration 5 --warmup 2 --server-pid $P --progress off 2>&1 | grep -E "ops/s|p99|throughput" | head -3
  echo "after $r: $(grep -E 'VmRSS|RssAnon|VmPTE' /proc/$P/status | tr -s ' \n' ' ')"
  grep -o 'paused [0-9]* us' $D/log | awk '{s+=$2; n++; if($2>m)m=$2} END {print "forks", n, "mean", s/n, "max", m}'
  echo "kdamond ticks $(awk "{print \$14+\$15}" /proc/83/stat) cache $(free -m | awk "NR==2{print \$6}") MB"
  echo mntr | nc -q1 127.0.0.1 24781 | grep -E "fsynctime|group_commits" | tr "\n" " "; echo
  if [ -n "$PURGE" ]; then (cd $D/data/version-2 && ls -t | tail -n +12 | xargs -r rm -f); echo "purged: $(ls $D/data/version-2 | wc -l) left"; fi
  if [ -n "$DROP" ]; then sync; echo 1 > /proc/sys/vm/drop_caches && echo dropped; fi
done
kill -9 -- -$P; wait $P 2>/dev/null
