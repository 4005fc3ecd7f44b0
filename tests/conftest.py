"""Shared fixtures: the demo checkpoints and, for e2e tests, one real cluster."""

from pathlib import Path

import pytest

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
