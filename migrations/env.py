"""Alembic environment: salesmesh metadata, batch mode on SQLite, naming convention from the models."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from salesmesh.platform.db import Base, UTCDateTime, import_models

import_models()
config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")


def _render_item(type_: str, obj: object, _ctx: object) -> str | bool:
    # UTCDateTime is a naive-UTC DateTime in the database; migrations need no salesmesh import.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        if is_sqlite:
            # Outside any transaction (the pragma is ignored inside one), then end the implicit
            # transaction SQLAlchemy began, so Alembic's own transaction is the one that commits.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,
            compare_type=True,
            render_item=_render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
