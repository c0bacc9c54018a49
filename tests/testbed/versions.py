"""The pinned versions of the test bed's binaries, read from `versions.env`.

`versions.env` is the one place the versions live: the shell scripts that
build and fetch the binaries read it too, so the tests can check that the API
server they talk to is the release that was pinned.
"""

from __future__ import annotations

from pathlib import Path

VERSIONS_FILE = Path(__file__).with_name("versions.env")


def _read_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: expected KEY=VALUE, got {raw!r}")
        pins[key.strip()] = value.strip()
    return pins


_PINS = _read_pins(VERSIONS_FILE)

KUBERNETES_VERSION: str = _PINS["K8S_VERSION"]
GO_TOOLCHAIN: str = _PINS["GO_TOOLCHAIN"]
"""kube-apiserver and kube-controller-manager release, e.g. ``v1.36.3``."""

ETCD_VERSION: str = _PINS["ETCD_VERSION"]
"""etcd release the bed stores its state in."""

KUBECTL_LAYER_VERSION: str = _PINS["KUBECTL_LAYER_VERSION"]
"""Version of the npm package that carries the kubectl and helm binaries."""
