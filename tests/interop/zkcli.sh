#!/usr/bin/env bash
# zkcli.sh PORT — drive Apache ZooKeeper's own CLI (zkCli.sh) through a fixed scenario
# against 127.0.0.1:PORT and print a normalised transcript that can be diffed between two
# servers (the real ZooKeeper and Paddock).
#
# One zkCli.sh session is fed on stdin, one command at a time. After each command the
# driver sends `printwatches` (purely client-side, prints "printwatches is on") as an
# end-of-output marker, so every command's output is collected in full before the next
# command is sent. Watch notifications are printed by the client's event thread and may
# race with the command output, so inside each section they are moved to the end; after
# each command the driver pauses briefly and collects stragglers with a second marker
# (longer in the scenario's "#settle watch" block, where events are expected: a late one
# would land in the next command's section).
#
# Normalisation: log/JVM noise and banner lines are dropped; ctime/mtime become <time>;
# cZxid/mZxid/pZxid become <zxid:N> where N numbers the distinct zxid values in order
# of first appearance (so "same zxid" relations are still compared; 0x0, as on the root
# node, is kept); a non-zero
# ephemeralOwner (and any other long 0x... value) becomes <session>; the port becomes
# <port>; getEphemerals lists are sorted (their order is Java hash order on the real
# server); whoami lines are compared as they come (Paddock lists ids in ZooKeeper's
# order). Everything else (versions, lengths, counts, names, sequence suffixes, ACLs,
# error texts, event lines) is kept verbatim.
#
# Environment: ZKCLI (default /usr/share/zookeeper/bin/zkCli.sh),
#              ZKCLI_SETTLE (seconds to wait for late watch events, default 0.3),
#              ZKCLI_WATCH_SETTLE (the same in the "#settle watch" block, default 1),
#              ZKCLI_CMD_TIMEOUT (seconds per command, default 30),
#              ZKCLI_SCENARIO (a file with another scenario, same syntax),
#              CLIENT_JVMFLAGS (zkCli.sh's own: TLS or SASL settings for the client).
set -uo pipefail

PORT=${1:?usage: zkcli.sh PORT}
ZKCLI=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
SETTLE=${ZKCLI_SETTLE:-0.3}
WATCH_SETTLE=${ZKCLI_WATCH_SETTLE:-1}
settle=$SETTLE
CMD_TIMEOUT=${ZKCLI_CMD_TIMEOUT:-30}
MARK="printwatches is on"

[ -x "$ZKCLI" ] || { echo "zkcli.sh: $ZKCLI not found (apt-get install -y zookeeper)" >&2; exit 2; }

# The scenario. One zkCli command per line; "#sleep N" pauses the driver (not sent);
# "#settle watch" / "#settle plain" switch the pause after each command to WATCH_SETTLE /
# SETTLE; lines starting with "#" otherwise are comments. Digests: alice:secret and
# bob:hunter2.
if [ -n "${ZKCLI_SCENARIO:-}" ]; then
  SCENARIO=$(cat "$ZKCLI_SCENARIO")
else
SCENARIO=$(cat <<'EOF'
ls /
create /zk_test my_data
get -s /zk_test
set /zk_test junk
get -s /zk_test
delete /zk_test
ls /
# errors on plain nodes
get /zk_test
delete /zk_test
create /zk_dup a
create /zk_dup b
set -v 7 /zk_dup c
delete -v 7 /zk_dup
create /zk_dup/child
delete /zk_dup
create /zk_nope/child
delete /zookeeper
# sequential
create /zk_seq
create -s /zk_seq/item- a
create -s /zk_seq/item- b
create -s /zk_seq/ c
ls /zk_seq
delete /zk_seq/item-0000000001
create -s /zk_seq/item- d
ls /zk_seq
get -s /zk_seq
# ephemeral
create -e /zk_eph eph_data
create -e -s /zk_eph_seq- x
get -s /zk_eph
create /zk_eph/child
# container (ephemeralOwner reads 0)
create -c /zk_cont
create /zk_cont/child child_data
get -s /zk_cont
create -c /zk_cont_unused
# TTL (ephemeralOwner reads 0)
create -t 600000 /zk_ttl ttl_data
get -s /zk_ttl
create -t 600000 -s /zk_ttl_seq- y
# persistent recursive watch
#settle watch
addWatch -m PERSISTENT_RECURSIVE /zk_watch
create /zk_watch w0
create /zk_watch/a a0
set /zk_watch/a a1
create /zk_watch/a/b b0
delete /zk_watch/a/b
set /zk_watch w1
delete /zk_watch/a
delete /zk_watch
create /zk_other unwatched
#settle plain
# counts and ephemerals
getAllChildrenNumber /
getAllChildrenNumber /zk_seq
getAllChildrenNumber /zk_seq/item-0000000000
getAllChildrenNumber /zk_missing
getEphemerals /
getEphemerals /zk_eph
getEphemerals /zk_eph_
getEphemerals /zk_none
# auth and ACLs
whoami
getAcl /zk_dup
setAcl /zk_dup auth::cdrwa
setAcl /zk_dup digest:alice:cdrwa
addauth digest alice:secret
whoami
addauth digest bob:hunter2
whoami
create /zk_acl acl_data
setAcl /zk_acl digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:cdrwa,world:anyone:r
getAcl /zk_acl
getAcl -s /zk_acl
setAcl -v 5 /zk_acl world:anyone:cdrwa
setAcl /zk_acl auth::cdrwa
getAcl /zk_acl
stat /zk_acl
create /zk_ro ro_data
setAcl /zk_ro world:anyone:r,digest:carol:AAAAAAAAAAAAAAAAAAAAAAAAAAA=:a
getAcl /zk_ro
set /zk_ro nope
create /zk_ro/child
delete /zk_ro
setAcl /zk_ro world:anyone:cdrwa
create /zk_wo wo_data
setAcl /zk_wo world:anyone:w
get /zk_wo
ls /zk_wo
getAcl /zk_wo
set /zk_wo still_writable
# No `stat /zk_wo`: exists() of a node without READ is answered by ZooKeeper 3.8.0 but
# refused with NoAuth by 3.8.4+ (ZOOKEEPER-2590) and by Paddock, which follows 3.8.4+.
# stat and sync
stat /
stat /zk_seq
stat /zk_missing
sync /
sync /zk_seq
# container and TTL sweeping (check interval 1 s): the emptied container and the
# expired TTL node disappear, the never-used container and the long TTL node stay
create -t 500 /zk_ttl_short z
delete /zk_cont/child
#sleep 4
ls /
stat /
EOF
)
fi

