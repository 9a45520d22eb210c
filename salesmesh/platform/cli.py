"""The `salesmesh` command line: a click group whose subcommands come from each area.

Settings are read from the SALESMESH_* environment when a command first needs the runtime (never at
import), and every command opens its own session and commits once. Bad input raises `click.UsageError`
or `CliError`, which click prints as one line before exiting non-zero.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import update_wrapper
from typing import Any, TypeVar

import click
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A one-line reason; exits with status 1."""


def database_error(exc: DBAPIError) -> str:
    """Return one line saying why the database refused (and what to do when the schema is missing)."""
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    reason = lines[0].strip() if lines else type(exc).__name__
    no_schema = "connect" not in reason and any(m in reason for m in ("no such table", "does not exist"))
    if isinstance(exc, OperationalError | ProgrammingError) and no_schema:
        return f"the database has no salesmesh schema yet ({reason}): run `salesmesh db upgrade` first"
    if isinstance(exc, OperationalError):
        return f"cannot use the database at SALESMESH_DATABASE_URL: {reason}"
    return f"the database refused the command: {reason}"


class _Root(click.Group):
    """The root group: a database that is unreachable or has no schema is one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            raise CliError(database_error(exc)) from None


class CliState:
    def __init__(self, settings: Settings | None = None, runtime: Runtime | None = None) -> None:
        self._settings = settings
        self._runtime = runtime

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings.from_env()
            except SettingsError as exc:
                raise CliError(str(exc)) from None
        return self._settings

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = Runtime(self.settings)
            # Closing runs in-process jobs the command enqueued (embedded mode) and releases the pool.
            ctx = click.get_current_context(silent=True)
            if ctx is not None:
                ctx.call_on_close(self._runtime.close)
        return self._runtime


def pass_runtime(fn: F) -> F:
    """Decorate a command so it receives the Runtime as its first argument."""

    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        state = ctx.ensure_object(CliState)
        return ctx.invoke(fn, state.runtime, *args, **kwargs)

    return update_wrapper(wrapper, fn)  # type: ignore[return-value]


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """salesmesh: low-code sales collaboration (settings come from SALESMESH_* variables)."""
    ctx.ensure_object(CliState)


def _register() -> None:
    from salesmesh.metamodel.cli import definition_group, pack_group
    from salesmesh.platform.accounts_cli import team_group, user_group
    from salesmesh.platform.demo import demo_group
    from salesmesh.platform.jobs_cli import scheduler_command, worker_command
    from salesmesh.platform.server_cli import db_group, run_command
    from salesmesh.workflows.import_cli import leads_group
    from salesmesh.workflows.intake_cli import channel_group
    from salesmesh.workflows.public_form_cli import public_form_group

    for command in (
        db_group,
        run_command,
        user_group,
        team_group,
        pack_group,
        definition_group,
        worker_command,
        scheduler_command,
        demo_group,
        channel_group,
        leads_group,
        public_form_group,
    ):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        cli.main(args=argv, prog_name="salesmesh", standalone_mode=True)
    except SettingsError as exc:  # pragma: no cover - defensive
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
