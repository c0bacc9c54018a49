"""Run pytest inside a throw-away virtme-ng VM with a stock Debian kernel.

Why: the kernel backend needs the wireguard module, which the host kernel
lacks. virtme-ng boots a kernel with the host's filesystem mounted read-only
(9p), so the guest runs the very same checkout and Python environment; only
the kernel differs. /dev/kvm here cannot run a stock kernel, so qemu emulates
(TCG): ~15 s to boot and slow Python, hence ALL kernel tests in ONE boot.

The guest's console is not a reliable channel for output, so pytest writes
its log and exit code into a results directory shared read-write (--rwdir).

Prerequisites, checked by :func:`vm_unavailable_reason` (tests skip with it):
``apt-get install -y qemu-system-x86 kmod``, ``pip install virtme-ng``, and
``tests/testbed/fetch-kernel.sh`` (downloads the kernel into .cache/kernel).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KERNEL_CACHE = REPO / ".cache" / "kernel"
FETCH_SCRIPT = Path(__file__).with_name("fetch-kernel.sh")


@dataclass(frozen=True)
class KernelImage:
    vmlinuz: Path
    busybox: Path


@dataclass(frozen=True)
class VmResult:
    """Outcome of one boot: pytest's exit code (None if it never reported),
    its output, the VM console log and the wall-clock seconds of the boot."""

    returncode: int | None
    output: str
    console: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def cached_kernel() -> KernelImage | None:
    """The newest kernel fetch-kernel.sh extracted, if any (no download here)."""
    images = sorted(KERNEL_CACHE.glob("linux-image-*/boot/vmlinuz-*"))
    busybox = KERNEL_CACHE / "busybox-static" / "bin" / "busybox"
    if not images or not busybox.exists():
        return None
    return KernelImage(images[-1], busybox)


def _tool_path() -> str:
    # vng execs virtme-run by name; pip may have put it outside PATH.
    return os.pathsep.join([os.environ.get("PATH", ""), sysconfig.get_path("scripts")])


def vm_unavailable_reason() -> str | None:
    """Why a VM cannot be booted here (a sentence for pytest.skip), or None."""
    path = _tool_path()
    if os.geteuid() != 0:
        return "the test-bed VM needs root (virtme-ng shares / with the guest)"
    for tool, install in [
        ("qemu-system-x86_64", "apt-get install -y qemu-system-x86"),
        ("depmod", "apt-get install -y kmod"),
        ("vng", "pip install virtme-ng"),
        ("virtme-run", "pip install virtme-ng"),
    ]:
        if shutil.which(tool, path=path) is None:
            return f"{tool} not found; install it with `{install}`"
    if cached_kernel() is None:
        return f"no kernel in {KERNEL_CACHE}; run {FETCH_SCRIPT.relative_to(REPO)}"
    return None


def run_pytest_in_vm(
    pytest_args: list[str],
    *,
    timeout: float = 900.0,
    memory: str = "1G",
    cpus: int = 2,
) -> VmResult:
    """Boot once, run ``python -m pytest <pytest_args>`` from the repo root, power off.

    Raises RuntimeError with :func:`vm_unavailable_reason` if the VM cannot run.
    """
    reason = vm_unavailable_reason()
    kernel = cached_kernel()
    if reason is not None or kernel is None:
        raise RuntimeError(reason or "no kernel")
    with tempfile.TemporaryDirectory(prefix="reef-vm-") as results_dir:
        results = Path(results_dir)
        pytest_cmd = shlex.join(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *pytest_args]
        )
        guest_script = (
            # The checkout is read-only in the guest: caches go to the results dir.
            f"export PYTHONDONTWRITEBYTECODE=1 REEF_IN_VM=1"
            f" HYPOTHESIS_STORAGE_DIRECTORY={results}/hypothesis; cd {shlex.quote(str(REPO))};"
            f" {pytest_cmd} > {results}/pytest.log 2>&1; echo $? > {results}/rc"
        )
        argv = [
            "vng", "-r", str(kernel.vmlinuz), "--busybox", str(kernel.busybox),
            "--disable-kvm", "--force-9p", "--user", "root",
            "-m", memory, "-p", str(cpus), "--rwdir", str(results),
            "--exec", guest_script,
        ]  # fmt: skip
        started = time.monotonic()
        # Own session: on timeout the whole vng -> qemu tree we started is killed.
        process = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**os.environ, "PATH": _tool_path()},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            console, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            console, _ = process.communicate()
        seconds = time.monotonic() - started
        rc_file = results / "rc"
        log_file = results / "pytest.log"
        return VmResult(
            returncode=int(rc_file.read_text()) if rc_file.exists() else None,
            output=log_file.read_text(errors="replace") if log_file.exists() else "",
            console=console.decode(errors="replace"),
            seconds=seconds,
        )


def main() -> int:
    """``python tests/testbed/vm.py [pytest args]``: default runs every kernel test."""
    args = sys.argv[1:] or ["tests/dataplane", "-m", "kernel", "-v"]
    result = run_pytest_in_vm(args)
    print(result.output or result.console)
    print(f"VM run: exit {result.returncode} in {result.seconds:.0f} s")
    return 1 if result.returncode is None else result.returncode


if __name__ == "__main__":
    sys.exit(main())
