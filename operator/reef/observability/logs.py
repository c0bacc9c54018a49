"""Logging set-up: JSON lines by default (what log pipelines ingest), text for humans."""

import logging

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, any
    ``extra={...}`` keys, and the traceback as ``exception``. python-json-logger ships
    with kopf."""
    return _LibraryJsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
        timestamp="time",
    )


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if root.level > logging.DEBUG:
        # kopf reports every handled watch event at INFO: thousands of lines per burst that
        # say nothing our own logs and Events do not. Its warnings and errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
