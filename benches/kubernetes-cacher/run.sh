#!/usr/bin/env bash
# The real Kubernetes watch cache (k8s.io/apiserver, Kubernetes 1.20.2 as Debian
# ships its source) measured on this machine with anchor_bench_test.go, our own benchmark
# file that drives the package's Cacher through its own test helpers (dummy storage, a
# budget that never terminates). Prints Go benchmark lines; deliveries/s is the figure.
# Takes about 3 minutes cold. Sources come from Debian's archive only.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${K8S_ANCHOR_DIR:-${TMPDIR:-/tmp}/k8s-anchor}
tree=$work/gopath/src/k8s.io/kubernetes
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
  # the one upstream benchmark in this package panics as shipped; keep it out of the run
fi
cp "$here/anchor_bench_test.go" "$tree/staging/src/k8s.io/apiserver/pkg/storage/cacher/zz_anchor_bench_test.go"
cd "$tree"
export GO111MODULE=off GOPATH=$work/gopath GOFLAGS=
go test -count="${COUNT:-3}" -run XXX -bench 'Anchor' -benchmem ./vendor/k8s.io/apiserver/pkg/storage/cacher/
