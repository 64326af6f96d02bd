#!/usr/bin/env bash
# tests/interop/security.sh PADDOCK_BINARY - issue 16's interop: Apache ZooKeeper 3.8's
# own clients over TLS (and SASL), against ZooKeeper 3.8 and Paddock given the same
# zoo.cfg lines, their transcripts compared.
#
#   1. certificates: a CA and its leaves made by pki.py; the server's key store and the
#      trust store turned into JKS by the JDK's keytool (Paddock reads the same files
#      ZooKeeper does); the Java client's key stores as PKCS12;
#   2. zkCli.sh over TLS (ClientCnxnSocketNetty, zookeeper.client.secure=true) as
#      CN=client, then as CN=other: x509 ACLs, whoami, auth ACLs;
#   3. kazoo with use_ssl: the same ACLs, and the clients both servers must refuse
#      (another CA's certificate, an expired one, none);
#   4. a zkCli client with a certificate of another CA is refused by both.
# Called by run.sh (it installs ZooKeeper and kazoo); exits non-zero if anything fails.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PADDOCK=${1:?usage: security.sh PADDOCK_BINARY}
ZKBIN=/usr/share/zookeeper/bin
PORT_BASE=${INTEROP_SECURITY_PORT_BASE:-22600}
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"

if ! python3 -c 'import cryptography' 2>/dev/null; then
  log "installing cryptography (certificates for the TLS tests)"
  timeout 600 python3 -m pip install cryptography || die "pip install cryptography failed"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/paddock-security.XXXXXX")
