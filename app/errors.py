"""Domain errors that the web and API layers map to HTTP answers.

Domain code raises these; only routers raise HTTPException.
"""


class AppError(Exception):
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AppError):
    status_code = 404


class InvalidFilter(AppError):
    status_code = 400


class InvalidPayload(AppError):
    """The envelope of an ingest request is unusable (not JSON, wrong kind, ...)."""

    status_code = 400


class PayloadTooLarge(AppError):
    status_code = 413


class UnsupportedEncoding(AppError):
    status_code = 415


class UnsupportedMediaType(AppError):
    """A body declared as something else than JSON or NDJSON."""

    status_code = 415


class SourceUnavailable(AppError):
    """A backing service (PostgreSQL, Elasticsearch) cannot be reached."""

    status_code = 503
