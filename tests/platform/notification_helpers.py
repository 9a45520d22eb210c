"""Local stand-ins for the outside world of notifications: a tiny SMTP receiver (the standard library lost
`smtpd` in 3.12) and a webhook receiver, each on a free 127.0.0.1 port in a background thread, recording
what arrives and able to refuse the next N deliveries."""

from __future__ import annotations

import email
import email.policy
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Mailbox:
    """What the SMTP receiver got: one entry per accepted message."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: int = 0  # answer the next N MAIL FROM commands with a temporary failure
    lock: threading.Lock = field(default_factory=threading.Lock)


class _SMTPHandler(socketserver.StreamRequestHandler):
    server: _SMTPServer

    def _send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        box = self.server.mailbox
        self._send("220 localhost test SMTP")
        sender, recipients = "", []
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            command = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self._send("250 localhost")
            elif verb == "MAIL":
                with box.lock:
                    refuse = box.refuse > 0
                    if refuse:
                        box.refuse -= 1
                if refuse:
                    self._send("451 4.3.0 try again later")
                else:
                    sender, recipients = command.split(":", 1)[1].strip(" <>"), []
                    self._send("250 OK")
            elif verb == "RCPT":
                recipients.append(command.split(":", 1)[1].strip(" <>"))
                self._send("250 OK")
            elif verb == "DATA":
                self._send("354 end with <CR><LF>.<CR><LF>")
                lines = []
                while True:
                    line = self.rfile.readline(1 << 20)
                    if not line or line == b".\r\n":
                        break
                    lines.append(line[1:] if line.startswith(b"..") else line)
                message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                with box.lock:
                    box.messages.append(message)  # type: ignore[arg-type]
                    box.envelopes.append((sender, recipients))
                self._send("250 OK queued")
            elif verb == "RSET":
                sender, recipients = "", []
                self._send("250 OK")
            elif verb == "NOOP":
                self._send("250 OK")
            elif verb == "QUIT":
                self._send("221 bye")
                return
            else:
                self._send("502 command not implemented")


class _SMTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    mailbox: Mailbox


@contextmanager
def smtp_receiver() -> Iterator[tuple[int, Mailbox]]:
    """Run an SMTP receiver on a free local port; yield (port, mailbox)."""
    server = _SMTPServer(("127.0.0.1", 0), _SMTPHandler)
    server.mailbox = Mailbox()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.mailbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class Hooks:
    """What the webhook receiver got: (headers, raw body) per request."""

    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail: int = 0  # answer the next N requests with HTTP 500
    lock: threading.Lock = field(default_factory=threading.Lock)


class _HookHandler(BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        hooks = self.server.hooks
        with hooks.lock:
            failing = hooks.fail > 0
            if failing:
                hooks.fail -= 1
            else:
                hooks.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(500 if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


class _HookServer(ThreadingHTTPServer):
    daemon_threads = True
    hooks: Hooks


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, Hooks]]:
    """Run a webhook receiver on a free local port; yield (URL, hooks)."""
    server = _HookServer(("127.0.0.1", 0), _HookHandler)
    server.hooks = Hooks()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/salesmesh", server.hooks
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
