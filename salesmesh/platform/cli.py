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

from salesmesh.platform.runtime import Runtime
from salesmesh.platform.settings import Settings, SettingsError

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A one-line reason; exits with status 1."""


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
