"""Settings come only from what is passed in, and bad values fail with the variable's name."""

from pathlib import Path

import pytest

from salesmesh.platform.settings import Settings, SettingsError


def test_from_env_reads_only_given_mapping(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "SALESMESH_DATABASE_URL": "postgresql://u@h/db",
            "SALESMESH_REDIS_URL": "redis://127.0.0.1:6379/0",
            "SALESMESH_SECRET_KEY": "x" * 32,
            "SALESMESH_INSTANCE_PATH": str(tmp_path),
            "SALESMESH_SWEEPER_BATCH_SIZE": "50",
            "SALESMESH_OUTBOX_LEASE_SECONDS": "5",
        }
    )
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.sweeper_batch_size == 50
    assert s.outbox_lease_seconds == 5
    assert s.instance_path == tmp_path.resolve()


def test_sqlite_default_lives_in_instance_folder(tmp_path: Path) -> None:
    s = Settings.from_env({"SALESMESH_DEMO": "1", "SALESMESH_INSTANCE_PATH": str(tmp_path)})
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'salesmesh.db'}"
    assert s.demo_mode and len(s.secret_key) >= 32


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "SALESMESH_SECRET_KEY"),
        ({"SALESMESH_SECRET_KEY": "short"}, "SALESMESH_SECRET_KEY"),
        ({"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_DATABASE_URL": "mysql://x"}, "SALESMESH_DATABASE_URL"),
        ({"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_REDIS_URL": "http://x"}, "SALESMESH_REDIS_URL"),
        (
            {"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_SWEEPER_BATCH_SIZE": "lots"},
            "SALESMESH_SWEEPER_BATCH_SIZE",
        ),
        ({"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_DEMO": "maybe"}, "SALESMESH_DEMO"),
        (
            {"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_OUTBOX_LEASE_SECONDS": "0"},
            "SALESMESH_OUTBOX_LEASE_SECONDS",
        ),
        ({"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_DEFAULT_LOCALE": "fr"}, "SALESMESH_DEFAULT_LOCALE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


def test_importing_the_app_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import os

    seen: list[str] = []
    real_get = os.environ.get

    def spy(key: str, default: object = None) -> object:
        if key.startswith("SALESMESH_"):
            seen.append(key)
        return real_get(key, default)

    monkeypatch.setattr(os.environ, "get", spy)
    import salesmesh.platform.app as app_module

    importlib.reload(app_module)
    assert seen == []


def test_cookies_are_secure_by_default_outside_demo_and_tests(tmp_path: Path) -> None:
    base = {"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(base).secure_cookies is True
    assert Settings.from_env({**base, "SALESMESH_DEMO": "1"}).secure_cookies is False
    assert Settings.from_env({**base, "SALESMESH_SECURE_COOKIES": "0"}).secure_cookies is False
    with pytest.raises(SettingsError, match="SALESMESH_PROXY_HOPS"):
        Settings.from_env({**base, "SALESMESH_PROXY_HOPS": "9"})


def test_proxy_hops_give_the_client_address_to_login_throttling(tmp_path: Path) -> None:
    from flask import request

    from salesmesh.platform.app import create_app

    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'p.db'}", instance_path=tmp_path, testing=True, proxy_hops=1
    )
    app = create_app(settings)
    seen = {}

    @app.get("/_ip")
    def _ip() -> str:
        seen["ip"] = request.remote_addr
        return "ok"

    app.test_client().get(
        "/_ip", headers={"X-Forwarded-For": "203.0.113.7"}, environ_base={"REMOTE_ADDR": "10.0.0.1"}
    )
    assert seen["ip"] == "203.0.113.7"
    assert app.config["SESSION_COOKIE_SECURE"] is False  # testing


def test_upload_dir_from_env(tmp_path: Path) -> None:
    base = {"SALESMESH_SECRET_KEY": "k" * 20, "SALESMESH_INSTANCE_PATH": str(tmp_path)}
    assert Settings.from_env(base).upload_dir is None
    assert (
        Settings.from_env({**base, "SALESMESH_UPLOAD_DIR": str(tmp_path / "up")}).upload_dir
        == tmp_path / "up"
    )
