"""Outbound HTTP to addresses that people configure (action-pack webhooks), safe against SSRF.

`check_target(url, allowlist)` parses the URL and resolves its host; it refuses (EgressRefused) any
address that is private, loopback, link-local, multicast, reserved or unspecified (IPv4-mapped IPv6
included) unless the host name or one of its addresses is on the allow-list (`SALESMESH_WEBHOOK_ALLOWLIST`:
host names and CIDR networks). `send(...)` checks again at send time and connects to the very address it
checked (the Host header and TLS name stay the URL's host), so a DNS answer that changes between check
and connect (rebinding) cannot redirect the request; redirects are never followed. The outbox sends
webhook messages marked `guarded` (action-pack webhooks, whose URLs ops people write) through
`send_guarded_webhook`: signed like every outbox webhook, with the named secret the step chose
(`SALESMESH_WEBHOOK_SECRETS`, else `SALESMESH_WEBHOOK_SECRET`) and its method (POST or PUT).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from salesmesh.platform.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_RESPONSE = 64 * 1024


class EgressRefused(ValueError):
    """The target may not be called (bad URL, private address, unresolvable host); the message says why."""


@dataclass(frozen=True)
class Allowlist:
    """Host names and networks that may be called although private (e.g. an internal CRM bridge)."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[str]) -> Allowlist:
        """Read host names and CIDR networks (ValueError naming a bad entry)."""
        hosts, networks = set(), []
        for raw in items:
            item = raw.strip().lower()
            if not item:
                continue
            if "/" in item or item.replace(".", "").isdigit() or ":" in item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ValueError(f"{raw!r} is neither a host name nor an IP network") from None
            else:
                hosts.add(item.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress | None = None) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return address is not None and any(address in network for network in self.networks)


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (`address`) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _forbidden(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def check_target(url: str, allowlist: Allowlist, *, resolve: Any = socket.getaddrinfo) -> Target:
    """Parse and resolve `url`; return where to connect, or raise EgressRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EgressRefused(f"{url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EgressRefused(f"{url!r}: only http(s) URLs with a host can be called")
    if parts.username or parts.password:
        raise EgressRefused(f"{url!r}: credentials in the URL are not allowed")
    host = parts.hostname
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise EgressRefused(f"{host}: cannot resolve the host ({exc})") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise EgressRefused(f"{host}: the host has no address")
    for address in addresses:
        if _forbidden(address) and not allowlist.allows(host, address):
            raise EgressRefused(
                f"{host} resolves to {address}, a private, loopback, link-local or multicast address; "
                "an admin must allow-list it (SALESMESH_WEBHOOK_ALLOWLIST)"
            )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host, port, path, str(addresses[0]))


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def send(
    url: str,
    *,
    method: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    allowlist: Allowlist,
    resolve: Any = socket.getaddrinfo,
) -> int:
    """Send one request to a checked address (no redirects); return the HTTP status."""
    if method not in ("POST", "PUT"):
        raise EgressRefused(f"method {method!r}: only POST and PUT are sent")
    target = check_target(url, allowlist, resolve=resolve)
    conn: http.client.HTTPConnection = (
        _PinnedHTTPS(target, timeout) if target.scheme == "https" else _PinnedHTTP(target, timeout)
    )
    try:
        conn.request(method, target.path, body=body, headers=dict(headers))
        response = conn.getresponse()
        response.read(MAX_RESPONSE)
        return response.status
    finally:
        conn.close()


def secret_for(secrets: Mapping[str, str], default: str | None, name: str | None) -> str | None:
    """Return the signing secret called `name` (the default secret when no name is given)."""
    if name:
        return secrets.get(name)
    return default


def send_guarded_webhook(
    settings: Settings, recipient: str, payload: Mapping[str, Any], key: str, now: datetime
) -> None:
    """Send one outbox webhook through the SSRF checks; raise the outbox's DeliveryError on failure."""
    from salesmesh.platform.outbox import USER_AGENT, DeliveryError, sign_webhook

    name = payload.get("secret_name")
    secret = secret_for(settings.webhook_secrets, settings.webhook_secret, name)
    if not secret:
        which = f"secret {name!r} in SALESMESH_WEBHOOK_SECRETS" if name else "SALESMESH_WEBHOOK_SECRET"
        raise DeliveryError(f"webhook {recipient}: the signing {which} is not configured")
    body = json.dumps(payload.get("body", {}), ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": key,
        "X-Salesmesh-Event": str(payload.get("event", "")),
        "X-Salesmesh-Timestamp": str(timestamp),
        "X-Salesmesh-Signature": sign_webhook(secret, timestamp, body),
    }
    try:
        allowlist = Allowlist.parse(settings.webhook_allowlist)
        status = send(
            recipient,
            method=str(payload.get("method") or "POST"),
            body=body,
            headers=headers,
            timeout=settings.smtp_timeout_seconds,
            allowlist=allowlist,
        )
    except (EgressRefused, ValueError) as exc:
        raise DeliveryError(f"webhook refused: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"webhook {recipient}: {exc}") from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook {recipient}: HTTP {status}")
