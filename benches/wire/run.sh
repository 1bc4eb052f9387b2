#!/usr/bin/env bash
# watchcache-server and kube-apiserver 1.20.2 side by side over the wire, on one etcd:
# the same writer replacing config maps and the same N watch connections, from
# watchcache-loadgen --target, against each in turn (interleaved, ROUNDS times).
#
#   benches/wire/run.sh                    every N in CONNECTIONS, ROUNDS rounds
#   CONNECTIONS="100 1000" ROUNDS=1 RATES="100:900 1000:200" benches/wire/run.sh
#   WIRES="json protobuf" benches/wire/run.sh  each run as JSON lines and as protobuf frames
#
# Both servers stand on the same etcd member (../kube-apiserver/run.sh starts it): kube-
# apiserver under /registry, watchcache-server under /watchcache, so each reads only its
# own keys (kube-apiserver stores protobuf, watchcache-server JSON). kube-apiserver is
# reached on its plain-HTTP port (ANCHOR_PLAIN_HTTP=1), so neither pays for TLS. CPU per
# delivery counts the server and etcd together, as a user of either pays both.
#
# Writes one JSON report per run to $OUT (default target/wire/<time>/) and prints the
# table PERF.md carries (summary.py: median and range of the rounds).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ -z "${APISERVER:-}" ]; then
  cd "$root"
  eval "$(cargo xtask env)"
  PATH=$(dirname "$ETCD"):$PATH
  cargo build --release -q -p watchcache-server -p watchcache-loadgen --features watchcache-server/protobuf
  export OUT=${OUT:-$root/target/wire/$(date +%Y%m%dT%H%M%S)}
  mkdir -p "$OUT"
  ANCHOR_PLAIN_HTTP=1 "$root/benches/kube-apiserver/run.sh" -- "$0" "$@"
  exec python3 "$here/summary.py" "$OUT"/*.json
fi

# Here under ../kube-apiserver/run.sh: APISERVER, APISERVER_PID, ETCD (its URL), ETCD_PID.
port=$((32000 + RANDOM % 8000))
"$root/target/release/watchcache-server" --listen "127.0.0.1:$port" --etcd-servers "$ETCD" \
  --etcd-prefix /watchcache --max-watches 20000 > "$OUT/watchcache-server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
watchcache=http://127.0.0.1:$port
for _ in $(seq 1 100); do
  curl -sf "$watchcache/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" || { tail "$OUT/watchcache-server.log" >&2; exit 1; }
  sleep 0.1
done

# Writes per second for each connection count: by default about a million deliveries a
# second asked of each server, and no more writes than one etcd takes comfortably;
# RATES="N:RATE ..." sets them (e.g. a load both servers keep up with).
rate_for() {
  local pair
  for pair in ${RATES:-}; do
    [ "${pair%%:*}" = "$1" ] && { echo "${pair#*:}"; return; }
  done
  case $1 in
    1) echo 2000 ;; 100) echo 2000 ;; 1000) echo 1000 ;; *) echo $((1000000 / $1)) ;;
  esac
}
for round in $(seq 1 "${ROUNDS:-3}"); do
  for connections in ${CONNECTIONS:-1 100 1000 10000}; do
    for wire in ${WIRES:-json}; do
      for server in watchcache-server kube-apiserver; do
        case $server in
          watchcache-server) target=$watchcache pid=$server_pid ;;
          kube-apiserver) target=$APISERVER pid=$APISERVER_PID ;;
        esac
        echo "wire: round $round, $server, $wire, $connections connections" >&2
        "$root/target/release/watchcache-loadgen" --json --target "$target" --resource configmaps \
          --wire "$wire" --connections "$connections" --rate "$(rate_for "$connections")" --keys 100 \
          --duration "${DURATION:-5}" --server-pid "$pid" --server-pid "$ETCD_PID" \
          > "$OUT/$server-$wire-$connections-$round.json" ||
          echo "wire: $server ($wire) at $connections connections failed (see above)" >&2
      done
    done
  done
done
