#!/bin/bash
# usage: run.sh BIN N HOGS : starts 3-node ensembles (3 first, then 1 and 2) N times
# under HOGS busy loops and prints who led and how long it took.
BIN=$1; N=$2; HOGS=${3:-2}; base=25900
hogs=(); for h in $(seq $HOGS); do timeout 900 yes >/dev/null & hogs+=($!); done
srvr() { exec 3<>/dev/tcp/127.0.0.$1/$base 2>/dev/null || return; echo srvr >&3; timeout 2 cat <&3 | sed -n 's/^Mode: //p'; exec 3<&-; }
for t in $(seq $N); do
  rm -rf /tmp/elect/d; pids=()
  for id in 1 2 3; do
    mkdir -p /tmp/elect/d/$id/data; echo $id > /tmp/elect/d/$id/data/myid
    { printf 'tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/elect/d/%s/data\nclientPort=%s\nclientPortAddress=127.0.0.%s\n4lw.commands.whitelist=*\npaddock.pinCores=false\n' $id $base $id
      for j in 1 2 3; do echo "server.$j=127.0.0.$j:$((base+1)):$((base+2))"; done; } > /tmp/elect/d/$id/zoo.cfg
  done
  $BIN start-foreground /tmp/elect/d/3/zoo.cfg 2>/tmp/elect/d/3/log & pids+=($!)
  until [ -n "$(exec 3<>/dev/tcp/127.0.0.3/$base && echo srvr >&3 && timeout 2 cat <&3)" ]; do sleep 0.02; done 2>/dev/null
  s=$(date +%s%N)
  for id in 1 2; do $BIN start-foreground /tmp/elect/d/$id/zoo.cfg 2>/tmp/elect/d/$id/log & pids+=($!); done
  leader=""
  for k in $(seq 400); do
    m1=$(srvr 1); m2=$(srvr 2); m3=$(srvr 3)
    l=""; for id in 1 2 3; do v=m$id; [ "${!v}" = leader ] && l="$l$id"; done
    if [ ${#l} = 1 ] && [ -n "$m1" ] && [ -n "$m2" ] && [ -n "$m3" ]; then leader=$l; break; fi
    sleep 0.02
  done
  e=$(( ($(date +%s%N)-s)/1000000 ))
  echo "trial $t: leader ${leader:-none} after ${e} ms"
  kill ${pids[@]}; wait ${pids[@]} 2>/dev/null
done
kill ${hogs[@]} 2>/dev/null
