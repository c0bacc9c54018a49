"""Build and run reef's container image with podman, without a Docker engine or registry.

There is no image registry here, so the base image is made locally once:
``debootstrap --variant=minbase bookworm`` from the Debian mirror apt already
uses on this machine, imported with ``podman import``. The project's own
Dockerfile is then built on top of it with ``--build-arg BASE=...``; a user
building anywhere else gets the ``debian:bookworm-slim`` default instead.

pip inside the build reaches PyPI through a TLS-intercepting proxy: the host's
CA bundle goes in as the build secret ``pipca`` (the Dockerfile uses it only
when present). Containers run with runc and cgroupfs (crun fails on this
machine's hybrid cgroups) and explicit ulimits.

Also a command::

    python -m tests.testbed.image build     # prints the image name once built
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.binaries import REPO_ROOT

BASE_IMAGE = "localhost/reef-base:bookworm"
IMAGE = "localhost/reef:test"
SUITE = "bookworm"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
REQUIRED_PROGRAMS = ("podman", "buildah", "debootstrap", "runc")
RUNC = "/usr/sbin/runc"

RUN_PREFIX = (
    "podman",
    "--cgroup-manager=cgroupfs",
    "run",
    "--rm",
    "--runtime",
    RUNC,
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
)
"""``podman run`` as it works on this machine; append options, the image and a command."""


class ImageBuildError(RuntimeError):
    """A step of making the image failed; the message carries the tool's output."""


@dataclass(frozen=True)
class BuildTimings:
    base_seconds: float
    """Time to make the base image (0-ish when it was cached)."""
    image_seconds: float
    """Time of the ``podman build`` of the Dockerfile."""


def missing_programs() -> list[str]:
    """The programs an image build needs that are not installed (empty: all there)."""
    return [
        name
        for name in REQUIRED_PROGRAMS
        if shutil.which(name) is None and not (name == "runc" and Path(RUNC).exists())
    ]


def debian_mirror(sources: Sequence[Path] = APT_SOURCES) -> str:
    """The Debian archive URL apt uses here (deb822 or one-line format), for debootstrap.

    Only the main archive qualifies: a ``-security`` suite lives elsewhere.
    """
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.suffix in {".list", ".sources"}))
        elif source.is_file():
            files.append(source)
    for path in files:
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
        for line in text.splitlines():
            match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
            if match and match.group(2) == SUITE:
                return match.group(1).rstrip("/")
    return FALLBACK_MIRROR


def _run(argv: Sequence[str], *, what: str, timeout: float, **kwargs: object) -> str:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )
    if result.returncode != 0:
        raise ImageBuildError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"stdout (tail):\n{result.stdout[-4000:]}\nstderr (tail):\n{result.stderr[-4000:]}"
        )
    return str(result.stdout)


def image_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["podman", "image", "exists", name], capture_output=True, check=False
        ).returncode
        == 0
    )


def ensure_base_image(name: str = BASE_IMAGE) -> float:
    """Make the Debian base image unless it exists; the seconds it took."""
    if image_exists(name):
        return 0.0
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="reef-base-"))
    try:
        _run(
            ["debootstrap", "--variant=minbase", SUITE, str(root), debian_mirror()],
            what="debootstrap of the base image",
            timeout=1200,
        )
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        try:
            _run(
                ["podman", "import", "-", name],
                what="podman import of the base image",
                timeout=600,
                stdin=tar.stdout,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait(timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return time.monotonic() - started


def build_image(
    tag: str = IMAGE, *, base: str = BASE_IMAGE, context: Path = REPO_ROOT
) -> BuildTimings:
    """Build the project's Dockerfile into `tag` on top of the local base image."""
    base_seconds = ensure_base_image(base)
    started = time.monotonic()
    argv = [
        "podman",
        "build",
        "--isolation",
        "chroot",
        "--build-arg",
        f"BASE={base}",
        "-t",
        tag,
        "-f",
        str(context / "Dockerfile"),
    ]
    if HOST_CA_BUNDLE.is_file():
        argv += ["--secret", f"id=pipca,src={HOST_CA_BUNDLE}"]
    _run([*argv, str(context)], what="podman build of the reef image", timeout=1800)
    return BuildTimings(base_seconds, time.monotonic() - started)


def run_in_image(
    *command: str,
    image: str = IMAGE,
    options: Sequence[str] = (),
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``podman run --rm [options] image command...``; the caller checks the result."""
    return subprocess.run(
        [*RUN_PREFIX, *options, image, *command],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=["build", "mirror"])
    arguments = parser.parse_args(argv)
    if arguments.action == "mirror":
        print(debian_mirror())
        return 0
    timings = build_image()
    print(IMAGE)
    print(f"base {timings.base_seconds:.1f}s, image {timings.image_seconds:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
