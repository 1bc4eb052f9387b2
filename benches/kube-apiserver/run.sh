#!/usr/bin/env bash
# The real kube-apiserver (Kubernetes 1.20.2, built from Debian's source) over a
# throwaway etcd 3.4, both on loopback only: the peer watchcache-server is measured
# against over the same wire with the same load (../wire/run.sh).
#
#   run.sh                 start both, print the lines below, run until SIGTERM/SIGINT
#   run.sh -- CMD ARGS...  start both, run CMD with the lines below in its environment,
#                          stop both, exit with CMD's status
#
# Prints, once /readyz answers ok and namespace "default" exists:
#   APISERVER=https://127.0.0.1:PORT     (http://… with ANCHOR_PLAIN_HTTP=1)
#   APISERVER_TOKEN_FILE=…               a bearer token the server accepts (system:masters)
#   APISERVER_CACERT=…                   the server's self-signed certificate bundle
#   APISERVER_PID=… ETCD=http://127.0.0.1:PORT ETCD_PID=… ANCHOR_LOGS=…
#
# Kubernetes 1.20 made --insecure-port a no-op, so the server is reached over TLS on its
# secure port with a static token (--token-auth-file; anonymous access is switched off
# by the apiserver itself under AlwaysAllow). ANCHOR_PLAIN_HTTP=1 instead runs a second
# binary, built with `go build -overlay` from the same tree plus plainhttp/, that also
# serves 1.19's insecure handler chain on a loopback port, to measure without TLS.
#
# Idempotent: fetches the source (Debian's archive only) and builds kube-apiserver once
# (10-15 minutes on 2 cores, about 3 GB of memory), into the directory
# ../kubernetes-cacher/run.sh shares; etcd is the one `cargo xtask env` unpacks. Three
# build adaptations go through `go build -overlay`, the tree is never modified: the
# generated OpenAPI file the tarball lacks, reflect2 v1.0.2 from Debian (v1.0.1 panics
# under Go >= 1.18 on the first configmap POST), and the version string. Everything it
# starts is stopped on exit, by PID. etcd's data lives on /dev/shm (ETCD_ON_DISK=1 puts it
# in the temp dir); logs stay in the temp dir. Every address is 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${K8S_ANCHOR_DIR:-${TMPDIR:-/tmp}/k8s-anchor}
tree=$work/gopath/src/k8s.io/kubernetes
plain=${ANCHOR_PLAIN_HTTP:-0}
if [ "$plain" = 1 ]; then
  bin=${KUBE_APISERVER_BIN:-$work/bin/kube-apiserver-plainhttp}
else
  bin=${KUBE_APISERVER_BIN:-$work/bin/kube-apiserver}
fi
say() { echo "kube-apiserver-bench: $*" >&2; }

# --- the source tree, as ../kubernetes-cacher/run.sh fetches it -------------------------------
if [ ! -d "$tree" ]; then
  command -v go >/dev/null || { apt-get update -qq && apt-get install -y -qq golang-go >/dev/null; }
  # a deb-src twin of the machine's own Debian source entry, removed again afterwards
  src=/etc/apt/sources.list.d/debian.sources
  tmpsrc=/etc/apt/sources.list.d/k8s-anchor-src.sources
  sed -e 's/^Types: deb$/Types: deb-src/' "$src" > "$tmpsrc"
  apt-get update -qq
  mkdir -p "$work/debsrc" && (cd "$work/debsrc" && apt-get source -qq --download-only kubernetes)
  rm -f "$tmpsrc"; apt-get update -qq
  (cd "$work/debsrc" && tar xzf kubernetes_*.orig.tar.gz)
  mkdir -p "$work/gopath/src/k8s.io"
  mv "$work/debsrc"/kubernetes-1.20.2 "$tree"
fi

