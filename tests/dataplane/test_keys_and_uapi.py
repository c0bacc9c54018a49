"""Pure parts of the dataplane: keys and the UAPI codec (no sockets, no root)."""

from __future__ import annotations

import base64
import ipaddress
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reef.dataplane import DeviceState, Endpoint, InvalidKeyError, Key, PeerPlan, PeerSpec
from reef.dataplane.diff import PeerUpdate, _differs, diff_peers
from reef.dataplane.spec import PeerState, liveness_of
from reef.dataplane.uapi import (
    SET_CHUNK_BYTES,
    UapiError,
    check_answer,
    decode_device,
    decode_device_answer,
    decode_liveness,
    decode_peer_configs,
    decode_response,
    device_lines,
    encode_set,
    plan_lines,
    response_complete,
    set_request_chunks,
)

raw_keys = st.binary(min_size=32, max_size=32)


@given(raw_keys)
def test_key_round_trips_through_base64_and_hex(raw: bytes) -> None:
    key = Key(raw)
    assert Key.from_base64(key.base64()) == key
    assert Key.from_hex(key.hex()) == key
    assert Key.parse(key.hex()) == key
    assert Key.parse(key.base64()) == key
    assert key.hex() == key.hex().lower()


def test_key_renders_what_wg_tools_render() -> None:
    key = Key(bytes(range(32)))
    assert key.base64() == base64.b64encode(bytes(range(32))).decode()
    assert key.hex() == bytes(range(32)).hex()


@pytest.mark.parametrize(
    "text", ["", "abc", "A" * 43, "zz" * 32, base64.b64encode(b"x" * 31).decode()]
)
def test_malformed_keys_are_rejected(text: str) -> None:
    with pytest.raises(InvalidKeyError):
        Key.parse(text)


RFC7748_PRIVATE_HEX = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
RFC7748_PUBLIC_HEX = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"


def test_generated_private_key_is_clamped_and_derives_the_same_public_key_as_wg() -> None:
    private = Key.generate()
    assert private.raw[0] & 7 == 0
    assert private.raw[31] & 0x80 == 0
    assert private.raw[31] & 0x40
    if shutil.which("wg") is None:
        pytest.skip("wireguard-tools (wg) not installed")
    expected = subprocess.run(
        ["wg", "pubkey"], input=private.base64(), capture_output=True, text=True, check=True
    ).stdout.strip()
    assert private.public_key().base64() == expected


def test_the_public_key_is_derived_as_rfc_7748_specifies() -> None:
    # RFC 7748 section 6.1, Alice's key pair: the known answer, with or without `wg`.
    private = Key.from_hex(RFC7748_PRIVATE_HEX)
    assert private.public_key() == Key.from_hex(RFC7748_PUBLIC_HEX)


def test_repr_never_shows_a_whole_key() -> None:
    key = Key.generate()
    assert key.base64() not in repr(key)


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("198.18.0.1:51820", "198.18.0.1", 51820), ("[2001:db8::1]:7", "2001:db8::1", 7)],
)
def test_endpoint_parses_and_renders_v4_and_v6(text: str, host: str, port: int) -> None:
    endpoint = Endpoint.parse(text)
    assert endpoint == Endpoint(ipaddress.ip_address(host), port)
    assert str(endpoint) == text


def _peer(n: int, *nets: str, endpoint: str | None = None, keepalive: int = 0) -> PeerSpec:
    return PeerSpec(
        Key(bytes([n]) * 32),
        tuple(ipaddress.ip_network(x) for x in nets),
        Endpoint.parse(endpoint) if endpoint else None,
        keepalive,
    )


def test_set_request_puts_device_keys_first_and_frames_with_a_blank_line() -> None:
    private = Key(bytes([9]) * 32)
    request = encode_set(
        [*device_lines(private, 51820), *plan_lines(PeerPlan(add=(_peer(1, "100.64.0.1/32"),)))]
    )
    text = request.decode()
    assert text.startswith(f"set=1\nprivate_key={'09' * 32}\nlisten_port=51820\npublic_key=")
    assert text.endswith("allowed_ip=100.64.0.1/32\n\n")


