"""`salesmesh user ...` and `salesmesh team ...` through click's CliRunner against a real SQLite file."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.models import ApiToken, Team, User
from salesmesh.platform.passwords import verify_password


@pytest.fixture
def run(runtime: Any) -> Any:
    def invoke(*args: str, stdin: str | None = None) -> Any:
        return CliRunner().invoke(
            cli, list(args), obj=CliState(settings=runtime.settings, runtime=runtime), input=stdin
        )

    return invoke


def _user(runtime: Any, email: str) -> User | None:
    with runtime.db.Session() as s:
        return s.scalars(select(User).where(User.email == email)).first()


def _one_line_error(result: Any) -> str:
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_user_create_with_password_on_stdin(run: Any, runtime: Any) -> None:
    result = run(
        "user",
        "create",
        "--email",
        "Li@Example.test",
        "--name",
        "李雷",
        "--role",
        "rep",
        "--password-stdin",
        stdin="a long enough secret\n",
    )
    assert result.exit_code == 0, result.output
    assert "created user" in result.output
    user = _user(runtime, "li@example.test")
    assert user is not None and user.role == "rep"
    assert user.password_hash.startswith("$argon2id$") and verify_password(
        user.password_hash, "a long enough secret"
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--email", "dup@example.test", "--role", "rep", "--password", "long enough pw"], "already used"),
        (["--email", "x@example.test", "--role", "rep", "--password", "short"], "at least 10"),
        (
            ["--email", "x@example.test", "--role", "rep", "--password", "long enough pw", "--team", "nope"],
            "unknown team 'nope'",
        ),
        (["--email", "not-an-email", "--role", "rep", "--password", "long enough pw"], "valid e-mail"),
        (
            [
                "--email",
                "x@example.test",
                "--role",
                "rep",
                "--password",
                "long enough pw",
                "--attributes",
                "{",
            ],
            "not valid JSON",
        ),
    ],
)
def test_user_create_refuses_bad_input_with_one_line(
    run: Any, runtime: Any, args: list[str], reason: str
) -> None:
    assert (
        run(
            "user",
            "create",
            "--email",
            "dup@example.test",
            "--name",
            "D",
            "--role",
            "rep",
            "--password",
            "long enough pw",
        ).exit_code
        == 0
    )
    result = run("user", "create", "--name", "X", *args)
    line = _one_line_error(result)
    assert line.startswith("Error:") and reason in line
    assert _user(runtime, "x@example.test") is None


def test_bad_role_and_missing_password_are_usage_errors(run: Any) -> None:
    result = run(
        "user", "create", "--email", "x@example.test", "--name", "X", "--role", "boss", "--password", "p" * 12
    )
    assert result.exit_code == 2 and "'boss' is not one of" in result.output
    result = run("user", "create", "--email", "x@example.test", "--name", "X", "--role", "rep")
    assert result.exit_code == 2 and "a password is required" in result.output


def test_user_list_deactivate_and_set_password(run: Any, runtime: Any) -> None:
    for email, role in (("a@example.test", "admin"), ("r@example.test", "rep")):
        assert (
            run(
                "user",
                "create",
                "--email",
                email,
                "--name",
                email[0],
                "--role",
                role,
                "--password",
                "long enough pw",
            ).exit_code
            == 0
        )
    listing = run("user", "list")
    assert (
        listing.exit_code == 0 and "a@example.test" in listing.output and "r@example.test" in listing.output
    )
    assert run("user", "list", "--role", "admin", "--json").output.count("\n") == 1

    assert (
        run("user", "set-password", "r@example.test", "--password-stdin", stdin="another long pw\n").exit_code
        == 0
    )
    user = _user(runtime, "r@example.test")
    assert (
        user is not None
        and verify_password(user.password_hash, "another long pw")
        and user.session_epoch == 1
    )

    result = run("user", "deactivate", "r@example.test")
    assert result.exit_code == 0 and "deactivated" in result.output
    assert "deactivated" in run("user", "list").output
    assert "unknown user 'ghost@example.test'" in _one_line_error(
        run("user", "deactivate", "ghost@example.test")
    )
    assert "last active admin" in _one_line_error(run("user", "deactivate", "a@example.test"))


def test_token_create_and_revoke(run: Any, runtime: Any, client: Any) -> None:
    run(
        "user",
        "create",
        "--email",
        "bot@example.test",
        "--name",
        "Bot",
        "--role",
        "ops",
        "--password",
        "long enough pw",
    )
    result = run("user", "token", "create", "bot@example.test", "--label", "phone sync")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("smt_")
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with runtime.db.Session() as s:
        token_id = s.scalars(select(ApiToken.id)).one()
    assert "active" in run("user", "token", "list", "bot@example.test").output
    assert run("user", "token", "revoke", str(token_id)).exit_code == 0
    assert client.get("/api/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert "unknown token 999" in _one_line_error(run("user", "token", "revoke", "999")).lower()


def test_team_commands(run: Any, runtime: Any) -> None:
    run(
        "user",
        "create",
        "--email",
        "lead@example.test",
        "--name",
        "L",
        "--role",
        "lead",
        "--password",
        "long enough pw",
    )
    run(
        "user",
        "create",
        "--email",
        "rep@example.test",
        "--name",
        "R",
        "--role",
        "rep",
        "--password",
        "long enough pw",
    )
    result = run("team", "create", "--key", "east", "--name", "East", "--name-zh", "华东")
    assert result.exit_code == 0, result.output
    assert run("team", "set-lead", "east", "lead@example.test").exit_code == 0
    assert run("team", "add-member", "east", "rep@example.test").exit_code == 0
    listing = run("team", "list")
    assert "east" in listing.output and "lead@example.test" in listing.output and "华东" in listing.output
    with runtime.db.Session() as s:
        team = s.scalars(select(Team)).one()
        assert team.lead_id is not None
        members = s.scalars(select(User.email).where(User.team_id == team.id).order_by(User.email)).all()
    assert members == ["lead@example.test", "rep@example.test"]
    assert "already exists" in _one_line_error(run("team", "create", "--key", "east", "--name", "Again"))
    assert "role lead" in _one_line_error(run("team", "set-lead", "east", "rep@example.test"))
    assert "unknown team 'west'" in _one_line_error(run("team", "add-member", "west", "rep@example.test"))


def test_every_command_has_help(run: Any) -> None:
    for args in (["user"], ["user", "create"], ["user", "token", "create"], ["team"], ["team", "set-lead"]):
        result = run(*args, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
