"""The airlock lab extension's frontend unit tests (jest), run here so that CI runs them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXTENSION = Path(__file__).resolve().parents[3] / "extensions" / "lnds-spe-airlock"


def jlpm() -> str:
    """JupyterLab's bundled yarn, from this interpreter's environment."""
    found = shutil.which("jlpm", path=str(Path(sys.executable).parent)) or shutil.which("jlpm")
    if found is None:
        pytest.fail("jlpm is missing: run ./run setup (it installs jupyterlab into .venv)", pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("Node.js is missing: run ./run setup (it installs Node and npm)", pytrace=False)
    return found


def test_jest_suite_passes():
    """`jlpm install --immutable` (the committed yarn.lock) then `jlpm test`: every spec passes."""
    env = {**os.environ, "CI": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    install = subprocess.run([jlpm(), "install", "--immutable"], cwd=EXTENSION, env=env,
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    test = subprocess.run([jlpm(), "test", "--ci"], cwd=EXTENSION, env=env,
                          capture_output=True, text=True, timeout=600)
    report = test.stdout + test.stderr
    assert test.returncode == 0, report[-5000:]
    assert "Tests:" in report and " failed" not in report.split("Tests:")[1].splitlines()[0], report