def test_plan_lines_remove_before_update_before_add() -> None:
    plan = PeerPlan(
        add=(_peer(3, "100.64.0.3/32", endpoint="198.18.0.3:51820", keepalive=25),),
        update=(PeerUpdate(_peer(2, "100.64.0.2/32"), allowed_ips_changed=False),),
        remove=(Key(bytes([1]) * 32),),
    )
    assert plan_lines(plan) == [
        f"public_key={'01' * 32}",
        "remove=true",
        f"public_key={'02' * 32}",
        "update_only=true",
        "persistent_keepalive_interval=0",
        f"public_key={'03' * 32}",
        "endpoint=198.18.0.3:51820",
        "persistent_keepalive_interval=25",
        "replace_allowed_ips=true",
        "allowed_ip=100.64.0.3/32",
    ]


def test_get_answer_decodes_whatever_the_order_of_peer_lines() -> None:
    private = Key(bytes([5]) * 32)
    answer = (
        f"private_key={private.hex()}\nlisten_port=51820\nfwmark=0\n"
        f"public_key={'01' * 32}\nallowed_ip=10.0.0.0/8\ntx_bytes=7\nprotocol_version=1\n"
        "last_handshake_time_nsec=500000000\nendpoint=[2001:db8::1]:9\n"
        "last_handshake_time_sec=1700000000\nrx_bytes=3\nallowed_ip=100.64.0.1/32\n"
        "persistent_keepalive_interval=25\n"
        f"public_key={'02' * 32}\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\n"
        "errno=0\n\n"
    ).encode()
    assert response_complete(answer)
    state = decode_device(decode_response(answer))
    assert state.public_key == private.public_key()
    assert state.listen_port == 51820
    first = state.peers[Key(bytes([1]) * 32)]
    assert first.allowed_ips == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("100.64.0.1/32"),
    )
    assert first.endpoint == Endpoint.parse("[2001:db8::1]:9")
    assert first.last_handshake == datetime.fromtimestamp(1700000000.5, tz=UTC)
    assert (first.rx_bytes, first.tx_bytes, first.persistent_keepalive) == (3, 7, 25)
    assert state.peers[Key(bytes([2]) * 32)].last_handshake is None


@pytest.mark.parametrize("errno", [-22, 1])
def test_any_nonzero_errno_is_a_failure(errno: int) -> None:
    response = decode_response(f"errno={errno}\n\n".encode())
    with pytest.raises(UapiError) as caught:
        response.check()
    assert caught.value.errno == errno


def test_answer_without_errno_is_incomplete_and_rejected() -> None:
    assert not response_complete(b"listen_port=1\n")
    with pytest.raises(UapiError):
        decode_response(b"listen_port=1\n\n")


peer_states = st.builds(
    PeerState,
    public_key=raw_keys.map(Key),
    allowed_ips=st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
            lambda t: ipaddress.ip_network((t[0], t[1]), strict=False)
        ),
        max_size=4,
    ).map(tuple),
    endpoint=st.none() | st.builds(Endpoint, st.ip_addresses(v=4), st.integers(1, 65535)),
    persistent_keepalive=st.integers(0, 65535),
    last_handshake=st.none()
    | st.integers(1, 2**31).map(lambda s: datetime.fromtimestamp(s, tz=UTC)),
    rx_bytes=st.integers(0, 2**63),
    tx_bytes=st.integers(0, 2**63),
)


@given(st.lists(peer_states, max_size=5, unique_by=lambda p: p.public_key))
def test_device_state_survives_encode_then_decode(peers: list[PeerState]) -> None:
    state = DeviceState(listen_port=51820, peers={p.public_key: p for p in peers})
    answer = encode_device_state(state, Key(bytes([9]) * 32))
    assert decode_device(decode_response(answer)).peers == state.peers
    # read a line at a time (what the userspace backend does): the same state
    assert decode_device_answer(answer) == decode_device(decode_response(answer))
    head = decode_device_answer(answer, with_peers=False)
    assert (head.public_key, head.listen_port, head.peers) == (
        Key(bytes([9]) * 32).public_key(),
        51820,
        {},
    )


