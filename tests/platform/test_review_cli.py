"""Review findings in the command line: every bad-input path exits non-zero with one line and no
traceback — a database that is unreachable or has no schema yet, an unknown migration revision, an
export target that cannot be written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from salesmesh.platform.cli import CliState, cli
from salesmesh.platform.settings import Settings

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"  # port 1: refused at once


def _invoke(settings: Settings, *args: str, runtime: Any = None) -> Any:
    return CliRunner().invoke(cli, list(args), obj=CliState(settings=settings, runtime=runtime))


def _one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # click's error path, no traceback
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize(
    "args", [("user", "list"), ("definition", "list"), ("team", "list"), ("scheduler", "--once")]
)
def test_a_database_without_the_schema_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}", instance_path=tmp_path, testing=True
    )
    line = _one_line_error(_invoke(settings, *args))
    assert "salesmesh db upgrade" in line


@pytest.mark.parametrize("args", [("db", "upgrade"), ("user", "list"), ("scheduler", "--once")])
def test_an_unreachable_postgresql_is_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    settings = Settings(database_url=UNREACHABLE_PG, instance_path=tmp_path, testing=True)
    line = _one_line_error(_invoke(settings, *args))
    assert "cannot use the database" in line and "refused" in line


def test_an_unknown_revision_is_one_line(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", instance_path=tmp_path, testing=True
    )
    line = _one_line_error(_invoke(settings, "db", "upgrade", "--revision", "nonsense"))
    assert line == "Error: cannot upgrade the schema: Can't locate revision identified by 'nonsense'"


@pytest.mark.parametrize("target", ["blocker/pack", "blocker/pack.zip"])
def test_an_unwritable_export_target_is_one_line(runtime: Any, tmp_path: Path, target: str) -> None:
    from salesmesh.metamodel import packs
    from tests.metamodel.pack_samples import simple_pack

    with runtime.db.session_scope() as s:
        packs.apply_import(s, None, packs.load_pack(simple_pack(tmp_path / "p")), runtime.clock)
    (tmp_path / "blocker").write_text("a file where a folder is needed", encoding="utf-8")
    out = tmp_path / target
    line = _one_line_error(
        _invoke(runtime.settings, "pack", "export", "test-pack", "--out", str(out), runtime=runtime)
    )
    assert line.startswith(f"Error: cannot write {out}: ")


def test_verify_audit_reports_an_intact_and_a_broken_chain(runtime: Any) -> None:
    """deployment.md tells operators to check the audit chain after a restore: the command exists."""
    from sqlalchemy import update

    from salesmesh.platform.audit import AuditEvent, record_event

    with runtime.db.session_scope() as s:
        for n in range(3):
            record_event(s, at=runtime.clock.now(), actor_id=None, action="test.event", payload={"n": n})
    ok = _invoke(runtime.settings, "db", "verify-audit", runtime=runtime)
    assert ok.exit_code == 0 and ok.output.strip() == "audit chain intact: 3 event(s)"
    with runtime.db.session_scope() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(payload={"n": 99}))
    line = _one_line_error(_invoke(runtime.settings, "db", "verify-audit", runtime=runtime))
    assert "broken at sequence number 2" in line


def test_run_refuses_a_port_that_does_not_exist(runtime: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 99999 used to be served silently on 99999 % 65536 = 34463."""
    from flask import Flask

    served: list[int] = []
    monkeypatch.setattr(Flask, "run", lambda self, **kw: served.append(kw["port"]))
    result = _invoke(runtime.settings, "run", "--port", "99999", runtime=runtime)
    assert result.exit_code == 2 and "99999 is not in the range 1<=x<=65535" in result.output
    assert served == []
