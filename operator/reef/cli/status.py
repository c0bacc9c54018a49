"""Gathering what ``reef status`` and ``reef graph`` show (the I/O half of the report)."""

from __future__ import annotations

from typing import Any

from reef.cli.cluster import Cluster
from reef.cli.report import Health, MeshReport, OperatorReport, build_report


def operator_report(deployments: list[Any], namespace: str) -> OperatorReport:
    """Health of the operator from its Deployment(s) (pure, given the client's objects)."""
    if not deployments:
        return OperatorReport(
            Health.UNKNOWN,
            f"no reef operator Deployment in namespace {namespace}"
            " (another namespace: -n; running outside the cluster: not checked)",
        )
    problems = []
    for deployment in deployments:
        wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
        available = deployment.status.available_replicas or 0
        if available < wanted:
            problems.append(f"{deployment.metadata.name}: {available}/{wanted} available")
    if problems:
        return OperatorReport(Health.UNHEALTHY, "; ".join(problems))
    listed = ", ".join(d.metadata.name for d in deployments)
    return OperatorReport(Health.HEALTHY, f"{namespace}/{listed} available")


def gather(cluster: Cluster, network: str | None) -> MeshReport:
    networks = cluster.networks(network)
    agents = cluster.agents(network)
    operator = operator_report(cluster.operator_deployments(), cluster.target.namespace)
    return build_report(networks, agents, operator)