@pytest.mark.parametrize(
    ("answer", "errno"),
    [(b"listen_port=1\nerrno=-22\n\n", -22), (b"errno=1\n\n", 1)],
)
def test_an_answer_with_a_nonzero_errno_is_refused_by_the_line_reader(
    answer: bytes, errno: int
) -> None:
    for read in (check_answer, decode_device_answer):
        with pytest.raises(UapiError) as caught:
            read(answer)
        assert caught.value.errno == errno


@pytest.mark.parametrize(
    "answer",
    [b"listen_port=1\n\n", b"listen_port=1\nerrno=0\n", b"listen_port\nerrno=0\n\n"],
)
def test_a_truncated_or_malformed_answer_is_refused_by_the_line_reader(answer: bytes) -> None:
    with pytest.raises(UapiError):
        decode_device_answer(answer)


def encode_device_state(state: DeviceState, private_key: Key | None = None) -> bytes:
    """Render a ``get`` answer the way wireguard-go sends it (the test's own encoder)."""
    lines = device_lines(private_key, state.listen_port or None)
    for peer in state.peers.values():
        lines.append(f"public_key={peer.public_key.hex()}")
        if peer.endpoint is not None:
            lines.append(f"endpoint={peer.endpoint}")
        if peer.last_handshake is not None:
            stamp = peer.last_handshake.timestamp()
            lines.append(f"last_handshake_time_sec={int(stamp)}")
            lines.append(f"last_handshake_time_nsec={round((stamp % 1) * 1e9)}")
        lines += [
            f"rx_bytes={peer.rx_bytes}",
            f"tx_bytes={peer.tx_bytes}",
            f"persistent_keepalive_interval={peer.persistent_keepalive}",
        ]
        lines += [f"allowed_ip={net}" for net in peer.allowed_ips]
    lines.append("errno=0")
    return "".join(f"{line}\n" for line in lines).encode("ascii") + b"\n"


# --- the health check's read: decode_liveness ------------------------------------------


def _wireguard_go_block(key: bytes, handshake: tuple[int, int], rx: int, ips: int) -> list[str]:
    """One peer as wireguard-go's IpcGet writes it (device/uapi.go), in its order."""
    lines = [f"public_key={key.hex()}", "protocol_version=1", "endpoint=198.51.100.7:51820"]
    lines += [f"last_handshake_time_sec={handshake[0]}", f"last_handshake_time_nsec={handshake[1]}"]
    lines += [f"tx_bytes={rx // 2}", f"rx_bytes={rx}", "persistent_keepalive_interval=25"]
    return lines + [f"allowed_ip=10.0.{i}.0/24" for i in range(ips)]


liveness_peers = st.dictionaries(
    raw_keys,
    st.tuples(
        st.one_of(st.just((0, 0)), st.tuples(st.integers(1, 2**33), st.integers(0, 999_999_999))),
        st.integers(0, 2**60),
        st.integers(0, 3),
    ),
    max_size=6,
)


@given(liveness_peers, st.booleans(), st.randoms(use_true_random=False))
def test_decode_liveness_says_what_the_whole_decode_says_in_any_line_order(
    peers: dict[bytes, tuple[tuple[int, int], int, int]], shuffled: bool, rng: Any
) -> None:
    lines = ["private_key=" + "11" * 32, "listen_port=51820"]
    for key, (handshake, rx, ips) in peers.items():
        block = _wireguard_go_block(key, handshake, rx, ips)
        if shuffled:  # "public_key opens a peer block" is all UAPI promises
            rest = block[1:]
            rng.shuffle(rest)
            block = [block[0], *rest]
        lines += block
    answer = ("\n".join(lines) + "\nerrno=0\n\n").encode()
    assert response_complete(answer)
    expected = liveness_of(decode_device(decode_response(answer)))
    got = decode_liveness(answer)
    assert got.keys() == expected.keys() == peers.keys()
    for key, (seconds, rx) in got.items():
        # the whole decode goes through datetime: microseconds; this keeps the nanoseconds
        assert seconds == pytest.approx(expected[key][0], abs=1e-6, rel=0)
        assert rx == expected[key][1]
        assert (seconds == 0.0) == (peers[key][0] == (0, 0))


