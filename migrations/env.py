"""Alembic environment: async engine with psycopg 3; URL from the Alembic config.

Imports only the model metadata (never the running app).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import app.audit.models  # noqa: F401  (registers the tables on Base.metadata)
from app.db import Base, to_async_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: run migrations through `audit-timeline migrate`")
    return to_async_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


# Replicas start together: one migrates, the others wait for it, then find nothing to do.
MIGRATION_LOCK_KEY = 7_261_154_380_123_001


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # audit_event's weekly partitions are made by the app (app/audit/partitions.py), not by
    # the models: comparing the schema with the models skips them.
    return not (
        type_ == "table"
        and name is not None
        and name.startswith("audit_event_")
        and (name == "audit_event_default" or name.startswith("audit_event_p"))
    )


def _run_sync(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata, include_name=_include_name
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(run_migrations_online())
