"""Run Alembic programmatically against a database URL (the CLI, tests and the demo use this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str) -> Config:
    """Return an Alembic config pointing at our migrations and `database_url`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(slug)s")
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade_database(database_url: str, revision: str = "head") -> None:
    """Upgrade the schema of `database_url` to `revision`."""
    command.upgrade(alembic_config(database_url), revision)


def make_revision(database_url: str, message: str) -> None:
    """Autogenerate a new revision file from the difference between the models and `database_url`."""
    command.revision(alembic_config(database_url), message=message, autogenerate=True)


def current_revision(database_url: str) -> str | None:
    """Return the revision the database is at (None when empty)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
