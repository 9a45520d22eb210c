"""Alembic is the only way the schema is made: one head, and `upgrade head` equals the models on both
SQLite and PostgreSQL; downgrading to base and upgrading again works."""

import re
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from salesmesh.platform.db import Base, import_models
from salesmesh.platform.migrate import MIGRATIONS_DIR, alembic_config, current_revision, upgrade_database


def _diff(url: str) -> list:
    import_models()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_exactly_one_head_and_named_files() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    files = sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py"))
    assert files, "no migration files"
    for name in files:
        assert re.fullmatch(r"\d{4}_\d{2}_\d{2}_[a-z0-9_]+\.py", name), name


def test_upgrade_head_matches_models_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url)
    assert current_revision(url) == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert _diff(url) == []


def test_upgrade_head_matches_models_postgresql(pg_url: str) -> None:
    upgrade_database(pg_url)
    assert _diff(pg_url) == []


def test_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade_database(url)
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade_database(url)
    assert _diff(url) == []
