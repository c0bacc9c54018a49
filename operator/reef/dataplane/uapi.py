"""The WireGuard userspace API (UAPI) as pure encode/decode functions.

wireguard-go speaks a line protocol on ``/var/run/wireguard/<if>.sock``:
``get=1``/``set=1``, ``key=value`` lines, a blank line; answers end in
``errno=N`` and a blank line. Keeping the codec free of sockets lets it be
tested exhaustively; :mod:`reef.dataplane.userspace` only moves the bytes.

Facts the codec encodes (see docs REFERENCE.md): keys are lowercase hex here
(base64 everywhere else), wireguard-go reports errors as *negative* errno and
any non-zero value is a failure, and the order of lines in a ``get`` answer is
not to be relied on beyond "``public_key`` opens a peer block".
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from reef.dataplane.diff import PeerConfig, PeerPlan
from reef.dataplane.keys import Key
from reef.dataplane.spec import (
    DeviceState,
    Endpoint,
    IPNetwork,
    PeerLiveness,
    PeerSpec,
    PeerState,
    liveness_of,
)

GET_REQUEST = b"get=1\n\n"


class UapiError(RuntimeError):
    """wireguard-go refused a request (non-zero errno) or answered garbage."""

    def __init__(self, message: str, errno: int = 0) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass(frozen=True, slots=True)
class UapiResponse:
    """A decoded answer: its ``key=value`` pairs in order, and the errno."""

    pairs: tuple[tuple[str, str], ...]
    errno: int

    def check(self) -> UapiResponse:
        """Return self, or raise :class:`UapiError` when errno says failure."""
        if self.errno != 0:
            raise UapiError(
                f"wireguard-go answered errno={self.errno}"
                " (negative errno, e.g. -22 = invalid argument: a malformed request)",
                self.errno,
            )
        return self


def encode_set(lines: Iterable[str]) -> bytes:
    """Frame ``key=value`` lines as one ``set`` request."""
    body = "".join(f"{line}\n" for line in lines)
    return f"set=1\n{body}\n".encode("ascii")


#: Bytes per piece of a request sent in pieces (the socket takes them one by one).
SET_CHUNK_BYTES = 65536


def set_request_chunks(lines: Iterable[str]) -> Iterator[bytes]:
    """:func:`encode_set` in pieces of about SET_CHUNK_BYTES, made as they are sent.

    Adding 5000 peers is a 0.9 MB request; built whole (lines, text, bytes) it took
    5 MiB for a moment, and a moment is enough to raise resident memory for good."""
    batch = ["set=1\n"]
    size = 0
    for line in lines:
        batch.append(f"{line}\n")
        size += len(line) + 1
        if size >= SET_CHUNK_BYTES:
            yield "".join(batch).encode("ascii")
            batch, size = [], 0
    batch.append("\n")
    yield "".join(batch).encode("ascii")


def device_lines(private_key: Key | None = None, listen_port: int | None = None) -> list[str]:
    """Device-level keys; they must come before the first peer in a request."""
    lines = []
    if private_key is not None:
        lines.append(f"private_key={private_key.hex()}")
    if listen_port is not None:
        lines.append(f"listen_port={listen_port}")
    return lines


def _peer_config_lines(peer: PeerSpec, replace_allowed_ips: bool) -> list[str]:
    lines = []
    if peer.endpoint is not None:
        lines.append(f"endpoint={peer.endpoint}")
    lines.append(f"persistent_keepalive_interval={peer.persistent_keepalive}")
    if replace_allowed_ips:
        lines.append("replace_allowed_ips=true")
        lines.extend(f"allowed_ip={net}" for net in peer.allowed_ips)
    return lines


def plan_lines(plan: PeerPlan) -> list[str]:
    """Peer blocks that apply ``plan``: removals first, so that an allowed IP
    moving from a removed peer to a new one is never claimed twice at once."""
    return list(iter_plan_lines(plan))


def iter_plan_lines(plan: PeerPlan) -> Iterator[str]:
    """:func:`plan_lines`, one line at a time (for :func:`set_request_chunks`)."""
    for key in plan.remove:
        yield from (f"public_key={key.hex()}", "remove=true")
    for change in plan.update:
        # update_only: if the peer vanished meanwhile, do not resurrect it.
        yield from (f"public_key={change.peer.public_key.hex()}", "update_only=true")
        yield from _peer_config_lines(change.peer, change.allowed_ips_changed)
    for peer in plan.add:
        yield f"public_key={peer.public_key.hex()}"
        yield from _peer_config_lines(peer, replace_allowed_ips=True)


def decode_response(data: bytes) -> UapiResponse:
    """Decode one answer (everything up to and including the blank line)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise UapiError(f"non-ASCII UAPI answer: {data[:80]!r}") from exc
    pairs: list[tuple[str, str]] = []
    errno: int | None = None
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(f"UAPI line without '=': {line!r}")
        if key == "errno":
            errno = int(value)
        else:
            pairs.append((key, value))
    if errno is None:
        raise UapiError("UAPI answer without errno line (truncated?)")
    return UapiResponse(tuple(pairs), errno)


