"""Database plumbing: declarative Base, engine and session factories, the session dependency.

Holds no queries (those live in app/audit/queries.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from sqlalchemy import MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Errors that mean "the database is not there right now", not "the request is wrong".
DATABASE_DOWN_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    # Raised unwrapped by the raw psycopg cursor that COPYs batches in.
    psycopg.OperationalError,
    ConnectionError,
)


def to_async_url(url: str) -> str:
    """Return the URL with the psycopg 3 driver named, whatever postgres scheme it came with."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    raise ValueError("database URL must start with postgresql://")


def _dump_json(value: Any) -> str:
    # stdlib json, not orjson: it keeps integers beyond 64 bits exact (lossless storage).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# The events' JSON columns compress with lz4 where the server was built with it: faster to
# write and read than pglz, and smaller on audit bodies (README "Ingest performance"). Per
# session, so that every table it writes (COPY targets too) uses it; a server without lz4
# (the embedded build) keeps pglz.
LZ4_IF_AVAILABLE = (
    "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings"
    " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)


def _prefer_lz4(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(LZ4_IF_AVAILABLE)
    finally:
        cursor.close()
    dbapi_connection.commit()  # a rolled-back SET would be undone


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine (psycopg 3) with pre-ping so a restarted database is picked up."""
    engine = create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=5,
        json_serializer=_dump_json,
        connect_args={"connect_timeout": 5},
    )
    event.listen(engine.sync_engine, "connect", _prefer_lz4)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; writers open their own transaction and commit before answering."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
