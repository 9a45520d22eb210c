"""`salesmesh user ...` and `salesmesh team ...`: manage accounts and teams from the shell.

Commands act as the system (actor None), call the services of `salesmesh.platform.accounts` in one
session and commit once. Bad input (duplicate e-mail, unknown role, short password, unknown team or
user) exits non-zero with one line naming the field. Passwords are best given on stdin
(`--password-stdin`) so they stay out of the shell history; API token secrets are printed once.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from salesmesh.platform import accounts
from salesmesh.platform.cli import CliError, pass_runtime
from salesmesh.platform.credentials import find_user_by_email
from salesmesh.platform.models import ROLES, ApiToken, Team, User
from salesmesh.platform.runtime import Runtime


def _read_password(password: str | None, from_stdin: bool) -> str:
    if password is not None and from_stdin:
        raise click.UsageError("give either --password or --password-stdin, not both")
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if password is None:
        raise click.UsageError("a password is required: --password-stdin (recommended) or --password")
    return password


def _user(session: Session, email: str) -> User:
    user = find_user_by_email(session, email)
    if user is None:
        raise CliError(f"unknown user {email!r}")
    return user


def _team(session: Session, key: str) -> Team:
    team = accounts.find_team(session, key)
    if team is None:
        raise CliError(f"unknown team {key!r}")
    return team


def _run(rt: Runtime, work: Any) -> Any:
    """Run `work(session)` in one transaction; service errors become one-line CLI errors."""
    try:
        with rt.db.session_scope() as session:
            return work(session)
    except accounts.AccountError as exc:
        raise CliError(str(exc)) from None


# --- user ---------------------------------------------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Create, list and deactivate accounts; set passwords; manage API tokens."""


