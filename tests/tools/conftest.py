"""Start the pin sets' PyPI resolves when collection ends, so they overlap the suite."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import lanes

RESOLVES_KEY = pytest.StashKey["object"]()


def pytest_collection_finish(session: pytest.Session) -> None:
    if not any("test_pins.py::test_pin_set_resolves_for_manylinux" in item.nodeid for item in session.items):
        return
    from tests.tools.test_pins import Resolves

    config = session.config
    if lanes.parallel(config):
        # Both workers collect everything and either may run test_pins.py:
        # the first here resolves, the other reads its results.
        directory = lanes.shared_dir(config) / "pin-resolves"
        try:
            directory.mkdir()
        except FileExistsError:
            started = Resolves.reading(directory)
        else:
            started = Resolves(directory, publish=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="pin-resolves-"))
        started = Resolves(directory)
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    config.stash[RESOLVES_KEY] = started
    config.add_cleanup(started.close)
