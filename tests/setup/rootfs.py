"""A pristine Debian 12 root filesystem, to run scripts/setup.sh as a newcomer would.

``debootstrap --variant=minbase bookworm`` makes it once (about a minute); the result is
cached as a tarball under $REEF_CACHE/rootfs/ and unpacked fresh for every test. Nothing
of the host's Python, Go or Node is visible inside: the checkout is copied in (only the
files git tracks), and commands run under ``chroot`` in a private mount namespace of their
own, so the /proc mounted for them disappears with the process — nothing to unmount, and
no mount of the host can leak into the tree that the test deletes afterwards.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.testbed.binaries import CACHE_DIR, REPO_ROOT

MIRROR = "http://deb.debian.org/debian"
TARBALL = CACHE_DIR / "rootfs" / "bookworm-minbase.tar"
#: Where the checkout sits inside the root filesystem (world-readable, unlike /root).
CHECKOUT = "/opt/reef"
#: The host's CA bundle, copied in: PyPI and the Go module proxy are reached through a
#: TLS-intercepting proxy here. Installing Debian's ca-certificates inside rewrites the
#: usual bundle, so the copy lives beside it and SSL_CERT_FILE (Go), PIP_CERT and
#: NODE_EXTRA_CA_CERTS (npm) name it.
HOST_CA = "/usr/local/share/reef-host-ca.crt"
HOST_CA_SOURCE = Path("/etc/ssl/certs/ca-certificates.crt")
#: The host's local wheel directory (pip config find-links), bound in read-only when present.
WHEELS = Path("/opt/wheels")


def cached_tarball() -> Path:
    """The minbase tarball, made on first use (one builder at a time, under a file lock)."""
    TARBALL.parent.mkdir(parents=True, exist_ok=True)
    with (TARBALL.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not TARBALL.exists():
            work = TARBALL.parent / "bookworm.partial"
            shutil.rmtree(work, ignore_errors=True)
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(work), MIRROR],
                check=True,
                capture_output=True,
            )
            partial = TARBALL.with_suffix(".tar.partial")
            subprocess.run(["tar", "-C", str(work), "-cf", str(partial), "."], check=True)
            partial.rename(TARBALL)
            shutil.rmtree(work)
    return TARBALL


@dataclass
class Run:
    returncode: int
    output: str
    seconds: float


@dataclass
class FreshDebian:
    """One unpacked root filesystem with the checkout in it."""

    root: Path

    @classmethod
    def unpack(cls, directory: Path) -> FreshDebian:
        root = directory / "rootfs"
        root.mkdir()
        with tarfile.open(cached_tarball()) as tar:
            tar.extractall(root, filter="fully_trusted")
        tracked = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "ls-files", "-z"],
            check=True,
            capture_output=True,
        ).stdout.split(b"\0")
        checkout = root / CHECKOUT.lstrip("/")
        for name in filter(None, tracked):
            relative = name.decode()
            source = REPO_ROOT / relative
            if source.is_file():
                target = checkout / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        shutil.copy(HOST_CA_SOURCE, root / HOST_CA.lstrip("/"))
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        (root / WHEELS.relative_to("/")).mkdir(parents=True, exist_ok=True)
        return cls(root)

    def run(self, command: str, *, user: int = 0, timeout: float = 1200) -> Run:
        """``bash -c command`` in the checkout, as ``user``, with a clean environment."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root" if user == 0 else "/tmp",
            "LANG": "C.UTF-8",
            "SSL_CERT_FILE": HOST_CA,
            "PIP_CERT": HOST_CA,
            "NODE_EXTRA_CA_CERTS": HOST_CA,
            "REEF_CACHE": f"{CHECKOUT}/.cache",
        }
        if any(WHEELS.glob("*.whl")):
            env["PIP_FIND_LINKS"] = str(WHEELS)
        wheels = f"mount --bind -o ro {WHEELS} {self.root}{WHEELS}; " if WHEELS.is_dir() else ""
        # The mounts come first, then exec: the command's words are passed as "$@", so
        # nothing of it is ever re-parsed by this outer shell.
        prepare = f'mount -t proc proc {self.root}/proc; {wheels}exec "$@"'
        argv = [
            "unshare", "--mount", "--propagation", "private", "--fork",
            "sh", "-c", prepare, "sh",
            "chroot", f"--userspec={user}:{user}", str(self.root),
            "/usr/bin/env", "-i", *(f"{key}={value}" for key, value in env.items()),
            "/bin/bash", "-c", f"cd {CHECKOUT} && {command}",
        ]  # fmt: skip
        started = time.monotonic()
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(result.returncode, result.stdout, time.monotonic() - started)

    def remove(self) -> None:
        # The mounts lived only in the finished process's namespace; nothing is mounted here.
        assert not any(
            line.split()[4].startswith(str(self.root))
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
        ), f"something is still mounted under {self.root}"
        shutil.rmtree(self.root)


def available() -> str | None:
    """Why the fresh-Debian test cannot run here (for pytest.skip), or None."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot)"
    for tool in ("debootstrap", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} not found (scripts/setup.sh installs debootstrap)"
    return None
