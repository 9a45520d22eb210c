"""Browser fixtures: Playwright drives Debian's chromium (nothing is downloaded), and `demo_server`
starts the real `make demo` on a free port with its own instance folder."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict, chromium_path: str) -> dict:
    return {
        **browser_type_launch_args,
        "executable_path": chromium_path,
        "args": [
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Run `make demo` (upgrade, seed, serve) and yield its base URL once it answers."""
    instance = tmp_path_factory.mktemp("demo-instance")
    port = _free_port()
    log = (instance / "demo.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESMESH_")}
    # Serve this checkout's code even when the virtualenv's editable install points at another copy.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"DEMO_INSTANCE={instance}", f"DEMO_PORT={port}"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"make demo exited with {proc.returncode}:\n{(instance / 'demo.log').read_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(
                "make demo did not start serving within 240 s:\n" + (instance / "demo.log").read_text()
            )
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    output = (instance / "demo.log").read_text()
    assert "admin@demo.salesmesh.test" in output, "make demo did not print the logins"