@pytest.mark.parametrize(
    "answer",
    [b"errno=-22\n\n", b"listen_port=1\npublic_key=" + b"ab" * 32 + b"\n", b"listen_port=1\n\n"],
    ids=["errno", "truncated", "no-errno"],
)
def test_decode_liveness_refuses_what_decode_device_refuses(answer: bytes) -> None:
    with pytest.raises(UapiError):
        decode_liveness(answer)


@given(st.lists(st.sampled_from(["public_key=" + "ab" * 32, "remove=true", "x" * 70_000])))
def test_a_set_request_in_pieces_is_the_request_whole(lines: list[str]) -> None:
    pieces = list(set_request_chunks(lines))
    assert b"".join(pieces) == encode_set(lines)
    # pieces stay near their size: a line longer than that is a piece of its own
    assert all(len(p) < SET_CHUNK_BYTES + 70_002 for p in pieces)


# --- the resync's read: decode_peer_configs ---------------------------------------------


def _desired_from(state: DeviceState, choices: list[int], extra: list[PeerState]) -> list[PeerSpec]:
    """Specs for some of the device's peers — as they are (0), with another keepalive (1),
    another endpoint or none (2), other allowed IPs (3), or left out (4) — and new ones."""
    desired = []
    for peer, choice in zip(state.peers.values(), choices, strict=False):
        if choice == 4:
            continue
        endpoint = peer.endpoint
        if choice == 2:
            endpoint = None if endpoint is not None else Endpoint.parse("192.0.2.1:51820")
        desired.append(
            PeerSpec(
                peer.public_key,
                peer.allowed_ips[1:] if choice == 3 else peer.allowed_ips,
                endpoint,
                (peer.persistent_keepalive + 1) % 65536
                if choice == 1
                else peer.persistent_keepalive,
            )
        )
    return desired + [PeerSpec(p.public_key, p.allowed_ips, p.endpoint) for p in extra]


@given(
    st.lists(peer_states, max_size=6, unique_by=lambda p: p.public_key),
    st.lists(st.integers(0, 4), min_size=6, max_size=6),
    st.lists(peer_states, max_size=2, unique_by=lambda p: p.public_key),
)
def test_peer_configs_diff_exactly_as_the_whole_decode_and_keep_matching_specs(
    peers: list[PeerState], choices: list[int], extra: list[PeerState]
) -> None:
    state = DeviceState(listen_port=51820, peers={p.public_key: p for p in peers})
    desired = _desired_from(state, choices, [p for p in extra if p.public_key not in state.peers])
    answer = encode_device_state(state, Key(bytes([9]) * 32))
    expected = {spec.public_key.raw: spec for spec in desired}
    configs = decode_peer_configs(answer, expected)
    assert list(configs) == list(state.peers)
    assert diff_peers(desired, configs) == diff_peers(desired, decode_device_answer(answer).peers)
    # a peer the device holds as specified (with an endpoint) is the spec itself, not a copy
    for spec in desired:
        live = state.peers.get(spec.public_key)
        same = live is not None and spec.endpoint is not None and not _differs(spec, live)
        assert (configs.get(spec.public_key) is spec) == same


def test_peer_configs_refuse_a_malformed_key_and_a_failed_answer() -> None:
    with pytest.raises(UapiError):
        decode_peer_configs(b"listen_port=1\npublic_key=zz\nerrno=0\n\n", {})
    with pytest.raises(UapiError):
        decode_peer_configs(b"listen_port=1\nerrno=-22\n\n", {})
