# reef: one image, two entry points — `reef operator` (Deployment) and `reef agent` (DaemonSet).
#
#   docker build -t reef:0.1.0 .
#
# BASE lets a machine without a registry build on a locally made Debian bookworm
# image (tests/testbed/image.py does: --build-arg BASE=localhost/reef-base:bookworm).
# Behind a TLS-intercepting proxy, hand pip the proxy's CA as a build secret:
#   docker build --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt .
# Without the secret, pip uses its own CA bundle.
#
# Three stages keep it small: `builder` makes the virtualenv (pip, wheels, caches stay
# there), `rootfs` installs the runtime packages and prunes what nothing at run time
# reads, and the final image is that root filesystem copied onto `scratch` as one layer,
# so nothing deleted in `rootfs` (nor the base image's apt caches) is carried along.
ARG BASE=debian:bookworm-slim

# --- builder: the reef wheel and a virtualenv holding it and its dependencies ---
FROM ${BASE} AS builder
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Dependencies change less often than the code: an image layer of their own.
COPY pyproject.toml README.md /src/
RUN --mount=type=secret,id=pipca,required=false \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
 && python3 -m venv /opt/reef \
 && python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
 && /opt/reef/bin/pip install -r /tmp/requirements.txt
COPY operator /src/operator
RUN --mount=type=secret,id=pipca,required=false \
    if [ -s /run/secrets/pipca ]; then export PIP_CERT=/run/secrets/pipca; fi \
 && /opt/reef/bin/pip wheel --no-deps --wheel-dir /wheels /src \
 && /opt/reef/bin/pip install --no-deps /wheels/reef-*.whl
# Only what runs: no installer in the runtime venv, and not the kubernetes client's
# asyncio twin (kubernetes.aio, over half of that package; reef uses the threaded client).
RUN site=$(/opt/reef/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && rm -rf "$site"/pip "$site"/pip-* "$site"/setuptools "$site"/setuptools-* \
      "$site"/pkg_resources "$site"/_distutils_hack "$site"/distutils-precedence.pth \
      "$site"/kubernetes/aio /opt/reef/bin/pip* /opt/reef/bin/Activate.ps1

# --- rootfs: python3, WireGuard tools, the virtualenv; no compilers, caches or docs ---
FROM ${BASE} AS rootfs
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 wireguard-go wireguard-tools iproute2 \
 && groupadd --system --gid 65532 reef \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin reef \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/* /var/log/* \
      /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
      /usr/share/lintian /usr/share/bash-completion \
      /usr/lib/python3.11/ensurepip /usr/lib/python3.11/idlelib \
      /usr/lib/python3.11/lib2to3 /usr/lib/python3.11/pydoc_data \
      /usr/lib/python3.11/tkinter /usr/lib/python3.11/turtledemo
COPY --from=builder /opt/reef /opt/reef

# --- final: that root filesystem as a single layer ---
FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="reef" \
      org.opencontainers.image.description="Permanent WireGuard mesh addresses for Kubernetes nodes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=rootfs / /
# Bytecode was compiled at install time; a read-only root filesystem must not be written.
ENV PATH=/opt/reef/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The operator's user; the agent's DaemonSet runs it as root (it needs NET_ADMIN).
USER 65532:65532
ENTRYPOINT ["reef"]
CMD ["--help"]
