"""Outbound HTTP to configured addresses: private, loopback, link-local, multicast and reserved targets
are refused unless allow-listed; the request goes to the address that was checked (a changed DNS answer
cannot redirect it) and redirects are not followed."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from salesmesh.platform.egress import Allowlist, EgressRefused, check_target, send

NOBODY = Allowlist()


def _resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int, type: int = 0) -> list[Any]:  # noqa: A002 - getaddrinfo's name
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",
        "224.0.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "240.0.0.1",
    ],
)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    with pytest.raises(EgressRefused, match="SALESMESH_WEBHOOK_ALLOWLIST"):
        check_target("https://hooks.example.com/x", NOBODY, resolve=_resolver(address))


def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(EgressRefused, match="10.0.0.5"):
        check_target("https://hooks.example.com/x", NOBODY, resolve=_resolver("93.184.216.34", "10.0.0.5"))


def test_public_targets_pass_and_keep_their_path_and_query() -> None:
    target = check_target(
        "https://hooks.example.com:8443/a/b?c=1", NOBODY, resolve=_resolver("93.184.216.34")
    )
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "hooks.example.com",
        8443,
        "/a/b?c=1",
        "93.184.216.34",
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "only http"),
        ("https:///nohost", "only http"),
        ("https://user:pw@example.com/", "credentials"),
        ("http://[::1/", "not a valid URL"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(EgressRefused, match=reason):
        check_target(url, NOBODY, resolve=_resolver("93.184.216.34"))


def test_unresolvable_hosts_are_refused() -> None:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(-2, "Name or service not known")

    with pytest.raises(EgressRefused, match="cannot resolve"):
        check_target("https://nowhere.invalid/", NOBODY, resolve=fail)


def test_the_allowlist_takes_host_names_and_networks() -> None:
    allow = Allowlist.parse(["crm-bridge.internal", "10.20.0.0/16", " ", "::1"])
    assert (
        check_target("http://crm-bridge.internal/x", allow, resolve=_resolver("10.9.9.9")).address
        == "10.9.9.9"
    )
    assert (
        check_target("http://other.internal/x", allow, resolve=_resolver("10.20.3.4")).address == "10.20.3.4"
    )
    assert check_target("http://[::1]:8080/x", allow, resolve=_resolver("::1")).port == 8080
    with pytest.raises(EgressRefused):
        check_target("http://other.internal/x", allow, resolve=_resolver("10.21.0.1"))
    with pytest.raises(ValueError, match="neither a host name nor an IP network"):
        Allowlist.parse(["10.0.0.0/33"])


class _Receiver(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        else:
            self.send_response(204)
        self.end_headers()

    do_POST = do_PUT = _handle

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[Any]]]:
    handler = type("Handler", (_Receiver,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], handler.seen
    server.shutdown()
    server.server_close()


def test_send_reaches_an_allow_listed_local_receiver_and_never_follows_redirects(
    receiver: tuple[int, list[Any]],
) -> None:
    port, seen = receiver
    local = Allowlist.parse(["127.0.0.1/32"])
    with pytest.raises(EgressRefused, match="127.0.0.1"):
        send(
            f"http://127.0.0.1:{port}/hook",
            method="POST",
            body=b"{}",
            headers={},
            timeout=5,
            allowlist=NOBODY,
        )
    assert seen == []
    status = send(
        f"http://127.0.0.1:{port}/hook?x=1",
        method="PUT",
        body=b'{"a":1}',
        headers={"X-Test": "1"},
        timeout=5,
        allowlist=local,
    )
    assert status == 204 and seen[0][:2] == ("PUT", "/hook?x=1") and seen[0][3] == b'{"a":1}'
    assert seen[0][2]["X-Test"] == "1" and seen[0][2]["Host"] == f"127.0.0.1:{port}"
    assert (
        send(
            f"http://127.0.0.1:{port}/redirect",
            method="POST",
            body=b"",
            headers={},
            timeout=5,
            allowlist=local,
        )
        == 302
    )
    assert len(seen) == 2  # the redirect's target was not called
    with pytest.raises(EgressRefused, match="only POST and PUT"):
        send(
            f"http://127.0.0.1:{port}/hook", method="DELETE", body=b"", headers={}, timeout=5, allowlist=local
        )


def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
    receiver: tuple[int, list[Any]],
) -> None:
    port, seen = receiver
    # "hooks.invalid" resolves nowhere for real: only the checked answer (127.0.0.1, allow-listed) is used.
    status = send(
        f"http://hooks.invalid:{port}/hook",
        method="POST",
        body=b"{}",
        headers={},
        timeout=5,
        allowlist=Allowlist.parse(["127.0.0.0/8"]),
        resolve=_resolver("127.0.0.1"),
    )
    assert status == 204 and seen[0][2]["Host"] == f"hooks.invalid:{port}"