def response_complete(buffer: bytes | bytearray) -> bool:
    """Whether ``buffer`` holds a whole answer: an errno line then a blank line.

    Only the tail is searched: the answer of a 5000-peer device is ~1.5 MB, read in
    64 KiB chunks, and this is asked after each one."""
    tail = buffer[-32:]
    return tail.endswith(b"\n\n") and (b"\nerrno=" in tail or buffer.startswith(b"errno="))


class _PeerBuilder:
    """Collects one peer block; lines may come in any order after public_key."""

    def __init__(self, public_key: Key) -> None:
        self.public_key = public_key
        self.allowed_ips: list[IPNetwork] = []
        self.endpoint: Endpoint | None = None
        self.keepalive = 0
        self.handshake_sec = 0
        self.handshake_nsec = 0
        self.rx = 0
        self.tx = 0

    def take(self, key: str, value: str) -> None:
        match key:
            case "allowed_ip":
                self.allowed_ips.append(ipaddress.ip_network(value, strict=False))
            case "endpoint":
                self.endpoint = Endpoint.parse(value)
            case "persistent_keepalive_interval":
                self.keepalive = int(value)
            case "last_handshake_time_sec":
                self.handshake_sec = int(value)
            case "last_handshake_time_nsec":
                self.handshake_nsec = int(value)
            case "rx_bytes":
                self.rx = int(value)
            case "tx_bytes":
                self.tx = int(value)
            case _:
                pass  # preshared_key, protocol_version, future keys: not modelled

    def build(self) -> PeerState:
        handshake = None
        if self.handshake_sec or self.handshake_nsec:
            handshake = datetime.fromtimestamp(
                self.handshake_sec + self.handshake_nsec / 1e9, tz=UTC
            )
        return PeerState(
            self.public_key,
            tuple(self.allowed_ips),
            self.endpoint,
            self.keepalive,
            handshake,
            self.rx,
            self.tx,
        )


def decode_device(response: UapiResponse) -> DeviceState:
    """Turn a successful ``get`` answer into a :class:`DeviceState`."""
    response.check()
    return _device_from(response.pairs, with_peers=True)


def check_answer(data: bytes) -> None:
    """Raise :class:`UapiError` unless ``data`` is a whole answer whose errno is 0.

    Only its last line is read: whether wireguard-go answers is asked before every
    configuration, and a 5000-peer answer decoded whole was ~7 MiB of pairs."""
    tail = data[-32:]  # the errno line ends the answer; no copy of the whole of it
    errno_at = tail.rfind(b"errno=")
    if errno_at < 0 or not tail.endswith(b"\n\n") or (errno_at > 0 and tail[errno_at - 1] != 10):
        raise UapiError("UAPI answer without errno line (truncated?)")
    decode_response(tail[errno_at:]).check()


def decode_device_answer(data: bytes, *, with_peers: bool = True) -> DeviceState:
    """:func:`decode_device` of a raw ``get`` answer, read a line at a time.

    The same result, without the answer's tuple of all its pairs first: at 5000 peers
    that tuple was 7 MiB on top of the 5.6 MiB of peer states, for a moment, at every
    peer change, and a moment is enough to raise the agent's resident memory for good.
    ``with_peers=False`` reads the device's own lines only (they come before the first
    peer) for the key and port.
    """
    check_answer(data)
    if not with_peers and (first_peer := data.find(b"\npublic_key=")) >= 0:
        data = data[: first_peer + 1]
    return _device_from(_answer_pairs(data), with_peers=with_peers)


_PEER_OPENS = b"\npublic_key="


