"""Go-style duration strings ("5m", "24h", "1h30m", "250ms"), as Kubernetes users write them.

The CRD validates the syntax at admission with the same grammar; this module turns a
valid string into a ``timedelta``.
"""

import re
from datetime import timedelta

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
#: The grammar the CRD's OpenAPI ``pattern`` enforces too.
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration such as ``"1h30m"``; raise ValueError naming the expected form."""
    if text == "0":
        return timedelta(0)
    position = 0
    seconds = 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(
            f"invalid duration {text!r}: expected a number with a unit, e.g. '30s', '5m', '24h'"
        )
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a duration the way users write it (``"5m"``, ``"1h30m"``, ``"2.5s"``)."""
    total = value.total_seconds()
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{int(hours)}h")
    if minutes:
        parts.append(f"{int(minutes)}m")
    if seconds:
        parts.append(f"{seconds:g}s")
    return "".join(parts)
