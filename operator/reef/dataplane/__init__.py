"""WireGuard dataplane: desired state in, a configured interface out.

Pure parts (no pyroute2, no kubernetes) are importable from here directly:
:class:`Key`, the spec/state values, :func:`diff_peers` and the UAPI codec in
:mod:`reef.dataplane.uapi`. The I/O parts live in their own modules so that
importing a value type never opens a netlink socket:

- :mod:`reef.dataplane.select` — ``open_backend(ifname)`` picks kernel or
  userspace and says why;
- :mod:`reef.dataplane.kernel` / :mod:`reef.dataplane.userspace` — the two
  implementations of :class:`Backend`.
"""

from reef.dataplane.base import Backend, BackendKind, DataplaneError
from reef.dataplane.diff import PeerPlan, PeerUpdate, diff_peers
from reef.dataplane.keys import InvalidKeyError, Key
from reef.dataplane.spec import (
    DEFAULT_MTU,
    DeviceSpec,
    DeviceState,
    Endpoint,
    PeerSpec,
    PeerState,
)

__all__ = [
    "DEFAULT_MTU",
    "Backend",
    "BackendKind",
    "DataplaneError",
    "DeviceSpec",
    "DeviceState",
    "Endpoint",
    "InvalidKeyError",
    "Key",
    "PeerPlan",
    "PeerSpec",
    "PeerState",
    "PeerUpdate",
    "diff_peers",
]