coproc ZK { exec "$ZKCLI" -waitforconnection -server "127.0.0.1:$PORT" 2>&1; }
ZKPID=$ZK_PID   # bash unsets ZK_PID when the coprocess ends
exec {ZK_IN}>&"${ZK[1]}" {ZK_OUT}<&"${ZK[0]}"
cleanup() { pkill -P "$ZKPID" 2>/dev/null; kill "$ZKPID" 2>/dev/null; wait "$ZKPID" 2>/dev/null; }

# read until the marker line; prints raw lines; returns 1 on EOF/timeout
read_section() {
  local line
  while IFS= read -r -t "$CMD_TIMEOUT" line <&"$ZK_OUT"; do
    line=${line%$'\r'}
    [ "$line" = "$MARK" ] && return 0
    printf '%s\n' "$line"
  done
  return 1
}

# per-section filter: drop noise, move event lines to the end
section_filter() {
  awk '
    /^SLF4J:/ || /^log4j:/ || /^WARNING:/ || /^Picked up / { next }
    /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][ T][0-9][0-9]:[0-9][0-9]:[0-9][0-9]/ { next }
    /^Connecting to / || /^Welcome to ZooKeeper!/ || /^JLine support is / { next }
    /^WATCHER::$/ || /^[ \t]*$/ { next }
    # The client makes this one itself as quit closes it, and its event thread races the
    # JVM'\''s exit to print it: present or not by chance, whatever the server did.
    /^WatchedEvent state:Closed type:None path:null$/ { next }
    /^WatchedEvent / { ev[++n] = $0; next }
    { print }
    END { for (i = 1; i <= n; i++) print ev[i] }'
}

# Order-insensitive results: the real server returns getEphemerals paths (a hash set) in
# Java hash order, which the protocol does not promise, so those are sorted. (ls is already sorted by zkCli itself.)
sort_unordered() { # cmd
  case "$1" in
    getEphemerals*)
      local l inner
      while IFS= read -r l; do
        if [[ $l == \[*\] && $l != "[]" ]]; then
          inner=${l:1:${#l}-2}
          printf '[%s]\n' "$(printf '%s\n' "${inner//, /$'\n'}" | LC_ALL=C sort | paste -sd '\t' - | sed 's/\t/, /g')"
        else
          printf '%s\n' "$l"
        fi
      done ;;
    *) cat ;;
  esac
}

run_cmd() { # cmd -> raw output of the command (plus late events)
  printf '%s\n%s\n' "$1" printwatches >&"$ZK_IN" || return 1
  read_section || return 1
  sleep "$settle"
  printf 'printwatches\n' >&"$ZK_IN" || return 1
  read_section
}

transcript() {
  local status=0 cmd
  # connection: with -waitforconnection the connected event is printed before any command
  echo "> (connect)"
  { printf 'printwatches\n' >&"$ZK_IN" && read_section; } | section_filter || status=1
  while IFS= read -r cmd; do
    case "$cmd" in
      "#sleep "*) sleep "${cmd#\#sleep }"; continue ;;
      "#settle watch") settle=$WATCH_SETTLE; continue ;;
      "#settle plain") settle=$SETTLE; continue ;;
      "#"*|"") continue ;;
    esac
    echo "> $cmd"
    run_cmd "$cmd" > "$TMP_SECTION" || { status=1; echo "!! zkCli did not finish: $cmd"; }
    section_filter < "$TMP_SECTION" | sort_unordered "$cmd"
    [ $status = 0 ] || break
  done <<< "$SCENARIO"
  echo "> quit"
  printf 'quit\n' >&"$ZK_IN"
  # after quit: everything until EOF
  timeout "$CMD_TIMEOUT" cat <&"$ZK_OUT" | section_filter
  return $status
}

TMP_SECTION=$(mktemp)
trap 'cleanup; rm -f "$TMP_SECTION"' EXIT

transcript | awk -v port="$PORT" '
  { gsub("127\\.0\\.0\\.1:" port, "127.0.0.1:<port>") }
  /^(ctime|mtime) = / { sub(/=.*/, "= <time>") }
  /^(cZxid|mZxid|pZxid) = 0x[0-9a-fA-F]+$/ {
    v = $3
    if (v != "0x0") { if (!(v in z)) z[v] = ++nz; sub(/=.*/, "= <zxid:" z[v] ">") }
  }
  /^ephemeralOwner = 0x/ && $3 != "0x0" { sub(/=.*/, "= <session>") }
  { gsub(/0x[0-9a-fA-F]{8,}/, "<session>") }
  { print }'
rc=${PIPESTATUS[0]}
exit "$rc"
