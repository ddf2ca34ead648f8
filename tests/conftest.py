"""Shared test setup: mark each test by the folder it lives in."""

from pathlib import Path

import pytest

_MARK_BY_FOLDER = {"unit": pytest.mark.unit, "integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(config, items):
    tests_root = Path(__file__).parent
    for item in items:
        folder = Path(item.fspath).relative_to(tests_root).parts[0]
        if folder in _MARK_BY_FOLDER:
            item.add_marker(_MARK_BY_FOLDER[folder])
