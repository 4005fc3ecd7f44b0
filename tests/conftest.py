"""Shared fixtures (the demo checkpoints, ../shared/reference) and how the
suite shares two xdist workers (tests/support/lanes.py)."""

from pathlib import Path

import pytest

from tests.support import lanes

REPO = Path(__file__).resolve().parent.parent
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def demo_models() -> Path:
    from cluster.demo import build_all

    root = REPO / "build" / "models"
    build_all(root)
    return root


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    if not SHARED_REFERENCE.is_dir():
        pytest.skip(f"{SHARED_REFERENCE} is absent (only CI and developers have ../shared)")
    return SHARED_REFERENCE


def pytest_configure(config):
    if lanes.parallel(config):
        lanes.own_session()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if lanes.parallel(config):
        lanes.order(items)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadgroup":
        return lanes.make_scheduler(config, log)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    lanes.set_priority(item)
    with lanes.machine_share(item.config, quiet=item.get_closest_marker(lanes.QUIET_MARK) is not None):
        return (yield)