PIDS=()
FAILED=0
fail() { log "FAIL: $*"; FAILED=1; }
cleanup() {
  local pid i rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$rc" != 0 ] || [ "${INTEROP_KEEP:-}" = 1 ]; then log "security work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT

# ---- 1. certificates ---------------------------------------------------------------------
PW=interop-Store-pw
PKI=$WORK/pki
mkdir -p "$PKI"
python3 "$HERE/pki.py" "$PKI" "$PW" || die "pki.py failed"
keytool -importkeystore -noprompt -srcstoretype PKCS12 -deststoretype JKS \
  -srckeystore "$PKI/server.p12" -srcstorepass "$PW" \
  -destkeystore "$PKI/server.jks" -deststorepass "$PW" > "$WORK/keytool.log" 2>&1 \
  || { cat "$WORK/keytool.log" >&2; die "keytool could not make server.jks"; }
keytool -importcert -noprompt -alias ca -file "$PKI/ca.pem" -storetype JKS \
  -keystore "$PKI/trust.jks" -storepass "$PW" >> "$WORK/keytool.log" 2>&1 \
  || { cat "$WORK/keytool.log" >&2; die "keytool could not make trust.jks"; }

# Debian's ZooKeeper jar names netty-handler but not netty-codec, which Netty's TLS handler
# needs: without it the Netty server (and client) drop every connection. A second -cp in
# the JVM flags (they come after zkEnv.sh's) adds it.
ZK_CP="-cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar"

# ---- servers ------------------------------------------------------------------------------
P_ZK=$(pick_port $(( PORT_BASE - 1 ))) || die "no free port"
S_ZK=$(pick_port "$P_ZK") || die "no free port"
P_PD=$(pick_port "$S_ZK") || die "no free port"
S_PD=$(pick_port "$P_PD") || die "no free port"
tls_lines=(
  "ssl.keyStore.location=$PKI/server.jks" "ssl.keyStore.password=$PW"
  "ssl.trustStore.location=$PKI/trust.jks" "ssl.trustStore.password=$PW"
)
mkdir -p "$WORK/zk" "$WORK/paddock"
write_cfg "$WORK/zk/zoo.cfg" "$WORK/zk/data" "$P_ZK" "admin.enableServer=false" \
  "secureClientPort=$S_ZK" "${tls_lines[@]}"
write_cfg "$WORK/paddock/zoo.cfg" "$WORK/paddock/data" "$P_PD" "paddock.pinCores=false" \
  "secureClientPort=$S_PD" "${tls_lines[@]}"
log "starting Apache ZooKeeper (TLS on $S_ZK) and Paddock (TLS on $S_PD)"
JMXDISABLE=true ZOO_LOG_DIR="$WORK/zk" \
  SERVER_JVMFLAGS="$ZK_CP -Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory" \
  setsid "$ZKBIN/zkServer.sh" start-foreground "$WORK/zk/zoo.cfg" > "$WORK/zk/server.log" 2>&1 < /dev/null &
PIDS+=("$!"); PID_ZK=$!
setsid "$PADDOCK" start-foreground "$WORK/paddock/zoo.cfg" > "$WORK/paddock/server.log" 2>&1 < /dev/null &
PIDS+=("$!"); PID_PD=$!
wait_imok zookeeper "$P_ZK" "$PID_ZK" "$WORK/zk/server.log" || die "ZooKeeper did not start"
wait_imok paddock "$P_PD" "$PID_PD" "$WORK/paddock/server.log" || die "Paddock did not start"
# ZooKeeper's secure port opens after its plain one.
for i in $(seq 1 100); do port_free "$S_ZK" || break; sleep 0.2; done

# ---- 2. zkCli over TLS --------------------------------------------------------------------
java_tls() { # stem -> CLIENT_JVMFLAGS for a TLS zkCli with that certificate
  printf '%s ' $ZK_CP -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
    -Dzookeeper.client.secure=true \
    "-Dzookeeper.ssl.keyStore.location=$PKI/$1.p12" "-Dzookeeper.ssl.keyStore.password=$PW" \
    "-Dzookeeper.ssl.trustStore.location=$PKI/trust.jks" "-Dzookeeper.ssl.trustStore.password=$PW"
}
zkcli_tls() { # name port stem scenario
  CLIENT_JVMFLAGS=$(java_tls "$3") ZKCLI_SCENARIO="$HERE/scenarios/$4.txt" \
    timeout 300 "$HERE/zkcli.sh" "$2" > "$WORK/$4.$1.txt" 2> "$WORK/$4.$1.err"
}
for scenario in tls_client:client tls_other:other; do
  name=${scenario%%:*} stem=${scenario#*:}
  zkcli_tls zookeeper "$S_ZK" "$stem" "$name" || fail "zkCli $name against ZooKeeper (the scenario itself?)"
  zkcli_tls paddock "$S_PD" "$stem" "$name" || fail "zkCli $name against Paddock"
  if diff -u --label zookeeper --label paddock "$WORK/$name.zookeeper.txt" "$WORK/$name.paddock.txt" > "$WORK/$name.diff"; then
    log "zkCli over TLS ($name): transcripts identical ($(wc -l < "$WORK/$name.paddock.txt") lines)"
  else
    fail "zkCli over TLS ($name): transcripts differ (- zookeeper, + paddock):"; cat "$WORK/$name.diff" >&2
  fi
done
grep -q "x509" "$WORK/tls_client.paddock.txt" || fail "zkCli's whoami shows no x509 id"

# ---- 3. kazoo over TLS --------------------------------------------------------------------
for who in zookeeper:$S_ZK paddock:$S_PD; do
  name=${who%%:*} port=${who#*:}
  timeout 180 python3 "$HERE/kazoo_security.py" "$port" "$PKI" tls > "$WORK/kazoo_tls.$name.txt" 2> "$WORK/kazoo_tls.$name.err" \
    || { fail "kazoo over TLS against $name:"; cat "$WORK/kazoo_tls.$name.err" >&2; }
done
if diff -u --label zookeeper --label paddock "$WORK/kazoo_tls.zookeeper.txt" "$WORK/kazoo_tls.paddock.txt" > "$WORK/kazoo_tls.diff"; then
  log "kazoo over TLS: transcripts identical ($(wc -l < "$WORK/kazoo_tls.paddock.txt") lines)"
else
  fail "kazoo over TLS: transcripts differ (- zookeeper, + paddock):"; cat "$WORK/kazoo_tls.diff" >&2
fi

# ---- 4. zkCli with another CA's certificate ------------------------------------------------
for who in zookeeper:$S_ZK paddock:$S_PD; do
  name=${who%%:*} port=${who#*:}
  out=$(CLIENT_JVMFLAGS=$(java_tls rogue) timeout 60 "$ZKBIN/zkCli.sh" -server "127.0.0.1:$port" ls / 2>&1)
  if grep -q '^\[zookeeper' <<< "$out"; then fail "$name served a client with another CA's certificate"; fi
done

# ---- the servers lived through it; Paddock logged no secret ------------------------------------
kill -0 "$PID_PD" 2>/dev/null || fail "Paddock exited"
[ "$(four_letter "$P_PD" ruok)" = imok ] || fail "Paddock does not answer ruok"
if grep -q -- "$PW" "$WORK/paddock/server.log"; then fail "a store password is in Paddock's log"; fi
[ "$FAILED" = 0 ] && log "security interop: all passed"
exit "$FAILED"
