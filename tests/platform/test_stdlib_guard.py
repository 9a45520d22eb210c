"""The project must never shadow the standard library's `platform` module (ARCHITECTURE.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stdlib_platform_wins_from_repo_root() -> None:
    code = (
        "import platform, sqlalchemy, flask, sysconfig, os;"
        "stdlib = sysconfig.get_paths()['stdlib'];"
        "assert os.path.dirname(platform.__file__) == stdlib, platform.__file__;"
        "assert callable(platform.python_version);"
        "import salesmesh.platform.app;"
        "print('ok', platform.python_version())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_no_top_level_platform_package() -> None:
    assert not (ROOT / "platform").exists()
    assert (ROOT / "tests" / "__init__.py").exists(), "tests/ must stay a package"
