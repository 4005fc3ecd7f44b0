"""The real Ingress of the cpu-demo profile with no pool attached: its request path builds engine
requests (vLLM's own request models) and nothing reaches an engine."""

from __future__ import annotations

import pytest

from cluster.config import load_config, profile_path
from deployments.ingress.service import Ingress


@pytest.fixture(scope="module")
def ingress(demo_models, tmp_path_factory):
    config = load_config(profile_path("cpu-demo"), [f"documents.store.data_dir={tmp_path_factory.mktemp('docs')}"],
                         env={})
    return Ingress(config.model_dump(mode="json"), pool_handles={})
