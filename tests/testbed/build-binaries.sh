#!/usr/bin/env bash
# Build the control-plane binaries of the test bed from the Go module proxy.
#
# No package registry ships kube-apiserver, so we build it the way envtest's
# maintainers do: a throw-away wrapper module that requires k8s.io/kubernetes
# and pins every staging module (the tag's own go.mod points them at
# ./staging, which `go install` refuses). etcd has its main package at the
# module root, so a wrapper that merely requires it is enough.
#
# Output: $REEF_CACHE/bin/{kube-apiserver,kube-controller-manager,etcd} and, for the
# real-node bed (tests/testbed/kubelet_nodes.py), {kubelet,kube-scheduler,kube-proxy}.
# A binary that already exists with the right version stamp is not rebuilt.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# The pins live in versions.env (the tests read them too); the environment
# may override them for a one-off build.
pinned() { sed -n "s/^$1=//p" "$here/versions.env"; }
K8S_VERSION="${K8S_VERSION:-$(pinned K8S_VERSION)}"
ETCD_VERSION="${ETCD_VERSION:-$(pinned ETCD_VERSION)}"
REEF_CACHE="${REEF_CACHE:-$here/../../.cache}"
bin="$REEF_CACHE/bin"
mkdir -p "$bin"

minor="${K8S_VERSION#v1.}"
minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"

build_kubernetes() {
  local stamp="$bin/.kubernetes-$K8S_VERSION"
  local commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
  local missing=0 command
  for command in "${commands[@]}"; do
    [[ -x "$bin/$command" ]] || missing=1
  done
  if [[ -f "$stamp" && $missing == 0 ]]; then
    echo "kubernetes $K8S_VERSION: cached"
    return
  fi
  local work="$REEF_CACHE/build/kubernetes-$K8S_VERSION"
  mkdir -p "$work"
  local modfile
  modfile="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module reef.dev/testbed/kubernetes"
    echo
    grep -E '^go [0-9]' "$modfile"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -E '=> \./staging/' "$modfile" | awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >"$work/go.mod"
  cat >"$work/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
  local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
  (
    cd "$work"
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    for command in "${commands[@]}"; do
      GOFLAGS=-mod=mod go build -tags tools -ldflags "$ldflags" -o "$bin/$command" "k8s.io/kubernetes/cmd/$command"
    done
  )
  touch "$stamp"
}

build_etcd() {
  local stamp="$bin/.etcd-$ETCD_VERSION"
  if [[ -f "$stamp" && -x "$bin/etcd" ]]; then
    echo "etcd $ETCD_VERSION: cached"
    return
  fi
  local work="$REEF_CACHE/build/etcd-$ETCD_VERSION"
  mkdir -p "$work"
  cat >"$work/go.mod" <<EOF
module reef.dev/testbed/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$work/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  (
    cd "$work"
    GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true
    GOFLAGS=-mod=mod go build -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
  )
  touch "$stamp"
}

case "${1:-all}" in
  etcd) build_etcd ;;
  kubernetes) build_kubernetes ;;
  all) build_etcd; build_kubernetes ;;
  *) echo "usage: $0 [all|etcd|kubernetes]" >&2; exit 2 ;;
esac
