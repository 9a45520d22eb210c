"""Settings: one validated, immutable object built from a mapping or the SALESMESH_* environment.

Nothing here reads the environment at import time; `Settings.from_env()` is called by the CLI and the
WSGI entry point, tests build `Settings(...)` directly. Invalid values raise `SettingsError` naming the
variable, so a misconfigured process stops at start-up with one clear line.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

ENV_PREFIX = "SALESMESH_"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    redis_url: str | None = None
    secret_key: str = ""
    instance_path: Path = field(default_factory=lambda: Path("instance").resolve())
    # Where form attachments are stored (None = <instance>/uploads).
    upload_dir: Path | None = None
    demo_mode: bool = False
    testing: bool = False
    max_request_bytes: int = 2 * 1024 * 1024
    max_json_depth: int = 32
    session_idle_minutes: int = 60 * 12
    login_max_failures: int = 5
    login_window_minutes: int = 15
    job_queue: str = "salesmesh"
    sweeper_interval_seconds: float = 2.0
    sweeper_batch_size: int = 200
    timer_lease_seconds: int = 120
    # How long a claimed outbox message stays with its sender before another may send it (again): longer
    # than a batch of sends with their timeouts, or a slow batch is sent twice.
    outbox_lease_seconds: int = 600
    default_locale: str = "en"
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto (0 = none): without this,
    # behind nginx every client has the proxy's address and per-address login throttling is global.
    proxy_hops: int = 0
    # Send cookies only over HTTPS; None = on, except in demo and test mode (plain http on localhost).
    secure_cookies: bool | None = None
    # Outgoing e-mail (notifications): SMTP is "configured" when host and sender are both set.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    # Outgoing webhooks: {notification kind or "*": URL}, signed with webhook_secret (HMAC-SHA256).
    notify_webhooks: Mapping[str, str] = field(default_factory=dict)
    webhook_secret: str | None = None
    # Where people open the app (https://crm.example.com); links in e-mails need it.
    base_url: str | None = None
    # Action-pack webhooks: named signing secrets, and the hosts/networks they may call although private.
    webhook_secrets: Mapping[str, str] = field(default_factory=dict)
    webhook_allowlist: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance_path", Path(self.instance_path).resolve())
        if self.upload_dir is not None:
            object.__setattr__(self, "upload_dir", Path(self.upload_dir).resolve())
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.instance_path / 'salesmesh.db'}")
        if not self.database_url.startswith(("sqlite", "postgresql")):
            raise SettingsError(
                f"{ENV_PREFIX}DATABASE_URL: unsupported database {self.database_url.split(':')[0]!r} "
                "(use sqlite:///path or postgresql+psycopg://...)"
            )
        if self.database_url.startswith("postgresql://"):
            object.__setattr__(
                self, "database_url", "postgresql+psycopg://" + self.database_url[len("postgresql://") :]
            )
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError(f"{ENV_PREFIX}REDIS_URL: must start with redis://, rediss:// or unix://")
        if not self.secret_key:
            if self.demo_mode or self.testing:
                object.__setattr__(self, "secret_key", secrets.token_hex(32))
            else:
                raise SettingsError(
                    f"{ENV_PREFIX}SECRET_KEY: required outside demo mode (e.g. `python -c "
                    "'import secrets; print(secrets.token_hex(32))'`)"
                )
        if len(self.secret_key) < 16:
            raise SettingsError(f"{ENV_PREFIX}SECRET_KEY: must be at least 16 characters")
        if self.secure_cookies is None:
            object.__setattr__(self, "secure_cookies", not (self.demo_mode or self.testing))
        if not 0 <= self.proxy_hops <= 5:
            raise SettingsError(f"{ENV_PREFIX}PROXY_HOPS: must be between 0 and 5")
        if self.default_locale not in ("en", "zh"):
            raise SettingsError(f"{ENV_PREFIX}DEFAULT_LOCALE: must be 'en' or 'zh'")
        for name in (
            "max_request_bytes",
            "max_json_depth",
            "sweeper_batch_size",
            "timer_lease_seconds",
            "outbox_lease_seconds",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()}: must be a positive number")
        self._check_outgoing()

    def _check_outgoing(self) -> None:
        if not 1 <= self.smtp_port <= 65535:
            raise SettingsError(f"{ENV_PREFIX}SMTP_PORT: must be between 1 and 65535")
        if self.smtp_host and not self.smtp_from:
            raise SettingsError(f"{ENV_PREFIX}SMTP_FROM: required when SALESMESH_SMTP_HOST is set")
        if self.smtp_from is not None and "@" not in self.smtp_from:
            raise SettingsError(f"{ENV_PREFIX}SMTP_FROM: must be an e-mail address")
        if self.smtp_timeout_seconds <= 0:
            raise SettingsError(f"{ENV_PREFIX}SMTP_TIMEOUT_SECONDS: must be a positive number")
        for kind, url in self.notify_webhooks.items():
            if not url.startswith(("https://", "http://")):
                raise SettingsError(f"{ENV_PREFIX}NOTIFY_WEBHOOKS: {kind}: the URL must start with https://")
        if self.notify_webhooks and not self.webhook_secret:
            raise SettingsError(f"{ENV_PREFIX}WEBHOOK_SECRET: required when SALESMESH_NOTIFY_WEBHOOKS is set")
        if self.webhook_secret is not None and len(self.webhook_secret) < 16:
            raise SettingsError(f"{ENV_PREFIX}WEBHOOK_SECRET: must be at least 16 characters")
        if self.base_url is not None and not self.base_url.startswith(("https://", "http://")):
            raise SettingsError(f"{ENV_PREFIX}BASE_URL: must start with https:// or http://")

    @property
    def smtp_configured(self) -> bool:
        """Tell whether notifications may be e-mailed (an SMTP host and a sender are set)."""
        return bool(self.smtp_host and self.smtp_from)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def with_(self, **changes: object) -> Settings:
        """Return a copy with some values changed."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from SALESMESH_* variables (the process environment by default)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        plain = {
            "DATABASE_URL": "database_url",
            "REDIS_URL": "redis_url",
            "SECRET_KEY": "secret_key",
            "INSTANCE_PATH": "instance_path",
            "UPLOAD_DIR": "upload_dir",
            "DEFAULT_LOCALE": "default_locale",
            "JOB_QUEUE": "job_queue",
            "SMTP_HOST": "smtp_host",
            "SMTP_FROM": "smtp_from",
            "SMTP_USER": "smtp_username",
            "SMTP_PASSWORD": "smtp_password",
            "WEBHOOK_SECRET": "webhook_secret",
            "BASE_URL": "base_url",
        }
        for var, attr in plain.items():
            raw = env.get(ENV_PREFIX + var)
            if raw:
                values[attr] = raw
        integers = {
            "MAX_REQUEST_BYTES": "max_request_bytes",
            "MAX_JSON_DEPTH": "max_json_depth",
            "SESSION_IDLE_MINUTES": "session_idle_minutes",
            "SWEEPER_BATCH_SIZE": "sweeper_batch_size",
            "TIMER_LEASE_SECONDS": "timer_lease_seconds",
            "OUTBOX_LEASE_SECONDS": "outbox_lease_seconds",
            "PROXY_HOPS": "proxy_hops",
            "SMTP_PORT": "smtp_port",
        }
        for var, attr in integers.items():
            raw = env.get(ENV_PREFIX + var)
            if raw:
                try:
                    values[attr] = int(raw)
                except ValueError:
                    raise SettingsError(f"{ENV_PREFIX}{var}: expected an integer, got {raw!r}") from None
        raw = env.get(ENV_PREFIX + "SWEEPER_INTERVAL_SECONDS")
        if raw:
            try:
                values["sweeper_interval_seconds"] = float(raw)
            except ValueError:
                raise SettingsError(
                    f"{ENV_PREFIX}SWEEPER_INTERVAL_SECONDS: expected a number, got {raw!r}"
                ) from None
        raw = env.get(ENV_PREFIX + "NOTIFY_WEBHOOKS")
        if raw:
            values["notify_webhooks"] = _webhook_map(raw)
        raw = env.get(ENV_PREFIX + "WEBHOOK_SECRETS")
        if raw:
            values["webhook_secrets"] = _named_secrets(raw)
        raw = env.get(ENV_PREFIX + "WEBHOOK_ALLOWLIST")
        if raw:
            values["webhook_allowlist"] = tuple(item.strip() for item in raw.split(",") if item.strip())
        for var, attr in (
            ("DEMO", "demo_mode"),
            ("SECURE_COOKIES", "secure_cookies"),
            ("SMTP_STARTTLS", "smtp_starttls"),
        ):
            flag = env.get(ENV_PREFIX + var, "")
            if flag:
                if flag.lower() not in ("0", "1", "true", "false", "yes", "no"):
                    raise SettingsError(f"{ENV_PREFIX}{var}: expected 1/0/true/false, got {flag!r}")
                values[attr] = flag.lower() in ("1", "true", "yes")
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def _webhook_map(raw: str) -> dict[str, str]:
    """Parse `kind=url,kind=url` (kind "*" = every notification kind)."""
    mapping: dict[str, str] = {}
    for item in raw.split(","):
        kind, sep, url = item.strip().partition("=")
        if not sep or not kind.strip() or not url.strip():
            raise SettingsError(f"{ENV_PREFIX}NOTIFY_WEBHOOKS: expected kind=url pairs separated by commas")
        mapping[kind.strip()] = url.strip()
    return mapping


def _named_secrets(raw: str) -> dict[str, str]:
    """Parse `name=secret,name=secret` (each secret at least 16 characters)."""
    secrets_by_name: dict[str, str] = {}
    for item in raw.split(","):
        name, sep, secret = item.strip().partition("=")
        if not sep or not name.strip():
            raise SettingsError(
                f"{ENV_PREFIX}WEBHOOK_SECRETS: expected name=secret pairs separated by commas"
            )
        if len(secret.strip()) < 16:
            raise SettingsError(f"{ENV_PREFIX}WEBHOOK_SECRETS: {name.strip()}: at least 16 characters")
        secrets_by_name[name.strip()] = secret.strip()
    return secrets_by_name
