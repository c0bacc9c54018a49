#!/usr/bin/env bash
# Publish a release: the Helm chart to an OCI registry and the image, tagged from the version.
#
#   make release REGISTRY=registry.example.org/reef
#
# pushes   oci://$REGISTRY/charts/reef:<version>      (helm install oci://$REGISTRY/charts/reef)
#          $REGISTRY/reef:<version> and :<major.minor>  (one manifest list per tag)
# The packaged chart's image.repository is $REGISTRY/reef, so it installs the image it was
# released with. The version is the chart's; pyproject.toml, the chart's appVersion and
# reef.__version__ must agree with it (checked first).
#
# Environment:
#   REGISTRY       required: host[:port][/path] of an OCI registry you are logged in to
#                  (`helm registry login` and `podman login`).
#   PLATFORMS      image platforms, comma-separated. Default: this machine's, plus
#                  linux/arm64 / linux/amd64 when binfmt_misc can run the other one
#                  (qemu-user-static); without emulation only the native image is built,
#                  since the Dockerfile's RUN steps must execute for each platform.
#   BASE           the Dockerfile's BASE build argument (default there: debian:bookworm-slim).
#   PIP_CA         CA bundle handed to pip as the build secret `pipca` (TLS-intercepting
#                  proxies); default: the system bundle when it exists.
#   PLAIN_HTTP=1   the registry speaks plain HTTP (a local test registry).
#   PODMAN_BUILD_OPTS  extra `podman build` options, e.g. "--isolation chroot".
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "release: $*" >&2
  exit 1
}

[[ -n "${REGISTRY:-}" ]] || die "set REGISTRY (e.g. make release REGISTRY=registry.example.org/reef)"
REGISTRY="${REGISTRY%/}"
HELM="${HELM:-$(command -v helm || echo "${REEF_CACHE:-.cache}/bin/helm")}"
[[ -x "$HELM" ]] || die "helm not found (make setup fetches one into \$REEF_CACHE/bin)"
command -v podman >/dev/null || die "podman not found (apt-get install podman buildah)"

field() { sed -n "s/^$1: *\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" charts/reef/Chart.yaml; }
VERSION="$(field version)"
APP_VERSION="$(field appVersion)"
PY_VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)"
PKG_VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' operator/reef/__init__.py)"
for other in "$APP_VERSION" "$PY_VERSION" "$PKG_VERSION"; do
  [[ "$other" == "$VERSION" ]] || die "versions disagree: chart $VERSION, appVersion $APP_VERSION, pyproject $PY_VERSION, reef.__version__ $PKG_VERSION"
done
MINOR="${VERSION%.*}"
TAGS=("$VERSION" "$MINOR")

native="linux/$(podman info --format '{{.Host.Arch}}')"
if [[ -z "${PLATFORMS:-}" ]]; then
  PLATFORMS="$native"
  for other in linux/amd64 linux/arm64; do
    emulator=/proc/sys/fs/binfmt_misc/qemu-$([[ $other == linux/arm64 ]] && echo aarch64 || echo x86_64)
    if [[ "$other" != "$native" && -e "$emulator" ]]; then
      PLATFORMS="$PLATFORMS,$other"
    elif [[ "$other" != "$native" ]]; then
      echo "release: building $native only: no binfmt_misc emulator for $other ($emulator)"
    fi
  done
fi

plain=()
tls=()
if [[ "${PLAIN_HTTP:-}" == 1 ]]; then
  plain=(--plain-http)
  tls=(--tls-verify=false)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- the image: one manifest list holding every platform, pushed under each tag ---
list="localhost/reef-release:$VERSION"
podman manifest exists "$list" 2>/dev/null && podman manifest rm "$list" >/dev/null
build=(podman build ${PODMAN_BUILD_OPTS:-} --platform "$PLATFORMS" --manifest "$list"
  --build-arg "VERSION=$VERSION")
[[ -n "${BASE:-}" ]] && build+=(--build-arg "BASE=$BASE")
PIP_CA="${PIP_CA:-/etc/ssl/certs/ca-certificates.crt}"
[[ -s "$PIP_CA" ]] && build+=(--secret "id=pipca,src=$PIP_CA")
echo "== release: image $VERSION for $PLATFORMS"
"${build[@]}" -f Dockerfile . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; die "podman build failed"; }
for tag in "${TAGS[@]}"; do
  podman manifest push --all "${tls[@]}" "$list" "docker://$REGISTRY/reef:$tag"
  echo "pushed image $REGISTRY/reef:$tag"
done

# --- the chart, pointing at that image ---
cp -r charts/reef "$work/reef"
sed -i "s|^  repository: reef$|  repository: $REGISTRY/reef|" "$work/reef/values.yaml"
grep -q "^  repository: $REGISTRY/reef$" "$work/reef/values.yaml" \
  || die "could not point the chart's image.repository at $REGISTRY/reef"
"$HELM" lint --strict "$work/reef" >/dev/null
"$HELM" package "$work/reef" --version "$VERSION" --app-version "$VERSION" -d "$work" >/dev/null
"$HELM" push "$work/reef-$VERSION.tgz" "oci://$REGISTRY/charts" "${plain[@]}"
echo "pushed chart oci://$REGISTRY/charts/reef:$VERSION"
