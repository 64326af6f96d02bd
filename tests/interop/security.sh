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
#   4. a zkCli client with a certificate of another CA is refused by both;
#   5. SASL DIGEST-MD5 from a JAAS Server section (given to both servers the way
#      ZooKeeper takes it: -Djava.security.auth.login.config in SERVER_JVMFLAGS): zkCli
#      with a JAAS Client section as bob, carol, super and with a wrong password, and
#      kazoo (pure-sasl) as bob and carol: sasl ACLs, whoami, the super user, refusals;
#   6. sessionRequireClientSASLAuth=true on a second pair: a client without SASL is
#      refused, one with it served.
# Called by run.sh (it installs ZooKeeper and kazoo); exits non-zero if anything fails.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PADDOCK=${1:?usage: security.sh PADDOCK_BINARY}
ZKBIN=/usr/share/zookeeper/bin
PORT_BASE=${INTEROP_SECURITY_PORT_BASE:-22600}
# shellcheck source=tests/interop/lib.sh
. "$HERE/lib.sh"

if ! python3 -c 'import cryptography, puresasl' 2>/dev/null; then
  log "installing cryptography (certificates) and pure-sasl (kazoo's SASL)"
  timeout 600 python3 -m pip install cryptography pure-sasl || die "pip install failed"
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
trap 'exit 143' INT TERM

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
sasl_lines=(
  "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider" "superUser=super"
)
cat > "$WORK/server.jaas" <<'EOF'
Server {
    org.apache.zookeeper.server.auth.DigestLoginModule required
    user_super="super-pw"
    user_bob="bob-pw"
    user_carol="carol-pw";
};
EOF
client_jaas() { # name user password -> a JAAS file with a Client section
  printf 'Client {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username="%s"\n  password="%s";\n};\n' "$2" "$3" > "$WORK/$1.jaas"
}
client_jaas bob bob bob-pw; client_jaas carol carol carol-pw; client_jaas super super super-pw
client_jaas wrong bob not-bobs-pw
start_pair() { # tag plain_zk secure_zk plain_pd secure_pd [extra zoo.cfg lines...]
  local tag=$1 pz=$2 sz=$3 pp=$4 sp=$5; shift 5
  mkdir -p "$WORK/zk$tag" "$WORK/paddock$tag"
  write_cfg "$WORK/zk$tag/zoo.cfg" "$WORK/zk$tag/data" "$pz" "admin.enableServer=false" \
    "secureClientPort=$sz" "${tls_lines[@]}" "${sasl_lines[@]}" "$@"
  write_cfg "$WORK/paddock$tag/zoo.cfg" "$WORK/paddock$tag/data" "$pp" "paddock.pinCores=false" \
    "secureClientPort=$sp" "${tls_lines[@]}" "${sasl_lines[@]}" "$@"
  log "starting Apache ZooKeeper (TLS on $sz) and Paddock (TLS on $sp) $*"
  JMXDISABLE=true ZOO_LOG_DIR="$WORK/zk$tag" \
    SERVER_JVMFLAGS="$ZK_CP -Dzookeeper.serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory -Djava.security.auth.login.config=$WORK/server.jaas" \
    setsid "$ZKBIN/zkServer.sh" start-foreground "$WORK/zk$tag/zoo.cfg" > "$WORK/zk$tag/server.log" 2>&1 < /dev/null &
  PIDS+=("$!"); PID_ZK=$!
  SERVER_JVMFLAGS="-Djava.security.auth.login.config=$WORK/server.jaas" \
    setsid "$PADDOCK" start-foreground "$WORK/paddock$tag/zoo.cfg" > "$WORK/paddock$tag/server.log" 2>&1 < /dev/null &
  PIDS+=("$!"); PID_PD=$!
}
start_pair "" "$P_ZK" "$S_ZK" "$P_PD" "$S_PD"
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
  # The control: the same command with the right certificate is served.
  out=$(CLIENT_JVMFLAGS=$(java_tls client) timeout 60 "$ZKBIN/zkCli.sh" -server "127.0.0.1:$port" ls / 2>&1)
  grep -q '^\[.*zookeeper' <<< "$out" || fail "$name did not serve zkCli ls / with the right certificate: $out"
  out=$(CLIENT_JVMFLAGS=$(java_tls rogue) timeout 60 "$ZKBIN/zkCli.sh" -server "127.0.0.1:$port" ls / 2>&1)
  if grep -q '^\[.*zookeeper' <<< "$out"; then fail "$name served a client with another CA's certificate"; fi
done

