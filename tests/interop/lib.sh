# Helpers shared by the interop scripts (sourced; bash).

log() { printf '[interop] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

port_free() { # port: nothing listens and we can bind it
  python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}
pick_port() { # after: first free port above it (within 22181-22999)
  local p=$(( $1 + 1 ))
  while [ "$p" -le 22999 ]; do
    port_free "$p" && { echo "$p"; return 0; }
    p=$(( p + 1 ))
  done
  return 1
}
four_letter() { # port word -> server's answer
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' _ "$1" "$2" 2>/dev/null
}
wait_imok() { # name port pid log
  local i
  for i in $(seq 1 300); do   # up to ~60 s
    [ "$(four_letter "$2" ruok)" = imok ] && { log "$1 answers imok on 127.0.0.1:$2"; return 0; }
    kill -0 "$3" 2>/dev/null || { log "$1 exited during startup; log:"; tail -n 50 "$4" >&2; return 1; }
    sleep 0.2
  done
  log "$1 never answered ruok with imok on port $2; log:"; tail -n 50 "$4" >&2
  return 1
}
write_cfg() { # file datadir port [extra lines...]
  local f=$1 d=$2 p=$3; shift 3
  mkdir -p "$d"
  {
    echo "tickTime=2000"
    echo "dataDir=$d"
    echo "clientPort=$p"
    echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"
    echo "4lw.commands.whitelist=*"
    echo "extendedTypesEnabled=true"
    echo "znode.container.checkIntervalMs=1000"
    local l; for l in "$@"; do echo "$l"; done
  } > "$f"
}

