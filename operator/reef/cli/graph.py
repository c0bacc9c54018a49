"""The mesh as Graphviz DOT: members, hubs, and peerings coloured by handshake health.

Edges follow the topology (``FullMesh``: every pair; ``Hub``: every spoke to every hub,
hubs among themselves). An edge is green when neither end reports a missing handshake
with the other, red when either does, grey when no agent reports on either end.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from reef.cli.report import Health, MemberReport, PoolReport

HEALTHY_EDGE = "forestgreen"
BROKEN_EDGE = "red3"
UNKNOWN_EDGE = "gray60"
_FILL = {
    Health.HEALTHY: "palegreen",
    Health.DEGRADED: "khaki",
    Health.PENDING: "khaki",
    Health.UNKNOWN: "gray90",
    Health.UNHEALTHY: "lightpink",
}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def quote(text: str) -> str:
    """A DOT double-quoted ID (backslashes and quotes escaped)."""
    return f'"{_escape(text)}"'


def _label(*lines: str) -> str:
    """A multi-line DOT label: each line escaped, joined by DOT's centred line break."""
    return '"' + "\\n".join(_escape(line) for line in lines) + '"'


def _pairs(members: list[MemberReport], topology: str) -> Iterable[tuple[MemberReport, ...]]:
    if topology != "Hub":
        return itertools.combinations(members, 2)
    hubs = [m for m in members if m.role == "Hub"]
    pairs = list(itertools.combinations(hubs, 2))
    pairs.extend((hub, m) for hub in hubs for m in members if m.role != "Hub")
    return pairs


def _edge_colour(a: MemberReport, b: MemberReport) -> str:
    if b.name in a.cannot_reach or a.name in b.cannot_reach:
        return BROKEN_EDGE
    if a.agentless and b.agentless:
        return UNKNOWN_EDGE
    if a.peers == "-" and b.peers == "-":
        return UNKNOWN_EDGE
    return HEALTHY_EDGE


def render_dot(pools: Iterable[PoolReport], members: Iterable[MemberReport]) -> str:
    members = list(members)
    lines = [
        "graph reef {",
        "  graph [overlap=false, splines=true, fontname=Helvetica];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica];',
        "  edge [penwidth=2];",
    ]
    for pool in pools:
        own = [m for m in members if m.network == pool.network]
        lines.append(f"  subgraph {quote('cluster_' + pool.network)} {{")
        title = f"{pool.network} ({', '.join(pool.cidrs)}, {pool.topology})"
        lines.append(f"    label={quote(title)};")
        for m in own:
            label = _label(
                m.name,
                ", ".join(m.addresses) or "no address",
                *(["external"] if m.external else []),
            )
            shape = "doubleoctagon" if m.role == "Hub" else "box"
            lines.append(
                f"    {quote(m.name)} [label={label}, shape={shape},"
                f" fillcolor={_FILL[m.health]}, tooltip={quote(m.reason)}];"
            )
        for a, b in _pairs(own, pool.topology):
            colour = _edge_colour(a, b)
            style = ", style=dashed" if colour == BROKEN_EDGE else ""
            lines.append(f"    {quote(a.name)} -- {quote(b.name)} [color={colour}{style}];")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