# ---- 5. SASL DIGEST-MD5 --------------------------------------------------------------------
zkcli_sasl() { # name port jaas scenario
  CLIENT_JVMFLAGS="-Djava.security.auth.login.config=$WORK/$3.jaas" ZKCLI_SCENARIO="$HERE/scenarios/$4.txt" \
    timeout 300 "$HERE/zkcli.sh" "$2" > "$WORK/$4.$1.txt" 2> "$WORK/$4.$1.err"
}
for scenario in sasl_bob:bob sasl_carol:carol sasl_super:super sasl_wrong:wrong; do
  name=${scenario%%:*} jaas=${scenario#*:}
  zkcli_sasl zookeeper "$P_ZK" "$jaas" "$name" || fail "zkCli $name against ZooKeeper (the scenario itself?)"
  zkcli_sasl paddock "$P_PD" "$jaas" "$name" || fail "zkCli $name against Paddock"
  if diff -u --label zookeeper --label paddock "$WORK/$name.zookeeper.txt" "$WORK/$name.paddock.txt" > "$WORK/$name.diff"; then
    log "zkCli with SASL ($name): transcripts identical ($(wc -l < "$WORK/$name.paddock.txt") lines)"
  else
    fail "zkCli with SASL ($name): transcripts differ (- zookeeper, + paddock):"; cat "$WORK/$name.diff" >&2
  fi
done
grep -q "sasl: bob" "$WORK/sasl_bob.paddock.txt" || fail "zkCli's whoami shows no sasl id for bob"
for who in zookeeper:$P_ZK paddock:$P_PD; do
  name=${who%%:*} port=${who#*:}
  timeout 180 python3 "$HERE/kazoo_security.py" "$port" "$PKI" sasl > "$WORK/kazoo_sasl.$name.txt" 2> "$WORK/kazoo_sasl.$name.err" \
    || { fail "kazoo with SASL against $name:"; cat "$WORK/kazoo_sasl.$name.err" >&2; }
done
if diff -u --label zookeeper --label paddock "$WORK/kazoo_sasl.zookeeper.txt" "$WORK/kazoo_sasl.paddock.txt" > "$WORK/kazoo_sasl.diff"; then
  log "kazoo with SASL: transcripts identical ($(wc -l < "$WORK/kazoo_sasl.paddock.txt") lines)"
else
  fail "kazoo with SASL: transcripts differ (- zookeeper, + paddock):"; cat "$WORK/kazoo_sasl.diff" >&2
fi

# ---- the servers lived through it; Paddock logged no secret ------------------------------------
kill -0 "$PID_PD" 2>/dev/null || fail "Paddock exited"
[ "$(four_letter "$P_PD" ruok)" = imok ] || fail "Paddock does not answer ruok"
for secret in "$PW" bob-pw carol-pw super-pw not-bobs-pw; do
  if grep -q -- "$secret" "$WORK/paddock/server.log"; then fail "a password ($secret) is in Paddock's log"; fi
done

# ---- 6. sessionRequireClientSASLAuth ------------------------------------------------------------
stop_pair() {
  local pid i
  for pid in "$PID_ZK" "$PID_PD"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "$PID_ZK" "$PID_PD"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  done
}
stop_pair
P2_ZK=$(pick_port "$S_PD") && S2_ZK=$(pick_port "$P2_ZK") && P2_PD=$(pick_port "$S2_ZK") && S2_PD=$(pick_port "$P2_PD") \
  || die "no free ports"
start_pair 2 "$P2_ZK" "$S2_ZK" "$P2_PD" "$S2_PD" "sessionRequireClientSASLAuth=true"
wait_imok zookeeper "$P2_ZK" "$PID_ZK" "$WORK/zk2/server.log" || die "ZooKeeper (enforced SASL) did not start"
wait_imok paddock "$P2_PD" "$PID_PD" "$WORK/paddock2/server.log" || die "Paddock (enforced SASL) did not start"
for who in zookeeper:$P2_ZK paddock:$P2_PD; do
  name=${who%%:*} port=${who#*:}
  CLIENT_JVMFLAGS="-Djava.security.auth.login.config=$WORK/bob.jaas" ZKCLI_SCENARIO="$HERE/scenarios/sasl_wrong.txt" \
    timeout 120 "$HERE/zkcli.sh" "$port" > "$WORK/enforced_bob.$name.txt" 2>&1
  CLIENT_JVMFLAGS="-Dzookeeper.sasl.client=false" ZKCLI_SCENARIO="$HERE/scenarios/sasl_wrong.txt" \
    timeout 120 "$HERE/zkcli.sh" "$port" > "$WORK/enforced_none.$name.txt" 2>&1
done
for case in enforced_bob enforced_none; do
  if diff -u --label zookeeper --label paddock "$WORK/$case.zookeeper.txt" "$WORK/$case.paddock.txt" > "$WORK/$case.diff"; then
    log "sessionRequireClientSASLAuth ($case): transcripts identical"
  else
    fail "sessionRequireClientSASLAuth ($case): transcripts differ:"; cat "$WORK/$case.diff" >&2
  fi
done
grep -q '^\[.*zookeeper' "$WORK/enforced_bob.paddock.txt" || fail "an authenticated client was not served under sessionRequireClientSASLAuth"
if grep -q '^\[.*zookeeper' "$WORK/enforced_none.paddock.txt"; then fail "a client without SASL was served under sessionRequireClientSASLAuth"; fi
kill -0 "$PID_PD" 2>/dev/null || fail "Paddock (enforced SASL) exited"
[ "$FAILED" = 0 ] && log "security interop: all passed"
exit "$FAILED"
