"""``reef status`` as text for a terminal: aligned columns, colour only when asked (a TTY)."""

from __future__ import annotations

from collections.abc import Sequence

from reef.cli.report import Health, MeshReport

_COLOURS = {
    Health.HEALTHY: "32",  # green
    Health.DEGRADED: "33",  # yellow
    Health.PENDING: "33",
    Health.UNKNOWN: "2",  # dim
    Health.UNHEALTHY: "31",  # red
}


def _paint(text: str, health: Health, colour: bool) -> str:
    return f"\x1b[{_COLOURS[health]}m{text}\x1b[0m" if colour else text


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows padded to aligned columns, three spaces apart (like kubectl)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def render_status(report: MeshReport, *, colour: bool = False) -> str:
    lines: list[str] = []
    verdict = Health.HEALTHY if report.healthy else Health.UNHEALTHY
    lines.append("mesh: " + _paint("healthy" if report.healthy else "UNHEALTHY", verdict, colour))
    lines.append(
        f"operator: {_paint(str(report.operator.health), report.operator.health, colour)}"
        f" ({report.operator.message})"
    )
    lines.append("")
    pool_rows = [
        ["NETWORK", "CIDRS", "TOPOLOGY", "USED/CAPACITY", "COOLING/RETAINED", "READY", "EXHAUSTION"]
    ]
    for pool in report.pools:
        exhaustion = "EXHAUSTED" if pool.exhausted else "nearly" if pool.nearly_exhausted else "-"
        pool_rows.append(
            [
                pool.network,
                ",".join(pool.cidrs),
                pool.topology,
                f"{_count(pool.allocated)}/{_count(pool.capacity)}",
                _count(pool.reserved),
                pool.ready,
                exhaustion,
            ]
        )
    lines.extend(columns(pool_rows) if report.pools else ["no MeshNetworks"])
    lines.append("")
    if report.members:
        member_rows = [["MEMBER", "NETWORK", "NODE", "ROLE", "ADDRESS", "PEERS", "HEALTH"]]
        healths = []
        for m in report.members:
            node = m.node or ("(external, wg-quick)" if m.agentless else "(external)")
            member_rows.append(
                [
                    m.name,
                    m.network,
                    node,
                    m.role,
                    ",".join(m.addresses) or "-",
                    m.peers,
                    str(m.health),
                ]
            )
            healths.append(m.health)
        header, *body = columns(member_rows)
        lines.append(header)
        for line, health in zip(body, healths, strict=True):
            lines.append(_paint(line, health, colour) if colour else line)
        counts: dict[Health, int] = {}
        for m in report.members:
            counts[m.health] = counts.get(m.health, 0) + 1
        lines.append(
            "members by health: " + ", ".join(f"{h} {counts[h]}" for h in Health if h in counts)
        )
    else:
        lines.append("no MeshAgents")
    unreachable = [(m.name, t) for m in report.members for t in m.cannot_reach]
    if unreachable:
        lines.append("")
        lines.append("cannot reach (no handshake within 180 s):")
        lines.extend(f"  {src} -> {dst}" for src, dst in unreachable)
    if report.conflicts:
        lines.append("")
        lines.append("conflicts:")
        lines.extend(f"  {c}" for c in report.conflicts)
    if report.problems:
        lines.append("")
        lines.append(_paint("problems:", Health.UNHEALTHY, colour))
        lines.extend(f"  {p}" for p in report.problems)
    return "\n".join(lines) + "\n"
