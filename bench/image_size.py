"""Benchmark: the size of reef's image, built from the Dockerfile with podman.

Builds the Dockerfile (on the local Debian base, as the tests do) and reports the OCI
archive the real-nodes bed imports into containerd (tests.testbed.oci.image_archive),
that archive gzip-compressed (about what a registry stores and a node pulls), and the
size podman reports. ``--image`` measures an existing image instead. Run::

    python -m bench.image_size
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.agent_common import print_command
from tests.testbed.image import build_image
from tests.testbed.oci import image_archive

TAG = "localhost/reef:bench"


def gzipped_size(path: Path) -> int:
    compressed = path.with_suffix(".tar.gz")
    with path.open("rb") as source, gzip.open(compressed, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    return compressed.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="measure this image instead of building one")
    arguments = parser.parse_args()
    image = arguments.image or TAG
    if arguments.image is None:
        timings = build_image(TAG)
        print(f"built {TAG} in {timings.image_seconds:.0f} s")
    podman_size = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="reef-image-size-") as tmp:
        archive = image_archive(image, Path(tmp) / "image.tar")
        size = archive.stat().st_size
        compressed = gzipped_size(archive)
    print_command("bench.image_size")
    print(f"image: {image}")
    print(f"OCI archive: {size / 1e6:.1f} MB ({size / 2**20:.1f} MiB)")
    print(f"OCI archive, gzip -6: {compressed / 1e6:.1f} MB")
    print(f"podman image size: {int(podman_size) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
