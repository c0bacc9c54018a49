"""Container images for the real-node bed, without a registry.

Every kubelet node runs its own containerd, which can pull from nowhere: images are
imported into each node's store from OCI archives.

- The **sandbox ("pause") image** every pod needs is made here from scratch: a static C
  program that sleeps until SIGTERM/SIGINT (what registry.k8s.io/pause does), in a
  one-layer OCI image written by hand.
- The **reef image** is the one built with podman from the project's Dockerfile
  (tests/testbed/image.py), saved as an OCI layout.

containerd names an imported image after the ``io.containerd.image.name`` annotation of
the archive's index; both archives carry it, so the chart's ``image.repository:tag``
(with ``pullPolicy: Never``) finds the image by that name.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tests.testbed.binaries import CACHE_DIR

PAUSE_IMAGE = "localhost/reef-pause:bed"
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

_PAUSE_SOURCE = r"""
#include <signal.h>
#include <unistd.h>

static void stop(int signal_number) { (void)signal_number; _exit(0); }
static void reap(int signal_number) { (void)signal_number; }

int main(void) {
    signal(SIGTERM, stop);
    signal(SIGINT, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"""


class ImageImportError(RuntimeError):
    """Making or importing an image archive failed; the message has the tool's output."""


def _run(argv: list[str], what: str, timeout: float = 600) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ImageImportError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{result.stderr[-3000:]}"
        )


def _blob(directory: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (directory / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _pause_binary(work: Path) -> bytes:
    source = work / "pause.c"
    source.write_text(_PAUSE_SOURCE)
    binary = work / "pause"
    _run(["gcc", "-static", "-Os", "-s", "-o", str(binary), str(source)], "gcc of pause.c")
    return binary.read_bytes()


def _layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_pause_layout(directory: Path, name: str = PAUSE_IMAGE) -> None:
    """An OCI image layout holding the pause image, named ``name``."""
    directory.mkdir(parents=True, exist_ok=True)
    layer = _layer_tar({"pause": _pause_binary(directory)})
    (directory / "pause.c").unlink()
    (directory / "pause").unlink()
    layer_descriptor = _blob(directory, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [layer_descriptor["digest"]]},
    }
    config_descriptor = _blob(directory, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_descriptor},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer_descriptor}],
    }
    manifest_descriptor = _blob(directory, json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_descriptor,
                "annotations": {IMAGE_NAME_ANNOTATION: name, REF_NAME_ANNOTATION: name},
            }
        ],
    }
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))


def save_podman_layout(image: str, directory: Path) -> None:
    """``podman save`` of ``image`` as an OCI layout, its index annotated with the name."""
    if directory.exists():
        shutil.rmtree(directory)
    _run(["podman", "save", "--format", "oci-dir", "-o", str(directory), image], "podman save")
    index_path = directory / "index.json"
    index = json.loads(index_path.read_text())
    for manifest in index["manifests"]:
        manifest.setdefault("annotations", {})[IMAGE_NAME_ANNOTATION] = image
    index_path.write_text(json.dumps(index))


def archive(layout: Path, dest: Path) -> Path:
    """The OCI layout ``layout`` as an uncompressed tar that ``ctr images import`` takes."""
    with tarfile.open(dest, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    return dest


def pause_archive(cache: Path = CACHE_DIR) -> Path:
    """The pause image archive, made once and cached."""
    dest = cache / "images" / "pause.oci.tar"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as work:
        layout = Path(work) / "layout"
        write_pause_layout(layout)
        archive(layout, Path(work) / "pause.tar").replace(dest)
    return dest


def image_archive(image: str, dest: Path) -> Path:
    """``image`` from podman's store as an importable archive at ``dest``."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as work:
        layout = Path(work) / "layout"
        save_podman_layout(image, layout)
        return archive(layout, dest)


def import_archive(containerd_socket: Path, archive_path: Path) -> None:
    """Import an archive into one node's containerd, in the namespace the kubelet uses."""
    _run(
        [
            "ctr",
            "--address",
            str(containerd_socket),
            "-n",
            "k8s.io",
            "images",
            "import",
            str(archive_path),
        ],
        f"ctr import of {archive_path.name}",
    )