def decode_peer_configs(data: bytes, expected: Mapping[bytes, PeerSpec]) -> dict[Key, PeerConfig]:
    """The device's peers from a raw ``get`` answer, as a diff reads them: a peer whose
    block says exactly what its spec in ``expected`` (by raw key) says is that very spec;
    any other peer is decoded as :func:`decode_device_answer` decodes it.

    The agent's periodic resync re-reads the whole device, and nearly every peer on it is
    what the agent wrote. Decoding all of them (5000 peer states, ~5.5 MiB at once) raised
    the resident memory of a real agent by 6 MiB for good at every resync (the allocator
    keeps the pages). Here a block that matches is compared as bytes and dropped: what
    stays is one dictionary entry per peer, pointing at a spec the plan already holds.
    A block that does not match for any reason, textual ones included, is decoded whole,
    so the diff sees what it would have seen.
    """
    check_answer(data)
    if data.startswith(_PEER_OPENS[1:]):  # no device lines before the first peer
        data = b"\n" + data
    peers: dict[Key, PeerConfig] = {}
    start = data.find(_PEER_OPENS)
    while start >= 0:
        following = data.find(_PEER_OPENS, start + 1)
        # to the end of its last line (the next block's opening newline included)
        block = data[start + len(_PEER_OPENS) : following + 1 if following >= 0 else len(data)]
        hex_key, _, rest = block.partition(b"\n")
        try:
            raw = binascii.unhexlify(hex_key)
        except binascii.Error as exc:
            raise UapiError(f"UAPI answer with a malformed key: {hex_key[:80]!r}") from exc
        spec = expected.get(raw)
        if spec is not None and _block_says(rest, spec):
            peers[spec.public_key] = spec
        else:
            peer = _PeerBuilder(Key(raw))
            for key, value in _answer_pairs(rest):
                peer.take(key, value)
            peers[peer.public_key] = peer.build()
        start = following
    return peers


def _block_says(block: bytes, spec: PeerSpec) -> bool:
    """Whether a peer block's endpoint, keepalive and allowed IPs are the spec's, as text
    (a spec without an endpoint never matches: the device's own endpoint is kept)."""
    if spec.endpoint is None:
        return False
    endpoint = keepalive = b""
    allowed: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"allowed_ip="):
            allowed.append(line[11:])
        elif line.startswith(b"endpoint="):
            endpoint = line[9:]
        elif line.startswith(b"persistent_keepalive_interval="):
            keepalive = line[30:]
    return (
        endpoint == str(spec.endpoint).encode()
        and int(keepalive or b"0") == spec.persistent_keepalive
        and sorted(allowed) == sorted(str(net).encode() for net in spec.allowed_ips)
    )


def _answer_pairs(data: bytes) -> Iterator[tuple[str, str]]:
    """The ``key=value`` lines of a checked answer, one at a time (errno left out)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise UapiError(f"non-ASCII UAPI answer: {data[:80]!r}") from exc
    start = 0
    while (end := text.find("\n", start)) >= 0:
        line = text[start:end]
        start = end + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError(f"UAPI line without '=': {line!r}")
        if key != "errno":
            yield key, value


def _device_from(pairs: Iterable[tuple[str, str]], *, with_peers: bool) -> DeviceState:
    private_key: Key | None = None
    listen_port = 0
    peers: dict[Key, PeerState] = {}
    current: _PeerBuilder | None = None
    for key, value in pairs:
        if key == "public_key":
            if not with_peers:
                break
            if current is not None:
                peers[current.public_key] = current.build()
            current = _PeerBuilder(Key.from_hex(value))
        elif current is not None:
            current.take(key, value)
        elif key == "private_key":
            private_key = Key.from_hex(value)
        elif key == "listen_port":
            listen_port = int(value)
    if current is not None:
        peers[current.public_key] = current.build()
    public_key = private_key.public_key() if private_key is not None else None
    return DeviceState(public_key=public_key, listen_port=listen_port, peers=peers)


# One peer block in the order wireguard-go writes it (device/uapi.go: the handshake
# time, then tx_bytes, then rx_bytes), other lines skipped. A skip can run into the next
# block only when a line is missing; that leaves fewer matches than blocks, which
# :func:`decode_liveness` checks. (Possessive skips: no backtracking, a third faster.)
_LIVENESS_BLOCK = re.compile(
    rb"\npublic_key=([0-9a-fA-F]{64})\n"
    rb"(?:(?!last_handshake_time_sec=)[^\n]*\n)*+"
    rb"last_handshake_time_sec=(\d+)\nlast_handshake_time_nsec=(\d+)\n"
    rb"(?:(?!rx_bytes=)[^\n]*\n)*+"
    rb"rx_bytes=(\d+)\n"
)


def decode_liveness(data: bytes) -> PeerLiveness:
    """Each peer's last handshake and rx bytes from a raw ``get`` answer.

    The health check reads this every few seconds; decoding every line of every peer
    (:func:`decode_device`) cost 170 ms at 5000 peers. One regular expression picks the
    three values per peer instead; an answer in another line order (not wireguard-go's)
    is decoded the long way, with the same result.
    """
    check_answer(data)
    found = _LIVENESS_BLOCK.findall(data)
    if len(found) != data.count(b"\npublic_key=") or data.startswith(b"public_key="):
        return liveness_of(decode_device(decode_response(data)))
    try:
        return {
            binascii.unhexlify(key): (int(sec) + int(nsec) / 1e9, int(rx))
            for key, sec, nsec, rx in found
        }
    except binascii.Error as exc:
        raise UapiError(f"UAPI answer with a malformed key: {exc}") from exc
