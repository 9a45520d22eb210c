"""Every command answers --help, and the newcomer path works from the shell: `db upgrade`, a user,
`pack import` twice (the second changes nothing) — on SQLite here, on PostgreSQL in the
production-mode test below, in real subprocesses of the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, func, select

from salesmesh.metamodel.models import DefinitionVersion
from salesmesh.platform.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SALESMESH = str(Path(sys.executable).parent / "salesmesh")


def _walk(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_walk(command, (*prefix, name)))
    return paths


def test_every_command_has_help() -> None:
    paths = _walk(cli)
    expected = {
        ("db", "upgrade"),
        ("user", "create"),
        ("user", "list"),
        ("user", "deactivate"),
        ("team", "create"),
        ("pack", "validate"),
        ("pack", "import"),
        ("pack", "export"),
        ("definition", "list"),
        ("definition", "show"),
        ("definition", "validate"),
        ("run",),
        ("worker",),
        ("scheduler",),
        ("demo", "seed"),
    }
    assert expected <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def _sh(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SALESMESH, *args], cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=180
    )


def _env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESMESH_")}
    env.update(
        {
            "SALESMESH_DATABASE_URL": database_url,
            "SALESMESH_SECRET_KEY": "s" * 32,
            "SALESMESH_INSTANCE_PATH": str(tmp_path / "instance"),
            **extra,
        }
    )
    return env


def _newcomer_path(env: dict[str, str], database_url: str) -> None:
    up = _sh(env, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert "database at revision" in up.stdout
    made = _sh(
        env,
        "user",
        "create",
        "--email",
        "admin@example.test",
        "--name",
        "Admin",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a long enough password\n",
    )
    assert made.returncode == 0, made.stderr
    first = _sh(env, "pack", "import", str(ROOT / "packs" / "medical-device-direct"), "--yes")
    assert first.returncode == 0, first.stderr
    shipped = len(list((ROOT / "packs" / "medical-device-direct" / "definitions").rglob("*.json")))
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            published = conn.scalar(select(func.count()).select_from(DefinitionVersion))
        second = _sh(env, "pack", "import", str(ROOT / "packs" / "medical-device-direct"), "--yes")
        assert second.returncode == 0, second.stderr
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(DefinitionVersion)) == published == shipped
    finally:
        engine.dispose()  # also when an assertion fails: no connection left for the next test's warning
    assert "created" in first.stdout and "nothing" in (second.stdout + second.stderr).lower()
    listed = _sh(env, "definition", "list")
    assert listed.returncode == 0 and "md-sales" in listed.stdout


def test_newcomer_path_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    _newcomer_path(_env(tmp_path, url), url)


def test_newcomer_path_on_postgresql(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    _newcomer_path(_env(tmp_path, pg_url, SALESMESH_REDIS_URL=redis_url), pg_url)


@pytest.mark.parametrize(
    ("args", "env_extra", "needle"),
    [
        (["db", "upgrade"], {"SALESMESH_SECRET_KEY": ""}, "SALESMESH_SECRET_KEY"),
        (["db", "upgrade"], {"SALESMESH_DATABASE_URL": "mysql://x/y"}, "SALESMESH_DATABASE_URL"),
        (["pack", "validate", "/nonexistent/pack"], {}, "no such pack"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(
    tmp_path: Path, args: list[str], env_extra: dict[str, str], needle: str
) -> None:
    env = _env(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    env.update(env_extra)
    if env.get("SALESMESH_SECRET_KEY") == "":
        del env["SALESMESH_SECRET_KEY"]
    result = _sh(env, *args)
    assert result.returncode != 0
    assert needle in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
