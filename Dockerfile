# reef: one image, two entry points — `reef operator` (Deployment) and `reef agent` (DaemonSet).
#
#   docker build -t reef:0.1.0 .
#
# BASE lets a machine without a registry build on a locally made Debian bookworm
# image (tests/testbed/image.py does: --build-arg BASE=localhost/reef-base:bookworm).
# Behind a TLS-intercepting proxy, hand pip the proxy's CA as a build secret:
#   docker build --secret id=pipca,src=/etc/ssl/certs/ca-certificates.crt .
# Without the secret, pip uses its own CA bundle.
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

# --- final: python3, the virtualenv, WireGuard tools; no compilers, no pip cache ---
FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="reef" \
      org.opencontainers.image.description="Permanent WireGuard mesh addresses for Kubernetes nodes" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 wireguard-go wireguard-tools iproute2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 reef \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin reef
COPY --from=builder /opt/reef /opt/reef
# Bytecode was compiled at install time; a read-only root filesystem must not be written.
ENV PATH=/opt/reef/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The operator's user; the agent's DaemonSet runs it as root (it needs NET_ADMIN).
USER 65532:65532
ENTRYPOINT ["reef"]
CMD ["--help"]
