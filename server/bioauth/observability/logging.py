"""Structured JSON logging (structlog) with per-request context and pseudonymous subject ids.

Per-request fields (tenant, request id, method) are bound in contextvars by the authentication
interceptor and merged into every event. Subject ids are never logged as they are: call
``pseudonym()``, a keyed hash that lets an operator correlate one person's events without
learning who they are or the server's own id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys

import structlog

__all__ = ["configure_logging", "get_logger", "pseudonym"]

_PSEUDONYM_KEY: list[bytes] = [b"unset"]


def configure_logging(*, level: str, json_output: bool, pseudonym_key: str) -> None:
    """Route stdlib and structlog output to stderr, one JSON object per line.

    ``pseudonym_key`` is required: a default here would pseudonymise with a key anyone can read.
    """
    _PSEUDONYM_KEY[0] = pseudonym_key.encode("utf-8")
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def pseudonym(subject_id: str) -> str:
    """A stable, keyed, non-reversible tag for a subject id, safe to log."""
    digest = hmac.new(_PSEUDONYM_KEY[0], subject_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return "p_" + digest[:16]
