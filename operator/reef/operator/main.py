"""``reef operator``: run the kopf operator with reef's handlers."""

import asyncio

import kopf

from reef.observability.logs import configure_logging
from reef.observability.metrics import report_build_info, serve_metrics
from reef.settings import OperatorSettings, SettingsError


def run_operator() -> int:
    try:
        settings = OperatorSettings.from_environment()
    except SettingsError as error:
        print(f"reef operator: invalid settings (REEF_* environment variables):\n{error}")
        return 2
    configure_logging(settings.log_format, settings.log_level)
    import reef.operator.handlers  # noqa: F401  (registers the handlers with kopf)

    report_build_info("operator")
    serve_metrics(settings.metrics_port, settings.bind_address)
    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz"
        if settings.health_port
        else None
    )
    # One replica with a Recreate strategy; correctness comes from compare-and-swap
    # ledger writes, not from kopf peering, so peering objects are not needed.
    asyncio.run(
        kopf.operator(
            standalone=True,
            namespaces=[settings.namespace],
            liveness_endpoint=liveness,
        )
    )
    return 0
