"""Start the pin sets' PyPI resolves when collection ends, so they overlap the suite."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

RESOLVES_KEY = pytest.StashKey["object"]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any("test_pins.py::test_pin_set_resolves_for_manylinux" in item.nodeid for item in session.items):
        return
    from tests.tools.test_pins import Resolves

    directory = Path(tempfile.mkdtemp(prefix="pin-resolves-"))
    started = Resolves(directory)
    session.config.stash[RESOLVES_KEY] = started
    session.config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    session.config.add_cleanup(started.close)