@user_group.command("create")
@click.option("--email", required=True, help="Sign-in e-mail (unique).")
@click.option("--name", required=True, help="Display name.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="admin, ops, lead or rep.")
@click.option("--team", "team_key", default=None, help="Key of the team to join.")
@click.option("--password", default=None, help="Initial password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option(
    "--attributes", default=None, help="Rep attributes as a JSON object, e.g. '{\"years_medical\": 6}'."
)
@click.option("--locale", type=click.Choice(["en", "zh"]), default=None, help="Interface language.")
@pass_runtime
def user_create(
    rt: Runtime,
    email: str,
    name: str,
    role: str,
    team_key: str | None,
    password: str | None,
    password_stdin: bool,
    attributes: str | None,
    locale: str | None,
) -> None:
    """Create an account."""
    secret = _read_password(password, password_stdin)
    attrs: Any = None
    if attributes is not None:
        try:
            attrs = json.loads(attributes)
        except ValueError as exc:
            raise CliError(f"--attributes is not valid JSON: {exc}") from None

    def work(session: Session) -> str:
        team_id = _team(session, team_key).id if team_key else None
        user = accounts.create_user(
            session,
            None,
            email=email,
            name=name,
            role=role,
            password=secret,
            team_id=team_id,
            attributes=attrs,
            locale=locale,
            clock=rt.clock,
        )
        return f"created user {user.id} {user.email} ({user.role})"

    click.echo(_run(rt, work))


@user_group.command("list")
@click.option("--role", type=click.Choice(ROLES), default=None, help="Only this role.")
@click.option("--team", "team_key", default=None, help="Only members of this team.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@pass_runtime
def user_list(rt: Runtime, role: str | None, team_key: str | None, as_json: bool) -> None:
    """List accounts."""

    def work(session: Session) -> list[dict[str, Any]]:
        stmt = select(User).order_by(User.id)
        if role:
            stmt = stmt.where(User.role == role)
        if team_key:
            stmt = stmt.where(User.team_id == _team(session, team_key).id)
        return [
            {
                "id": u.id,
                "email": u.email,
                "name": u.name,
                "role": u.role,
                "team": u.team.key if u.team else None,
                "active": u.active,
            }
            for u in session.scalars(stmt)
        ]

    rows = _run(rt, work)
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            state = "active" if row["active"] else "deactivated"
            team = row["team"] or "-"
            click.echo(
                f"{row['id']:>5}  {row['email']:<36} {row['role']:<6} {team:<22} {state}  {row['name']}"
            )


@user_group.command("deactivate")
@click.argument("email")
@pass_runtime
def user_deactivate(rt: Runtime, email: str) -> None:
    """Deactivate an account and end all its sessions and API tokens."""

    def work(session: Session) -> str:
        user = accounts.deactivate_user(session, None, _user(session, email).id, clock=rt.clock)
        return f"deactivated {user.email}"

    click.echo(_run(rt, work))


@user_group.command("set-password")
@click.argument("email")
@click.option("--password", default=None, help="New password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@pass_runtime
def user_set_password(rt: Runtime, email: str, password: str | None, password_stdin: bool) -> None:
    """Set a new password (every session of the account ends)."""
    secret = _read_password(password, password_stdin)

    def work(session: Session) -> str:
        user = accounts.change_password(session, None, _user(session, email).id, secret, clock=rt.clock)
        return f"password changed for {user.email}; its sessions were ended"

    click.echo(_run(rt, work))


@user_group.group("token")
def token_group() -> None:
    """API tokens (sent as `Authorization: Bearer <token>` to /api/ URLs)."""


@token_group.command("create")
@click.argument("email")
@click.option("--label", required=True, help="What the token is for.")
@pass_runtime
def token_create(rt: Runtime, email: str, label: str) -> None:
    """Create an API token and print its secret (shown only this once)."""

    def work(session: Session) -> tuple[int, str]:
        token, plaintext = accounts.create_api_token(
            session, None, _user(session, email).id, label=label, clock=rt.clock
        )
        return token.id, plaintext

    token_id, plaintext = _run(rt, work)
    click.echo(f"token {token_id} created; copy the secret now, it is not stored:", err=True)
    click.echo(plaintext)


@token_group.command("revoke")
@click.argument("token_id", type=int)
@pass_runtime
def token_revoke(rt: Runtime, token_id: int) -> None:
    """Revoke an API token by id."""

    def work(session: Session) -> str:
        token = accounts.revoke_api_token(session, None, token_id, clock=rt.clock)
        return f"token {token.id} revoked"

    click.echo(_run(rt, work))


@token_group.command("list")
@click.argument("email")
@pass_runtime
def token_list(rt: Runtime, email: str) -> None:
    """List the API tokens of an account (never their secrets)."""

    def work(session: Session) -> list[str]:
        user = _user(session, email)
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
        return [
            f"{t.id:>5}  {'revoked' if t.revoked_at else 'active ':<7}  {t.created_at:%Y-%m-%d}  {t.label}"
            for t in tokens
        ]

    for line in _run(rt, work):
        click.echo(line)


# --- team ---------------------------------------------------------------------------------------------


@click.group("team")
def team_group() -> None:
    """Create and list teams; add members; set the lead."""


@team_group.command("create")
@click.option("--key", required=True, help="Short unique key, e.g. key-account-east.")
@click.option("--name", "name_en", required=True, help="Name in English.")
@click.option("--name-zh", default=None, help="Name in Chinese (defaults to the English name).")
@click.option("--lead", "lead_email", default=None, help="E-mail of the team lead (role lead).")
@pass_runtime
def team_create(rt: Runtime, key: str, name_en: str, name_zh: str | None, lead_email: str | None) -> None:
    """Create a team."""

    def work(session: Session) -> str:
        lead_id = _user(session, lead_email).id if lead_email else None
        team = accounts.create_team(
            session,
            None,
            key=key,
            name={"en": name_en, "zh": name_zh or name_en},
            lead_id=lead_id,
            clock=rt.clock,
        )
        return f"created team {team.id} {team.key}"

    click.echo(_run(rt, work))


@team_group.command("list")
@pass_runtime
def team_list(rt: Runtime) -> None:
    """List teams with their lead and number of active members."""

    def work(session: Session) -> list[str]:
        counts = dict(
            session.execute(
                select(User.team_id, func.count(User.id)).where(User.active.is_(True)).group_by(User.team_id)
            ).all()
        )
        return [
            f"{t.id:>4}  {t.key:<24} {t.lead.email if t.lead else '-':<32} {counts.get(t.id, 0):>4}  "
            f"{t.name.get('en', '')} / {t.name.get('zh', '')}"
            for t in session.scalars(select(Team).order_by(Team.key))
        ]

    for line in _run(rt, work):
        click.echo(line)


@team_group.command("add-member")
@click.argument("team_key")
@click.argument("email")
@pass_runtime
def team_add_member(rt: Runtime, team_key: str, email: str) -> None:
    """Put a user into a team."""

    def work(session: Session) -> str:
        team = _team(session, team_key)
        user = accounts.add_team_member(session, None, team.id, _user(session, email).id, clock=rt.clock)
        return f"{user.email} is now in team {team.key}"

    click.echo(_run(rt, work))


@team_group.command("set-lead")
@click.argument("team_key")
@click.argument("email")
@pass_runtime
def team_set_lead(rt: Runtime, team_key: str, email: str) -> None:
    """Make a lead-role user the lead of a team."""

    def work(session: Session) -> str:
        team = accounts.set_team_lead(
            session, None, _team(session, team_key).id, _user(session, email).id, clock=rt.clock
        )
        return f"{email} now leads team {team.key}"

    click.echo(_run(rt, work))
