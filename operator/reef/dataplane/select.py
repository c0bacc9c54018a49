"""Choosing a backend, and saying why (the reason goes into MeshAgent status).

The kernel backend is used when the ``wireguard`` generic-netlink family
resolves. Asking the kernel for the family (CTRL_CMD_GETFAMILY) also makes it
autoload the module when it is installed but not yet loaded, so the probe
answers "can this kernel do WireGuard", not just "is it loaded now". It runs
in the caller's network namespace, like everything else here: the agent
process lives in the namespace it configures.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from typing import Any

from reef.dataplane.base import Backend, BackendKind, DataplaneError
from reef.dataplane.kernel import KernelBackend
from reef.dataplane.netlink import GenericNetlinkSocket, NetlinkError
from reef.dataplane.userspace import UserspaceBackend

WG_GENL_FAMILY = "wireguard"


@dataclass(frozen=True, slots=True)
class BackendChoice:
    """Which backend, and a sentence a human reads in ``kubectl describe``."""

    kind: BackendKind
    reason: str


def kernel_wireguard_available() -> tuple[bool, str]:
    """Whether the ``wireguard`` generic-netlink family resolves, and detail."""
    sock = GenericNetlinkSocket()
    try:
        sock.bind(WG_GENL_FAMILY, None)
    except NetlinkError as exc:
        return False, (
            f"generic-netlink family {WG_GENL_FAMILY!r} not found"
            f" ({errno.errorcode.get(exc.code, exc.code)}): the kernel has no wireguard module"
        )
    finally:
        sock.close()
    return True, f"generic-netlink family {WG_GENL_FAMILY!r} is available"


def select_backend(
    override: BackendKind | None = None, *, wireguard_go: str = "wireguard-go"
) -> BackendChoice:
    """Pick kernel when possible, userspace otherwise; ``override`` forces one.

    Raises DataplaneError when the forced or the only possible backend cannot run.
    """
    has_kernel, kernel_detail = kernel_wireguard_available()
    go_path = shutil.which(wireguard_go)
    if override == "kernel":
        if not has_kernel:
            raise DataplaneError(
                f"backend 'kernel' was requested but {kernel_detail}; load the wireguard"
                " module (modprobe wireguard) or select the userspace backend"
            )
        return BackendChoice("kernel", f"requested by configuration; {kernel_detail}")
    if override == "userspace":
        if go_path is None:
            raise DataplaneError(
                f"backend 'userspace' was requested but {wireguard_go!r} is not on PATH;"
                " install wireguard-go"
            )
        return BackendChoice("userspace", f"requested by configuration; using {go_path}")
    if has_kernel:
        return BackendChoice("kernel", f"kernel WireGuard: {kernel_detail}")
    if go_path is None:
        raise DataplaneError(
            f"no WireGuard implementation: {kernel_detail} and {wireguard_go!r} is not on"
            " PATH; load the wireguard kernel module or install wireguard-go"
        )
    return BackendChoice("userspace", f"{kernel_detail}; falling back to wireguard-go at {go_path}")


def open_backend(
    ifname: str, override: BackendKind | None = None, **userspace_options: Any
) -> tuple[Backend, BackendChoice]:
    """Select a backend and build it for ``ifname`` (no interface is touched yet).

    ``userspace_options`` go to :class:`UserspaceBackend` (e.g. ``wireguard_go``,
    ``start_timeout``) and are ignored for the kernel backend.
    """
    wireguard_go = userspace_options.get("wireguard_go", "wireguard-go")
    choice = select_backend(override, wireguard_go=wireguard_go)
    if choice.kind == "kernel":
        return KernelBackend(ifname), choice
    return UserspaceBackend(ifname, **userspace_options), choice
