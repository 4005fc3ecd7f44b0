"""The chart, loaded once, and every values file rendered once, shared by the chart tests."""

from __future__ import annotations

import pytest

from tests.helm.rendering import CASES, CHART, GPU_PROFILES, helm, profile_values, render


@pytest.fixture(scope="module")
def chart():
    return helm.Chart.load(str(CHART))


@pytest.fixture(scope="module")
def rendered(chart):
    return {case_id: render(chart, values) for values, case_id in
            [(p.values[0], p.values[1]) for p in CASES]}


@pytest.fixture(scope="module")
def rendered_profiles(chart):
    """Every GPU profile of deployments/ rendered alone (clusterYaml), by profile name."""
    return {f.stem: render(chart, profile_values(f.stem)) for f in GPU_PROFILES}
