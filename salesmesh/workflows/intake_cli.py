"""`salesmesh channel ...`: manage the intake channels integrations post leads through.

`create KEY --label ...` prints the new signing secret once (on stdout, the notice on stderr, so
`SECRET=$(salesmesh channel create ...)` works); `rotate KEY` prints a new one and keeps the old one
valid until the next rotation; `list` shows channels without their secrets; `disable`/`enable` switch a
channel off and on. Every command runs in one transaction as the system (audited); bad input is one line.
"""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.intake_channels import (
    ChannelError,
    create_channel,
    rotate_channel_secret,
    set_channel_active,
)
from salesmesh.workflows.intake_models import IntakeChannel


def _run(rt: Runtime, work: Any) -> Any:
    """Run `work(session)` in one transaction; channel errors become one-line CLI errors."""
    try:
        with rt.db.session_scope() as session:
            return work(session)
    except ChannelError as exc:
        raise CliError(str(exc)) from None


@click.group("channel")
def channel_group() -> None:
    """Intake channels: who may POST /api/v1/leads, and the HMAC secrets they sign with."""


@channel_group.command("create")
@click.argument("key")
@click.option("--label", required=True, help="What the channel is, e.g. '400 hotline'.")
@click.option(
    "--form", "form_key", default=None, help="Lead form key (default: the only published routing's)."
)
@click.option(
    "--defaults",
    default=None,
    help="Form values used when a request leaves them out, as a JSON object.",
)
@pass_runtime
def channel_create(rt: Runtime, key: str, label: str, form_key: str | None, defaults: str | None) -> None:
    """Create a channel and print its secret (shown only this once)."""
    values: Any = {}
    if defaults is not None:
        try:
            values = json.loads(defaults)
        except ValueError as exc:
            raise CliError(f"--defaults is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise CliError("--defaults must be a JSON object")

    def work(session: Session) -> str:
        _channel, secret = create_channel(
            session, key=key, label=label, clock=rt.clock, form_key=form_key, defaults=values
        )
        return secret

    secret = _run(rt, work)
    click.echo(f"channel {key} created; copy the secret now, it is not shown again:", err=True)
    click.echo(secret)


@channel_group.command("rotate")
@click.argument("key")
@pass_runtime
def channel_rotate(rt: Runtime, key: str) -> None:
    """Give a channel a new secret; the old one stays valid until the next rotation."""
    secret = _run(rt, lambda session: rotate_channel_secret(session, key, clock=rt.clock))
    click.echo(f"channel {key} has a new secret; the previous one works until the next rotation:", err=True)
    click.echo(secret)


@channel_group.command("disable")
@click.argument("key")
@pass_runtime
def channel_disable(rt: Runtime, key: str) -> None:
    """Refuse the channel's requests from now on."""
    _run(rt, lambda session: set_channel_active(session, key, False, clock=rt.clock))
    click.echo(f"channel {key} disabled")


@channel_group.command("enable")
@click.argument("key")
@pass_runtime
def channel_enable(rt: Runtime, key: str) -> None:
    """Accept the channel's requests again."""
    _run(rt, lambda session: set_channel_active(session, key, True, clock=rt.clock))
    click.echo(f"channel {key} enabled")


@channel_group.command("list")
@pass_runtime
def channel_list(rt: Runtime) -> None:
    """List channels (never their secrets)."""

    def work(session: Session) -> list[str]:
        lines = []
        for c in session.scalars(select(IntakeChannel).order_by(IntakeChannel.key)):
            state = "active" if c.active else "disabled"
            rotated = c.rotated_at.isoformat() if c.rotated_at else "never"
            form = c.form_key or "-"
            lines.append(f"{c.key}\t{c.label}\t{state}\tform={form}\trotated={rotated}")
        return lines

    lines = _run(rt, work)
    click.echo("\n".join(lines) if lines else "no channels")
