"""Browser fixtures: Debian's Chromium driven by Playwright (no downloaded browser), and the
demo hub a new user starts with the README's commands."""

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import remove_home_volumes
from tests.support.hubs import free_port

ROOT = Path(__file__).resolve().parents[2]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless Chromium per test module (Playwright's loop must not outlive the module)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is missing: run ./run setup (it installs Debian's chromium)",
                    pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory) -> Iterator[tuple[str, dict, Path]]:
    """`spe demo init` then `scripts/hub.sh start` in a fresh state dir: (url, accounts, state);
    `down` and the workspaces' home volumes removed afterwards."""
    state = tmp_path_factory.mktemp("e2e-state")
    port = free_port()
    env = {**os.environ, "SPE_STATE_DIR": str(state), "SPE_PYTHON": sys.executable,
           "SPE_DEMO_MODE": "1",  # as ./run up: the demo's accounts, one password each
           "SPE_HUB_BIND_URL": f"http://127.0.0.1:{port}", "SPE_HUB_API_PORT": str(free_port()),
           "SPE_PROXY_API_URL": f"http://127.0.0.1:{free_port()}",
           "SPE_AIRLOCK_PORT": str(free_port()),
           "SPE_CONTAINER_PREFIX": f"spee{uuid.uuid4().hex[:6]}"}
    for name in ("SPE_DATABASE_URL", "SPE_OUTPUT_CHECKERS", "SPE_ADMIN_USERS"):
        env.pop(name, None)
    init = subprocess.run([sys.executable, "-m", "lnds_spe", "demo", "init"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert "shown once" in init.stdout
    start = subprocess.run([str(ROOT / "scripts" / "hub.sh"), "start"], env=env,
                           capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr
    accounts = json.loads((state / "demo-accounts.json").read_text())
    yield f"http://127.0.0.1:{port}", accounts, state
    subprocess.run([str(ROOT / "scripts" / "hub.sh"), "down"], env=env, timeout=180)
    remove_home_volumes(env["SPE_CONTAINER_PREFIX"])
