"""The early step's standard-library netlink calls agree with pyroute2's answers."""

from __future__ import annotations

import pytest

from reef.dataplane import plain_netlink
from reef.dataplane.select import kernel_wireguard_available


def test_the_wireguard_family_probe_answers_as_the_backend_selection_does() -> None:
    # Both ask CTRL_CMD_GETFAMILY; on this machine (no module) both say no, in the VM yes.
    assert plain_netlink.kernel_has_wireguard() == kernel_wireguard_available()[0]


def test_a_refused_request_says_which_errno() -> None:
    with pytest.raises(plain_netlink.NetlinkAckError) as refused:
        plain_netlink.set_up(2**31 - 1)  # no such link
    assert refused.value.code == 19  # ENODEV
