"""Serve's direct ingress, from the profile to the environment Ray starts with (cluster/direct_ingress.py).

That the replicas then serve the API on their own ports is tested against the
running cluster: tests/e2e/test_direct_ingress.py.
"""

import os

import pytest
from pydantic import ValidationError

from cluster.config import load_config, profile_path
from cluster.direct_ingress import DIRECT_INGRESS_ENV, enable_for_local_ray, missing_on_cluster_warning


def _config(*overrides):
    return load_config(profile_path("cpu-demo"), list(overrides))


def test_off_by_default_and_typed():
    assert _config().ingress.direct_ingress is False
    assert _config("ingress.direct_ingress=true").ingress.direct_ingress is True
    with pytest.raises(ValidationError, match="direct_ingress"):
        _config("ingress.direct_ingress=sometimes")


def test_profile_setting_reaches_the_environment_ray_starts_with(monkeypatch):
    monkeypatch.delenv(DIRECT_INGRESS_ENV, raising=False)
    enable_for_local_ray(_config())
    assert DIRECT_INGRESS_ENV not in os.environ
    enable_for_local_ray(_config("ingress.direct_ingress=true"))
    assert os.environ[DIRECT_INGRESS_ENV] == "1"


def test_a_users_own_setting_is_left_alone(monkeypatch):
    # Set for the whole Ray by the user: a profile without it does not turn it off.
    monkeypatch.setenv(DIRECT_INGRESS_ENV, "1")
    enable_for_local_ray(_config())
    assert os.environ[DIRECT_INGRESS_ENV] == "1"


def test_a_cluster_started_without_it_is_reported():
    asked = _config("ingress.direct_ingress=true")
    warning = missing_on_cluster_warning(asked, [])
    assert warning and DIRECT_INGRESS_ENV in warning and "every node" in warning
    assert missing_on_cluster_warning(asked, ["http://10.0.0.5:30000"]) is None
    assert missing_on_cluster_warning(_config(), []) is None
