"""Run Alembic migrations programmatically (`audit-timeline migrate`, and before `serve`).

Knows where the migrations live; holds no schema itself.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app import PROJECT_DIR


def alembic_config(database_url: str) -> Config:
    """Alembic config pointing at this project's migrations and the given database."""
    config = Config(str(PROJECT_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_DIR / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    command.upgrade(alembic_config(database_url), "head")
