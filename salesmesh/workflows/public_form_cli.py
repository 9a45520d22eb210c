"""`salesmesh public-form ...`: open lead forms to the public at `/f/<form key>`, and close them again.

`enable KEY` opens (or reconfigures) a published lead form: `--channel` is the source channel its leads
are recorded with (default web_form), `--presets` a JSON object of values the visitor does not fill in,
`--embed-on ORIGIN` (repeatable) the sites allowed to show it in an iframe (`--no-embedding` clears
them), `--per-ip`/`--per-form` the hourly submission limits. `disable KEY` closes it; `list` shows each
public form with its last 24 hours of submissions by outcome (accepted, duplicate, invalid, honeypot,
too_fast). Every command runs in one transaction as the system (audited); bad input is one line.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.runtime import Runtime
from salesmesh.workflows.public_form_models import PublicForm
from salesmesh.workflows.public_forms import (
    PublicFormError,
    attempt_counts,
    disable_public_form,
    enable_public_form,
)


def _run(rt: Runtime, work: Any) -> Any:
    """Run `work(session)` in one transaction; public form errors become one-line CLI errors."""
    try:
        with rt.db.session_scope() as session:
            return work(session)
    except PublicFormError as exc:
        raise CliError(str(exc)) from None


@click.group("public-form")
def public_form_group() -> None:
    """Public web forms: which lead forms anyone may fill in at /f/<form key>."""


@public_form_group.command("enable")
@click.argument("form_key")
@click.option("--channel", default=None, help="Source channel recorded on its leads (default web_form).")
@click.option("--presets", default=None, help="Values the visitor does not fill in, as a JSON object.")
@click.option("--embed-on", "embed_on", multiple=True, help="An origin allowed to embed the form (repeat).")
@click.option("--no-embedding", is_flag=True, help="Allow no other site to embed the form.")
@click.option("--per-ip", type=int, default=None, help="Submissions per hour from one address (default 20).")
@click.option("--per-form", type=int, default=None, help="Submissions per hour in total (default 500).")
@pass_runtime
def public_form_enable(
    rt: Runtime,
    form_key: str,
    channel: str | None,
    presets: str | None,
    embed_on: tuple[str, ...],
    no_embedding: bool,
    per_ip: int | None,
    per_form: int | None,
) -> None:
    """Open a published lead form to the public (or change its settings)."""
    values: Any = None
    if presets is not None:
        try:
            values = json.loads(presets)
        except ValueError as exc:
            raise CliError(f"--presets is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise CliError("--presets must be a JSON object")
    if embed_on and no_embedding:
        raise CliError("--embed-on and --no-embedding contradict each other")
    origins = [] if no_embedding else list(embed_on) if embed_on else None

    def work(session: Session) -> PublicForm:
        return enable_public_form(
            session,
            form_key,
            clock=rt.clock,
            channel=channel,
            presets=values,
            frame_ancestors=origins,
            per_ip_per_hour=per_ip,
            per_form_per_hour=per_form,
        )

    config = _run(rt, work)
    embed = ", ".join(config.frame_ancestors) or "this site only"
    click.echo(
        f"public form {form_key} enabled at /f/{form_key} (channel {config.channel}; embeddable on: {embed})"
    )


@public_form_group.command("disable")
@click.argument("form_key")
@pass_runtime
def public_form_disable(rt: Runtime, form_key: str) -> None:
    """Close a public form (404 until enabled again)."""
    _run(rt, lambda session: disable_public_form(session, form_key, clock=rt.clock))
    click.echo(f"public form {form_key} disabled")


@public_form_group.command("list")
@pass_runtime
def public_form_list(rt: Runtime) -> None:
    """List public forms with their last 24 hours of submissions by outcome."""

    def work(session: Session) -> list[str]:
        counts = attempt_counts(session, rt.clock.now() - timedelta(hours=24))
        lines = []
        for c in session.scalars(select(PublicForm).order_by(PublicForm.form_key)):
            state = "active" if c.active else "disabled"
            seen = counts.get(c.form_key, {})
            last_day = ", ".join(f"{k}={v}" for k, v in sorted(seen.items())) or "none"
            embed = ",".join(c.frame_ancestors) or "-"
            lines.append(
                f"{c.form_key}\t{state}\tchannel={c.channel}\tembed={embed}"
                f"\tlimits={c.per_ip_per_hour}/ip,{c.per_form_per_hour}/form per hour\t24h: {last_day}"
            )
        return lines

    lines = _run(rt, work)
    click.echo("\n".join(lines) if lines else "no public forms")
