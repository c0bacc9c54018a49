"""Go-style duration strings ("5m", "24h", "1h30m", "250ms"), as Kubernetes users write them.

The CRD validates the syntax at admission (:data:`DURATION_PATTERN`, its OpenAPI
``pattern``); durationpy, which ships with the kubernetes client, turns a valid string
into a ``timedelta``. It accepts more than the CRD does (days, spaces, a sign), so the
pattern is checked here too: what the operator parses is exactly what admission let in.
"""

import re
from datetime import timedelta

import durationpy

#: The grammar the CRD's OpenAPI ``pattern`` enforces too.
DURATION_PATTERN = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"
_VALID = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration such as ``"1h30m"``; raise ValueError naming the expected form."""
    if not _VALID.match(text):
        raise ValueError(
            f"invalid duration {text!r}: expected a number with a unit, e.g. '30s', '5m', '24h'"
        )
    value: timedelta = durationpy.from_str(text)
    return value
