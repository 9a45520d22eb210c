"""`salesmesh db upgrade|current|verify-audit` and `salesmesh run`: the schema (Alembic is the only way it
is made), the audit log's hash chain (checked after a restore) and the development server (embedded mode
also starts the in-process job runner and sweeper).
"""

from __future__ import annotations

import click
from alembic.util import CommandError
from sqlalchemy import func, select

from salesmesh.platform.audit import AuditEvent, verify_chain
from salesmesh.platform.cli import CliError, CliState, pass_runtime
from salesmesh.platform.migrate import current_revision, upgrade_database
from salesmesh.platform.runtime import Runtime


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_runtime
def db_upgrade(rt: Runtime, revision: str) -> None:
    """Create or upgrade the schema to the latest revision."""
    rt.settings.instance_path.mkdir(parents=True, exist_ok=True)
    try:
        upgrade_database(rt.settings.database_url, revision)
    except CommandError as exc:  # e.g. an unknown --revision, or the migrations folder is missing
        raise CliError(f"cannot upgrade the schema: {str(exc).splitlines()[0]}") from None
    click.echo(f"database at revision {current_revision(rt.settings.database_url)}")


@db_group.command("current")
@pass_runtime
def db_current(rt: Runtime) -> None:
    """Print the schema revision of the database."""
    click.echo(current_revision(rt.settings.database_url) or "(empty)")


@db_group.command("verify-audit")
@pass_runtime
def db_verify_audit(rt: Runtime) -> None:
    """Recompute the audit log's hash chain; exit 1 naming the first event that breaks it."""
    with rt.db.Session() as session:
        broken = verify_chain(session)
        events = session.scalar(select(func.count()).select_from(AuditEvent))
    if broken is not None:
        raise CliError(
            f"the audit chain is broken at sequence number {broken} (history edited, deleted or reordered)"
        )
    click.echo(f"audit chain intact: {events} event(s)")


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--debug/--no-debug", default=False)
@click.pass_context
def run_command(ctx: click.Context, host: str, port: int, debug: bool) -> None:
    """Serve the app with the development server (plus in-process jobs and sweeper when embedded)."""
    from salesmesh.platform.app import create_app
    from salesmesh.platform.embedded import start_background

    state = ctx.ensure_object(CliState)
    app = create_app(state.settings, runtime=state.runtime)
    stop = start_background(state.runtime)
    try:
        app.run(host=host, port=port, debug=debug, use_reloader=False, threaded=True)
    finally:
        stop()