# --- kube-apiserver -----------------------------------------------------------------------
# The orig tarball lacks one generated file, pkg/generated/openapi/zz_generated.openapi.go,
# that Debian's `make` generates; it is generated here the way Makefile.generated_files
# does it (same input packages: the API-rule report equals api/api-rules/
# violation_exceptions.list), written outside the tree and added with `go build -overlay`.
# The tree itself is never modified.
gen=$work/gen-out
openapi_go=$gen/k8s.io/kubernetes/pkg/generated/openapi/zz_generated.openapi.go
if [ ! -x "$bin" ]; then
  command -v go >/dev/null || { apt-get update -qq && apt-get install -y -qq golang-go >/dev/null; }
  export GO111MODULE=off GOPATH=$work/gopath GOFLAGS=
  mkdir -p "$(dirname "$bin")" "$gen"
  entries=()
  if [ ! -f "$tree/pkg/generated/openapi/zz_generated.openapi.go" ]; then
    if [ ! -f "$openapi_go" ]; then
      say "generating pkg/generated/openapi/zz_generated.openapi.go"
      (cd "$tree" && go build -o "$work/bin/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
      inputs=$(cd "$tree" && find -H . \( -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) \) -type f -name '*.go' |
        sed 's|^./staging/src|vendor|; s|^./||' | xargs grep --color=never -l '^// *+k8s:' |
        grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
        xargs grep --color=never -l '+k8s:openapi-gen=' | xargs -n1 dirname | LC_ALL=C sort -u |
        sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
      (cd "$tree" && "$work/bin/openapi-gen" --logtostderr -i "$inputs" -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
        -r "$gen/violations.report" -o "$gen.partial" 2>"$gen/openapi-gen.log")
      mkdir -p "$(dirname "$openapi_go")"
      mv "$gen.partial/k8s.io/kubernetes/pkg/generated/openapi/zz_generated.openapi.go" "$openapi_go"
      rm -rf "$gen.partial"
      diff -q "$gen/violations.report" "$tree/api/api-rules/violation_exceptions.list" >/dev/null ||
        say "warning: openapi-gen's API-rule report differs from the tree's known list"
    fi
    entries+=("$tree/pkg/generated/openapi/zz_generated.openapi.go" "$openapi_go")
  fi
  # Kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, which breaks under Go
  # 1.18+ (a nil dereference in reflect2.Type2 as json-iterator decodes any map: every
  # POST of a configmap panics). Upstream's own fix on its later branches is reflect2
  # v1.0.2; Debian ships it (golang-github-modern-go-reflect2-dev), and it replaces the
  # vendored copy here through the overlay, API-compatible.
  if ! go version | grep -qE 'go1\.(1[0-7])([^0-9]|$)'; then
    r2=/usr/share/gocode/src/github.com/modern-go/reflect2
    [ -f "$r2/go_above_118.go" ] || apt-get install -y -qq golang-github-modern-go-reflect2-dev >/dev/null 2>&1 ||
      { apt-get update -qq && apt-get install -y -qq golang-github-modern-go-reflect2-dev >/dev/null; }
    vr2=$tree/vendor/github.com/modern-go/reflect2
    for f in "$r2"/*.go; do entries+=("$vr2/$(basename "$f")" "$f"); done
    for f in "$vr2"/*.go; do [ -f "$r2/$(basename "$f")" ] || entries+=("$f" ""); done
  fi
  if [ "$plain" = 1 ]; then
    ov=$work/plainhttp-overlay
    mkdir -p "$ov"
    app=$tree/cmd/kube-apiserver/app
    grep -q '^	return aggregatorServer, nil$' "$app/server.go" || { say "server.go is not the expected 1.20 one"; exit 1; }
    sed -e 's/^	return aggregatorServer, nil$/	if err := serveAnchorPlainHTTP(aggregatorServer, kubeAPIServerConfig, stopCh); err != nil {\n		return nil, err\n	}\n	return aggregatorServer, nil/' \
      "$app/server.go" > "$ov/server.go"
    cp "$here/plainhttp/zz_anchor_plainhttp.go" "$ov/zz_anchor_plainhttp.go"
    entries+=("$app/server.go" "$ov/server.go" "$app/zz_anchor_plainhttp.go" "$ov/zz_anchor_plainhttp.go")
  fi
  overlay=()
  if [ ${#entries[@]} -gt 0 ]; then
    json= sep=
    for ((i = 0; i < ${#entries[@]}; i += 2)); do
      json="$json$sep\"${entries[i]}\":\"${entries[i+1]}\""; sep=,
    done
    echo "{\"Replace\":{$json}}" > "$bin.overlay.json"
    overlay=(-overlay "$bin.overlay.json")
  fi
  say "building $bin (10+ minutes on 2 cores, a few GB of memory)"
  version=k8s.io/kubernetes/vendor/k8s.io/component-base/version
  ldflags="-X $version.gitVersion=v1.20.2 -X $version.gitMajor=1 -X $version.gitMinor=20 -X $version.gitTreeState=archive"
  (cd "$tree" && go build "${overlay[@]}" -ldflags "$ldflags" -o "$bin.partial" ./cmd/kube-apiserver)
  mv "$bin.partial" "$bin"
  unset GO111MODULE GOPATH GOFLAGS
fi

# --- etcd ---------------------------------------------------------------------------------
# Debian's package would also start a daemon on port 2379; the unpacked binary starts none.
if ! command -v etcd >/dev/null; then
  PATH=$(cd "$here/../.." && eval "$(cargo xtask env)" && dirname "$ETCD"):$PATH
fi
for tool in openssl curl; do command -v $tool >/dev/null || { say "needs $tool"; exit 1; }; done

# --- ports: random, below the ephemeral range, not in use in any TCP state ------------------
taken=" "
port_in_use() {
  local hex; hex=$(printf ':%04X' "$1")
  awk -v h="$hex" 'FNR>1 && substr($2, length($2)-4) == h { found=1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
pick_port() { # sets REPLY
  local p i
  for i in $(seq 1 500); do
    p=$((20000 + RANDOM % 12000))
    if [[ "$taken" != *" $p "* ]] && ! port_in_use "$p"; then taken="$taken$p "; REPLY=$p; return 0; fi
  done
  say "no free port found"; return 1
}

# --- start ----------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apiserver-anchor.XXXXXX")
if [ "${ETCD_ON_DISK:-0}" = 1 ]; then
  etcd_data=$tmp/etcd-data; mkdir -p "$etcd_data"
else
  etcd_data=$(mktemp -d /dev/shm/apiserver-anchor-etcd.XXXXXX)
fi
apiserver_pid= etcd_pid= cmd_pid=
stop_pid() { # TERM, then KILL after 15 s; only the PID given
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  trap - EXIT INT TERM
  stop_pid "$cmd_pid"
  stop_pid "$apiserver_pid"
  stop_pid "$etcd_pid"
  rm -rf "$etcd_data"
  say "stopped; logs in $tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

pick_port; etcd_port=$REPLY
pick_port; peer_port=$REPLY
etcd --name anchor --data-dir "$etcd_data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "anchor=http://127.0.0.1:$peer_port" --initial-cluster-state new \
  --logger zap --log-outputs stderr > "$tmp/etcd.log" 2>&1 &
etcd_pid=$!
for i in $(seq 1 300); do
  kill -0 "$etcd_pid" 2>/dev/null || { say "etcd exited:"; tail -20 "$tmp/etcd.log" >&2; exit 1; }
  curl -s --max-time 1 "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q '"health":"true"' && break
  [ "$i" = 300 ] && { say "etcd not healthy after 30 s"; tail -20 "$tmp/etcd.log" >&2; exit 1; }
  sleep 0.1
done

openssl genrsa -out "$tmp/sa.key" 2048 2>/dev/null
openssl rsa -in "$tmp/sa.key" -pubout -out "$tmp/sa.pub" 2>/dev/null
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$token" > "$tmp/token"
echo "$token,anchor,anchor-uid,\"system:masters\"" > "$tmp/tokens.csv"
chmod 600 "$tmp/token" "$tmp/tokens.csv" "$tmp/sa.key"

pick_port; secure_port=$REPLY
flags=(
  --etcd-servers="http://127.0.0.1:$etcd_port"
  --bind-address=127.0.0.1 --secure-port="$secure_port" --advertise-address=127.0.0.1
  --cert-dir="$tmp/certs"
  --token-auth-file="$tmp/tokens.csv" --authorization-mode=AlwaysAllow --anonymous-auth=false
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$tmp/sa.pub" --service-account-signing-key-file="$tmp/sa.key"
  --service-cluster-ip-range=10.0.0.0/24
  --endpoint-reconciler-type=none
  --disable-admission-plugins=ServiceAccount
)
url=https://127.0.0.1:$secure_port
if [ "$plain" = 1 ]; then
  pick_port; plain_port=$REPLY
  export KUBE_APISERVER_ANCHOR_PLAIN_HTTP=127.0.0.1:$plain_port
  url=http://127.0.0.1:$plain_port
fi
echo "$bin ${flags[*]}" > "$tmp/apiserver.flags"
"$bin" "${flags[@]}" ${APISERVER_EXTRA_FLAGS:-} > "$tmp/apiserver.log" 2>&1 &
apiserver_pid=$!
unset KUBE_APISERVER_ANCHOR_PLAIN_HTTP

secure=https://127.0.0.1:$secure_port
auth=(-H "Authorization: Bearer $token")
ready=
for i in $(seq 1 600); do # 3 minutes at most
  kill -0 "$apiserver_pid" 2>/dev/null || { say "kube-apiserver exited:"; tail -30 "$tmp/apiserver.log" >&2; exit 1; }
  if [ "$(curl -sk --max-time 2 "${auth[@]}" "$secure/readyz" 2>/dev/null)" = ok ] &&
     [ "$(curl -sk --max-time 2 -o /dev/null -w '%{http_code}' "${auth[@]}" "$url/api/v1/namespaces/default" 2>/dev/null)" = 200 ]; then
    ready=1; break
  fi
  sleep 0.3
done
[ -n "$ready" ] || { say "kube-apiserver not ready after 3 minutes"; tail -30 "$tmp/apiserver.log" >&2; exit 1; }
# a write must work: a binary built without the reflect2 fix drops every configmap POST
probe_cm='{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"apiserver-anchor-probe"},"data":{"a":"b"}}'
code=$(curl -sk --max-time 10 -o /dev/null -w '%{http_code}' "${auth[@]}" -H 'Content-Type: application/json' \
  -X POST -d "$probe_cm" "$url/api/v1/namespaces/default/configmaps" 2>/dev/null || true)
curl -sk --max-time 10 -o /dev/null "${auth[@]}" -X DELETE "$url/api/v1/namespaces/default/configmaps/apiserver-anchor-probe" 2>/dev/null || true
[ "$code" = 201 ] || { say "kube-apiserver cannot create a configmap (HTTP ${code:-none}); a stale $bin? delete it to rebuild"; exit 1; }

lines="APISERVER=$url
APISERVER_TOKEN_FILE=$tmp/token
APISERVER_CACERT=$tmp/certs/apiserver.crt
APISERVER_PID=$apiserver_pid
ETCD=http://127.0.0.1:$etcd_port
ETCD_PID=$etcd_pid
ANCHOR_LOGS=$tmp"
echo "$lines"

if [ "${1:-}" = -- ]; then
  shift
  set +e
  while IFS= read -r line; do export "${line?}"; done <<< "$lines"
  "$@" &
  cmd_pid=$!
  wait "$cmd_pid"
  status=$?
  cmd_pid=
  exit $status
fi
# run until told to stop, or until kube-apiserver ends on its own
wait "$apiserver_pid" || true
say "kube-apiserver ended on its own"; tail -20 "$tmp/apiserver.log" >&2
exit 1
